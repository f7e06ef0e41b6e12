import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sortedLike } from './policy-nft-parts.js';

test('sortedLike gives what a full sort gives, whatever the previous order held (items kept, gone, added, all new)', () => {
  let seed = 7;
  const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
  const cmp = (a: { k: number }, b: { k: number }) => a.k - b.k;
  const pool = Array.from({ length: 400 }, (_, k) => ({ k }));
  let previous: Array<{ k: number }> = [];
  for (let round = 0; round < 200; round++) {
    const items = pool.filter(() => rnd(100) < (round % 10 === 0 ? 95 : 60));
    const shuffled = [...items].sort(() => rnd(3) - 1);
    const got = sortedLike(shuffled, previous, cmp);
    assert.deepEqual(got.map((x) => x.k), [...items].sort(cmp).map((x) => x.k), `round ${round}`);
    assert.ok(got.every((x) => items.includes(x)), 'the same objects');
    previous = got;
  }
  assert.deepEqual(sortedLike([], previous, cmp), []);
});
