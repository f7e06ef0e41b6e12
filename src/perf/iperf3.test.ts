import { test } from 'node:test';
import assert from 'node:assert/strict';
import { golden, testdata } from './golden.js';
import { PerfError } from './errors.js';
import { parseIperf3 } from './iperf3.js';

// testdata/iperf3-client.json is real output: `iperf3 -c 127.0.0.1 -p 5299 -t 2 -J --interval 0.5` (iperf 3.12).
test("a real iperf3 -J run becomes one sample per interval, at the interval's end, from its sum", () => {
  const text = testdata('iperf3-client.json');
  const samples = parseIperf3(text);
  const doc = JSON.parse(text) as { intervals: Array<{ sum: { end: number; bits_per_second: number } }> };
  assert.equal(samples.length, 4);
  assert.deepEqual(samples, doc.intervals.map((i) => ({ t: i.sum.end, bitsPerSecond: i.sum.bits_per_second })));
  golden('iperf3-client.samples.json', `${JSON.stringify(samples, null, 2)}\n`);
});

test("iperf3's own error object is a failed measurement carrying its words", () => {
  // testdata/iperf3-refused.json is real output against a closed port; iperf 3.12 exited 0 there, so
  // the JSON's error, not the exit status, is what tells a failure.
  assert.throws(() => parseIperf3(testdata('iperf3-refused.json')), (e: unknown) => {
    assert.ok(e instanceof PerfError);
    assert.equal(e.code, 'WEFT_BENCH_FAILED');
    assert.match(e.message, /^iperf3: unable to connect to server: Connection refused$/);
    return true;
  });
  // Cut short after some intervals: still a failure, not a slow run.
  const partial = JSON.parse(testdata('iperf3-client.json')) as Record<string, unknown>;
  partial['error'] = 'interrupt - the server has terminated';
  assert.throws(() => parseIperf3(JSON.stringify(partial)), { code: 'WEFT_BENCH_FAILED' });
});

test('output that is not iperf3 JSON is refused as malformed, naming where', () => {
  const cases: Array<[string, string | undefined]> = [
    ['Connecting to host 127.0.0.1, port 5201', undefined],
    ['[]', undefined],
    ['{}', 'intervals'],
    ['{"intervals":[{}]}', 'intervals.0.sum'],
    ['{"intervals":[{"sum":{"end":0.5,"bits_per_second":-1}}]}', 'intervals.0.sum.bits_per_second'],
    ['{"intervals":[{"sum":{"end":0.5,"bits_per_second":"fast"}}]}', 'intervals.0.sum.bits_per_second'],
    ['{"intervals":[{"sum":{"end":1,"bits_per_second":1}},{"sum":{"end":1,"bits_per_second":1}}]}', 'intervals.1.sum.end'],
  ];
  for (const [text, field] of cases) {
    assert.throws(() => parseIperf3(text), (e: unknown) => {
      assert.ok(e instanceof PerfError, text);
      assert.equal(e.code, 'WEFT_MALFORMED', text);
      assert.equal(e.field, field, text);
      return true;
    });
  }
});

test("intervals iperf3 marks omitted (-O warm-up) are left out", () => {
  const iv = (end: number, omitted: boolean) => ({ sum: { start: end - 0.5, end, bits_per_second: omitted ? 1 : 5e8, omitted } });
  const samples = parseIperf3(JSON.stringify({ intervals: [iv(0.5, true), iv(1, false), iv(1.5, false)] }));
  assert.deepEqual(samples, [{ t: 1, bitsPerSecond: 5e8 }, { t: 1.5, bitsPerSecond: 5e8 }]);
});
