import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSchedstat, schedSpans, threadSched } from './sched.js';

test('schedstat: the line Linux writes, nothing else; spans in ms to a tenth', () => {
  assert.deepEqual(parseSchedstat('1135185 20000 1\n'), { run: 1135185, wait: 20000 });
  for (const bad of ['', '0 0 0', '1 2', '1 2 3 4', '-1 2 3', 'a b c', '1.5 2 3', '1 2 3\nextra']) assert.equal(parseSchedstat(bad), undefined, JSON.stringify(bad));
  assert.deepEqual(schedSpans({ run: 0, wait: 0 }, { run: 12_340_000, wait: 150_000 }, { run: 20_000_000, wait: 25_150_000 }), { planRun: 12.3, planWait: 0.2, run: 7.7, wait: 25 });
  assert.equal(schedSpans(undefined, { run: 0, wait: 0 }, { run: 0, wait: 0 }), undefined);
  // This thread's, read twice around some work: its CPU time moves forward.
  const a = threadSched();
  if (a) {
    let x = 0;
    for (let i = 0; i < 5e6; i++) x += i;
    const b = threadSched() as NonNullable<typeof a>;
    assert.ok(b.run > a.run && x > 0);
  }
});
