import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Prng } from './prng.js';

test('the same seed gives the same sequence; another seed another one', () => {
  const a = new Prng(42);
  const b = new Prng(42);
  const c = new Prng(43);
  const xs = Array.from({ length: 20 }, () => a.int(0, 1000));
  assert.deepEqual(Array.from({ length: 20 }, () => b.int(0, 1000)), xs);
  assert.notDeepEqual(Array.from({ length: 20 }, () => c.int(0, 1000)), xs);
});

test('int stays within its bounds and reaches both ends; pick refuses an empty list', () => {
  const p = new Prng(7);
  const seen = new Set<number>();
  for (let i = 0; i < 2000; i++) {
    const x = p.int(3, 6);
    assert.ok(x >= 3 && x <= 6, String(x));
    seen.add(x);
  }
  assert.deepEqual([...seen].sort(), [3, 4, 5, 6]);
  assert.throws(() => p.pick([]), RangeError);
});

test('draw deals every item once before any repeats, in a seeded order', () => {
  const xs = ['a', 'b', 'c', 'd', 'e', 'f', 'g'];
  const deal = (seed: number) => { const p = new Prng(seed); return Array.from({ length: 21 }, () => p.draw(xs)); };
  const d = deal(5);
  for (let round = 0; round < 3; round++) assert.deepEqual(d.slice(round * 7, round * 7 + 7).sort(), xs, `round ${round}: ${d.join('')}`);
  assert.deepEqual(deal(5), d, 'the same seed deals the same order');
  assert.notDeepEqual(deal(6), d);
  assert.notDeepEqual(d.slice(0, 7), d.slice(7, 14), 'each round is shuffled anew');
  assert.throws(() => new Prng(1).draw([]), RangeError);
});
