import { parseIp, parseIp6, type Endpoint, type Group, type Network, type Policy } from '../model/index.js';
import type { Netpol } from './netpol.js';
import { Cidrs6, ip6Number, isCidr6 } from './cidr6.js';
import { CLASS0, CLASS0_KEY, cidrToRange, classKey, endpointsByIp, netSpans, soloClass, soloOf, type Klass } from './classes.js';

/** Addresses classified and kept per classifier, at most (a flood of outside addresses starts it over). */
const KEPT = 10_000;

/**
 * What `classify(...).byIp(ip)` answers, one address at a time: its group, network, the rule CIDRs it is
 * in, endpoint or not, its NetworkPolicy part. No sweep of the address space: the rule CIDRs are kept
 * by prefix length, so an address is at most 33 lookups (129 for IPv6). For `explain` and the server's
 * flow records, which ask about a few addresses: classify's sweep of 50,000 nested prefixes (~370 ms)
 * held the server's event loop 400-670 ms with the rest of an evaluator's making, each time a tenant's
 * policy changed (every API call waited behind it). Ids are this classifier's own, equal for addresses
 * of one class and 0 for class 0; they are not a compile's marks.
 */
export function pointClassifier(networks: readonly Network[], groups: readonly Group[], policies: readonly Policy[], endpoints: readonly Endpoint[], np?: Netpol, made?: RuleCidrs): (ip: string) => Klass {
  // `made`: the policies' CIDRs gathered ahead (explainerYielding), this classifier's own from here on.
  const cidrs = made ?? RuleCidrs.of(policies);
  for (const t of np?.cidrs ?? []) cidrs.add(t);
  const { four, six } = cidrs;
  const nets = netSpans(networks);
  const eps = endpointsByIp(endpoints);
  const groupNames = new Set(groups.map((g) => g.name));
  const v6of = six.size ? (ep: Endpoint) => six.of(ep.ip6) : undefined;
  // As classify: IPv6 addresses have classes only where some network has IPv6.
  const dual = networks.some((n) => n.subnet6 !== undefined);
  const solo = dual ? soloOf(endpoints) : new Map<string, Endpoint>();
  // An endpoint's IPv6 address is its IPv4 address's class (the endpoints with an IPv4 address, by it).
  let own: Map<string, number> | undefined;
  // One object per class (addresses share it): ids from 1 in the order classes are met.
  const classes = new Map<string, Klass>([[CLASS0_KEY, CLASS0]]);
  const klass = (k: Omit<Klass, 'id'>): Klass => {
    const key = classKey(k);
    let c = classes.get(key);
    if (!c) classes.set(key, (c = { ...k, id: classes.size }));
    return c;
  };
  const ofFour = (n: number): Klass => {
    const ep = eps.get(n);
    const group = ep?.group !== undefined && groupNames.has(ep.group) ? ep.group : undefined;
    const network = ep ? ep.network : nets.find((x) => n >= x.first && n <= x.last)?.name;
    const extra = ep && v6of ? v6of(ep) : [];
    const cidrs = [...four.of(n), ...extra].sort();
    const part = np?.part(ep, cidrs);
    return klass({ group, network, cidrs, endpoint: ep !== undefined, ...(part ? { np: part } : {}) });
  };
  const ofSix = (ip: string): Klass => {
    if (!dual) return CLASS0;
    const n6 = parseIp6(ip);
    if (n6 === undefined) return CLASS0;
    const hex = n6.toString(16);
    own ??= new Map([...eps].flatMap(([n, e]) => { const x = e.ip6 === undefined ? undefined : ip6Number(e.ip6); return x === undefined ? [] : [[x.toString(16), n] as const]; }));
    const n4 = own.get(hex);
    if (n4 !== undefined) return ofFour(n4);
    const ep = solo.get(hex);
    if (ep !== undefined) return klass(soloClass(ep, groupNames, v6of, np));
    const cidrs = six.ofNumber(n6).sort();
    if (cidrs.length === 0) return CLASS0;
    const part = np?.part(undefined, cidrs);
    return klass({ group: undefined, network: undefined, cidrs, endpoint: false, ...(part ? { np: part } : {}) });
  };
  const seen = new Map<string, Klass>();
  return (ip: string) => {
    let k = seen.get(ip);
    if (k) return k;
    if (ip.includes(':')) k = ofSix(ip);
    else {
      const n = parseIp(ip);
      k = n === undefined ? CLASS0 : ofFour(n);
    }
    if (seen.size >= KEPT) seen.clear();
    seen.set(ip, k);
    return k;
  };
}

/** The rules' CIDRs, IPv4 and IPv6, as pointClassifier looks addresses up in them. */
export class RuleCidrs {
  readonly four = new Cidrs4();
  readonly six = new Cidrs6();

  static of(policies: readonly Policy[]): RuleCidrs {
    const out = new RuleCidrs();
    for (const p of policies) out.addPolicy(p);
    return out;
  }

  add(text: string): void {
    if (isCidr6(text)) this.six.add(text);
    else this.four.add(text);
  }

  addPolicy(p: Policy): void {
    for (const r of p.rules) this.addRule(r);
  }

  addRule(r: Policy['rules'][number]): void {
    if (r.fromCidr !== undefined) this.add(r.fromCidr);
    if (r.toCidr !== undefined) this.add(r.toCidr);
  }
}

/** IPv4 rule CIDRs by prefix length and first address, as written (Cidrs6's IPv4 twin, numbers for keys). */
class Cidrs4 {
  private readonly byLength = new Map<number, Map<number, string[]>>();

  add(text: string): void {
    const { first, last } = cidrToRange(text);
    const size = last - first + 1;
    let l = this.byLength.get(size);
    if (!l) this.byLength.set(size, (l = new Map()));
    const texts = l.get(first);
    if (!texts) l.set(first, [text]);
    else if (!texts.includes(text)) texts.push(text);
  }

  /** The CIDRs an address is in, unsorted. */
  of(n: number): string[] {
    const out: string[] = [];
    for (const [size, l] of this.byLength) {
      const texts = l.get(n - (n % size));
      if (texts) out.push(...texts);
    }
    return out;
  }
}
