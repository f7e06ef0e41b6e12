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

test('parseIp reads every string as the dotted-quad pattern does (a split and a pattern per octet, the earlier form)', () => {
  const OCTET = /^(0|[1-9][0-9]{0,2})$/;
  const byPattern = (t: string): number | undefined => {
    const parts = t.split('.');
    if (parts.length !== 4 || !parts.every((p) => OCTET.test(p) && Number(p) <= 255)) return undefined;
    return parts.reduce((n, p) => n * 256 + Number(p), 0);
  };
  const pieces = ['', '0', '00', '01', '1', '9', '10', '99', '100', '255', '256', '999', '1000', '0255', ' 1', '1 ', '+1', '-1', 'a', '1e1', '0x1', '٣'];
  let checked = 0;
  for (const a of pieces) for (const b of ['0', '255', '01', '']) for (const c of ['1', '']) for (const d of pieces) {
    for (const t of [`${a}.${b}.${c}.${d}`, `${a}.${b}.${c}.${d}.`, `.${a}.${b}.${c}.${d}`, `${a}.${b}.${d}`, `${a}..${c}.${d}`, `${a}.${b}.${c}.${d}.5`]) {
      assert.equal(parseIp(t), byPattern(t), JSON.stringify(t));
      checked++;
    }
  }
  for (let k = 0; k < 2000; k++) {
    const n = (k * 2654435761) >>> 0;
    assert.equal(parseIp(formatIp(n)), n);
  }
  assert.ok(checked > 10_000);
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
