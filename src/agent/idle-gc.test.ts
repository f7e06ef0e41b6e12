import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { IdleGc } from './idle-gc.js';

const quiet = pino({ level: 'silent' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('collects only after a quiet moment that follows growth, never between passes of a burst, and not again without growth', async () => {
  let collected = 0;
  const held: unknown[] = [];
  const gc = new IdleGc(() => { collected++; held.length = 0; }, quiet);
  // 16 MB that stays reachable: the heap grew since the collector was made.
  for (let i = 0; i < 16; i++) held.push(new Array(128 * 1024).fill(i));
  for (let i = 0; i < 8; i++) {
    gc.passed();
    await sleep(100);
  }
  assert.equal(collected, 0, 'passes 100 ms apart: a burst, never interrupted');
  await sleep(400);
  assert.equal(collected, 1, 'the burst ended: one collection');
  await sleep(2_100);
  gc.passed();
  await sleep(400);
  assert.equal(collected, 1, 'past the gap, but no growth since: none');
  gc.stop();
});
