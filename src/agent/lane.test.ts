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
