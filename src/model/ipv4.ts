import { invalid } from './errors.js';

/** IPv4 addresses as unsigned 32-bit numbers; pure helpers shared by validation and IPAM. */
export interface Cidr {
  readonly base: number;
  readonly prefix: number;
}

export interface IpRange {
  readonly first: number;
  readonly last: number;
}

/**
 * `a.b.c.d` as a number: four decimal octets of 1-3 digits, no leading zero (`01` could be read as
 * octal elsewhere), each at most 255; anything else is undefined. Read by character codes: it runs
 * several times for every allocation and every rule address (a split and a regex per octet were ~2.7 µs
 * of an allocation's ~72 µs in-process).
 */
export function parseIp(text: string): number | undefined {
  let n = 0;
  let octets = 0;
  let i = 0;
  const len = text.length;
  while (true) {
    const start = i;
    let v = 0;
    while (i < len) {
      const c = text.charCodeAt(i);
      if (c < 48 || c > 57) break;
      v = v * 10 + (c - 48);
      i++;
    }
    const digits = i - start;
    if (digits === 0 || digits > 3 || v > 255 || (digits > 1 && text.charCodeAt(start) === 48)) return undefined;
    n = n * 256 + v;
    octets++;
    if (octets === 4) return i === len ? n : undefined;
    if (i >= len || text.charCodeAt(i) !== 46) return undefined;
    i++;
  }
}

export function formatIp(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

export function maskOf(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

export function cidrSize(c: Cidr): number {
  return 2 ** (32 - c.prefix);
}

export function cidrRange(c: Cidr): IpRange {
  return { first: c.base, last: c.base + cidrSize(c) - 1 };
}

/** Parses `a.b.c.d/len`; with `strict`, host bits must be zero. Errors name `field`. */
export function parseCidr(text: string, field: string, strict = true): Cidr {
  const slash = text.indexOf('/');
  if (slash < 0) throw invalid(field, `'${text}' is not a CIDR (expected a.b.c.d/len)`);
  const ip = parseIp(text.slice(0, slash));
  if (ip === undefined) throw invalid(field, `'${text}' has an invalid IPv4 address`);
  const lenText = text.slice(slash + 1);
  if (!/^[0-9]{1,2}$/.test(lenText) || Number(lenText) > 32) {
    throw invalid(field, `'${text}' has an invalid prefix length (0-32)`);
  }
  const prefix = Number(lenText);
  const base = (ip & maskOf(prefix)) >>> 0;
  if (strict && base !== ip) {
    throw invalid(field, `'${text}' has host bits set (did you mean ${formatIp(base)}/${prefix}?)`);
  }
  return { base, prefix };
}

export function formatCidr(c: Cidr): string {
  return `${formatIp(c.base)}/${c.prefix}`;
}

export function requireIp(text: string, field: string): number {
  const n = parseIp(text);
  if (n === undefined) throw invalid(field, `'${text}' is not an IPv4 address`);
  return n;
}

/** Parses `a.b.c.d-e.f.g.h` (inclusive). */
export function parseRange(text: string, field: string): IpRange {
  const [a, b, ...rest] = text.split('-');
  if (a === undefined || b === undefined || rest.length > 0) {
    throw invalid(field, `'${text}' is not a range (expected a.b.c.d-e.f.g.h)`);
  }
  const first = requireIp(a, field);
  const last = requireIp(b, field);
  if (last < first) throw invalid(field, `'${text}' ends before it starts`);
  return { first, last };
}

export function formatRange(r: IpRange): string {
  return `${formatIp(r.first)}-${formatIp(r.last)}`;
}

export function contains(outer: IpRange, inner: IpRange): boolean {
  return inner.first >= outer.first && inner.last <= outer.last;
}

export function overlaps(x: IpRange, y: IpRange): boolean {
  return x.first <= y.last && y.first <= x.last;
}

/**
 * A routed network's block holding `ip` (encap routed: blocks of `blockSize` inside the subnet): its
 * index from the subnet's start and its range; the subnet's own prefix when no block size is given.
 */
export function blockOf(net: { subnet?: string; blockSize?: number }, ip: number): { index: number; range: IpRange; cidr: string } {
  // Routed networks are IPv4 (the server refuses one without a subnet).
  const subnet = parseCidr(net.subnet ?? '', 'subnet');
  const prefix = net.blockSize ?? subnet.prefix;
  const size = 2 ** (32 - prefix);
  const index = Math.floor((ip - subnet.base) / size);
  const first = subnet.base + index * size;
  return { index, range: { first, last: first + size - 1 }, cidr: `${formatIp(first)}/${prefix}` };
}
