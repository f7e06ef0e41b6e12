import { test } from 'node:test';
import assert from 'node:assert/strict';
import { testdata } from './golden.js';
import { PerfError } from './errors.js';
import { buildResult, LIMITS, summarise, validateResult, type BenchRunInput } from './results.js';

const input = (): BenchRunInput => ({
  time: '2026-12-01T10:00:00.000Z',
  tenant: 'shop',
  network: 'default',
  fromGroup: 'app',
  toGroup: 'db',
  port: 8888,
  durationSeconds: 2,
  netprofile: { name: 'gold', bandwidthBitsPerSecond: 100e6 },
  throughput: [{ t: 0.5, bitsPerSecond: 90e6 }, { t: 1, bitsPerSecond: 100e6 }],
  latenciesMs: [0.5, 0.25, 1],
});

/** The stored form of a fresh record, as a mutable plain object. */
const stored = (): Record<string, any> => JSON.parse(JSON.stringify(buildResult('run-1', input())));

test('the summary is mean, median and nearest-rank p99, and null when nothing was measured', () => {
  assert.equal(summarise([]), null);
  assert.deepEqual(summarise([7]), { mean: 7, median: 7, p99: 7 });
  assert.deepEqual(summarise([4, 1, 3, 2]), { mean: 2.5, median: 2.5, p99: 4 });
  const hundred = Array.from({ length: 100 }, (_, i) => 100 - i);
  assert.deepEqual(summarise(hundred), { mean: 50.5, median: 50.5, p99: 99 });
  assert.equal(summarise(Array.from({ length: 1000 }, (_, i) => i + 1))?.p99, 990);
  const r = buildResult('run-1', input());
  assert.deepEqual(r.summary, { throughputBitsPerSecond: { mean: 95e6, median: 95e6, p99: 100e6 }, latencyMs: { mean: 1.75 / 3, median: 0.5, p99: 1 } });
  assert.deepEqual(buildResult('run-2', { ...input(), throughput: [], latenciesMs: [] }).summary, { throughputBitsPerSecond: null, latencyMs: null });
});

test('what is built reads back equal, and every fixture in testdata is a valid record', () => {
  const r = buildResult('run-1', input());
  assert.deepEqual(validateResult(JSON.parse(JSON.stringify(r))), r);
  for (const f of ['run-limited', 'run-loopback', 'run-empty', 'run-one', 'run-flat']) validateResult(JSON.parse(testdata(`${f}.json`)));
});

function refused(record: unknown, field: string): void {
  assert.throws(() => validateResult(record), (e: unknown) => {
    assert.ok(e instanceof PerfError, String(e));
    assert.equal(e.code, 'WEFT_INVALID_FIELD');
    assert.equal(e.field, field, e.message);
    assert.ok(e.message.startsWith(`${field}: `), e.message);
    return true;
  });
}

test('a corrupt or hostile record is refused with the field at fault named', () => {
  const cases: Array<[string, (r: Record<string, any>) => void]> = [
    ['version', (r) => (r['version'] = 2)],
    ['tenant', (r) => delete r['tenant']],
    ['tenant', (r) => (r['tenant'] = '<script>alert(1)</script>')],
    ['toGroup', (r) => (r['toGroup'] = 'DB')],
    ['evil', (r) => (r['evil'] = true)],
    ['id', (r) => (r['id'] = '../../etc/passwd')],
    ['id', (r) => (r['id'] = 'x'.repeat(65))],
    ['time', (r) => (r['time'] = 'yesterday')],
    ['time', (r) => (r['time'] = '2026-13-45T99:00:00Z')],
    ['port', (r) => (r['port'] = 0)],
    ['port', (r) => (r['port'] = 65_536)],
    ['port', (r) => (r['port'] = 80.5)],
    ['port', (r) => (r['port'] = '80')],
    ['durationSeconds', (r) => (r['durationSeconds'] = -1)],
    ['netprofile', (r) => (r['netprofile'] = 'gold')],
    ['netprofile.bandwidthBitsPerSecond', (r) => (r['netprofile'].bandwidthBitsPerSecond = 0)],
    ['netprofile.name', (r) => (r['netprofile'].name = '')],
    ['throughput', (r) => (r['throughput'] = {})],
    ['throughput.1', (r) => (r['throughput'][1] = null)],
    ['throughput.1.t', (r) => (r['throughput'][1].t = 0.5)],
    ['throughput.0.bitsPerSecond', (r) => (r['throughput'][0].bitsPerSecond = '1e9')],
    ['throughput.0.bitsPerSecond', (r) => (r['throughput'][0].bitsPerSecond = 1e16)],
    ['throughput.0.extra', (r) => (r['throughput'][0].extra = 1)],
    ['latenciesMs.2', (r) => (r['latenciesMs'][2] = -0.1)],
    ['latenciesMs', (r) => (r['latenciesMs'] = new Array(LIMITS.latencies + 1).fill(1))],
    ['summary', (r) => (r['summary'] = null)],
    ['summary.latencyMs.p99', (r) => (r['summary'].latencyMs.p99 = -1)],
    ['summary.throughputBitsPerSecond', (r) => delete r['summary'].throughputBitsPerSecond],
  ];
  for (const [field, spoil] of cases) {
    const r = stored();
    spoil(r);
    refused(r, field);
  }
  for (const root of [null, [], 'text', 42]) refused(root, 'record');
});

test('values JSON cannot hold as numbers, and prototype keys, are refused, not trusted', () => {
  // 1e400 parses to Infinity; "__proto__" from JSON.parse is an own key, and must not pass as unknown-but-harmless.
  const text = JSON.stringify(stored()).replace('"durationSeconds":2', '"durationSeconds":1e400');
  refused(JSON.parse(text), 'durationSeconds');
  const proto = JSON.parse(JSON.stringify(stored()).replace('{"version"', '{"__proto__":{"polluted":1},"version"'));
  refused(proto, '__proto__');
  assert.equal(({} as Record<string, unknown>)['polluted'], undefined);
});

test('a hostile key is named briefly and without control characters', () => {
  const r = stored();
  r[`${'k'.repeat(500)}\n\u001b[31m`] = 1;
  assert.throws(() => validateResult(r), (e: unknown) => {
    assert.ok(e instanceof PerfError);
    assert.ok(e.message.length < 120, e.message);
    assert.doesNotMatch(e.message, /[\n\u001b]/);
    return true;
  });
});
