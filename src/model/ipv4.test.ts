import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatIp, parseCidr, parseIp, parseRange, overlaps, cidrRange } from './ipv4.js';
import { WeftError } from './errors.js';

test('parseIp accepts dotted quads and rejects everything else', () => {
  assert.equal(parseIp('10.1.2.3'), 0x0a010203);
  assert.equal(formatIp(0xffffffff), '255.255.255.255');
  for (const bad of ['10.1.2.300', '10.1.2', '1.2.3.4.5', '01.2.3.4', 'a.b.c.d', '', '1..2.3']) {
    assert.equal(parseIp(bad), undefined, bad);
  }
});

test('parseCidr rejects bad addresses, prefixes and host bits, naming the field', () => {
  assert.deepEqual(parseCidr('10.1.2.0/24', 'subnet'), { base: 0x0a010200, prefix: 24 });
  const cases: Array<[string, RegExp]> = [
    ['10.1.2.300/24', /invalid IPv4/],
    ['10.1.2.0/33', /prefix length/],
    ['10.1.2.1/24', /host bits set \(did you mean 10\.1\.2\.0\/24/],
    ['10.1.2.0', /not a CIDR/],
  ];
  for (const [text, re] of cases) {
    assert.throws(() => parseCidr(text, 'subnet'), (e: unknown) => {
      assert.ok(e instanceof WeftError);
      assert.equal(e.field, 'subnet');
      assert.match(e.message, re);
      return true;
    });
  }
});

test('ranges parse, and overlap is symmetric and inclusive', () => {
  const r = parseRange('10.0.0.5-10.0.0.9', 'ipPool');
  assert.equal(r.last - r.first, 4);
  assert.throws(() => parseRange('10.0.0.9-10.0.0.5', 'ipPool'), /ends before/);
  const a = cidrRange(parseCidr('10.1.2.0/24', 's'));
  const b = cidrRange(parseCidr('10.1.2.128/25', 's'));
  const c = cidrRange(parseCidr('10.1.3.0/24', 's'));
  assert.ok(overlaps(a, b) && overlaps(b, a));
  assert.ok(!overlaps(a, c));
});
