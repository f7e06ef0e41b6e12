import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCidr, parseIp, parseRange, WeftError, formatIp, type IpRange } from '../model/index.js';
import { AddressBook, Bitmap, CHUNK_SIZE, allocateAddress, allocateVni, openAddressBook, releaseAddress, subtractRanges } from './index.js';

const ip = (s: string) => parseIp(s) as number;

test('bitmap round-trips through base64 and finds the lowest clear bit across full bytes', () => {
  const b = Bitmap.empty(100);
  for (let i = 0; i < 70; i++) b.set(i);
  b.clear(33);
  assert.equal(b.firstClear(0, 99), 33);
  const c = Bitmap.decode(100, b.encode());
  assert.equal(c.count(), 69);
  c.set(33);
  assert.equal(c.firstClear(0, 99), 70);
  assert.equal(c.firstClear(0, 69), -1);
});

test('a /30 hands out its one free address, then reports exhaustion by name', async () => {
  const subnet = parseCidr('10.0.0.0/30', 's');
  const book = await openAddressBook(subnet, ip('10.0.0.1'));
  const req = { candidates: [{ first: ip('10.0.0.1'), last: ip('10.0.0.2') }], poolName: 'network default/n' };
  assert.equal(formatIp(await allocateAddress(book, req)), '10.0.0.2');
  await assert.rejects(allocateAddress(book, req), (e: unknown) =>
    e instanceof WeftError && e.code === 'WEFT_POOL_EXHAUSTED' && /network default\/n/.test(e.message));
  await releaseAddress(book, ip('10.0.0.2'));
  assert.equal(formatIp(await allocateAddress(book, req)), '10.0.0.2');
  assert.equal(book.used, 4, 'network, broadcast, gateway and one address');
});

test('requested addresses must be free and inside the allowed ranges', async () => {
  const book = await openAddressBook(parseCidr('10.1.0.0/24', 's'), ip('10.1.0.1'));
  const usable = [{ first: ip('10.1.0.1'), last: ip('10.1.0.254') }];
  const req = { candidates: usable, poolName: 'net' };
  assert.equal(await allocateAddress(book, { ...req, requested: ip('10.1.0.9') }), ip('10.1.0.9'));
  await assert.rejects(allocateAddress(book, { ...req, requested: ip('10.1.0.9') }), /already in use/);
  await assert.rejects(allocateAddress(book, { ...req, requested: ip('10.1.0.1') }), /already in use/);
  await assert.rejects(allocateAddress(book, { ...req, requested: ip('10.1.0.255') }), /not an address/);
});

test('chunks: allocation crosses chunk boundaries, full chunks are skipped unloaded, only touched chunks are dirty', async () => {
  const subnet = parseCidr('10.8.0.0/22', 's');
  const stored = new Map<number, Bitmap>();
  const loads: number[] = [];
  const loader = async (i: number) => { loads.push(i); return stored.get(i); };
  const book = await openAddressBook(subnet, ip('10.8.0.1'), loader);
  const range = { first: ip('10.8.0.1'), last: ip('10.8.3.254') };
  const got: number[] = [];
  for (let n = 0; n < CHUNK_SIZE; n++) got.push(await allocateAddress(book, { candidates: [range], poolName: 'n' }));
  assert.equal(formatIp(got[0] ?? 0), '10.8.0.2');
  assert.equal(formatIp(got[got.length - 1] ?? 0), '10.8.1.1', 'the 256th address is in the second chunk');
  assert.ok(book.full.has(0) && !book.full.has(1), 'chunk 0 is marked full');
  assert.deepEqual([...book.dirtyChunks].sort(), [0, 1, 3], 'chunk 3 holds the reserved broadcast address');
  // A fresh book over the same stored state finds the next address without loading the full chunk.
  for (const i of book.dirtyChunks) stored.set(i, book.chunk(i) as Bitmap);
  loads.length = 0;
  const again = new AddressBook(subnet, book.full, book.used, loader);
  assert.equal(formatIp(await allocateAddress(again, { candidates: [range], poolName: 'n' })), '10.8.1.2');
  assert.deepEqual(loads, [1]);
  await releaseAddress(again, ip('10.8.0.7'));
  assert.ok(!again.full.has(0) && again.summaryDirty, 'releasing clears the full mark');
  assert.equal(formatIp(await allocateAddress(again, { candidates: [range], poolName: 'n' })), '10.8.0.7');
});

test('subtracting group pools leaves the network free area in order', () => {
  const base = parseRange('10.0.0.1-10.0.0.100', 'r');
  const holes = [parseRange('10.0.0.50-10.0.0.60', 'p'), parseRange('10.0.0.1-10.0.0.9', 'p')];
  assert.deepEqual(subtractRanges(base, holes).map((r) => [formatIp(r.first), formatIp(r.last)]), [
    ['10.0.0.10', '10.0.0.49'], ['10.0.0.61', '10.0.0.100'],
  ]);
});

test('subtracting ranges agrees with address-by-address subtraction, for holes that overlap, touch, nest or lie outside', () => {
  let seed = 0x9e3779b9;
  const rnd = (n: number) => {
    // xorshift32: every bit of the state changes, so small moduli see all their values.
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) % n;
  };
  for (let round = 0; round < 500; round++) {
    const first = rnd(40);
    const base = { first, last: first + rnd(40) };
    const holes = Array.from({ length: rnd(8) }, () => {
      const a = rnd(90);
      return { first: a, last: a + rnd(12) };
    });
    const want: IpRange[] = [];
    for (let a = base.first; a <= base.last; a++) {
      if (holes.some((h) => h.first <= a && a <= h.last)) continue;
      const prev = want[want.length - 1];
      if (prev && prev.last === a - 1) want[want.length - 1] = { first: prev.first, last: a };
      else want.push({ first: a, last: a });
    }
    assert.deepEqual(subtractRanges(base, holes), want, JSON.stringify({ base, holes }));
  }
  const far = 2 ** 32 - 1;
  assert.deepEqual(subtractRanges({ first: 0, last: far }, [{ first: far, last: far }]), [{ first: 0, last: far - 1 }]);
  assert.deepEqual(subtractRanges({ first: 5, last: 9 }, [{ first: 0, last: 20 }]), []);
});

test('VNIs: the free one of the rank picked (uniform when the pick is), requested in range and unused', () => {
  const range = { first: 10, last: 12 };
  assert.equal(allocateVni(range, new Set([10, 11])), 12);
  assert.equal(allocateVni(range, new Set([11]), undefined, () => 1), 12, 'the second free one');
  assert.equal(allocateVni(range, new Set([11, 99, 3]), undefined, () => 0), 10, 'VNIs outside the range count for nothing');
  assert.throws(() => allocateVni(range, new Set([10, 11, 12])), /no free VNI/);
  assert.throws(() => allocateVni(range, new Set(), 13), /outside/);
  assert.throws(() => allocateVni(range, new Set([11]), 11), /already used/);
  // Every free VNI of a range with a long used run equally often: the one past the run is not favoured.
  const wide = { first: 0, last: 99 };
  const run = new Set(Array.from({ length: 60 }, (_, i) => i));
  const counts = new Map<number, number>();
  for (let k = 0; k < 40; k++) {
    const v = allocateVni(wide, run, undefined, (free) => (assert.equal(free, 40), k));
    counts.set(v, (counts.get(v) ?? 0) + 1);
  }
  assert.deepEqual([...counts.keys()].sort((a, b) => a - b), Array.from({ length: 40 }, (_, i) => 60 + i), 'rank k is the k-th free VNI, each once');
  const gaps = new Set([1, 3, 5]);
  assert.deepEqual([0, 1, 2, 3, 4].map((k) => allocateVni({ first: 0, last: 7 }, gaps, undefined, () => k)), [0, 2, 4, 6, 7]);
});

test('the first free address of many ranges: in their order, full chunks skipped, a chunk loaded only when reached, -1 when all are full', async () => {
  const subnet = parseCidr('10.70.0.0/22', 'subnet');
  const loads: number[] = [];
  // Chunk 1 (10.70.1.x) is stored with .0-.99 taken; the others were never written.
  const stored = Bitmap.empty(CHUNK_SIZE);
  for (let i = 0; i < 100; i++) stored.set(i);
  const book = AddressBook.empty(subnet, async (ci) => { loads.push(ci); return ci === 1 ? stored : undefined; });
  const r = (a: string, b: string): IpRange => ({ first: parseIp(a) ?? 0, last: parseIp(b) ?? 0 });
  // Pools cut the range: the first two pieces are taken whole, the third has room at .100.
  for (let i = 0; i < 10; i++) await book.take(i);
  loads.length = 0;
  const ranges = [r('10.70.0.0', '10.70.0.9'), r('10.70.1.0', '10.70.1.49'), r('10.70.1.60', '10.70.1.120'), r('10.70.2.0', '10.70.2.10')];
  assert.equal(formatIp(subnet.base + await book.firstFreeIn(ranges)), '10.70.1.100');
  assert.deepEqual(loads, [1], 'chunk 1 loaded once, chunk 2 never reached');
  assert.equal(await book.firstFreeIn(ranges.slice(0, 2)), -1);
  assert.equal(await book.firstFreeIn([]), -1);
  // A chunk marked full is not even loaded.
  book.full.set(3);
  loads.length = 0;
  assert.equal(await book.firstFreeIn([r('10.70.3.0', '10.70.3.255')]), -1);
  assert.deepEqual(loads, []);
  // allocateAddress takes the same one.
  assert.equal(formatIp(await allocateAddress(book, { candidates: ranges, poolName: 'network t/n' })), '10.70.1.100');
});
