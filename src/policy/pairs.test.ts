import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PairStore, Profiles } from './pairs.js';

// PairStore.settle: pairs that all left one profile id for one new function keep the id (their
// elements in the datapath's pair maps stay); anything less and they take the fresh id.

type Fns = Parameters<PairStore['set']>[2];
/** A tcp function by its text (the segments do not matter to the store). */
const tcp = (text: string): Fns => [{ proto: 'tcp', segs: [], text, key: `tcp:${text}` }, null, null, null] as unknown as Fns;

function store(): PairStore {
  return new PairStore(new Profiles('deny'));
}

/** What a compile's result says: each pair's tcp function by its text, through the listed profiles. */
function meaning(s: PairStore): string[] {
  const profiles = s.profiles.list(s.list.length);
  const text = new Map(profiles.map((p) => [p.id, p.text]));
  for (const p of s.list) assert.ok(text.has(p.tcp), `pair ${p.src}.${p.dst}: profile ${p.tcp} is listed`);
  return s.list.map((p) => `${p.src}.${p.dst}=${text.get(p.tcp)}`).sort();
}

test('every pair of a shared function moved to one new function: the new function takes the old id, and each pair its old entry', () => {
  const s = store();
  for (const src of [1, 2, 3]) s.set(src, 9, tcp('a'));
  s.set(4, 9, tcp('b'));
  s.settle();
  meaning(s);
  const before = [...s.list];
  const idA = (before[0] as { tcp: number }).tcp;
  s.detach();
  for (const src of [1, 2, 3]) s.set(src, 9, tcp('a2'));
  s.settle();
  assert.deepEqual(meaning(s), ['1.9=a2', '2.9=a2', '3.9=a2', '4.9=b']);
  assert.deepEqual(s.list.slice(0, 3).map((p) => p.tcp), [idA, idA, idA], 'the old id kept');
  for (let i = 0; i < 4; i++) assert.equal(s.list[i], before[i], `pair ${i}: its old entry (rendered by identity)`);
  assert.equal(s.profiles.list(4).find((p) => p.id === idA)?.text, 'a2', 'the id now names the new function');
});

test('a holder left behind, holders split between functions, or a new function shared with another pair: only what is safe keeps the id', () => {
  // One of three stays: the old id is still held, so the two that moved take a fresh one.
  let s = store();
  for (const src of [1, 2, 3]) s.set(src, 9, tcp('a'));
  s.settle();
  s.detach();
  for (const src of [1, 2]) s.set(src, 9, tcp('a2'));
  s.settle();
  assert.deepEqual(meaning(s), ['1.9=a2', '2.9=a2', '3.9=a']);
  assert.notEqual(s.list[0]?.tcp, s.list[2]?.tcp);
  // Split two ways, all moved: one group keeps the id (the last pair to leave it takes it over, swap),
  // the other has its own.
  s = store();
  for (const src of [1, 2, 3]) s.set(src, 9, tcp('a'));
  s.settle();
  const idA = s.list[0]?.tcp;
  s.detach();
  s.set(1, 9, tcp('x'));
  s.set(2, 9, tcp('x'));
  s.set(3, 9, tcp('y'));
  s.settle();
  assert.deepEqual(meaning(s), ['1.9=x', '2.9=x', '3.9=y']);
  assert.ok([s.list[0]?.tcp, s.list[2]?.tcp].includes(idA), 'one group keeps the id');
  assert.equal(s.list[0]?.tcp, s.list[1]?.tcp, 'a group shares one id');
  // The new function is also a new pair's: renaming it would move that pair too; it keeps a fresh id.
  s = store();
  for (const src of [1, 2]) s.set(src, 9, tcp('a'));
  s.settle();
  s.detach();
  for (const src of [1, 2]) s.set(src, 9, tcp('a2'));
  s.set(5, 9, tcp('a2'));
  s.settle();
  assert.deepEqual(meaning(s), ['1.9=a2', '2.9=a2', '5.9=a2']);
  // A pair decided twice in one compile (a, then a2, then a3) while another pair takes a2 meanwhile:
  // a2's holders are not the pairs that left a, so a2 keeps its own id; every pair's id is listed.
  s = store();
  for (const src of [1, 2]) s.set(src, 9, tcp('a'));
  s.settle();
  s.detach();
  s.set(1, 9, tcp('a2'));
  s.set(2, 9, tcp('a2'));
  s.set(2, 9, tcp('a3'));
  s.set(6, 9, tcp('a2'));
  s.settle();
  assert.deepEqual(meaning(s), ['1.9=a2', '2.9=a3', '6.9=a2']);
});

test('a pair that moved and was then dropped in the same compile counts for nothing: the pair that took its place keeps its function (a review)', () => {
  // The compile drops pairs before it decides any today (incremental.ts); settle must not rely on it.
  const s = store();
  s.set(1, 9, tcp('a'));
  s.set(2, 9, tcp('a'));
  s.settle();
  meaning(s);
  s.detach();
  s.set(1, 9, tcp('a2'));
  s.set(2, 9, tcp('a2'));
  s.set(2, 9, undefined);
  // A new pair takes a2, and the place in the list pair 2 left.
  s.set(5, 9, tcp('a2'));
  s.settle();
  assert.deepEqual(meaning(s), ['1.9=a2', '5.9=a2']);
});
