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
