import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Arrivals } from './scale-arrivals.js';

test('a key every member already has answers at once with the latest arrival', async () => {
  const a = new Arrivals(() => 3);
  a.record(7, 100);
  a.record(7, 130);
  a.record(7, 110);
  assert.deepEqual(await a.wait(7, 1000), { last: 130, missing: 0 });
  assert.equal(a.size, 0, 'an answered key is forgotten');
});

test('a wait made before the arrivals resolves when the last member has the key', async () => {
  const a = new Arrivals(() => 2);
  const waiting = a.wait(9, 5000);
  a.record(9, 50);
  a.record(8, 60);
  a.record(9, 70);
  assert.deepEqual(await waiting, { last: 70, missing: 0 });
});

test('past its timeout a wait says how many members still miss the key', async () => {
  const a = new Arrivals(() => 4);
  a.record(5, 10);
  assert.deepEqual(await a.wait(5, 20), { last: 10, missing: 3 });
  assert.deepEqual(await a.wait(6, 20), { last: NaN, missing: 4 });
});

test('old keys nobody waits for are forgotten, so heartbeat revisions do not pile up', () => {
  let now = 0;
  const a = new Arrivals(() => 1, () => now);
  a.record(1, 0);
  now = 200_000;
  a.record(2, 0);
  assert.equal(a.size, 1);
});
