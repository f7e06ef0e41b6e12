import { test } from 'node:test';
import assert from 'node:assert/strict';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import pino from 'pino';
import { IdleGc, youngFill } from './idle-gc.js';

v8.setFlagsFromString('--expose-gc');
/** V8's own full collection: each test starts from a heap without another test's garbage, so the growth it makes is what IdleGc sees. */
const realGc = runInNewContext('gc') as () => void;

const quiet = pino({ level: 'silent' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `n` MB held in `xs` (arrays of 128 Ki numbers). */
const megabytes = (xs: unknown[], n: number) => { for (let i = 0; i < n; i++) xs.push(new Array(128 * 1024).fill(i)); };

test('collects only after a quiet moment that follows growth, never between passes of a burst, and not again without growth', async () => {
  let collected = 0;
  const held: unknown[] = [];
  // Quiet 1 s, gap 2 s: passes 100 ms apart stay a burst even on a loaded machine.
  realGc();
  const gc = new IdleGc(() => { collected++; held.length = 0; }, quiet, 1_000, 2_000);
  // 16 MB that stays reachable: the heap grew since the collector was made.
  megabytes(held, 16);
  for (let i = 0; i < 8; i++) {
    gc.passed();
    await sleep(100);
  }
  assert.equal(collected, 0, 'passes 100 ms apart: a burst, never interrupted');
  await sleep(1_500);
  assert.equal(collected, 1, 'the burst ended: one collection');
  await sleep(2_100);
  // Grown again (by more than V8 may have freed of the first 16 MB meanwhile); a pass ends and the next
  // starts at once: nothing while it runs.
  megabytes(held, 48);
  gc.passed();
  gc.busy();
  await sleep(1_500);
  assert.equal(collected, 1, 'a pass started: nothing until it ends');
  gc.passed();
  await sleep(1_500);
  assert.equal(collected, 2, 'it ended: the growth is collected');
  await sleep(2_100);
  gc.passed();
  await sleep(1_500);
  assert.equal(collected, 2, 'past the gap, but no growth since: none');
  gc.stop();
});

test('growth met too soon after a collection is collected once the gap has passed, without another pass', async () => {
  let collected = 0;
  const held: unknown[] = [];
  realGc();
  const gc = new IdleGc(() => { collected++; held.length = 0; }, quiet, 100, 1_500);
  megabytes(held, 16);
  gc.passed();
  await sleep(600);
  assert.equal(collected, 1);
  megabytes(held, 48);
  gc.passed();
  await sleep(400);
  assert.equal(collected, 1, 'within the gap: not yet');
  await sleep(1_500);
  assert.equal(collected, 2, 'the gap passed: collected, though no pass ended since');
  gc.stop();
});

test('passes that did no work (the resync finding nothing) do not put the collection off; one that did does', async () => {
  let collected = 0;
  const held: unknown[] = [];
  realGc();
  const gc = new IdleGc(() => { collected++; held.length = 0; }, quiet, 600, 100);
  megabytes(held, 16);
  gc.passed(true);
  // Idle passes every 100 ms, as a resync that checks nothing: the collection still comes 600 ms after the work.
  for (let i = 0; i < 9; i++) {
    gc.busy();
    await sleep(20);
    gc.passed(false);
    await sleep(80);
  }
  assert.equal(collected, 1, 'collected during the idle passes, once the work was 600 ms behind');
  megabytes(held, 48);
  for (let i = 0; i < 9; i++) {
    gc.busy();
    await sleep(20);
    gc.passed(true);
    await sleep(80);
  }
  assert.equal(collected, 1, 'passes that worked, 100 ms apart: none');
  await sleep(900);
  assert.equal(collected, 2, 'they stopped: collected');
  gc.stop();
});

test('work counted, not flagged: a pass that ends beside another still running (or an ADD) lets no collection in', async () => {
  let collected = 0;
  const held: unknown[] = [];
  realGc();
  const gc = new IdleGc(() => { collected++; held.length = 0; }, quiet, 200, 100);
  megabytes(held, 16);
  gc.passed(true);
  await sleep(300);
  assert.equal(collected, 1);
  megabytes(held, 48);
  // A change pass starts; a resync beside it checks nothing and ends, its work long behind.
  gc.busy();
  gc.busy();
  gc.passed(false);
  await sleep(400);
  assert.equal(collected, 1, 'the change pass still runs: no collection');
  // An ADD (done) runs through the change pass's end.
  gc.busy();
  gc.passed(true);
  await sleep(400);
  assert.equal(collected, 1, 'the ADD still runs');
  gc.done();
  // The next resync (nothing to check) finds everything ended and quiet.
  gc.busy();
  gc.passed(false);
  await sleep(400);
  assert.equal(collected, 2, 'all ended and quiet: collected');
  gc.stop();
});

test('a large heap is collected after growth in proportion to it, not after a few MB', async () => {
  let collected = 0;
  const held: unknown[] = [];
  // 192 MB that lives on (a large policy's compile), collected once: the baseline.
  const kept: unknown[] = [];
  megabytes(kept, 192);
  realGc();
  const gc = new IdleGc(() => { collected++; held.length = 0; realGc(); }, quiet, 100, 100, 60_000);
  // The first collection is long behind (none yet): the few MB would do. One now sets the baseline.
  megabytes(held, 8);
  gc.passed();
  await sleep(400);
  assert.equal(collected, 1, 'the first growth past 4 MB is collected');
  // 8 MB more: past the fixed 4 MB, under a sixteenth of ~200 MB (~12.5 MB).
  megabytes(held, 8);
  gc.passed();
  await sleep(400);
  assert.equal(collected, 1, '8 MB on ~200 MB, a collection just before: not worth marking the whole heap');
  // 24 MB more in all: past a sixteenth.
  megabytes(held, 16);
  gc.passed();
  await sleep(400);
  assert.equal(collected, 2, 'grown by more than a sixteenth: collected');
  assert.equal(kept.length, 192);
  gc.stop();
});

test('a large heap that became garbage (a large policy replaced by a small one) is collected once the last collection is long behind', async () => {
  let collected = 0;
  const held: unknown[] = [];
  const kept: unknown[] = [];
  megabytes(kept, 192);
  realGc();
  const gc = new IdleGc(() => { collected++; realGc(); }, quiet, 100, 100, 1_000);
  megabytes(held, 8);
  gc.passed();
  await sleep(400);
  assert.equal(collected, 1, 'the first: sets the baseline at ~200 MB');
  // The large compile is replaced by a small one: 192 MB of garbage, 8 MB of new data.
  kept.length = 0;
  megabytes(held, 8);
  gc.passed();
  await sleep(400);
  assert.equal(collected, 1, 'the heap grew 8 MB by what it can see: not yet');
  await sleep(800);
  gc.passed(false);
  await sleep(300);
  assert.equal(collected, 2, 'the last collection long behind: the few MB are enough, and the garbage goes');
  assert.equal(held.length, 16);
  gc.stop();
});

test('a pass that did work leaves the young generation empty for the next change: a minor collection once nothing runs, if a quarter full', async () => {
  // The fill is the test's (V8's young generation starts at 1 MB and grows with use, so its real fill
  // depends on what ran before); youngFill itself is checked against V8 below.
  let fill = 0;
  let minors = 0;
  const gc = new IdleGc(undefined, quiet, 60_000, 60_000, 60_000, { collect: () => { minors++; fill = 0.05; }, fill: () => fill });
  /** Does `step`, lets a turn pass, and counts the minor collections so far. */
  const then = async (step: () => void, want: number, why: string) => {
    step();
    await sleep(20);
    assert.equal(minors, want, why);
  };
  fill = 0.2;
  await then(() => gc.passed(), 0, 'under a quarter full: nothing to gain');
  fill = 0.6;
  await then(() => { gc.busy(); gc.busy(); gc.passed(); }, 0, 'another pass still runs: nothing');
  await then(() => gc.passed(), 1, 'the last pass ended: scavenged');
  fill = 0.6;
  await then(() => gc.passed(false), 1, 'a pass that did nothing: nothing');
  await then(() => { gc.passed(); gc.busy(); }, 1, 'work started in the same turn: nothing while it runs');
  await then(() => gc.passed(), 2, 'it ended: scavenged');
  fill = 0.6;
  await then(() => { gc.passed(); gc.asked(); }, 2, 'a pass asked for in the same turn: it goes first');
  await then(() => gc.passed(), 3, 'and its end scavenges');
  fill = 0.6;
  await then(() => { gc.passed(); gc.stop(); }, 3, 'stopped: nothing');
  await then(() => gc.passed(), 3, 'nor after a pass that ends after stop');
});

test('youngFill: rises with young garbage, young objects too large for the nursery included, and falls after a scavenge', () => {
  const v8gc = runInNewContext('gc') as (o?: { type: 'minor' }) => void;
  const room = () => { const n = v8.getHeapSpaceStatistics().find((x) => x.space_name === 'new_space'); return n ? n.space_used_size + n.space_available_size : NaN; };
  v8gc({ type: 'minor' });
  v8gc({ type: 'minor' });
  const empty = youngFill();
  let junk: unknown[] = [];
  for (let i = 0; i < 2_000; i++) junk.push({ i });
  const small = youngFill();
  assert.ok(small > empty, `small objects: ${empty} → ${small}`);
  // One array of 256 KB: too large for the nursery's pages, it goes to the young large-object space.
  junk.push(new Array(32 * 1024).fill(1));
  const large = youngFill();
  assert.ok(large - small >= (0.5 * 256 * 1024) / room(), `a 256 KB array in a room of ${room()} bytes: ${small} → ${large}`);
  junk = [];
  v8gc({ type: 'minor' });
  assert.ok(youngFill() < large, `after a scavenge: ${youngFill()}`);
  assert.equal(junk.length, 0);
});
