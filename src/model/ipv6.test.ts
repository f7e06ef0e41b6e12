import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cidrRange6, formatIp6, parseCidr6, parseIp6, parseRange6, requireIp6 } from './ipv6.js';
import { WeftError } from './errors.js';

test('parseIp6 reads every RFC 4291 form and formatIp6 writes the RFC 5952 one', () => {
  const cases: Array<[string, string]> = [
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:0db8:0000:0000:0000:0000:0002:0001', '2001:db8::2:1'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    ['2001:DB8::1', '2001:db8::1'],
    ['::', '::'],
    ['::1', '::1'],
    ['fd00::', 'fd00::'],
    ['1:0:0:2:0:0:0:3', '1:0:0:2::3'],
    ['::ffff:192.0.2.1', '::ffff:c000:201'],
    ['ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'],
    ['1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:0'],
  ];
  for (const [text, canonical] of cases) {
    const n = parseIp6(text);
    assert.notEqual(n, undefined, text);
    assert.equal(formatIp6(n as bigint), canonical, text);
    assert.equal(parseIp6(canonical), n, canonical);
  }
  assert.equal(parseIp6('::1'), 1n);
  assert.equal(parseIp6('ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'), (1n << 128n) - 1n);
});

test('parseIp6 refuses everything that is not one address', () => {
  for (const bad of ['', ':', ':::', '1::2::3', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7', '12345::', 'g::1', ':1::', '1::2:',
    '1:2:3:4:5:6:7:8::', 'fe80::1%eth0', '::ffff:1.2.3.256', '::ffff:01.2.3.4', '::1.2.3.4:5', '10.1.2.3', ' ::1', '::1 ',
    '1:2:3:4:5:6:7::8', 'x'.repeat(100)]) {
    assert.equal(parseIp6(bad), undefined, JSON.stringify(bad));
  }
});

test('parseCidr6 names the field and refuses bad prefixes and host bits', () => {
  assert.deepEqual(parseCidr6('fd00:1::/64', 'subnet6'), { base: 0xfd000001n << 96n, prefix: 64 });
  const r = cidrRange6(parseCidr6('fd00::/120', 's'));
  assert.equal(r.last - r.first, 255n);
  const cases: Array<[string, RegExp]> = [
    ['fd00::/129', /prefix length/],
    ['fd00::/', /prefix length/],
    ['fd00::1/64', /host bits set \(did you mean fd00::\/64/],
    ['fd00::', /not a CIDR/],
    ['10.0.0.0/8', /invalid IPv6/],
    ['fd00::/064x', /prefix length/],
  ];
  for (const [text, re] of cases) {
    assert.throws(() => parseCidr6(text, 'subnet6'), (e: unknown) => e instanceof WeftError && e.field === 'subnet6' && re.test(e.message), text);
  }
  assert.deepEqual(parseCidr6('fd00::1/64', 'x', false), { base: 0xfd00n << 112n, prefix: 64 });
});

test('ranges, and an IPv4 address where IPv6 is wanted', () => {
  assert.deepEqual(parseRange6('fd00::10-fd00::ff', 'ipRange6'), { first: 0xfd00n << 112n | 0x10n, last: 0xfd00n << 112n | 0xffn });
  assert.throws(() => parseRange6('fd00::ff-fd00::10', 'ipRange6'), /ends before it starts/);
  assert.throws(() => parseRange6('fd00::1', 'ipRange6'), /not a range/);
  assert.throws(() => requireIp6('10.0.0.1', 'gateway6'), (e: unknown) => e instanceof WeftError && e.field === 'gateway6');
});
