import { invalid } from './errors.js';
import {
  cidrRange, contains, formatCidr, formatIp, overlaps, parseCidr, parseRange, requireIp,
  type Cidr, type IpRange,
} from './ipv4.js';
import { UPLINK_RANGE6, UPLINK_SPACE6, cidrRange6, contains6, formatIp6, inEndpointSpace6, meetsRuleSpace6, overlaps6, parseCidr6, parseRange6, requireIp6, type Cidr6, type IpRange6 } from './ipv6.js';
import { ENCAPS, WIREGUARD_OVERHEAD, type Encap } from './objects.js';
import type { NetworkInput, RuleInput, NetprofileInput, GlobalInput } from './schemas.js';

/**
 * Semantic checks that a JSON schema cannot express. Pure: they see one input at a time; checks that
 * need other objects (references, overlaps) live in the control layer.
 */
export interface NetworkLayout {
  subnet: Cidr;
  gateway: number;
  /** Where dynamic addresses come from: the ipRange, or the subnet without network and broadcast. */
  dynamic: IpRange;
}

export function checkNetwork(input: { name?: string; subnet: string; gateway?: string | undefined; ipRange?: string | undefined }): NetworkLayout {
  const subnet = parseCidr(input.subnet, 'subnet');
  if (subnet.prefix < 8 || subnet.prefix > 30) {
    throw invalid('subnet', `'${input.subnet}' must have a prefix length between /8 and /30`);
  }
  const all = cidrRange(subnet);
  const usable: IpRange = { first: all.first + 1, last: all.last - 1 };
  const gateway = input.gateway === undefined ? usable.first : requireIp(input.gateway, 'gateway');
  if (!contains(usable, { first: gateway, last: gateway })) {
    throw invalid('gateway', `${formatIp(gateway)} is not a usable address of ${input.subnet}`);
  }
  let dynamic = usable;
  if (input.ipRange !== undefined) {
    dynamic = parseRange(input.ipRange, 'ipRange');
    if (!contains(usable, dynamic)) throw invalid('ipRange', `'${input.ipRange}' is not inside ${input.subnet}`);
  }
  return { subnet, gateway, dynamic };
}

export interface NetworkLayout6 {
  subnet: Cidr6;
  gateway: bigint;
  /** Where dynamic addresses come from: ipRange6, or the subnet without its subnet-router anycast address. */
  dynamic: IpRange6;
}

/** A dual-stack network's IPv6 side, or undefined when it has none. Every error names its field. */
export function checkNetwork6(input: { subnet6?: string | undefined; gateway6?: string | undefined; ipRange6?: string | undefined }): NetworkLayout6 | undefined {
  if (input.subnet6 === undefined) {
    for (const f of ['gateway6', 'ipRange6'] as const) if (input[f] !== undefined) throw invalid(f, 'only a network with a subnet6 has one');
    return undefined;
  }
  const subnet = parseCidr6(input.subnet6, 'subnet6');
  if (subnet.prefix < 16 || subnet.prefix > 120) {
    throw invalid('subnet6', `'${input.subnet6}' must have a prefix length between /16 and /120`);
  }
  // Global unicast or unique local only: not loopback, IPv4-mapped, link-local, multicast or the rest of ::/8.
  if (!inEndpointSpace6(subnet.base)) {
    throw invalid('subnet6', `'${input.subnet6}' is not a global unicast (2000::/3) or unique local (fc00::/7) prefix`);
  }
  const all = cidrRange6(subnet);
  if (overlaps6(all, UPLINK_RANGE6)) {
    throw invalid('subnet6', `'${input.subnet6}' meets ${UPLINK_SPACE6}, where every host puts its tenants' IPv6 uplinks`);
  }
  const usable: IpRange6 = { first: all.first + 1n, last: all.last };
  const gateway = input.gateway6 === undefined ? usable.first : requireIp6(input.gateway6, 'gateway6');
  if (!contains6(usable, { first: gateway, last: gateway })) {
    throw invalid('gateway6', `${formatIp6(gateway)} is not a usable address of ${input.subnet6}`);
  }
  let dynamic = usable;
  if (input.ipRange6 !== undefined) {
    dynamic = parseRange6(input.ipRange6, 'ipRange6');
    if (!contains6(usable, dynamic)) throw invalid('ipRange6', `'${input.ipRange6}' is not inside ${input.subnet6}`);
  }
  return { subnet, gateway, dynamic };
}

/** A group's ipPool must lie inside the usable part of its network. */
export function checkPool(pool: string, layout: NetworkLayout, network: string): IpRange {
  const range = parseRange(pool, 'ipPool');
  const all = cidrRange(layout.subnet);
  if (!contains({ first: all.first + 1, last: all.last - 1 }, range)) {
    throw invalid('ipPool', `'${pool}' is not inside network ${network} (${formatIp(all.first)}/${layout.subnet.prefix})`);
  }
  return range;
}

export interface PortRange {
  first: number;
  last: number;
}

export function parsePorts(text: string, field: string): PortRange {
  const [a, b] = text.split('-');
  const first = Number(a);
  const last = b === undefined ? first : Number(b);
  for (const p of [first, last]) {
    if (!Number.isInteger(p) || p < 1 || p > 65535) throw invalid(field, `'${text}': ports are 1-65535`);
  }
  if (last < first) throw invalid(field, `'${text}': the range ends before it starts`);
  return { first, last };
}

/** Checks a rule's combination of fields, as netctl and netmaster did, plus our stricter port checks. */
export function checkRule(rule: RuleInput, path = ''): void {
  const f = (name: string) => `${path}${name}`;
  const proto = rule.protocol ?? 'any';
  if (/^[0-9]+$/.test(proto) && Number(proto) > 255) throw invalid(f('protocol'), `'${proto}' is not an IP protocol number (0-255)`);
  if (rule.ports !== undefined) {
    parsePorts(rule.ports, f('ports'));
    if (!['tcp', 'udp', 'sctp', '6', '17', '132'].includes(proto)) {
      throw invalid(f('ports'), `ports need protocol tcp, udp or sctp (protocol is ${proto})`);
    }
  }
  const direction = rule.direction ?? 'in';
  const peers = direction === 'in'
    ? { own: ['fromGroup', 'fromNetwork', 'fromCidr'] as const, other: ['toGroup', 'toNetwork', 'toCidr'] as const }
    : { own: ['toGroup', 'toNetwork', 'toCidr'] as const, other: ['fromGroup', 'fromNetwork', 'fromCidr'] as const };
  for (const k of peers.other) {
    if (rule[k] !== undefined) throw invalid(f(k), `an '${direction}' rule names its peer with ${peers.own.join('/')}, not ${k}`);
  }
  const given = peers.own.filter((k) => rule[k] !== undefined);
  if (given.length > 1) throw invalid(f(given[1] ?? ''), `a rule has at most one peer (got ${given.join(' and ')})`);
  for (const k of ['fromCidr', 'toCidr'] as const) {
    const v = rule[k];
    if (v === undefined) continue;
    // IPv6 CIDRs select endpoints by their IPv6 address, as IPv4 ones do by their IPv4 address (policy/cidr6.ts).
    if (v.includes(':')) {
      if (v.includes('.')) throw invalid(f(k), `'${v.slice(0, 50)}' mixes IPv4 and IPv6 notation: write an IPv4 prefix (10.0.0.0/8) or an IPv6 one (fd00::/64)`);
      const c = parseCidr6(v.includes('/') ? v : `${v}/128`, f(k));
      // Endpoints and outside addresses are global unicast, unique local or NAT64: a CIDR meeting none
      // (link-local, multicast, loopback, IPv4-mapped) names nothing a tenant's packets carry.
      if (!meetsRuleSpace6(cidrRange6(c))) throw invalid(f(k), `'${v.slice(0, 50)}' holds no global unicast (2000::/3), unique local (fc00::/7) or NAT64 (64:ff9b::/96, 64:ff9b:1::/48) address: no packet of a tenant carries one`);
    } else {
      parseCidr(v.includes('/') ? v : `${v}/32`, f(k));
    }
  }
}

/** Bandwidth in bits per second from `10mbps`, `1gbps`, `500kbps`, `5M`, `2Kb`. */
export function parseBandwidth(text: string, field = 'bandwidth'): number {
  const m = /^([0-9]+) ?([kmgKMG])(bps|b)?$/.exec(text);
  if (!m || m[1] === undefined || m[2] === undefined) throw invalid(field, `'${text}' is not a rate like 10mbps`);
  const scale = { k: 1e3, m: 1e6, g: 1e9 }[m[2].toLowerCase() as 'k' | 'm' | 'g'];
  const bps = Number(m[1]) * scale;
  if (bps < 8e3 || bps > 100e9) throw invalid(field, `'${text}' is outside 8kbps-100gbps`);
  return bps;
}

export function checkNetprofile(input: NetprofileInput): void {
  if (input.bandwidth !== undefined) parseBandwidth(input.bandwidth);
  if (input.burst !== undefined && input.bandwidth === undefined) {
    throw invalid('burst', 'a burst needs a bandwidth');
  }
}

export function parseVxlanRange(text: string, field = 'vxlanRange'): { first: number; last: number } {
  const [a, b] = text.split('-').map(Number);
  if (a === undefined || b === undefined || a < 1 || b > 16777215 || b < a) {
    throw invalid(field, `'${text}' must be N-M with 1 <= N <= M <= 16777215`);
  }
  return { first: a, last: b };
}

/**
 * Ranges with another job on every host: tunnel addresses or a network's subnet there would be
 * unroutable (0/8, loopback, multicast, class E) or shadow the tenants' uplinks and cloud metadata
 * (link-local: the agent's DNS answers a tenant on its uplink there, and policy lets such traffic by).
 */
const SPECIAL_RANGES: ReadonlyArray<[string, Cidr]> = [
  ['0.0.0.0/8 ("this network")', { base: 0, prefix: 8 }],
  ['127.0.0.0/8 (loopback)', { base: 0x7f000000, prefix: 8 }],
  ['169.254.0.0/16 (link-local: tenant uplinks, cloud metadata)', { base: 0xa9fe0000, prefix: 16 }],
  ['224.0.0.0/4 (multicast)', { base: 0xe0000000, prefix: 4 }],
  ['240.0.0.0/4 (reserved)', { base: 0xf0000000, prefix: 4 }],
];

/**
 * The hosts' tunnel range: an IPv4 CIDR of /8 to /30 (a /31 or /32 has no address left once network and
 * broadcast are kept out). Host bits must be clear: the error names the base that was probably meant,
 * since silently widening `10.1.2.3/16` could move every host's tunnel address.
 */
export function parseTunnelRange(text: string, field = 'tunnelRange'): Cidr {
  const c = parseCidr(text, field);
  if (c.prefix < 8 || c.prefix > 30) throw invalid(field, `'${text}' must have a prefix length between /8 and /30`);
  const taken = specialOverlapping(c);
  if (taken) throw invalid(field, `'${text}' overlaps ${taken}`);
  return c;
}

/** The special range a CIDR meets, by name, if any. */
const specialOverlapping = (c: Cidr): string | undefined => SPECIAL_RANGES.find(([, r]) => overlaps(cidrRange(c), cidrRange(r)))?.[0];

/** A new network's IPv4 subnet may lie in none of the special ranges (an existing one is left as it is). */
export function checkSubnetSpace(subnet: Cidr, field = 'subnet'): void {
  const taken = specialOverlapping(subnet);
  if (taken) throw invalid(field, `${formatCidr(subnet)} overlaps ${taken}; choose a private range such as 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16`);
}

/** Which special range an address is in (loopback, multicast, link-local, ...), if any: no host's underlay address. */
export function specialRangeOf(ip: number): string | undefined {
  return SPECIAL_RANGES.find(([, r]) => cidrRange(r).first <= ip && ip <= cidrRange(r).last)?.[0];
}

export function checkGlobal(input: GlobalInput): void {
  if (input.vxlanRange !== undefined) parseVxlanRange(input.vxlanRange);
  if (input.tunnelRange !== undefined) parseTunnelRange(input.tunnelRange);
}

/**
 * A network's MTU when none is given: the underlay's less its encapsulation, less WireGuard's when its
 * frames may travel encrypted (counted whether or not the cluster encrypts now, so turning encryption
 * on later needs no MTU change inside running containers).
 */
export function defaultNetworkMtu(underlayMtu: number, encap: Encap, encrypt: boolean): number {
  return underlayMtu - ENCAPS[encap].overhead - (encrypt ? WIREGUARD_OVERHEAD : 0);
}

/** `key=value` selector/label text from the CLI into a record. */
export function parseLabelList(items: readonly string[], field: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of items) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw invalid(field, `'${item}' is not key=value`);
    const key = item.slice(0, eq);
    // `-l tier=web -l tier=db` kept the last silently: one of the two was a mistake, and which is not ours to guess.
    if (Object.hasOwn(out, key)) throw invalid(field, `'${key}' is given twice (${key}=${out[key]}, ${item})`);
    out[key] = item.slice(eq + 1);
  }
  return out;
}
