import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GRPCResourceExhastedError, GRPCUnavailableError, GRPCNotFoundError } from 'etcd3';
import { BREAKER_OPEN_MS, HostCircuitOpen, RETRY_PAUSE_MS, WRITE_DEADLINE_MS, callOptions, globalPolicy, hostPolicy } from './etcd-faults.js';

const noSpace = () => new GRPCResourceExhastedError('8 RESOURCE_EXHAUSTED: etcdserver: mvcc: database space exceeded');
const down = () => new GRPCUnavailableError('14 UNAVAILABLE: connect ECONNREFUSED');

/** The client's call shape: the overall policy around the host policy around one call. */
function client(now: () => number, pauses: number[] = []) {
  const host = hostPolicy('127.0.0.1:2379', now);
  const global = globalPolicy(async (ms) => { pauses.push(ms); });
  let calls = 0;
  const run = (fail: () => Error | undefined) => global.execute(() => host.execute(async () => {
    calls++;
    const e = fail();
    if (e) throw e;
    return 'ok';
  }));
  return { run, calls: () => calls };
}

test('a write refused for space is thrown once, unretried, and never opens the host circuit', async () => {
  const c = client(() => 0);
  for (let i = 0; i < 5; i++) await assert.rejects(c.run(noSpace), /database space exceeded/);
  assert.equal(c.calls(), 5, 'one call per refused write: no retries');
  assert.equal(await c.run(() => undefined), 'ok', 'the next read goes through at once');
});

test('recoverable failures are retried, and three in a row open the circuit for 5 s', async () => {
  let t = 0;
  const c = client(() => t);
  await assert.rejects(c.run(down), /UNAVAILABLE/);
  assert.equal(c.calls(), 3, 'three attempts');
  await assert.rejects(c.run(() => undefined), HostCircuitOpen, 'open: not even tried');
  assert.equal(c.calls(), 3);
  t += BREAKER_OPEN_MS + 1;
  assert.equal(await c.run(() => undefined), 'ok', 'tried again after 5 s, and closed');
});

test('other refusals are neither retried nor counted', async () => {
  const c = client(() => 0);
  for (let i = 0; i < 4; i++) await assert.rejects(c.run(() => new GRPCNotFoundError('5 NOT_FOUND')));
  assert.equal(c.calls(), 4);
  assert.equal(await c.run(() => undefined), 'ok');
});

test('retries pause a little longer each time (an election gets time to end); a first attempt does not wait', async () => {
  const pauses: number[] = [];
  const c = client(() => 0, pauses);
  await assert.rejects(c.run(down), /UNAVAILABLE/);
  assert.deepEqual(pauses, [RETRY_PAUSE_MS, 2 * RETRY_PAUSE_MS]);
  pauses.length = 0;
  let n = 0;
  const d = client(() => 0, pauses);
  assert.equal(await d.run(() => (++n === 1 ? down() : undefined)), 'ok', 'the second attempt goes through');
  assert.deepEqual(pauses, [RETRY_PAUSE_MS]);
});

test('writes carry a deadline shorter than etcd\'s own request timeout (7 s); reads and streams none', () => {
  const f = callOptions(() => 1_000);
  for (const method of ['txn', 'put', 'deleteRange'] as const) {
    assert.deepEqual(f({ service: 'KV', method, isStream: false, params: {} } as never), { deadline: 1_000 + WRITE_DEADLINE_MS }, method);
  }
  assert.ok(WRITE_DEADLINE_MS < 7_000);
  assert.deepEqual(f({ service: 'KV', method: 'range', isStream: false, params: {} } as never), {}, 'a listing may be large: no deadline');
  assert.deepEqual(f({ service: 'Watch', method: 'watch', isStream: true } as never), {}, 'streams: none');
  assert.deepEqual(f({ service: 'Lease', method: 'leaseGrant', isStream: false, params: {} } as never), {});
});
