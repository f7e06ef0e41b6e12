import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Lane, LaneLeft } from './lane.js';
import { SLICE_MS, TimeSlices } from './slices.js';

/** Busy for `ms` of the event loop, as a slice of costly work is. */
function spin(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

/**
 * The most slices of costly work that ran between two turns of a bystander (a 1 ms interval timer) while
 * four jobs of six 25 ms slices ran, each pausing through what `run` gives it; and the longest the
 * bystander waited. Counted in slices, not read off the clock: a loaded machine that preempts the test
 * lengthens the waits (a CI run saw 61.5 ms against a bound of 60), never the count.
 */
async function bystanderWait(run: (who: string, slices: (pause: () => Promise<void>) => Promise<void>) => Promise<void>): Promise<{ slices: number; ms: number }> {
  let ran = 0;
  let seen = 0;
  let worst = 0;
  let worstMs = 0;
  let last = performance.now();
  const tick = setInterval(() => {
    const now = performance.now();
    worst = Math.max(worst, ran - seen);
    worstMs = Math.max(worstMs, now - last);
    seen = ran;
    last = now;
  }, 1);
  // Started from a timer, as a request's work is from I/O: not inside the first slices' own turn.
  await new Promise((r) => setTimeout(r, 5));
  last = performance.now();
  const jobs = ['a', 'b', 'c', 'd'].map((who) => run(who, async (pause) => {
    for (let i = 0; i < 6; i++) {
      spin(25);
      ran++;
      await pause();
    }
  }));
  await Promise.all(jobs);
  clearInterval(tick);
  return { slices: worst, ms: worstMs };
}

test('costly work in the lane takes turns a slice at a time: a bystander waits one slice, not one of each job', async () => {
  const lane = new Lane();
  const inLane = await bystanderWait((who, body) => lane.run(who, (turn) => body(turn.pause)));
  // The same jobs pausing on their own (a turn of the event loop each): every job's slice runs before the timer.
  const sideBySide = await bystanderWait((_, body) => body(new TimeSlices().pause));
  // In the lane one slice a turn of the event loop (the first job's first at once, the others queued; a
  // timer due in the same turn as a slice's pause may see two); side by side every job's first slice at
  // once, then four a turn.
  assert.ok(inLane.slices <= 2, `in the lane ${inLane.slices} slices ran between the bystander's turns (it waited ${inLane.ms.toFixed(1)} ms at most)`);
  assert.ok(sideBySide.slices >= 4, `side by side ${sideBySide.slices} slices ran between its turns (${sideBySide.ms.toFixed(1)} ms): the comparison holds`);
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

test('work whose request ended leaves its place while waiting, and stops at its next pause while working; the lane goes on', async () => {
  const lane = new Lane();
  const ran: string[] = [];
  const gone = new AbortController();
  const working = new AbortController();
  const first = lane.run('a', async (turn) => {
    for (let i = 0; i < 50; i++) {
      spin(SLICE_MS + 1);
      ran.push(`a${i}`);
      await turn.pause();
    }
  }, working.signal);
  const waiting = lane.run('b', async () => { ran.push('b'); }, gone.signal);
  const after = lane.run('c', async () => { ran.push('c'); });
  gone.abort();
  await assert.rejects(waiting, (e) => e instanceof LaneLeft);
  await new Promise((r) => setTimeout(r, 30));
  working.abort();
  await assert.rejects(first, (e) => e instanceof LaneLeft);
  await after;
  assert.ok(!ran.includes('b'), 'the ended question never ran');
  assert.ok(ran.filter((x) => x.startsWith('a')).length < 50, `the ended work stopped: ${ran.length} slices`);
  assert.ok(ran.includes('c'));
  assert.equal(await lane.run('d', async () => 'free'), 'free');
  assert.equal(lane.queued, 0);
  assert.equal(lane.mostHolding, 1);
});

test('time away (I/O, another\'s result) is not counted as work', async () => {
  const lane = new Lane();
  const spent = await lane.run('a', async (turn) => {
    spin(5);
    await turn.away(new Promise((r) => setTimeout(r, 200)));
    return turn.spent();
  });
  assert.ok(spent >= 4 && spent < 100, `spent ${spent.toFixed(1)} ms, the 200 ms away left out`);
});
