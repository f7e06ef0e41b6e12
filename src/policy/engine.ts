import { maskOf6, type Action, type Endpoint, type Group, type Policy, type Rule } from '../model/index.js';
import { ALL, ALL6, CLASS0, CLASS0_KEY, cidrToRange, classKey, classification, endpoints6, endpointsByIp, groupOfIdentity, soloClass, soloOf, identityOf, lowerBound, lowerBound6, netSpans, rangeAt, spans6, sweep, sweep6, type AddressClass, type AddressClass6, type CidrSpan, type CidrSpan6, type Classification, type Klass, type NetSpan, type SweepInput6 } from './classes.js';
import type { Netpol } from './netpol.js';
import { Cidrs6, ip6Number, isCidr6, span6 } from './cidr6.js';
import type { RuleRef } from './decide.js';
import { decidePair, decideVariants, PairStore, Profiles, type Profile } from './pairs.js';
import { DECIDED_IN, DECIDED_OUT } from './high.js';
import { RuleIndex, SLOTS, type Bucket, type ProtoSlot } from './rule-index.js';
import { coverage, SideProfiles, type SideEntry, type SideProfile } from './sides.js';
import { mergeRanges } from './levels.js';
import { CidrAliases } from './aliases.js';
import type { PolicyState, Verdict } from './compile.js';
import { overBudget } from './budget.js';
import { Roles } from './roles.js';

/** A bucket's ports of a slot, one merged range per entry. */
interface PortEntry { first: number; last: number; key: string; bucket: Bucket }
/**
 * Ports of the rules with a peer, per slot: entries spanning at most NARROW ports sorted by their first (a
 * query looks only from NARROW before its first port), the wider ones apart (scanned whole), and each
 * bucket's entries as of its stamp.
 */
interface PortIndex {
  narrow: PortEntry[];
  wide: PortEntry[];
  /** Only buckets with entries: one missing counts as changed when it is next dirty (and is checked then). */
  byBucket: Map<Bucket, { stamp: number; entries: PortEntry[] }>;
  /** Buckets changed since (and the key of their index): refreshed when next asked. */
  dirty: Map<Bucket, string>;
}
const NARROW = 1024;

function entriesOf(key: string, bucket: Bucket, slot: ProtoSlot): PortEntry[] {
  const xs: Array<[number, number]> = [];
  for (const r of bucket.rules[slot]) { const c = coverage(r.rule, slot); if (c) xs.push(c); }
  return mergeRanges(xs).map((m) => ({ ...m, key, bucket }));
}

/**
 * Visits the entries of an index that meet [first, last] until `visit` says it is done (true); whether it
 * did. The wide ones are scanned whole. A narrow one spans at most NARROW ports, so one that reaches
 * `first` starts at first - NARROW or later (the first of those, not the last entry starting at or before
 * it: several may start at one port); an entry passed over there ends before `first`, so at most one
 * NARROW window of entries is passed over.
 */
function meeting(x: PortIndex, [first, last]: readonly [number, number], visit: (e: PortEntry) => boolean | void): boolean {
  for (const e of x.wide) if (e.last >= first && e.first <= last && visit(e) === true) return true;
  for (let i = rangeAt(x.narrow, first - NARROW - 1) + 1; i < x.narrow.length && (x.narrow[i] as PortEntry).first <= last; i++) {
    const e = x.narrow[i] as PortEntry;
    if (e.last >= first && visit(e) === true) return true;
  }
  return false;
}

/** What a host compiles (see compile.ts `scope`): `enforced` holds identities (classes.ts `identityOf`). */
export interface Scope { enforced: Set<string>; policies: Policy[]; endpoints: Endpoint[]; np: Netpol | undefined }

const CIDR_KEYS = ['fromCidr', 'toCidr'] as const;

/**
 * Everything but the rules and the endpoints that a compile depends on. While it stands, a recompile
 * may start from the last compile's classes and pairs and redo only what the changed rules and
 * endpoints touch (incremental.ts). The groups enforced here are part of it: their rules are the
 * rule indexes, and an endpoint that adds or removes one changes what the host enforces.
 */
export function frameOf(s: PolicyState, sc: Scope): string {
  return JSON.stringify([s.tenant.name, s.tenant.defaultAction, s.host ?? null, s.networks.map((n) => [n.name, n.subnet, n.subnet6 ?? null]),
    s.groups.map((g) => [g.name, g.policies]), [...sc.enforced].sort(), sc.policies.map((p) => (p.mode === 'audit' ? `${p.name} (audit)` : p.name)), sc.np?.digest ?? null,
    sctpByPort(sc)]);
}

// A WeakMap: the policies are the caller's objects (the compile leaves nothing on them).
const sctpRules = new WeakMap<Policy, boolean>();
const comparesSctpPorts = (r: Rule) => r.ports !== undefined && (r.protocol === 'sctp' || r.protocol === '132');

/**
 * Does some rule in scope compare SCTP ports? Then SCTP is decided by port, in a slot of its own (a fourth
 * pair map in the datapath); else it is one protocol number among the others, and costs nothing more.
 * Part of the frame: a compile that starts or stops deciding SCTP by port is a cold one.
 */
export function sctpByPort(sc: Scope): boolean {
  if (sc.np?.sctpPorts) return true;
  return sc.policies.some((p) => {
    let x = sctpRules.get(p);
    if (x === undefined) sctpRules.set(p, (x = p.rules.some(comparesSctpPorts)));
    return x;
  });
}

/** A policy's rule as the compiler holds it: marked when its policy is in audit mode. */
export function refOf(policy: string, rule: Rule, mode: Policy['mode']): RuleRef {
  return { policy, rule: mode === 'audit' ? { ...rule, audit: true } : rule };
}

/**
 * A compile's working state, kept beside its result so the next compile of the tenant can be
 * incremental. Owned by one compile at a time: an incremental compile takes it over and changes it.
 */
export class Engine {
  readonly groupNames: Set<string>;
  readonly nets: NetSpan[];
  eps: Map<number, Endpoint>;
  /** The endpoints without an IPv4 address (IPv6-only networks) by their IPv6 address in hex, and their classes. */
  solo: Map<string, Endpoint>;
  readonly soloCls = new Map<string, number>();
  /** Scoped policies by name (the last of a name wins, as in groupRules). */
  policies: Map<string, Policy>;
  readonly indexes = new Map<string, RuleIndex>();
  readonly ids = new Map<string, number>([[CLASS0_KEY, 0]]);
  readonly classes = new Map<number, Klass>([[0, CLASS0]]);
  ranges: AddressClass[] = [];
  /** How many ranges each class has: a class with none is gone. */
  readonly refs = new Map<number, number>();
  /** The classes of endpoints this host enforces (every pair with one of them on a side is decided). */
  readonly enforcedClasses = new Set<number>();
  /** How many rules name each CIDR; the CIDRs sorted by first address (outer before inner). */
  readonly cidrCount = new Map<string, number>();
  readonly cidrList: CidrSpan[] = [];
  readonly cidrsByRange = new Map<string, string[]>();
  /** The rules' IPv6 CIDRs (they select endpoints by their IPv6 address: cidr6.ts); counted in `cidrCount` too. */
  readonly cidrs6 = new Cidrs6();
  /** The classes holding each IPv6 CIDR (the classes a rule naming it as its peer matches). */
  readonly classesByCidr6 = new Map<string, Set<number>>();
  /** The IPv6 CIDRs sorted by first address (outer before inner), and by their span (`first-last` in hex). */
  cidrList6: CidrSpan6[] = [];
  readonly cidrsByRange6 = new Map<string, string[]>();
  /** The classes of IPv6 addresses that are no endpoint's, inside the rules' IPv6 CIDRs (classes.ts sweep6). */
  ranges6: AddressClass6[] = [];
  /** The IPv6 addresses of the endpoints in scope, sorted: left out of `ranges6`. */
  eps6: bigint[] = [];
  /**
   * Whether the tenant has an IPv6 subnet: without one no IPv6 reaches it, and its rules' IPv6 CIDRs
   * class no address (part of the frame: networks come and go with a cold compile).
   */
  readonly dual: boolean;
  readonly pairs: PairStore;
  readonly fallback: Verdict;
  readonly defaultAction: Action;
  /** Stamps of the rule buckets (rule-index.ts): unique across this engine's indexes. */
  private stamps = 0;
  readonly stamp = () => ++this.stamps;
  readonly np: Netpol | undefined;
  /** The tenant's name (for what a compile refuses: budget.ts). */
  readonly tenant: string;
  /** The groups of the enforced identities. */
  readonly enforcedGroups: Set<string>;
  /** SCTP is decided by port (sctpByPort). */
  readonly sctp: boolean;

  /** The side stages' functions (sides.ts). */
  readonly sideProfiles: SideProfiles;
  /** The high stages' functions (high.ts). */
  readonly highProfiles: SideProfiles;
  /** The names rule CIDRs have in classes (aliases.ts). */
  readonly aliases: CidrAliases;
  /** A rule CIDR's name in classes. */
  readonly aliasOf = (cidr: string): string => this.aliases.name(cidr);
  /** Each class's source and destination role (roles.ts): pairs are decided, and kept, by role. */
  readonly roles = new Roles((k) => this.enforcedClasses.has(k.id));
  /** The highest class id given (compile.ts `idHigh`). */
  classHigh = 0;
  /** The highest id of any kind given: classes, profiles, side and high profiles. */
  idHigh(): number {
    return Math.max(this.classHigh, this.pairs.profiles.highest, this.sideProfiles.highest, this.highProfiles.highest);
  }
  /** A CIDR of the set a class's CIDR name names (its rules are the set's). */
  private readonly memberOf = (name: string): string | undefined => this.aliases.member(name);
  /** The classes holding each set's name (the classes a rule naming one of its CIDRs matches). */
  readonly classesByAlias = new Map<string, Set<number>>();
  /**
   * The classes of each group and of each network (the classes a rule naming one as its peer matches): a
   * changed rule from a group found them by a pass over every class (~1 ms at 20,000 classes, per rule).
   */
  readonly classesByGroup = new Map<string, Set<number>>();
  readonly classesByNetwork = new Map<string, Set<number>>();

  constructor(s: PolicyState, sc: Scope, readonly frame: string, readonly enforced: Set<string>, readonly groups: readonly Group[], profiles: readonly Profile[] = [], sides: readonly SideProfile[] = [], highs: readonly SideProfile[] = []) {
    this.np = sc.np;
    this.tenant = s.tenant.name;
    this.enforcedGroups = new Set([...enforced].map(groupOfIdentity));
    this.defaultAction = s.tenant.defaultAction;
    this.fallback = s.tenant.defaultAction === 'allow' ? 'accept' : 'drop';
    this.sctp = sctpByPort(sc);
    this.pairs = new PairStore(new Profiles(this.defaultAction, profiles, this.sctp));
    this.sideProfiles = new SideProfiles(this.defaultAction, this.sctp, sides);
    this.highProfiles = new SideProfiles(this.defaultAction, this.sctp, highs, 'high');
    this.groupNames = new Set(groups.map((g) => g.name));
    this.nets = netSpans(s.networks);
    this.eps = endpointsByIp(sc.endpoints);
    this.solo = soloOf(sc.endpoints);
    // From the by-address maps, as the incremental path keeps them (one endpoint per address).
    this.eps6 = endpoints6([...this.eps.values(), ...this.solo.values()]);
    this.dual = s.networks.some((n) => n.subnet6 !== undefined);
    this.policies = new Map(sc.policies.map((p) => [p.name, p]));
    this.aliases = CidrAliases.of(this.policies.values(), new Set(sc.np?.cidrs ?? []));
    for (const g of enforced) for (const d of ['in', 'out'] as const) this.indexes.set(`${d}/${g}`, new RuleIndex(this.groupRules(g, d), this.stamp, this.memberOf));
    this.roles.add(CLASS0, CLASS0_KEY);
  }

  /** A cold compile: every class and every pair. */
  static build(s: PolicyState, sc: Scope, frame: string, previous: ReadonlyMap<string, number> | undefined, profiles?: readonly Profile[], sides?: readonly SideProfile[], highs?: readonly SideProfile[]): Engine {
    const e = new Engine(s, sc, frame, sc.enforced, s.groups, profiles, sides, highs);
    e.initCidrs(sc.policies);
    let fresh = 1;
    for (const id of previous?.values() ?? []) if (id >= fresh) fresh = id + 1;
    const idOf = e.idMaker(() => fresh++, previous);
    e.ranges = sweep(e.sweepInput(ALL), idOf);
    e.setRanges(e.ranges, []);
    if (e.dual && e.cidrList6.length) {
      e.ranges6 = sweep6(e.sweepInput6(ALL6), idOf);
      e.setRanges(e.ranges6, []);
    }
    e.placeSolo([...e.solo.keys()], idOf);
    e.classList = [...e.classes.values()];
    e.roles.take();
    const klass = (id: number) => e.classes.get(id) as Klass;
    const srcs = e.roles.src.ids().map(klass);
    const dsts = e.roles.dst.ids().map(klass);
    const enforcedDsts = dsts.filter((k) => e.enforcedClasses.has(k.id));
    // Refused before the pairs, the compile's cost (their square, for a hostile shape) is never paid.
    if (s.budget !== undefined) overBudget(e.tenant, e.roles, s.budget);
    for (const src of srcs) {
      const to = e.enforcedClasses.has(src.id) ? dsts : enforcedDsts;
      for (const dst of to) e.decide(src, dst);
      e.decided += to.length;
    }
    e.indexPorts();
    return e;
  }

  /** Pairs the cold compile decided. */
  decided = 0;

  /**
   * Per protocol slot, the ports (protocol numbers) of each bucket of rules with a peer: made once (a cold
   * compile makes them all, so a rule change never waits for it), then kept by `reindex` as rules change.
   */
  private peered: Array<PortIndex | undefined> = [undefined, undefined, undefined, undefined];

  /** Every slot's port index, made now (the end of a cold compile). */
  indexPorts(): void {
    for (const slot of SLOTS) this.portIndex(slot);
  }

  /**
   * A bucket of rules with a peer (in the index `key`) changed: the port indexes made so far take its new
   * entries when next asked (a rule change with a peer pays nothing for them; the next one without pays for
   * the buckets that changed, not for every rule).
   */
  reindex(key: string, bucket: Bucket): void {
    for (const x of this.peered) x?.dirty.set(bucket, key);
  }

  private refresh(x: PortIndex, slot: ProtoSlot): void {
    if (x.dirty.size === 0) return;
    const changed = [...x.dirty].filter(([b]) => x.byBucket.get(b)?.stamp !== b.stamps[slot]);
    x.dirty.clear();
    if (changed.length === 0) return;
    const gone = new Set(changed.flatMap(([b]) => x.byBucket.get(b)?.entries ?? []));
    if (gone.size) {
      x.narrow = x.narrow.filter((e) => !gone.has(e));
      x.wide = x.wide.filter((e) => !gone.has(e));
    }
    for (const [bucket, key] of changed) {
      const entries = entriesOf(key, bucket, slot);
      if (entries.length > 0) x.byBucket.set(bucket, { stamp: bucket.stamps[slot], entries });
      else x.byBucket.delete(bucket);
      for (const e of entries) {
        if (e.last - e.first > NARROW) x.wide.push(e);
        else x.narrow.splice(rangeAt(x.narrow, e.first) + 1, 0, e);
      }
    }
  }

  /** Whether some rule with a peer applies to a port (protocol number) in [first, last] of a slot. */
  peeredMeets(slot: ProtoSlot, span: readonly [number, number]): boolean {
    return meeting(this.portIndex(slot), span, () => true);
  }

  /** The buckets of rules with a peer (and the key of the index holding each) whose ports meet [first, last] of a slot. */
  peeredAt(slot: ProtoSlot, span: readonly [number, number]): Map<Bucket, string> {
    const out = new Map<Bucket, string>();
    meeting(this.portIndex(slot), span, (e) => { out.set(e.bucket, e.key); });
    return out;
  }

  private portIndex(slot: ProtoSlot): PortIndex {
    let x = this.peered[slot];
    if (x) {
      this.refresh(x, slot);
      return x;
    }
    x = { narrow: [], wide: [], byBucket: new Map(), dirty: new Map() };
    for (const [key, idx] of this.indexes) {
      for (const bucket of idx.peered()) {
        // Only the buckets with ports here (a rule for one protocol is in one slot of four): 50,000 rules
        // with distinct CIDRs made 150,000 empty entries, kept as long as the compile.
        if (bucket.rules[slot].length === 0) continue;
        const entries = entriesOf(key, bucket, slot);
        if (entries.length === 0) continue;
        x.byBucket.set(bucket, { stamp: bucket.stamps[slot], entries });
        for (const e of entries) (e.last - e.first > NARROW ? x.wide : x.narrow).push(e);
      }
    }
    x.narrow.sort((a, c) => a.first - c.first);
    this.peered[slot] = x;
    return x;
  }

  /** Every enforced class's side profiles (sides.ts), in class order. */
  sides(): SideEntry[] {
    return this.entries(this.sideProfiles);
  }

  /** The enforced classes with a high profile (high.ts), in class order. */
  highs(): SideEntry[] {
    return this.entries(this.highProfiles).filter((x) => x.in.some((id) => id !== 0) || x.out.some((id) => id !== 0));
  }

  private entries(profiles: SideProfiles): SideEntry[] {
    const ids = (k: Klass, d: 'in' | 'out') => {
      const idx = this.indexOf(k, d);
      return SLOTS.map((p) => (p === 3 && !this.sctp ? 0 : profiles.idOf(idx?.any, idx?.high, p)));
    };
    return [...this.enforcedClasses].sort((a, b) => a - b).map((id) => {
      const k = this.classes.get(id) as Klass;
      return { cls: id, in: ids(k, 'in'), out: ids(k, 'out') };
    });
  }

  indexOf = (k: Klass, d: 'in' | 'out'): RuleIndex | undefined => (k.endpoint ? this.indexes.get(`${d}/${identityOf(k)}`) : undefined);

  decide(src: Klass, dst: Klass): void {
    this.pairs.set(src.id, dst.id, decidePair(src, dst, this.indexOf, this.pairs.profiles));
    // Two enforced ends: the functions once a high stage decided one direction open (high.ts), where the
    // destination's ingress or the source's egress has one (incremental.ts decides the pairs again when that changes).
    if (this.enforcedClasses.has(src.id) && this.enforcedClasses.has(dst.id)) {
      const [egressOnly, ingressOnly] = decideVariants(src, dst, this.indexOf, this.pairs.profiles, this.indexOf(dst, 'in')?.hasHigh(this.sctp) ?? false, this.indexOf(src, 'out')?.hasHigh(this.sctp) ?? false);
      this.pairs.set(src.id, dst.id + DECIDED_IN, egressOnly);
      this.pairs.set(src.id, dst.id + DECIDED_OUT, ingressOnly);
    }
  }

  /**
   * The rules of a direction of an identity: those of the policies its group holds, with the policy each
   * came from, then those of its NetworkPolicy isolation.
   */
  groupRules(identity: string, d: 'in' | 'out'): RuleRef[] {
    const [group, own] = identity.split('#') as [string, string | undefined];
    const g = this.groups.find((x) => x.name === group);
    const weft: RuleRef[] = (g?.policies ?? []).flatMap((name) => {
      const p = this.policies.get(name);
      return (p?.rules ?? []).filter((r) => r.direction === d).map((rule) => refOf(name, rule, p?.mode));
    });
    return own && this.np ? weft.concat(this.np.rules(own, d)) : weft;
  }

  /** The enforced identities of a group (the group alone, and joined by each NetworkPolicy isolation seen here). */
  identitiesOf(group: string): string[] {
    return [...this.enforced].filter((x) => groupOfIdentity(x) === group);
  }

  /** The CIDR counts and lists of a cold compile: sorted once (placing them one by one is quadratic). */
  private initCidrs(policies: readonly Policy[]): void {
    for (const p of policies) {
      for (const r of p.rules) {
        for (const k of CIDR_KEYS) if (r[k] !== undefined) this.cidrCount.set(r[k] as string, (this.cidrCount.get(r[k] as string) ?? 0) + 1);
        const peer = peerCidr(r);
        if (peer) this.roles.ways.count(peer[0], peer[1], 1);
      }
    }
    // The NetworkPolicy blocks' CIDRs, counted once each: they stay while the frame (their digest) does.
    for (const c of this.np?.cidrs ?? []) {
      this.cidrCount.set(c, (this.cidrCount.get(c) ?? 0) + 1);
      this.roles.ways.count(c, 'from', 1);
      this.roles.ways.count(c, 'to', 1);
    }
    for (const text of this.cidrCount.keys()) {
      if (isCidr6(text)) this.cidrs6.add(text);
      else this.cidrList.push(this.cidrSpan(text));
    }
    this.cidrList6 = spans6(this.cidrs6.size ? this.cidrCount.keys() : []);
    for (const c of this.cidrList6) {
      const rk = rangeKey6(c);
      const same = this.cidrsByRange6.get(rk);
      if (same) same.push(c.text);
      else this.cidrsByRange6.set(rk, [c.text]);
    }
    this.cidrList.sort((a, b) => a.first - b.first || b.last - a.last);
    for (const c of this.cidrList) {
      const rk = `${c.first}-${c.last}`;
      const same = this.cidrsByRange.get(rk);
      if (same) same.push(c.text);
      else this.cidrsByRange.set(rk, [c.text]);
    }
  }

  /**
   * Counts rules' CIDRs in (+1 each) or out (-1 each); returns the CIDRs that appeared or went, and those
   * that stay named but moved from one role to another (roles.ts CidrDirections.flips). Deltas are summed
   * first, so a rule changed in place (out, then in) moves nothing.
   */
  countCidrs(changes: ReadonlyArray<readonly [Rule, 1 | -1]>): { moved: string[]; flipped: string[] } {
    const delta = new Map<string, number>();
    const ways = new Map<string, { from: number; to: number }>();
    for (const [r, d] of changes) {
      for (const k of CIDR_KEYS) if (r[k] !== undefined) delta.set(r[k] as string, (delta.get(r[k] as string) ?? 0) + d);
      const peer = peerCidr(r);
      if (!peer) continue;
      let x = ways.get(peer[0]);
      if (!x) ways.set(peer[0], (x = { from: 0, to: 0 }));
      x[peer[1]] += d;
    }
    const flipped = this.roles.ways.flips(ways);
    for (const [text, x] of ways) { this.roles.ways.count(text, 'from', x.from); this.roles.ways.count(text, 'to', x.to); }
    const moved: string[] = [];
    for (const [text, d] of delta) {
      if (d === 0) continue;
      const was = this.cidrCount.get(text) ?? 0;
      const n = was + d;
      if (n === 0) this.cidrCount.delete(text);
      else this.cidrCount.set(text, n);
      if (n === 0) this.placeCidr(text, -1);
      else if (was === 0) this.placeCidr(text, 1);
      else continue;
      moved.push(text);
    }
    return { moved, flipped };
  }

  private placeCidr(text: string, d: 1 | -1): void {
    if (isCidr6(text)) {
      if (d === 1) this.cidrs6.add(text);
      else this.cidrs6.remove(text);
      this.placeCidr6(text, d);
      return;
    }
    const span = this.cidrSpan(text);
    const rk = `${span.first}-${span.last}`;
    const same = this.cidrsByRange.get(rk) ?? [];
    let i = rangeAt(this.cidrList, span.first - 1) + 1;
    while (i < this.cidrList.length && (this.cidrList[i] as CidrSpan).first === span.first && (this.cidrList[i] as CidrSpan).last > span.last) i++;
    if (d === 1) {
      this.cidrList.splice(i, 0, span);
      this.cidrsByRange.set(rk, [...same, text]);
      return;
    }
    while (i < this.cidrList.length && (this.cidrList[i] as CidrSpan).text !== text) i++;
    this.cidrList.splice(i, 1);
    const rest = same.filter((t) => t !== text);
    if (rest.length) this.cidrsByRange.set(rk, rest);
    else this.cidrsByRange.delete(rk);
  }

  private placeCidr6(text: string, d: 1 | -1): void {
    const span = span6(text);
    const rk = rangeKey6(span);
    const same = this.cidrsByRange6.get(rk) ?? [];
    const list = this.cidrList6;
    // The first span starting at its first address, then past the outer ones (longer) starting there too.
    let i = firstAt6(list, span.first);
    while (i < list.length && (list[i] as CidrSpan6).first === span.first && (list[i] as CidrSpan6).last > span.last) i++;
    if (d === 1) {
      list.splice(i, 0, span);
      if (same.length) same.push(text);
      else this.cidrsByRange6.set(rk, [text]);
      return;
    }
    while (i < list.length && (list[i] as CidrSpan6).text !== text) i++;
    list.splice(i, 1);
    const rest = same.filter((t) => t !== text);
    if (rest.length) this.cidrsByRange6.set(rk, rest);
    else this.cidrsByRange6.delete(rk);
  }

  /** The IPv6 sweep of one region (a rule's IPv6 CIDR, or an endpoint's IPv6 address): as sweepInput. */
  sweepInput6(region: { first: bigint; last: bigint }): SweepInput6 {
    const inside: CidrSpan6[] = [];
    for (let i = firstAt6(this.cidrList6, region.first); i < this.cidrList6.length; i++) {
      const c = this.cidrList6[i] as CidrSpan6;
      if (c.first > region.last) break;
      if (c.last <= region.last) inside.push(c);
    }
    const around: string[] = [];
    for (let len = 0; len <= 128; len++) {
      const mask = masks6[len] as bigint;
      const first = region.first & mask;
      const last = first | (~mask & ALL6.last);
      if (last < region.last || (first === region.first && last === region.last)) continue;
      around.push(...(this.cidrsByRange6.get(rangeKey6({ first, last })) ?? []));
    }
    return { region, inside, around, eps6: this.eps6, np: this.np };
  }

  /** Endpoints came, went or changed their IPv6 address: the sorted list follows (each by a binary search). */
  moveEndpoints6(before: readonly (string | undefined)[], after: readonly (string | undefined)[]): void {
    for (const [texts, d] of [[before, -1], [after, 1]] as const) {
      for (const t of texts) {
        const n = t === undefined ? undefined : ip6Number(t);
        if (n === undefined) continue;
        const i = lowerBound6(this.eps6, n);
        if (d === -1 && this.eps6[i] === n) this.eps6.splice(i, 1);
        else if (d === 1) this.eps6.splice(i, 0, n);
      }
    }
  }

  /** The sweep of one region: the CIDRs inside it, and those around it (prefixes nest or are disjoint). */
  sweepInput(region: { first: number; last: number }) {
    const inside: CidrSpan[] = [];
    for (let i = rangeAt(this.cidrList, region.first - 1) + 1; i < this.cidrList.length; i++) {
      const c = this.cidrList[i] as CidrSpan;
      if (c.first > region.last) break;
      if (c.last <= region.last) inside.push(c);
    }
    const around: string[] = [];
    for (let len = 0; len <= 32; len++) {
      const size = 2 ** (32 - len);
      const first = Math.floor(region.first / size) * size;
      const last = first + size - 1;
      if (last < region.last || (first === region.first && last === region.last)) continue;
      around.push(...(this.cidrsByRange.get(`${first}-${last}`) ?? []));
    }
    const v6of = this.cidrs6.size ? (ep: Endpoint) => this.cidrs6.of(ep.ip6) : undefined;
    // No CIDR in a set: every name is the CIDR's text, and the sweep maps none.
    const alias = this.aliases.any ? this.aliasOf : undefined;
    return { region, inside, around, nets: this.nets, eps: this.eps, groups: this.groupNames, np: this.np, v6of, alias };
  }

  /**
   * The classes of endpoints without an IPv4 address (by key into `solo`: came, went or changed, or in an
   * IPv6 CIDR that came or went): each holds one reference on its class, as a range does. Returns the
   * classes left with none.
   */
  placeSolo(keys: Iterable<string>, idOf: (key: string, k: Omit<Klass, 'id'>) => number): number[] {
    const added: Array<{ cls: number }> = [];
    const removed: Array<{ cls: number }> = [];
    const v6of = this.cidrs6.size ? (ep: Endpoint) => this.cidrs6.of(ep.ip6) : undefined;
    for (const key of keys) {
      const was = this.soloCls.get(key);
      if (was !== undefined) removed.push({ cls: was });
      const ep = this.solo.get(key);
      if (ep === undefined) {
        this.soloCls.delete(key);
        continue;
      }
      const k = soloClass(ep, this.groupNames, v6of, this.np);
      const id = idOf(classKey(k), k);
      this.soloCls.set(key, id);
      added.push({ cls: id });
    }
    return this.setRanges(added, removed);
  }

  /** Gives a class its id by key: the one it has, else `previous`'s, else a fresh one (and records it). */
  idMaker(fresh: () => number, previous?: ReadonlyMap<string, number>) {
    return (key: string, k: Omit<Klass, 'id'>): number => {
      let id = this.ids.get(key);
      if (id !== undefined) return id;
      id = previous?.get(key) ?? fresh();
      if (id > this.classHigh) this.classHigh = id;
      this.ids.set(key, id);
      const klass = { ...k, id };
      this.classes.set(id, klass);
      if (k.group !== undefined) indexAdd(this.classesByGroup, k.group, id);
      if (k.network !== undefined) indexAdd(this.classesByNetwork, k.network, id);
      for (const c of k.cidrs) {
        const by = isCidr6(c) ? this.classesByCidr6 : CidrAliases.isAlias(c) ? this.classesByAlias : undefined;
        if (by) indexAdd(by, c, id);
      }
      if (k.endpoint && this.enforced.has(identityOf(k))) this.enforcedClasses.add(id);
      this.roles.add(klass, key);
      return id;
    };
  }

  /** Takes `added` ranges in and `removed` out of the counts; returns the classes left with no range. */
  setRanges(added: ReadonlyArray<{ cls: number }>, removed: ReadonlyArray<{ cls: number }>): number[] {
    const touched = new Set<number>();
    for (const r of added) { this.refs.set(r.cls, (this.refs.get(r.cls) ?? 0) + 1); touched.add(r.cls); }
    for (const r of removed) { this.refs.set(r.cls, (this.refs.get(r.cls) ?? 0) - 1); touched.add(r.cls); }
    return [...touched].filter((id) => id !== 0 && !this.refs.get(id));
  }

  /** Forgets a class that no range has any more, and its pairs. */
  dropClass(id: number): void {
    const k = this.classes.get(id);
    if (!k) return;
    this.classes.delete(id);
    if (k.group !== undefined) indexDelete(this.classesByGroup, k.group, id);
    if (k.network !== undefined) indexDelete(this.classesByNetwork, k.network, id);
    for (const c of k.cidrs) {
      const by = isCidr6(c) ? this.classesByCidr6 : CidrAliases.isAlias(c) ? this.classesByAlias : undefined;
      if (by) indexDelete(by, c, id);
    }
    this.ids.delete(classKey(k));
    this.refs.delete(id);
    // Its pairs are its role's: they go when the role does, or its id moves (roles.ts, incremental.ts).
    this.roles.remove(id);
    this.enforcedClasses.delete(id);
  }

  cidrSpan(text: string): CidrSpan {
    return { text, ...cidrToRange(text) };
  }

  /** The classes as a list (class 0 first); a new list whenever a class came or went. */
  classList: Klass[] = [];

  classification(): Classification {
    // A copy: the next incremental compile changes soloCls in place, and this compile's lookups must not move.
    return classification(this.classList, this.ranges, this.ranges6, new Map(this.soloCls));
  }
}

/** The CIDR a rule names as its peer, and which end of a connection that is (roles.ts CidrDirections). */
function peerCidr(r: Rule): readonly [string, 'from' | 'to'] | undefined {
  const c = r.direction === 'in' ? r.fromCidr : r.toCidr;
  return c === undefined ? undefined : [c, r.direction === 'in' ? 'from' : 'to'];
}

const rangeKey6 = (c: { first: bigint; last: bigint }) => `${c.first.toString(16)}-${c.last.toString(16)}`;
/** Each prefix length's mask, made once (a region's sweep asks for all 129). */
const masks6 = Array.from({ length: 129 }, (_, len) => maskOf6(len));

/** The index of the first span starting at or after `n`. */
const firstAt6 = (list: readonly CidrSpan6[], n: bigint): number => lowerBound(list, (c) => c.first < n);

function indexAdd(by: Map<string, Set<number>>, key: string, id: number): void {
  let x = by.get(key);
  if (!x) by.set(key, (x = new Set()));
  x.add(id);
}

function indexDelete(by: Map<string, Set<number>>, key: string, id: number): void {
  const x = by.get(key);
  if (x) { x.delete(id); if (x.size === 0) by.delete(key); }
}
