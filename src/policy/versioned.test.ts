import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Prng } from '../chaos/prng.js';
import { VersionedMap } from './versioned.js';

// Every snapshot reads as a copy taken at that moment would, whatever is written after it: sets, deletes,
// a key written again and again, deleted and set back, between snapshots or with none taken between.

test('a snapshot reads as a copy taken when it was, through any writes after it', () => {
  for (let seed = 1; seed <= 200; seed++) {
    const g = new Prng(seed);
    const m = new VersionedMap<number, number>();
    const taken: Array<{ snap: ReadonlyMap<number, number>; copy: Map<number, number> }> = [];
    const plain = new Map<number, number>();
    for (let step = 0; step < 300; step++) {
      const k = g.int(0, 30);
      const what = g.int(0, 9);
      if (what < 5) { m.set(k, step); plain.set(k, step); }
      else if (what < 8) { m.delete(k); plain.delete(k); }
      else {
        const snap = m.snapshot();
        taken.push({ snap, copy: new Map(plain) });
      }
      assert.equal(m.size, plain.size, `seed ${seed} step ${step}: the live size`);
      assert.equal(m.get(k), plain.get(k), `seed ${seed} step ${step}: the live value`);
    }
    for (const [i, { snap, copy }] of taken.entries()) {
      assert.equal(snap.size, copy.size, `seed ${seed} snapshot ${i}: size`);
      for (let k = -1; k <= 31; k++) {
        assert.equal(snap.get(k), copy.get(k), `seed ${seed} snapshot ${i}: get(${k})`);
        assert.equal(snap.has(k), copy.has(k), `seed ${seed} snapshot ${i}: has(${k})`);
      }
      assert.deepEqual(new Map(snap), copy, `seed ${seed} snapshot ${i}: its entries`);
      assert.deepEqual([...snap.keys()].sort((a, b) => a - b), [...copy.keys()].sort((a, b) => a - b), `seed ${seed} snapshot ${i}: keys`);
    }
  }
});

test('a snapshot with no write since is the same object; a write makes the next one new', () => {
  const m = new VersionedMap<number, number>();
  m.set(1, 10);
  const a = m.snapshot();
  assert.equal(m.snapshot(), a, 'nothing written: the same snapshot (its users key caches by it)');
  m.delete(2);
  assert.equal(m.snapshot(), a, 'a delete of a key it does not hold writes nothing');
  m.set(1, 11);
  const b = m.snapshot();
  assert.notEqual(b, a);
  assert.equal(a.get(1), 10);
  assert.equal(b.get(1), 11);
  m.delete(1);
  assert.equal(a.get(1), 10, 'the oldest keeps its value through two newer snapshots');
  assert.equal(b.get(1), 11);
  assert.equal(m.snapshot().has(1), false);
});
