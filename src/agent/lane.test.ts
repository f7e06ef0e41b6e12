import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Lane } from './lane.js';

const tick = () => new Promise((r) => setImmediate(r));

test('marks arriving during a pass fold into one pass after it', async () => {
  let release!: () => void;
  let runs = 0;
  const lane = new Lane(async () => {
    runs++;
    if (runs === 1) await new Promise<void>((r) => (release = r));
  }, () => undefined);
  lane.schedule();
  await tick();
  for (let i = 0; i < 5; i++) lane.schedule();
  release();
  await tick();
  await lane.idle();
  await lane.idle();
  assert.equal(runs, 2);
});

test('exclusive: no pass starts while it runs; passes asked for meanwhile run once after it', async () => {
  const log: string[] = [];
  const lane = new Lane(async () => void log.push('pass'), () => undefined);
  const held = lane.exclusive(async () => {
    log.push('in');
    lane.schedule();
    lane.schedule();
    for (let i = 0; i < 5; i++) await tick();
    log.push('out');
    return 7;
  });
  assert.equal(await held, 7);
  await tick();
  await lane.idle();
  assert.deepEqual(log, ['in', 'out', 'pass']);
});

test('a failed pass or exclusive call does not stop later passes', async () => {
  const errors: string[] = [];
  let runs = 0;
  const lane = new Lane(async () => {
    runs++;
    if (runs === 1) throw new Error('boom');
  }, (e) => errors.push(e.message));
  await assert.rejects(lane.exclusive(async () => { throw new Error('inside'); }), /inside/);
  lane.schedule();
  await tick();
  await lane.idle();
  lane.schedule();
  await tick();
  await lane.idle();
  assert.deepEqual([runs, errors], [2, ['boom']]);
});

test('close: a pass asked for but not started never starts, and close waits for the one under way', async () => {
  let release!: () => void;
  const log: string[] = [];
  const lane = new Lane(async () => {
    log.push('start');
    if (log.length === 1) await new Promise<void>((r) => (release = r));
    log.push('end');
  }, () => undefined);
  lane.schedule();
  await tick();
  lane.schedule();
  let closed = false;
  const done = lane.close().then(() => (closed = true));
  lane.schedule();
  await tick();
  assert.equal(closed, false, 'close waits for the pass under way');
  release();
  await done;
  for (let i = 0; i < 3; i++) await tick();
  assert.deepEqual(log, ['start', 'end'], 'nothing started after close, even what was asked for before it');
  // The race a stopping agent met: asked for, then closed before the pass was chained.
  const late: string[] = [];
  const other = new Lane(async () => void late.push('pass'), () => undefined);
  other.schedule();
  await other.close();
  await tick();
  await tick();
  assert.deepEqual(late, []);
});
