import { test } from 'node:test';
import assert from 'node:assert/strict';
import { endianness } from 'node:os';
import { elementLines } from './nft-elements.js';
import type { NftMap } from './table.js';

/** A mark as the kernel holds it: 32 bits in the host's byte order. */
const mark = (n: number) => {
  const b = Buffer.alloc(4);
  if (endianness() === 'LE') b.writeUInt32LE(n);
  else b.writeUInt32BE(n);
  return b.toString('hex');
};
const map = (type: string, elements: string[], more: Partial<NftMap> = {}): NftMap => ({ name: 'm', type, interval: false, elements, ...more });
const lines = (m: NftMap) => elementLines('inet', 'weft', m)?.split('\n');

test('the policy maps\' elements as the kernel holds them: marks in host order, ports in network order padded to 4 bytes in a concatenation', () => {
  assert.deepEqual(lines(map('mark . mark : mark', ['512 . 2 : 0x40000136', '0x10 . 0 : 7'])), [
    'map inet weft m', `${mark(512)}${mark(2)} =${mark(0x40000136)}`, `${mark(16)}${mark(0)} =${mark(7)}`, '',
  ]);
  assert.deepEqual(lines(map('mark . inet_service : verdict', ['0x40000060 . 10155 : accept', '0x40000061 . 65535 : goto deny'])), [
    'map inet weft m', `${mark(0x40000060)}27ab0000 accept`, `${mark(0x40000061)}ffff0000 goto deny`, '',
  ]);
  assert.deepEqual(lines(map('mark : verdict', ['0x40000600 : jump pp_a67b54c04d42d785', '3 : drop', '4 : continue', '5 : return'])), [
    'map inet weft m', `${mark(0x40000600)} jump pp_a67b54c04d42d785`, `${mark(3)} drop`, `${mark(4)} continue`, `${mark(5)} return`, '',
  ]);
});

test('addresses in network order; one field alone takes its own size; a set\'s elements have no value', () => {
  assert.deepEqual(lines(map('ipv6_addr : mark', ['fd00::1 : 5'])), ['map inet weft m', `fd000000000000000000000000000001 =${mark(5)}`, '']);
  assert.deepEqual(lines(map('inet_service : verdict', ['80 : drop'])), ['map inet weft m', '0050 drop', '']);
  assert.deepEqual(lines(map('ipv4_addr . inet_service', ['10.0.0.1 . 80'], { set: true })), ['set inet weft m', '0a00000100500000', '']);
  assert.deepEqual(lines(map('ipv4_addr', ['192.168.1.2'], { set: true })), ['set inet weft m', 'c0a80102', '']);
});

test('what it does not encode is left to nft whole: interval maps, typeof, other types and values, anything malformed', () => {
  const not = (m: NftMap, why: string) => assert.equal(elementLines('inet', 'weft', m), undefined, why);
  not(map('ipv4_addr : mark', ['10.0.0.0-10.0.0.255 : 1'], { interval: true }), 'an interval map');
  not(map('typeof ip daddr . th dport : ip daddr', ['10.0.0.1 . 80 : 10.0.0.2']), 'typeof');
  not(map('ifname . ipv6_addr', ['"eth0" . ::1'], { set: true }), 'a field it does not know');
  not(map('mark : ipv4_addr', ['1 : 10.0.0.1']), 'a value that is neither a mark nor a verdict');
  not(map('mark . mark : mark', ['1 : 2']), 'too few fields');
  not(map('mark . inet_service : verdict', ['1 . 70000 : accept']), 'a port past 65535');
  not(map('mark : mark', ['0x100000000 : 1']), 'a mark past 32 bits');
  not(map('mark : mark', ['-1 : 1']), 'a negative mark');
  not(map('ipv4_addr', ['300.1.1.1'], { set: true }), 'no address');
  not(map('mark : verdict', ['1 : jump has space']), 'a chain name with a space');
  not(map('mark : verdict', ['1 : queue']), 'a verdict it does not write');
  not(map('mark : verdict', ['1']), 'a map element without a value');
  not(map('ipv4_addr', ['10.0.0.1 : 1'], { set: true }), 'a set element with a value');
  not(map('mark : mark', ['010 : 1']), 'a leading zero (octal to some readers)');
  not(map('mark : mark', ['1e3 : 1']), 'an exponent');
  not(map('mark : mark', [' 1 : 1']), 'a space');
});

test('on a little-endian host a mark is written low byte first (what nft sends: its mark type is host order)', { skip: endianness() !== 'LE' && 'a big-endian host' }, () => {
  assert.deepEqual(lines(map('mark . inet_service : verdict', ['0x40000136 . 80 : accept'])), ['map inet weft m', '3601004000500000 accept', '']);
});

test('a map is encoded once: maps are immutable, named by their content', () => {
  const m = map('mark : mark', ['1 : 2']);
  const first = elementLines('inet', 'weft', m);
  assert.equal(elementLines('inet', 'weft', m), first);
  const bad = map('mark : mark', ['x : 2']);
  assert.equal(elementLines('inet', 'weft', bad), undefined);
  assert.equal(elementLines('inet', 'weft', bad), undefined, 'a refusal is remembered too');
  assert.equal(elementLines('ip', 'other', m)?.split('\n')[0], 'map ip other m', 'the same map in another table is written for that table');
});
