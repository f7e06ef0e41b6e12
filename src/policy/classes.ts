import { cidrRange, parseCidr, parseIp, type Endpoint, type Group, type IpRange, type Network, type Policy } from '../model/index.js';
import type { Netpol, NpPart } from './netpol.js';
import { Cidrs6, isCidr6 } from './cidr6.js';

/**
 * Every address is put in a class: the group and network it belongs to (if any), the rule CIDRs it falls
 * in, and whether it is an endpoint. Policy is decided per pair of classes, so the datapath needs one
 * address→class lookup per side instead of one rule per pair of endpoints.
 */
export interface Klass {
  id: number;
  group: string | undefined;
  network: string | undefined;
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

export interface Classification {
  /** Every class once (class 0 first); ids need not be dense. */
  classes: Klass[];
  /** Each class's id by its key: give it to the next classify, and a class keeps its id (its mark). */
  ids: ReadonlyMap<string, number>;
  /** Disjoint, sorted ranges of addresses with a class; everything else is class 0 ("elsewhere, no CIDR"). */
  ranges: AddressClass[];
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
    const cidrs = (six.length ? [...active, ...six] : [...active]).sort();
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

export function netSpans(networks: readonly Network[]): NetSpan[] {
  return networks.map((n) => ({ name: n.name, ...cidrRange(parseCidr(n.subnet, 'subnet')) }));
}

export function endpointsByIp(endpoints: readonly Endpoint[]): Map<number, Endpoint> {
  return new Map(endpoints.map((e) => [parseIp(e.ip) as number, e]));
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
  const ranges = sweep(input, (kk, k) => {
    let id = ids.get(kk);
    if (id === undefined) {
      id = previous?.get(kk) ?? fresh++;
      ids.set(kk, id);
      classes.push({ ...k, id });
    }
    return id;
  });
  return classification(classes, ranges);
}

/**
 * Looks an address up by binary search: `ranges` are sorted and disjoint. `ids` is made from the
 * classes when first asked for (only a cold compile after this one needs it).
 */
export function classification(classes: Klass[], ranges: AddressClass[]): Classification {
  let byId: Map<number, Klass> | undefined;
  let ids: Map<string, number> | undefined;
  return {
    classes,
    get ids() {
      return (ids ??= new Map(classes.map((k) => [classKey(k), k.id])));
    },
    ranges,
    byIp(ip: string): Klass {
      byId ??= new Map(classes.map((c) => [c.id, c]));
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
