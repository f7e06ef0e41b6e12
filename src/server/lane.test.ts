import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Lane } from './lane.js';
import { SLICE_MS, TimeSlices } from './slices.js';

/** Busy for `ms` of the event loop, as a slice of costly work is. */
function spin(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

/** How long a timer due at once waits while four jobs of six 25 ms slices run, each pausing through `pauseOf(who)`. */
async function bystanderWait(run: (who: string, slices: (pause: () => Promise<void>) => Promise<void>) => Promise<void>): Promise<number> {
  const jobs = ['a', 'b', 'c', 'd'].map((who) => run(who, async (pause) => {
    for (let i = 0; i < 6; i++) {
      spin(25);
      await pause();
    }
  }));
  await new Promise((r) => setImmediate(r));
  const asked = performance.now();
  const waited = await new Promise<number>((r) => setTimeout(() => r(performance.now() - asked), 0));
  await Promise.all(jobs);
  return waited;
}

test('costly work in the lane takes turns a slice at a time: a bystander waits one slice, not one of each job', async () => {
  const lane = new Lane();
  const inLane = await bystanderWait((who, body) => lane.run(who, (turn) => body(turn.pause)));
  // The same jobs pausing on their own (a turn of the event loop each): every job's slice runs before the timer.
  const sideBySide = await bystanderWait((_, body) => body(new TimeSlices().pause));
  assert.ok(inLane < 60, `in the lane the bystander waited ${inLane.toFixed(1)} ms (a slice is 25 ms)`);
  assert.ok(sideBySide >= 90, `side by side it waited ${sideBySide.toFixed(1)} ms (four slices): the comparison holds`);
  assert.equal(lane.queued, 0);
});

test('turns go round the askers: one asker with many questions does not go before another with one', async () => {
  const lane = new Lane();
  const order: string[] = [];
  const job = (who: string, n: number) => lane.run(who, async (turn) => {
    spin(SLICE_MS + 1);
    order.push(`${who}${n}`);
    await turn.pause();
  });
  const all = [job('greedy', 1), job('greedy', 2), job('greedy', 3), job('greedy', 4), job('polite', 1)];
  await Promise.all(all);
  assert.ok(order.indexOf('polite1') <= 2, `the other asker had its turn second or third, not last: ${order.join(' ')}`);
  // A long job shares too: its slices alternate with the other asker's.
  const slices: string[] = [];
  const long = (who: string, n: number) => lane.run(who, async (turn) => {
    for (let i = 0; i < n; i++) {
      spin(SLICE_MS + 1);
      slices.push(who);
      await turn.pause();
    }
  });
  await Promise.all([long('long', 6), long('short', 2)]);
  assert.ok(slices.lastIndexOf('short') <= 4, `the short job ended within its first turns: ${slices.join(' ')}`);
});

test('work waiting for another\'s result waits outside the lane (no deadlock), and a failure frees the lane', async () => {
  const lane = new Lane();
  let release!: (v: string) => void;
  const shared = new Promise<string>((r) => { release = r; });
  const builder = lane.run('a', async (turn) => {
    await turn.pause();
    spin(SLICE_MS + 1);
    await turn.pause();
    release('built');
    return 'a';
  });
  const waiter = lane.run('b', async (turn) => turn.away(shared));
  const timeout = new Promise((_, no) => setTimeout(() => no(new Error('deadlock')), 2000));
  assert.deepEqual(await Promise.race([Promise.all([builder, waiter]), timeout]), ['a', 'built']);
  await assert.rejects(lane.run('c', async () => { throw new Error('boom'); }), /boom/);
  assert.equal(await Promise.race([lane.run('d', async () => 'free'), timeout]), 'free', 'the lane is free after a failure');
});
