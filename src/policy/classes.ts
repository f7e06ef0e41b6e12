import { cidrRange, parseCidr, parseIp, type Endpoint, type Group, type IpRange, type Network, type Policy } from '../model/index.js';

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

export function ruleCidrs(policies: readonly Policy[]): string[] {
  const out = new Set<string>();
  for (const p of policies) for (const r of p.rules) for (const k of CIDR_KEYS) if (r[k] !== undefined) out.add(r[k] as string);
  return [...out].sort();
}

export function cidrToRange(text: string): IpRange {
  return cidrRange(parseCidr(text.includes('/') ? text : `${text}/32`, 'cidr', false));
}

/**
 * `previous`: the ids of an earlier classification. A class that still exists keeps its id, and a new
 * one takes an id no class of `previous` had, so a rule that adds one CIDR changes a few elements of
 * the datapath's maps instead of renumbering every class after it.
 */
export function classify(networks: readonly Network[], groups: readonly Group[], policies: readonly Policy[], endpoints: readonly Endpoint[], previous?: ReadonlyMap<string, number>): Classification {
  const cidrs = ruleCidrs(policies).map((c) => ({ text: c, range: cidrToRange(c) }));
  const nets = networks.map((n) => ({ name: n.name, range: cidrRange(parseCidr(n.subnet, 'subnet')) }));
  const groupOf = new Map(groups.map((g) => [g.name, g]));
  const eps = endpoints.map((e) => ({ ip: parseIp(e.ip) as number, ep: e }));
  // Elementary intervals: cut the address space at every boundary of a subnet, a rule CIDR or an endpoint.
  const cuts = new Set<number>([0, 2 ** 32]);
  for (const x of [...cidrs.map((c) => c.range), ...nets.map((n) => n.range)]) {
    cuts.add(x.first);
    cuts.add(x.last + 1);
  }
  for (const e of eps) {
    cuts.add(e.ip);
    cuts.add(e.ip + 1);
  }
  const points = [...cuts].sort((a, b) => a - b);
  const epAt = new Map(eps.map((e) => [e.ip, e.ep]));
  // Sweep: which rule CIDRs cover the current interval, updated at their boundaries only.
  const opens = new Map<number, string[]>();
  const closes = new Map<number, string[]>();
  for (const c of cidrs) {
    (opens.get(c.range.first) ?? opens.set(c.range.first, []).get(c.range.first))!.push(c.text);
    (closes.get(c.range.last + 1) ?? closes.set(c.range.last + 1, []).get(c.range.last + 1))!.push(c.text);
  }
  const active = new Set<string>();
  const classes: Klass[] = [{ id: 0, group: undefined, network: undefined, cidrs: [], endpoint: false }];
  const ids = new Map<string, number>([[key(classes[0] as Klass), 0]]);
  let fresh = 1;
  for (const id of previous?.values() ?? []) if (id >= fresh) fresh = id + 1;
  const ranges: AddressClass[] = [];
  for (let i = 0; i + 1 < points.length; i++) {
    const first = points[i] as number;
    const last = (points[i + 1] as number) - 1;
    for (const c of closes.get(first) ?? []) active.delete(c);
    for (const c of opens.get(first) ?? []) active.add(c);
    const ep = first === last ? epAt.get(first) : undefined;
    const group = ep?.group !== undefined && groupOf.has(ep.group) ? ep.group : undefined;
    const network = ep ? ep.network : nets.find((n) => first >= n.range.first && last <= n.range.last)?.name;
    const inCidrs = [...active].sort();
    const k: Klass = { id: -1, group, network, cidrs: inCidrs, endpoint: ep !== undefined };
    const kk = key(k);
    let id = ids.get(kk);
    if (id === undefined) {
      id = previous?.get(kk) ?? fresh++;
      ids.set(kk, id);
      classes.push({ ...k, id });
    }
    if (id === 0) continue;
    const prev = ranges[ranges.length - 1];
    if (prev && prev.cls === id && prev.last + 1 === first) prev.last = last;
    else ranges.push({ first, last, cls: id });
  }
  const byId = new Map(classes.map((c) => [c.id, c]));
  return {
    classes,
    ids,
    ranges,
    byIp(ip: string): Klass {
      const n = parseIp(ip);
      const r = n === undefined ? undefined : ranges.find((x) => n >= x.first && n <= x.last);
      return (r ? byId.get(r.cls) : classes[0]) as Klass;
    },
  };
}

function key(k: Omit<Klass, 'id'>): string {
  return JSON.stringify([k.group ?? null, k.network ?? null, k.cidrs, k.endpoint]);
}
