import { invalid } from './errors.js';

/**
 * IPv6 addresses as unsigned 128-bit bigints; pure helpers shared by validation and IPAM. Text is parsed
 * strictly (RFC 4291 forms: hex groups of 1-4 digits, one `::`, an embedded IPv4 tail; no zone index) and
 * formatted canonically (RFC 5952: lower case, the longest run of two or more zero groups as `::`).
 */
export interface Cidr6 {
  readonly base: bigint;
  readonly prefix: number;
}

export interface IpRange6 {
  readonly first: bigint;
  readonly last: bigint;
}

const MAX6 = (1n << 128n) - 1n;
const GROUP = /^[0-9a-fA-F]{1,4}$/;
const DOTTED = /^(0|[1-9][0-9]{0,2})\.(0|[1-9][0-9]{0,2})\.(0|[1-9][0-9]{0,2})\.(0|[1-9][0-9]{0,2})$/;

/** The 16-bit groups of one side of a `::` (empty text: none); undefined when malformed. */
function groupsOf(text: string, tailMayBeV4: boolean): number[] | undefined {
  if (text === '') return [];
  const parts = text.split(':');
  const out: number[] = [];
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i] as string;
    if (tailMayBeV4 && i === parts.length - 1 && p.includes('.')) {
      const m = DOTTED.exec(p);
      if (!m) return undefined;
      const o = m.slice(1).map(Number);
      if (o.some((v) => v > 255)) return undefined;
      out.push(((o[0] as number) << 8) | (o[1] as number), ((o[2] as number) << 8) | (o[3] as number));
    } else {
      if (!GROUP.test(p)) return undefined;
      out.push(parseInt(p, 16));
    }
  }
  return out;
}

export function parseIp6(text: string): bigint | undefined {
  if (text.length > 45 || text.length < 2) return undefined;
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  let groups: number[];
  if (halves.length === 2) {
    const head = groupsOf(halves[0] as string, false);
    const tail = groupsOf(halves[1] as string, true);
    if (!head || !tail || head.length + tail.length > 7) return undefined;
    groups = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  } else {
    const all = groupsOf(text, true);
    if (!all || all.length !== 8) return undefined;
    groups = all;
  }
  let n = 0n;
  for (const g of groups) n = (n << 16n) | BigInt(g);
  return n;
}

export function formatIp6(n: bigint): string {
  const g: number[] = [];
  for (let i = 7; i >= 0; i--) g.push(Number((n >> BigInt(i * 16)) & 0xffffn));
  // The longest run of zero groups (two or more; the first of equal runs) becomes `::`.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) { best = i; bestLen = j - i; }
    i = j;
  }
  const hex = (xs: number[]) => xs.map((x) => x.toString(16)).join(':');
  return best < 0 ? hex(g) : `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`;
}

export function maskOf6(prefix: number): bigint {
  return prefix === 0 ? 0n : (MAX6 >> BigInt(128 - prefix)) << BigInt(128 - prefix);
}

export function cidrSize6(c: Cidr6): bigint {
  return 1n << BigInt(128 - c.prefix);
}

export function cidrRange6(c: Cidr6): IpRange6 {
  return { first: c.base, last: c.base + cidrSize6(c) - 1n };
}

/** Parses `x:y::z/len`; with `strict`, host bits must be zero. Errors name `field`. */
export function parseCidr6(text: string, field: string, strict = true): Cidr6 {
  const slash = text.indexOf('/');
  if (slash < 0) throw invalid(field, `'${text.slice(0, 64)}' is not a CIDR (expected an IPv6 prefix such as fd00:1::/64)`);
  const ip = parseIp6(text.slice(0, slash));
  if (ip === undefined) throw invalid(field, `'${text.slice(0, 64)}' has an invalid IPv6 address`);
  const lenText = text.slice(slash + 1);
  if (!/^[0-9]{1,3}$/.test(lenText) || Number(lenText) > 128) {
    throw invalid(field, `'${text.slice(0, 64)}' has an invalid prefix length (0-128)`);
  }
  const prefix = Number(lenText);
  const base = ip & maskOf6(prefix);
  if (strict && base !== ip) {
    throw invalid(field, `'${text}' has host bits set (did you mean ${formatIp6(base)}/${prefix}?)`);
  }
  return { base, prefix };
}

export function formatCidr6(c: Cidr6): string {
  return `${formatIp6(c.base)}/${c.prefix}`;
}

export function requireIp6(text: string, field: string): bigint {
  const n = parseIp6(text);
  if (n === undefined) throw invalid(field, `'${text.slice(0, 64)}' is not an IPv6 address`);
  return n;
}

/** Parses `x::a-x::b` (inclusive). */
export function parseRange6(text: string, field: string): IpRange6 {
  const [a, b, ...rest] = text.split('-');
  if (a === undefined || b === undefined || rest.length > 0) {
    throw invalid(field, `'${text.slice(0, 100)}' is not a range (expected fd00::10-fd00::ff)`);
  }
  const first = requireIp6(a, field);
  const last = requireIp6(b, field);
  if (last < first) throw invalid(field, `'${text}' ends before it starts`);
  return { first, last };
}

export function formatRange6(r: IpRange6): string {
  return `${formatIp6(r.first)}-${formatIp6(r.last)}`;
}

export function contains6(outer: IpRange6, inner: IpRange6): boolean {
  return inner.first >= outer.first && inner.last <= outer.last;
}

export function overlaps6(x: IpRange6, y: IpRange6): boolean {
  return x.first <= y.last && y.first <= x.last;
}

/** Where endpoints' IPv6 addresses come from (checkNetwork6): global unicast 2000::/3 and unique local fc00::/7. */
const ENDPOINT_SPACE6: readonly IpRange6[] = [cidrRange6({ base: 0x2000n << 112n, prefix: 3 }), cidrRange6({ base: 0xfc00n << 112n, prefix: 7 })];

/**
 * Where every host puts its tenants' IPv6 uplinks (NAT66: each tenant's namespace masquerades IPv6 to its
 * uplink address, the host masquerades that to its own; datapath/transit.ts `transit6`). A unique local
 * /64 under a random global ID (RFC 4193), the same on every host; no network's subnet6 may meet it, or
 * its tenant's namespace would hold two routes for the same addresses.
 */
export const UPLINK_SPACE6 = 'fd9f:5e3a:b17c:ffff::/64';
export const UPLINK_RANGE6: IpRange6 = cidrRange6({ base: 0xfd9f5e3ab17cffffn << 64n, prefix: 64 });

/** Whether an IPv6 address is of the kind an endpoint can have. */
export const inEndpointSpace6 = (n: bigint): boolean => ENDPOINT_SPACE6.some((r) => n >= r.first && n <= r.last);

/**
 * What a rule's IPv6 CIDR may name: an endpoint's kind of address, or an outside one a container may
 * reach by NAT66, which includes the NAT64 prefixes (64:ff9b::/96, RFC 6052; 64:ff9b:1::/48, RFC 8215).
 * Not link-local, multicast, loopback or IPv4-mapped: never forwarded to or from a tenant.
 */
const RULE_SPACE6: readonly IpRange6[] = [...ENDPOINT_SPACE6, cidrRange6({ base: 0x0064ff9bn << 96n, prefix: 96 }), cidrRange6({ base: 0x0064ff9b0001n << 80n, prefix: 48 })];
export const meetsRuleSpace6 = (r: IpRange6): boolean => RULE_SPACE6.some((x) => overlaps6(r, x));
/** Whether an IPv6 address is one a tenant's packets may carry: an endpoint's kind, or an outside one reached by NAT66 (NAT64 too). */
export const inRuleSpace6 = (n: bigint): boolean => RULE_SPACE6.some((r) => n >= r.first && n <= r.last);

/**
 * The EUI-64 link-local address of a MAC (RFC 4291 appendix A: ff:fe in the middle, the universal/local
 * bit flipped): what an interface the agent configures uses, so the guard knows it in advance.
 */
export function linkLocalOf(mac: string): string {
  const b = mac.split(':').map((x) => parseInt(x, 16));
  if (b.length !== 6 || b.some((x) => !(x >= 0 && x <= 255))) throw new Error(`'${mac}' is not a MAC address`);
  const g = [((b[0] as number) ^ 2) << 8 | (b[1] as number), (b[2] as number) << 8 | 0xff, 0xfe00 | (b[3] as number), (b[4] as number) << 8 | (b[5] as number)];
  let n = 0xfe80n << 112n;
  for (let i = 0; i < 4; i++) n |= BigInt(g[i] as number) << BigInt(48 - i * 16);
  return formatIp6(n);
}

/**
 * On an IPv6-only network an endpoint's MAC comes from its address's offset inside subnet6 (32 bits:
 * control/endpoints.ts macFor6), so its addresses are taken from the subnet's first 2^32.
 */
export const V6ONLY_SPAN = 2n ** 32n;

/** Whether `ip6` lies in the first V6ONLY_SPAN addresses of `subnet6`. */
export function inV6OnlySpan(ip6: string, subnet6: string): boolean {
  const n = parseIp6(ip6);
  const base = parseCidr6(subnet6, 'subnet6', false).base;
  return n !== undefined && n >= base && n - base < V6ONLY_SPAN;
}

/**
 * A routed dual-stack network's IPv6 block `index`: subnet6 cut into as many blocks as subnet is (one per
 * IPv4 block), so the host that holds IPv4 block i holds IPv6 block i, and an endpoint's two addresses are
 * routed to the same host. Undefined without both subnets.
 */
export function block6Of(net: { subnet?: string; subnet6?: string; blockSize?: number }, index: number): { range: IpRange6; cidr: string } | undefined {
  if (net.subnet === undefined || net.subnet6 === undefined) return undefined;
  const prefix4 = Number(net.subnet.split('/')[1]);
  const s6 = parseCidr6(net.subnet6, 'subnet6', false);
  const prefix = block6Prefix(s6.prefix, prefix4, net.blockSize ?? prefix4);
  const size = 1n << BigInt(128 - prefix);
  const first = s6.base + BigInt(index) * size;
  return { range: { first, last: first + size - 1n }, cidr: `${formatIp6(first)}/${prefix}` };
}

/** The prefix length of a routed network's IPv6 blocks: subnet6 cut as many times as the IPv4 subnet is. */
export const block6Prefix = (prefix6: number, prefix4: number, blockSize: number): number => prefix6 + (blockSize - prefix4);

/**
 * IPv6 addresses of cloud services a host reaches through its own routes (not link-local, so they are
 * forwardable): a tenant's IPv6 never goes there (the datapath's host table), and no routed subnet6
 * covers them (every host would route them away). AWS EC2 (Nitro): fd00:ec2::254 instance metadata, fd00:ec2::253 the Route 53 resolver, fd00:ec2::123 Amazon Time Sync (AWS EC2 user guide,
 * "instance metadata IPv6 endpoint", "Amazon DNS server", "Set the time"); Google Compute Engine:
 * fd20:ce::254 the metadata server of IPv6 VMs (GCE "About VM metadata"). Not re-checked against the
 * providers' current pages.
 */
export const RESERVED_SERVICES6: readonly string[] = ['fd00:ec2::123', 'fd00:ec2::253', 'fd00:ec2::254', 'fd20:ce::254'];
