import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCidr, parseIp, parseRange, WeftError, formatIp } from '../model/index.js';
import { Bitmap, allocateAddress, allocateVni, openAddressBook, releaseAddress, subtractRanges } from './index.js';

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

test('a /30 hands out its one free address, then reports exhaustion by name', () => {
  const subnet = parseCidr('10.0.0.0/30', 's');
  const book = openAddressBook(subnet, ip('10.0.0.1'));
  const req = { candidates: [{ first: ip('10.0.0.1'), last: ip('10.0.0.2') }], poolName: 'network default/n' };
  assert.equal(formatIp(allocateAddress(book, req)), '10.0.0.2');
  assert.throws(() => allocateAddress(book, req), (e: unknown) =>
    e instanceof WeftError && e.code === 'WEFT_POOL_EXHAUSTED' && /network default\/n/.test(e.message));
  releaseAddress(book, ip('10.0.0.2'));
  assert.equal(formatIp(allocateAddress(book, req)), '10.0.0.2');
});

test('requested addresses must be free and inside the allowed ranges', () => {
  const book = openAddressBook(parseCidr('10.1.0.0/24', 's'), ip('10.1.0.1'));
  const usable = [{ first: ip('10.1.0.1'), last: ip('10.1.0.254') }];
  const req = { candidates: usable, poolName: 'net' };
  assert.equal(allocateAddress(book, { ...req, requested: ip('10.1.0.9') }), ip('10.1.0.9'));
  assert.throws(() => allocateAddress(book, { ...req, requested: ip('10.1.0.9') }), /already in use/);
  assert.throws(() => allocateAddress(book, { ...req, requested: ip('10.1.0.1') }), /already in use/);
  assert.throws(() => allocateAddress(book, { ...req, requested: ip('10.1.0.255') }), /not an address/);
});

test('subtracting group pools leaves the network free area in order', () => {
  const base = parseRange('10.0.0.1-10.0.0.100', 'r');
  const holes = [parseRange('10.0.0.50-10.0.0.60', 'p'), parseRange('10.0.0.1-10.0.0.9', 'p')];
  assert.deepEqual(subtractRanges(base, holes).map((r) => [formatIp(r.first), formatIp(r.last)]), [
    ['10.0.0.10', '10.0.0.49'], ['10.0.0.61', '10.0.0.100'],
  ]);
});

test('VNIs: lowest unused, requested in range and unused', () => {
  const range = { first: 10, last: 12 };
  assert.equal(allocateVni(range, new Set([10, 11])), 12);
  assert.throws(() => allocateVni(range, new Set([10, 11, 12])), /no free VNI/);
  assert.throws(() => allocateVni(range, new Set(), 13), /outside/);
  assert.throws(() => allocateVni(range, new Set([11]), 11), /already used/);
});
