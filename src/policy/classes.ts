import { cidrRange, formatIp, parseCidr, parseIp, parseIp6, type Endpoint, type Group, type IpRange, type Network, type Policy } from '../model/index.js';
import type { Netpol, NpPart } from './netpol.js';
import { Cidrs6, ip6Number, isCidr6, span6 } from './cidr6.js';

/**
 * Every address is put in a class: the group and network it belongs to (if any), the rule CIDRs it falls
 * in, and whether it is an endpoint. Policy is decided per pair of classes, so the datapath needs one
 * address→class lookup per side instead of one rule per pair of endpoints.
 */
export interface Klass {
  id: number;
  group: string | undefined;
  network: string | undefined;
  /** The rule CIDRs it is in, by their names (aliases.ts: CIDRs whose rules are alike share one, `~…`). */
  cidrs: string[];
  endpoint: boolean;
  /** The NetworkPolicy peer sets it is in and its isolation (only in tenants with NetworkPolicies). */
  np?: NpPart;
}

export interface AddressClass {
  first: number;
  last: number;
  cls: number;
}

/** IPv6 addresses with a class: those inside rule CIDRs, endpoints' own left out (sweep6). */
export interface AddressClass6 {
  first: bigint;
  last: bigint;
  cls: number;
}

export interface Classification {
  /** Every class once (class 0 first); ids need not be dense. */
  classes: Klass[];
  /** Each class's id by its key: give it to the next classify, and a class keeps its id (its mark). */
  ids: ReadonlyMap<string, number>;
  /** Disjoint, sorted ranges of addresses with a class; everything else is class 0 ("elsewhere, no CIDR"). */
  ranges: AddressClass[];
  /**
   * The same for IPv6 addresses that are no endpoint's (an endpoint's IPv6 address has its IPv4
   * address's class: compile.ts `v6`): disjoint, sorted, only where some rule's IPv6 CIDR covers them.
   */
  ranges6: AddressClass6[];
  /**
   * The classes of the endpoints without an IPv4 address (IPv6-only networks), by their IPv6 address as a
   * hex number (ip6Number): no IPv4 range holds them, so their class is made from the endpoint itself.
   */
  solo: ReadonlyMap<string, number>;
  /** An address's class; an IPv6 address is looked up in `ranges6` (an endpoint's: by its IPv4 address). */
  byIp(ip: string): Klass;
}

const CIDR_KEYS = ['fromCidr', 'toCidr'] as const;
export const ALL: IpRange = { first: 0, last: 2 ** 32 - 1 };

export function ruleCidrs(policies: readonly Policy[]): string[] {
  const out = new Set<string>();
  for (const p of policies) for (const r of p.rules) for (const k of CIDR_KEYS) if (r[k] !== undefined) out.add(r[k] as string);
  return [...out].sort();
}

export function cidrToRange(text: string): IpRange {
  return cidrRange(parseCidr(text.includes('/') ? text : `${text}/32`, 'cidr', false));
}

/** A rule CIDR as written, with its addresses. */
export interface CidrSpan { text: string; first: number; last: number }
export interface NetSpan { name: string; first: number; last: number }

/** What a sweep over one region of the address space needs to know. */
export interface SweepInput {
  region: IpRange;
  /** The rule CIDRs inside the region (rule CIDRs are prefixes: each is inside it, or covers it whole). */
  inside: readonly CidrSpan[];
  /** The rule CIDRs covering the whole region but not inside it. */
  around: readonly string[];
  nets: readonly NetSpan[];
  /** The endpoints by address (the last one listed at an address wins). */
  eps: ReadonlyMap<number, Endpoint>;
  groups: ReadonlySet<string>;
  /** The tenant's NetworkPolicy layer, if it has one. */
  np?: Netpol | undefined;
  /** The rules' IPv6 CIDRs an endpoint's IPv6 address is in (cidr6.ts); absent when no rule has one. */
  v6of?: ((ep: Endpoint) => readonly string[]) | undefined;
  /** A rule CIDR's name in a class (aliases.ts); absent: its text. */
  alias?: ((cidr: string) => string) | undefined;
}

/**
 * The classes of one region, as merged ranges (class 0 left out). Elementary intervals are cut at every
 * boundary of a subnet, a rule CIDR or an endpoint; which rule CIDRs cover an interval is updated at
 * their boundaries only. `idOf` gives (or makes) the id of a class by its key.
 */
export function sweep(x: SweepInput, idOf: (key: string, k: Omit<Klass, 'id'>) => number): AddressClass[] {
  const { first: lo, last: hi } = x.region;
  const cuts = new Set<number>([lo, hi + 1]);
  const clip = (n: number) => { if (n > lo && n <= hi) cuts.add(n); };
  for (const c of x.inside) { cuts.add(c.first); clip(c.last + 1); }
  for (const n of x.nets) { clip(n.first); clip(n.last + 1); }
  for (const ip of x.eps.keys()) if (ip >= lo && ip <= hi) { cuts.add(ip); clip(ip + 1); }
  const points = [...cuts].sort((a, b) => a - b);
  const opens = new Map<number, string[]>();
  const closes = new Map<number, string[]>();
  for (const c of x.inside) {
    (opens.get(c.first) ?? opens.set(c.first, []).get(c.first))!.push(c.text);
    (closes.get(c.last + 1) ?? closes.set(c.last + 1, []).get(c.last + 1))!.push(c.text);
  }
  const active = new Set<string>(x.around);
  const ranges: AddressClass[] = [];
  for (let i = 0; i + 1 < points.length; i++) {
    const first = points[i] as number;
    const last = (points[i + 1] as number) - 1;
    for (const c of closes.get(first) ?? []) active.delete(c);
    for (const c of opens.get(first) ?? []) active.add(c);
    const ep = first === last ? x.eps.get(first) : undefined;
    const group = ep?.group !== undefined && x.groups.has(ep.group) ? ep.group : undefined;
    const network = ep ? ep.network : x.nets.find((n) => first >= n.first && last <= n.last)?.name;
    const six = ep && x.v6of ? x.v6of(ep) : [];
    const four = x.alias ? names(active, x.alias) : [...active];
    const cidrs = (six.length ? [...four, ...six] : four).sort();
    const np = x.np?.part(ep, cidrs);
    const k = { group, network, cidrs, endpoint: ep !== undefined, ...(np ? { np } : {}) };
    const id = idOf(classKey(k), k);
    if (id === 0) continue;
    const prev = ranges[ranges.length - 1];
    if (prev && prev.cls === id && prev.last + 1 === first) prev.last = last;
    else ranges.push({ first, last, cls: id });
  }
  return ranges;
}

/** The names of CIDRs, each once (two CIDRs of one set have one name). */
function names(active: ReadonlySet<string>, alias: (cidr: string) => string): string[] {
  const out = new Set<string>();
  for (const c of active) out.add(alias(c));
  return [...out];
}

/** A rule's IPv6 CIDR as written, with its addresses. */
export interface CidrSpan6 { text: string; first: bigint; last: bigint }
export const ALL6 = { first: 0n, last: (1n << 128n) - 1n };

/** What a sweep over one region of IPv6 space needs to know. */
export interface SweepInput6 {
  region: { first: bigint; last: bigint };
  /** The rules' IPv6 CIDRs inside the region, and those covering it whole but not inside it. */
  inside: readonly CidrSpan6[];
  around: readonly string[];
  /** Endpoints' IPv6 addresses, sorted: left out, their class is their endpoint's. */
  eps6: readonly bigint[];
  /** The tenant's NetworkPolicy layer, if it has one: an address in an IPv6 ipBlock is in that block's peer set. */
  np?: Netpol | undefined;
}

const cmp6 = (a: bigint, b: bigint) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * The classes of the IPv6 addresses of one region that are no endpoint's, by the rule CIDRs covering
 * them (per address, as IPv4 ranges are): merged ranges, class 0 (no CIDR) left out. Cut at every
 * boundary of a CIDR and around every endpoint's address. Sorted arrays, not sets or maps keyed by
 * bigint: V8 hashes a BigInt by its low 64 bits, and every /64 shares them.
 */
export function sweep6(x: SweepInput6, idOf: (key: string, k: Omit<Klass, 'id'>) => number): AddressClass6[] {
  const { first: lo, last: hi } = x.region;
  const points: bigint[] = [lo, hi + 1n];
  const events: Array<{ at: bigint; text: string; open: boolean }> = [];
  for (const c of x.inside) {
    points.push(c.first);
    events.push({ at: c.first, text: c.text, open: true });
    if (c.last < hi) { points.push(c.last + 1n); events.push({ at: c.last + 1n, text: c.text, open: false }); }
  }
  const eps: bigint[] = [];
  for (let i = lowerBound6(x.eps6, lo); i < x.eps6.length && (x.eps6[i] as bigint) <= hi; i++) {
    const ep = x.eps6[i] as bigint;
    eps.push(ep);
    points.push(ep);
    if (ep < hi) points.push(ep + 1n);
  }
  points.sort(cmp6);
  events.sort((a, b) => cmp6(a.at, b.at));
  const active = new Set<string>(x.around);
  const ranges: AddressClass6[] = [];
  let ev = 0;
  let ep = 0;
  for (let i = 0; i + 1 < points.length; i++) {
    const first = points[i] as bigint;
    const next = points[i + 1] as bigint;
    if (next === first) continue;
    const last = next - 1n;
    for (; ev < events.length && (events[ev] as { at: bigint }).at <= first; ev++) {
      const e = events[ev] as { text: string; open: boolean };
      if (e.open) active.add(e.text);
      else active.delete(e.text);
    }
    while (ep < eps.length && (eps[ep] as bigint) < first) ep++;
    if (first === last && eps[ep] === first) continue;
    if (active.size === 0) continue;
    const cidrs = [...active].sort();
    const np = x.np?.part(undefined, cidrs);
    const k = { group: undefined, network: undefined, cidrs, endpoint: false, ...(np ? { np } : {}) };
    const id = idOf(classKey(k), k);
    if (id === 0) continue;
    const prev = ranges[ranges.length - 1];
    if (prev && prev.cls === id && prev.last + 1n === first) prev.last = last;
    else ranges.push({ first, last, cls: id });
  }
  return ranges;
}

/** The index of the first of a sorted list that is not `below` (the list's length if none). */
export function lowerBound<T>(xs: readonly T[], below: (x: T) => boolean): number {
  let lo = 0;
  let hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (below(xs[mid] as T)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The index of the first of sorted numbers at or after `n`. */
export const lowerBound6 = (xs: readonly bigint[], n: bigint): number => lowerBound(xs, (x) => x < n);

/** The index of the last range starting at or before `n` (-1 if none): IPv6 ranges. */
export const rangeAt6 = (ranges: readonly { first: bigint }[], n: bigint): number => lowerBound(ranges, (r) => r.first <= n) - 1;

/** The endpoints' IPv6 addresses, sorted (malformed ones left out). */
export function endpoints6(endpoints: Iterable<Endpoint>): bigint[] {
  const out: bigint[] = [];
  for (const e of endpoints) {
    const n = e.ip6 === undefined ? undefined : ip6Number(e.ip6);
    if (n !== undefined) out.push(n);
  }
  return out.sort(cmp6);
}

/** The IPv6 CIDRs among rule CIDR texts as spans, outer before inner where they start together. */
export function spans6(texts: Iterable<string>): CidrSpan6[] {
  const out: CidrSpan6[] = [];
  for (const t of texts) if (isCidr6(t)) out.push(span6(t));
  return out.sort((a, b) => cmp6(a.first, b.first) || cmp6(b.last, a.last));
}

export function netSpans(networks: readonly Network[]): NetSpan[] {
  return networks.flatMap((n) => (n.subnet !== undefined ? [{ name: n.name, ...cidrRange(parseCidr(n.subnet, 'subnet')) }] : []));
}

/** The endpoints with an IPv4 address, by it (those of IPv6-only networks are `soloOf`'s). */
export function endpointsByIp(endpoints: readonly Endpoint[]): Map<number, Endpoint> {
  const out = new Map<number, Endpoint>();
  for (const e of endpoints) {
    const n = e.ip === undefined ? undefined : parseIp(e.ip);
    if (n !== undefined) out.set(n, e);
  }
  return out;
}

/**
 * The endpoints without an IPv4 address (IPv6-only networks), by their IPv6 address as a hex number: the
 * last one listed at an address wins, as in endpointsByIp. Strings, not bigints (V8 hashes a BigInt by its
 * low 64 bits: a /64's addresses would share a bucket).
 */
export function soloOf(endpoints: readonly Endpoint[]): Map<string, Endpoint> {
  const out = new Map<string, Endpoint>();
  for (const e of endpoints) {
    if (e.ip !== undefined || e.ip6 === undefined) continue;
    const n = ip6Number(e.ip6);
    if (n !== undefined) out.set(n.toString(16), e);
  }
  return out;
}

/**
 * The class of an endpoint without an IPv4 address: what the sweep gives an endpoint's address (its
 * group, network, the rule CIDRs it is in: here only IPv6 ones, by its IPv6 address; its NetworkPolicy part).
 */
export function soloClass(ep: Endpoint, groups: ReadonlySet<string>, v6of: ((ep: Endpoint) => readonly string[]) | undefined, np: Netpol | undefined): Omit<Klass, 'id'> {
  const group = ep.group !== undefined && groups.has(ep.group) ? ep.group : undefined;
  const cidrs = v6of ? [...v6of(ep)].sort() : [];
  const part = np?.part(ep, cidrs);
  return { group, network: ep.network, cidrs, endpoint: true, ...(part ? { np: part } : {}) };
}

export const CLASS0: Klass = { id: 0, group: undefined, network: undefined, cidrs: [], endpoint: false };
export const CLASS0_KEY = classKey(CLASS0);

/**
 * `previous`: the ids of an earlier classification. A class that still exists keeps its id, and a new
 * one takes an id no class of `previous` had, so a rule that adds one CIDR changes a few elements of
 * the datapath's maps instead of renumbering every class after it.
 */
export function classify(networks: readonly Network[], groups: readonly Group[], policies: readonly Policy[], endpoints: readonly Endpoint[], previous?: ReadonlyMap<string, number>, np?: Netpol): Classification {
  const texts = [...new Set([...ruleCidrs(policies), ...(np?.cidrs ?? [])])].sort();
  const inside = texts.filter((t) => !isCidr6(t)).map((text) => ({ text, ...cidrToRange(text) }));
  const six = new Cidrs6();
  for (const t of texts) if (isCidr6(t)) six.add(t);
  const classes: Klass[] = [CLASS0];
  const ids = new Map<string, number>([[CLASS0_KEY, 0]]);
  let fresh = 1;
  for (const id of previous?.values() ?? []) if (id >= fresh) fresh = id + 1;
  const input = { region: ALL, inside, around: [], nets: netSpans(networks), eps: endpointsByIp(endpoints), groups: new Set(groups.map((g) => g.name)), np,
    v6of: six.size ? (ep: Endpoint) => six.of(ep.ip6) : undefined };
  const idOf = (kk: string, k: Omit<Klass, 'id'>) => {
    let id = ids.get(kk);
    if (id === undefined) {
      id = previous?.get(kk) ?? fresh++;
      ids.set(kk, id);
      classes.push({ ...k, id });
    }
    return id;
  };
  const ranges = sweep(input, idOf);
  const dual = networks.some((n) => n.subnet6 !== undefined);
  const solo = dual ? soloOf(endpoints) : new Map<string, Endpoint>();
  const soloIds = new Map([...solo].map(([k, ep]) => { const x = soloClass(ep, input.groups, input.v6of, np); return [k, idOf(classKey(x), x)] as const; }));
  const ranges6 = dual && six.size ? sweep6({ region: ALL6, inside: spans6(texts), around: [], eps6: endpoints6([...input.eps.values(), ...solo.values()]), np }, idOf) : [];
  const c = classification(classes, ranges, ranges6, soloIds);
  if (!dual) return c;
  // An endpoint's IPv6 address is a hole in ranges6: asked for, it answers with its endpoint's class.
  let own: Map<string, string> | undefined;
  const byIp = c.byIp;
  c.byIp = (ip: string) => {
    if (!ip.includes(':')) return byIp(ip);
    // (input.eps holds endpoints with an IPv4 address only.)
    own ??= new Map([...input.eps].flatMap(([four, e]) => { const n = e.ip6 === undefined ? undefined : ip6Number(e.ip6); return n === undefined ? [] : [[n.toString(16), formatIp(four)] as const]; }));
    const n = parseIp6(ip);
    const four = n === undefined ? undefined : own.get(n.toString(16));
    return byIp(four ?? ip);
  };
  return c;
}

/**
 * Looks an address up by binary search: `ranges` are sorted and disjoint. `ids` is made from the
 * classes when first asked for (only a cold compile after this one needs it).
 */
export function classification(classes: Klass[], ranges: AddressClass[], ranges6: AddressClass6[] = [], solo: ReadonlyMap<string, number> = new Map()): Classification {
  let byId: Map<number, Klass> | undefined;
  let ids: Map<string, number> | undefined;
  return {
    classes,
    get ids() {
      return (ids ??= new Map(classes.map((k) => [classKey(k), k.id])));
    },
    ranges,
    ranges6,
    solo,
    byIp(ip: string): Klass {
      byId ??= new Map(classes.map((c) => [c.id, c]));
      if (ip.includes(':')) {
        const n6 = parseIp6(ip);
        const own = n6 === undefined ? undefined : solo.get(n6.toString(16));
        if (own !== undefined) return byId.get(own) ?? CLASS0;
        const r6 = n6 === undefined ? undefined : ranges6[rangeAt6(ranges6, n6)];
        return (r6 && n6 !== undefined && n6 <= r6.last ? byId.get(r6.cls) : classes[0]) ?? CLASS0;
      }
      const n = parseIp(ip);
      const i = n === undefined ? -1 : rangeAt(ranges, n);
      const r = ranges[i];
      return (r && n !== undefined && n <= r.last ? byId.get(r.cls) : classes[0]) ?? CLASS0;
    },
  };
}

/** The index of the last range starting at or before `n` (-1 if none). */
export function rangeAt(ranges: readonly { first: number }[], n: number): number {
  let lo = 0;
  let hi = ranges.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if ((ranges[mid] as { first: number }).first <= n) lo = mid + 1;
    else hi = mid - 1;
  }
  return hi;
}

export function classKey(k: Omit<Klass, 'id'>): string {
  // The NetworkPolicy part only when there is one: tenants without NetworkPolicies keep their keys (and marks).
  return JSON.stringify(k.np ? [k.group ?? null, k.network ?? null, k.cidrs, k.endpoint, k.np.own, k.np.sets] : [k.group ?? null, k.network ?? null, k.cidrs, k.endpoint]);
}

/** The rule indexes a class's own side uses: its group's, joined by its NetworkPolicy isolation. */
export function identityOf(k: Pick<Klass, 'group' | 'np'>): string {
  return k.np?.own ? `${k.group ?? ''}#${k.np.own}` : k.group ?? '';
}

/** The group part of an identity. */
export const groupOfIdentity = (id: string): string => id.split('#')[0] as string;
