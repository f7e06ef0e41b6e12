import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WeftError, cidrRange6, formatIp6, parseCidr6, parseIp6 } from '../model/index.js';
import { AddressBook6, Bitmap, CHUNK_SIZE, allocateAddress6, decodeRuns, encodeRuns, openAddressBook6, releaseAddress6 } from './index.js';
import { markFull, unmarkFull, type Runs } from './book6.js';

const ip6 = (s: string) => parseIp6(s) as bigint;
const slash64 = parseCidr6('fd00:1:2:3::/64', 'subnet6');
const usable64 = { first: slash64.base + 1n, last: cidrRange6(slash64).last };

test('a /64 hands out addresses lowest first past the anycast and gateway, loading only the chunks it touches', async () => {
  const loads: bigint[] = [];
  const book = await openAddressBook6(slash64, ip6('fd00:1:2:3::1'), async (i) => { loads.push(i); return undefined; });
  const req = { candidates: [usable64], poolName: 'network t/n', field: 'ip6' };
  const got: string[] = [];
  for (let i = 0; i < 3; i++) got.push(formatIp6(await allocateAddress6(book, req)));
  assert.deepEqual(got, ['fd00:1:2:3::2', 'fd00:1:2:3::3', 'fd00:1:2:3::4']);
  for (let i = 0; i < 10_000; i++) await allocateAddress6(book, req);
  assert.equal(book.used, 10_005);
  assert.deepEqual(encodeRuns(book.full), ['0-38'], 'full chunks are one run from the bottom');
  assert.equal(book.size, 1n << 64n);
  assert.ok(book.dirtyChunks.size <= 40 && loads.length <= 40, `chunks touched: ${book.dirtyChunks.size}, loaded: ${loads.length}`);
});

test('requested addresses anywhere in a /64 (chunk indices past 2^53) are kept apart and released', async () => {
  const book = await openAddressBook6(slash64, ip6('fd00:1:2:3::1'));
  const req = { candidates: [usable64], poolName: 'network t/n', field: 'ip6' };
  const high = ip6('fd00:1:2:3:ffff:ffff:ffff:fffe');
  assert.equal(await allocateAddress6(book, { ...req, requested: high }), high);
  await assert.rejects(allocateAddress6(book, { ...req, requested: high }), (e: unknown) => e instanceof WeftError && e.code === 'WEFT_ADDRESS_IN_USE' && e.field === 'ip6');
  await assert.rejects(allocateAddress6(book, { ...req, requested: ip6('fd00:1:2:3::1') }), /already in use/);
  await assert.rejects(allocateAddress6(book, { ...req, requested: ip6('fd00:1:2:4::9') }), (e: unknown) => e instanceof WeftError && e.field === 'ip6' && /not an address network t\/n may use/.test(e.message));
  assert.ok([...book.dirtyChunks].some((c) => c > 2n ** 53n));
  await releaseAddress6(book, high);
  assert.equal(await book.has(high - slash64.base), false);
  await releaseAddress6(book, ip6('fd00:9::1'));
  assert.equal(book.used, 2);
});

test('exhaustion of a /120 is reported by name, and a release makes room again', async () => {
  const s = parseCidr6('fd00::/120', 'subnet6');
  const book = await openAddressBook6(s, ip6('fd00::1'));
  const req = { candidates: [{ first: s.base + 1n, last: s.base + 255n }], poolName: 'network t/small', field: 'ip6' };
  for (let i = 0; i < 254; i++) await allocateAddress6(book, req);
  assert.deepEqual(encodeRuns(book.full), ['0']);
  await assert.rejects(allocateAddress6(book, req), (e: unknown) => e instanceof WeftError && e.code === 'WEFT_POOL_EXHAUSTED' && /network t\/small/.test(e.message));
  await releaseAddress6(book, ip6('fd00::80'));
  assert.deepEqual(book.full, []);
  assert.equal(formatIp6(await allocateAddress6(book, req)), 'fd00::80');
});

test('the full runs agree with a plain set of chunks under random marks and unmarks', () => {
  let seed = 7;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % 64);
  const runs: Runs = [];
  const truth = new Set<number>();
  for (let step = 0; step < 5000; step++) {
    const ci = rnd();
    if (rnd() % 2) { markFull(runs, BigInt(ci)); truth.add(ci); } else { assert.equal(unmarkFull(runs, BigInt(ci)), truth.delete(ci)); }
    const flat = runs.flatMap(([a, b]) => Array.from({ length: Number(b - a) + 1 }, (_, k) => Number(a) + k));
    assert.deepEqual(flat, [...truth].sort((x, y) => x - y));
    for (let i = 1; i < runs.length; i++) assert.ok((runs[i] as [bigint, bigint])[0] > (runs[i - 1] as [bigint, bigint])[1] + 1n, 'runs are merged');
  }
  assert.deepEqual(decodeRuns(encodeRuns(runs)), runs);
});

test('a book allocates exactly like a set of taken addresses, across chunk edges and releases', async () => {
  const s = parseCidr6('fd00:5::/112', 'subnet6');
  const book = await openAddressBook6(s, s.base + 1n);
  const taken = new Set<bigint>([s.base, s.base + 1n]);
  const range = { first: s.base + 1n, last: s.base + 2000n };
  const req = { candidates: [range], poolName: 'n', field: 'ip6' };
  let seed = 11;
  const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n);
  for (let step = 0; step < 4000; step++) {
    if (rnd(3) > 0) {
      let expect = range.first;
      while (taken.has(expect)) expect++;
      if (expect > range.last) continue;
      assert.equal(await allocateAddress6(book, req), expect);
      taken.add(expect);
    } else {
      const victim = s.base + 2n + BigInt(rnd(1999));
      await releaseAddress6(book, victim);
      taken.delete(victim);
    }
  }
  assert.equal(book.used, taken.size);
});

test('a stored summary that is not runs is refused, never guessed', () => {
  for (const bad of [undefined, 'x', ['1-0'], ['3', '2'], ['1', '2'], ['0-1', '2'], ['-1'], ['01'], [7], ['1'.repeat(41)]]) {
    assert.throws(() => decodeRuns(bad), /full:/, JSON.stringify(bad));
  }
  assert.deepEqual(decodeRuns(['0-38', '40']), [[0n, 38n], [40n, 40n]]);
  assert.throws(() => AddressBook6.empty(parseCidr6('fd00::/124', 's')), /\/120/);
  assert.equal(Bitmap.empty(CHUNK_SIZE).firstClear(0, 255), 0);
});
