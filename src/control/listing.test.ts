import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MEMO_ENTRIES, SharedListing } from './listing.js';

/** A store stand-in: each read answers the value at the moment it started, after `release()` is called. */
function fakeStore() {
  const s = {
    value: 0,
    revision: 1,
    reads: 0,
    pending: [] as Array<() => void>,
    release() {
      for (const r of s.pending.splice(0)) r();
    },
    read() {
      s.reads++;
      const at = { items: [s.value], revision: s.revision };
      return new Promise<{ items: number[]; revision: number }>((resolve) => s.pending.push(() => resolve(at)));
    },
  };
  return s;
}
const tick = () => new Promise((r) => setImmediate(r));

test('listings that arrive during a read share the next one: two reads for a hundred callers', async () => {
  const s = fakeStore();
  const l = new SharedListing(() => s.read(), async () => s.revision);
  const first = l.get();
  await tick();
  const rest = Array.from({ length: 99 }, () => l.get());
  s.release();
  await tick();
  s.release();
  const all = await Promise.all([first, ...rest]);
  assert.equal(s.reads, 2);
  assert.equal(new Set(all.slice(1)).size, 1, 'the 99 late callers got one snapshot');
});

test("a caller who wrote just before listing sees its write, even while an older read is running", async () => {
  const s = fakeStore();
  const l = new SharedListing(() => s.read(), async () => s.revision);
  const old = l.get();
  await tick();
  s.value = 42; // a write that commits after the running read began
  s.revision = 2;
  const mine = l.get();
  s.release();
  await tick();
  s.release();
  assert.deepEqual((await old).items, [0]);
  assert.deepEqual((await mine).items, [42]);
  assert.equal((await mine).revision, 2);
});

test('the last read serves while the store stays at its revision, and a commit makes the next caller read again', async () => {
  const s = fakeStore();
  const l = new SharedListing(() => s.read(), async () => s.revision);
  const get = async () => {
    const p = l.get();
    await tick();
    s.release();
    return p;
  };
  const a = await get();
  assert.equal(await get(), a);
  assert.equal(s.reads, 1);
  s.revision = 3;
  s.value = 7;
  const b = await get();
  assert.deepEqual(b.items, [7]);
  assert.equal(s.reads, 2);
});

test('a failed read fails its callers only; those queued behind it get a read of their own', async () => {
  let fail = true;
  let reads = 0;
  const l = new SharedListing(async () => {
    reads++;
    const failing = fail;
    await tick();
    if (failing) throw new Error('store unavailable');
    return { items: ['x'], revision: 5 };
  }, async () => 5);
  const first = l.get();
  await Promise.resolve();
  const queued = l.get();
  fail = false;
  await assert.rejects(first, /store unavailable/);
  assert.deepEqual((await queued).items, ['x']);
  assert.equal(reads, 2);
});

test('a snapshot is dropped after keepMs unused, and groups and memos are made once per snapshot', async () => {
  const s = fakeStore();
  const l = new SharedListing(() => s.read(), async () => s.revision, 20);
  const p = l.get();
  await tick();
  s.release();
  const snap = await p;
  let made = 0;
  const make = () => `${++made}`;
  assert.equal(snap.memo('k', make), '1');
  assert.equal(snap.memo('k', make), '1');
  for (let i = 0; i < MEMO_ENTRIES; i++) snap.memo(`other${i}`, make);
  assert.equal(snap.memo('k', make), String(MEMO_ENTRIES + 2), 'the oldest memo gave way: at most MEMO_ENTRIES are kept');
  assert.equal(snap.grouped('parity', (x) => String(x % 2)), snap.grouped('parity', () => 'never called'));
  await new Promise((r) => setTimeout(r, 40));
  const again = l.get();
  await tick();
  s.release();
  assert.notEqual(await again, snap, 'read again once the kept snapshot expired');
  assert.equal(s.reads, 2);
});
