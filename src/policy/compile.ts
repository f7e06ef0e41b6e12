import { parseIp, type Action, type Endpoint, type Group, type Network, type Policy, type Tenant } from '../model/index.js';
import type { Classification, Klass } from './classes.js';
import { endpointsByIp, groupOfIdentity, rangeAt, soloOf } from './classes.js';
import { Netpol, type NetpolInput } from './netpol.js';
import { Engine, frameOf, refOf, type Scope } from './engine.js';
import { MAX_INCREMENTAL_CHANGES, movedEndpoints, reach6, recompile, ruleChanges } from './incremental.js';
import type { PeerView, RuleRef } from './decide.js';
import type { PairProfiles, Profile } from './pairs.js';
import type { SideEntry, SideProfile } from './sides.js';
import type { Segment } from './segments.js';
import { Attached } from '../model/attached.js';
import { Cidrs6, ip6Number, isCidr6 } from './cidr6.js';
import { DECIDED_IN, DECIDED_OUT } from './high.js';

export interface PolicyState {
  tenant: Tenant;
  networks: readonly Network[];
  groups: readonly Group[];
  policies: readonly Policy[];
  endpoints: readonly Endpoint[];
  /**
   * The host this is compiled for. Each host enforces the rules of the groups that have an endpoint on
   * it (egress where the connection starts, ingress where it ends: both hosts see its first packet), so a
   * group with no endpoint here contributes nothing, and a direction owned by another host is left to
   * it. Absent: every group is enforced (one host, or a whole-tenant view).
   */
  host?: string;
  /** The last compile of this tenant here: classes keep their ids (their marks) across compiles. */
  previous?: CompiledPolicy;
  /** The tenant's NetworkPolicies and namespaces (absent or empty: none). */
  netpol?: NetpolInput;
  /**
   * The most pairs of classes this compile may decide (PolicyTooLarge past it, before deciding any, cold
   * or incremental). Absent: no limit. The agent's `--max-policy-pairs`: one tenant's compile runs on the agent's
   * event loop, which every other tenant on the host shares.
   */
  budget?: number;
}

/** `audit`: only rules of policies in audit mode would drop it; it passes, counted (the datapath's audit chain). */
export type Verdict = 'accept' | 'drop' | 'audit';

/**
 * A tenant's policy as the datapath runs it: classes; the pairs of classes that rules with a peer decide,
 * each naming a profile per protocol; the profiles, each distinct verdict function once (10,000 pairs
 * with the same udp function share one profile, not 10,000 copies of its ports); and per enforced class
 * its side profiles, what its rules without a peer drop (sides.ts). A new connection gets its pair's
 * profile's verdict where it has one, else it is dropped if a side profile of either end drops it, else
 * accepted if an end is enforced here, else the tenant's default (`functionOf`).
 */
export interface CompiledPolicy {
  tenant: string;
  fallback: 'accept' | 'drop';
  classification: Classification;
  /**
   * Each class's source and destination role (roles.ts), where it is not the class's own id: the datapath
   * looks a connection's source up by its source role and its destination by its destination role, and
   * `pairs` are pairs of roles. A class absent from a map is its own role.
   */
  roles: { src: ReadonlyMap<number, number>; dst: ReadonlyMap<number, number> };
  pairs: readonly PairProfiles[];
  /** Every profile a pair names, by id (ids are unique across protocols; 0 is none). */
  profiles: readonly Profile[];
  /** The enforced classes' side profiles, by class. */
  sides: readonly SideEntry[];
  /** Every side profile an entry names, by id (0 is none: drops nothing). */
  sideProfiles: readonly SideProfile[];
  /** The enforced classes with a high profile (high.ts), by class: what their high rules decide ahead of the pairs. */
  highs: readonly SideEntry[];
  /** Every high profile an entry names, by id (0 is none). */
  highProfiles: readonly SideProfile[];
  /** SCTP is decided by port (pairs' `sctp`); else as one protocol number of `other`. */
  sctp: boolean;
  /**
   * Dual stack: whether the tenant has an IPv6 subnet, and each IPv6 address of its endpoints with the
   * class of the same endpoint's IPv4 address (one endpoint, one verdict, whichever family it speaks:
   * rule CIDRs select endpoints, so a CIDR covering either of an endpoint's addresses decides its traffic
   * in both families; cidr6.ts). Other IPv6 addresses have the class of the IPv6 CIDRs they are in
   * (`classification.ranges6`), else 0.
   */
  dual: boolean;
  v6: readonly V6Class[];
  ruleCount: number;
  /** How this compile was made: from scratch, or from `previous` with only the changed rules redone. */
  how: 'cold' | 'incremental';
  /** How many pairs of classes this compile decided (an incremental one: those the changes can reach). */
  decided: number;
  /**
   * One object shared by a compile and every compile made from it (`previous`), whatever their kind: what
   * consumers keep across one tenant's compiles (the renderer's chains by content) hangs on it, so one
   * tenant's history never shapes another's output.
   */
  lineage: object;
  /**
   * The highest id this compile's lineage has given (classes, profiles, side and high profiles): ids grow
   * with churn (kept so that a change rewrites only what it touches); past RENUMBER_AT the next compile
   * starts over.
   */
  idHigh: number;
}

/**
 * Ids stay below this: a destination role (a class id) shares ct mark with DECIDED_IN and DECIDED_OUT,
 * and the datapath adds profile, side and high ids to marks 0x10000000 apart (policy-nft-parts.ts).
 */
export const ID_LIMIT = DECIDED_IN;
/**
 * A compile whose `previous` has given an id past this starts over: new ids from 1 and a lineage of its
 * own (the datapath's table is written anew once). A tenant's churn (every change's new CIDRs are new
 * classes, every new function a new profile) would otherwise reach ID_LIMIT; one compile gives far fewer
 * than the half left (the budget bounds its pairs, budget.ts).
 */
export const RENUMBER_AT = ID_LIMIT / 2;

export interface V6Class { addr: string; cls: number }

/** The IPv6 addresses of a tenant's dual-stack endpoints with their IPv4 address's class (class 0 left out). */
function v6Classes(endpoints: readonly Endpoint[], c: Classification): V6Class[] {
  const out: V6Class[] = [];
  // One element per address: two records holding one (a stale one beside its successor) would make the
  // map's load fail, and with it the tenant's whole table.
  const seen = new Set<string>();
  for (const e of endpoints) {
    if (e.ip6 === undefined || seen.has(e.ip6)) continue;
    seen.add(e.ip6);
    if (e.ip === undefined) {
      // An IPv6-only network's endpoint: its own class (classes.ts soloClass).
      const n = ip6Number(e.ip6);
      const cls = n === undefined ? undefined : c.solo.get(n.toString(16));
      if (cls !== undefined && cls !== 0) out.push({ addr: e.ip6, cls });
      continue;
    }
    // Every compile looks every dual-stack endpoint up: its IPv4 address is parsed once per object.
    let n = parsedIp.get(e);
    if (n === undefined) parsedIp.set(e, (n = parseIp(e.ip) ?? -1));
    const r = c.ranges[rangeAt(c.ranges, n)];
    const cls = r !== undefined && n <= r.last ? r.cls : 0;
    if (cls !== 0) out.push({ addr: e.ip6, cls });
  }
  return out;
}
const parsedIp = new WeakMap<Endpoint, number>();

const verdictOf = (a: Action): 'accept' | 'drop' => (a === 'allow' ? 'accept' : 'drop');

export function viewOf(k: Klass): PeerView {
  return { group: k.group, network: k.network, cidrs: new Set(k.cidrs), sets: new Set(k.np?.sets ?? []) };
}

/** The Kubernetes tiers of a compile, or undefined when the tenant has no such policy. */
export function netpolOf(s: PolicyState): Netpol | undefined {
  const n = s.netpol;
  return n && (n.policies.length > 0 || (n.anps?.length ?? 0) > 0 || n.banp !== undefined) ? new Netpol(n, s.endpoints) : undefined;
}

/** The rules of a direction attached to a group, with the policy each came from. */
export function groupRules(s: PolicyState, group: string | undefined, direction: 'in' | 'out'): RuleRef[] {
  if (group === undefined) return [];
  const g = s.groups.find((x) => x.name === group);
  if (!g) return [];
  const byName = new Map(s.policies.map((p) => [p.name, p]));
  return g.policies.flatMap((name) => (byName.get(name)?.rules ?? []).filter((r) => r.direction === direction).map((rule) => refOf(name, rule, byName.get(name)?.mode)));
}

const EMPTY: Klass = { id: 0, group: undefined, network: undefined, cidrs: [], endpoint: false };
const NO_ROLES: CompiledPolicy['roles'] = { src: new Map(), dst: new Map() };

/**
 * What this host compiles: the identities it enforces (a group by name, '' for endpoints without one,
 * joined by a NetworkPolicy isolation: classes.ts `identityOf`), the policies attached to their groups,
 * and the endpoints that need a class of their own (an enforced one, a member of a group an enforced
 * rule names, or one a NetworkPolicy peer may hold); any other endpoint is just an address of its
 * network here.
 */
function scope(s: PolicyState, np: Netpol | undefined): Scope {
  const known = new Set(s.groups.map((g) => g.name));
  const groupKey = (e: Endpoint) => (e.group !== undefined && known.has(e.group) ? e.group : '');
  const identity = (e: Endpoint) => { const own = np?.ownOf(e); return own ? `${groupKey(e)}#${own}` : groupKey(e); };
  const enforced = new Set((s.host === undefined ? s.endpoints : s.endpoints.filter((e) => e.host === s.host)).map(identity));
  if (s.host === undefined) {
    for (const g of known) enforced.add(g);
    return { enforced, policies: [...s.policies], endpoints: [...s.endpoints], np };
  }
  const groups = new Set([...enforced].map(groupOfIdentity));
  const attached = new Set(s.groups.filter((g) => groups.has(g.name)).flatMap((g) => g.policies));
  const policies = s.policies.filter((p) => attached.has(p.name));
  // Per policy, once (policies are immutable): this runs on every compile, and a rule change's compile
  // would otherwise read all 50,000 rules.
  const named = new Set<string | undefined>();
  const nets = new Set<string>();
  const six = new Cidrs6();
  for (const p of policies) {
    for (const g of groupsNamed(p)) named.add(g);
    for (const n of networksNamed(p)) nets.add(n);
    for (const c of cidrs6Named(p)) six.add(c);
  }
  // The IPv6 blocks of the Kubernetes tiers too (a block's except is a CIDR it names as well).
  for (const c of np?.cidrs ?? []) if (isCidr6(c)) six.add(c);
  // An IPv6 CIDR selects endpoints by their IPv6 address: those inside one need their class here (an
  // IPv4 CIDR covers addresses, endpoints or not, without them).
  const inSix = (e: Endpoint) => six.size > 0 && six.of(e.ip6).length > 0;
  // An endpoint without an IPv4 address (an IPv6-only network's) is in no IPv4 range of its network: a rule
  // naming that network as its peer needs its class here.
  const endpoints = s.endpoints.filter((e) => enforced.has(identity(e)) || (e.group !== undefined && named.has(e.group)) || np?.matters(e) || inSix(e) || (e.ip === undefined && nets.has(e.network)));
  return { enforced, policies, endpoints, np };
}

// A WeakMap: the policies are the caller's objects (the compile leaves nothing on them).
const named = new WeakMap<Policy, ReadonlySet<string | undefined>>();
/** The groups a policy's rules name as their peer. */
function groupsNamed(p: Policy): ReadonlySet<string | undefined> {
  let out = named.get(p);
  if (!out) {
    const s = new Set<string | undefined>();
    for (const r of p.rules) s.add(r.direction === 'in' ? r.fromGroup : r.toGroup);
    named.set(p, (out = s));
  }
  return out;
}

const netsNamed = new WeakMap<Policy, readonly string[]>();
/** The networks a policy's rules name as their peer. */
function networksNamed(p: Policy): readonly string[] {
  let out = netsNamed.get(p);
  if (!out) {
    const s = new Set<string>();
    for (const r of p.rules) { const n = r.direction === 'in' ? r.fromNetwork : r.toNetwork; if (n !== undefined) s.add(n); }
    netsNamed.set(p, (out = [...s]));
  }
  return out;
}

const sixes = new WeakMap<Policy, readonly string[]>();
/** The IPv6 CIDRs a policy's rules name as their peer. */
function cidrs6Named(p: Policy): readonly string[] {
  let out = sixes.get(p);
  if (!out) {
    const s = new Set<string>();
    for (const r of p.rules) { const c = r.direction === 'in' ? r.fromCidr : r.toCidr; if (c !== undefined && isCidr6(c)) s.add(c); }
    sixes.set(p, (out = [...s]));
  }
  return out;
}

/** Each compile's working state, for the next compile that names it `previous` (taken over, then dropped). */
const engines = new Attached<CompiledPolicy, Engine>('engine');

/**
 * The tenant's policy for this host. Given `previous` (the last compile here) and the same frame (only
 * rules changed), it redoes only what the changed rules touch; the result is the cold compile's.
 */
export function compilePolicy(state: PolicyState): CompiledPolicy {
  const s = state.previous !== undefined && state.previous.idHigh >= RENUMBER_AT ? withoutPrevious(state) : state;
  const fallback = verdictOf(s.tenant.defaultAction);
  const lineage = s.previous?.lineage ?? {};
  const dual = s.networks.some((n) => n.subnet6 !== undefined);
  const sc = scope(s, netpolOf(s));
  const withRules = new Set(sc.policies.filter((p) => p.rules.length > 0).map((p) => p.name));
  const groups = new Set([...sc.enforced].map(groupOfIdentity));
  // No rule applies here: every flow gets the default, and no address needs a class. This keeps the CNI
  // ADD path of rule-less tenants from classifying every endpoint on each ADD.
  const isolated = sc.np !== undefined && [...sc.enforced].some((x) => x.includes('#'));
  if (!isolated && !s.groups.some((g) => groups.has(g.name) && g.policies.some((p) => withRules.has(p)))) {
    return { tenant: s.tenant.name, fallback, classification: { classes: [], ids: new Map(), ranges: [], ranges6: [], solo: new Map(), byIp: () => EMPTY }, roles: NO_ROLES, pairs: [], profiles: [], sides: [], sideProfiles: [], highs: [], highProfiles: [], sctp: false, dual, v6: [], ruleCount: 0, how: 'cold', decided: 0, lineage, idHigh: 0 };
  }
  const frame = frameOf(s, sc);
  const warm = incremental(s.previous, frame, sc, s.budget);
  const engine = warm?.engine ?? Engine.build(s, sc, frame, s.previous?.classification.ids, s.previous?.profiles, s.previous?.sideProfiles, s.previous?.highProfiles);
  // Pairs that all moved from one function to one new function keep its id (pairs.ts settle).
  engine.pairs.settle();
  const sides = engine.sides();
  const highs = engine.highs();
  const classification = engine.classification();
  const out: CompiledPolicy = {
    tenant: s.tenant.name, fallback, classification, roles: { src: engine.roles.src.snapshot(), dst: engine.roles.dst.snapshot() }, dual, v6: dual ? v6Classes(s.endpoints, classification) : [], pairs: engine.pairs.list, profiles: engine.pairs.profiles.list(engine.pairs.list.length),
    sides, sideProfiles: engine.sideProfiles.list(sides), highs, highProfiles: engine.highProfiles.list(highs), sctp: engine.sctp,
    ruleCount: sc.policies.reduce((n, p) => n + p.rules.length, 0) + (sc.np?.ruleCount ?? 0), how: warm ? 'incremental' : 'cold', decided: warm?.decided ?? engine.decided, lineage,
    idHigh: engine.idHigh(),
  };
  if (out.idHigh >= ID_LIMIT) {
    // Given from a previous whose ids were already past the room (no compile makes one: a review's
    // case): start over from 1, as past RENUMBER_AT. Only a compile from nothing that needs that many
    // classes is refused.
    if (s.previous !== undefined) return compilePolicy(withoutPrevious(s));
    throw new Error(`policy compile of tenant ${s.tenant.name}: id ${out.idHigh} past the marks' room (${ID_LIMIT})`);
  }
  engines.set(out, engine);
  return out;
}

function withoutPrevious(s: PolicyState): PolicyState {
  const { previous: _, ...rest } = s;
  return rest;
}

/** The previous compile's engine brought up to `policies`, or undefined when only a cold compile will do. */
function incremental(previous: CompiledPolicy | undefined, frame: string, sc: Scope, budget: number | undefined): { engine: Engine; decided: number } | undefined {
  const e = previous && engines.get(previous);
  if (!e || e.frame !== frame) return undefined;
  const now = new Map(sc.policies.map((p) => [p.name, p]));
  const changes = ruleChanges(e.policies, now);
  const eps = endpointsByIp(sc.endpoints);
  const solo = soloOf(sc.endpoints);
  const moved = movedEndpoints(e.eps, eps, sc.np);
  const movedSolo = movedEndpoints(e.solo, solo, sc.np);
  if (!changes || !moved || !movedSolo || moved.length + movedSolo.length > MAX_INCREMENTAL_CHANGES) return undefined;
  if (reach6(changes, (function* () { yield* eps.values(); yield* solo.values(); })()) > MAX_INCREMENTAL_CHANGES) return undefined;
  // The engine changes in place: `previous` can no longer start another compile (that one will be cold).
  engines.delete(previous);
  return { engine: e, decided: recompile(e, now, changes, eps, moved, solo, movedSolo, budget) };
}

/** Whether the compiled policy filters anything beyond the tenant's default (it has pairs or enforced sides). */
export function filters(c: CompiledPolicy): boolean {
  return c.pairs.length > 0 || c.sides.length > 0;
}

/** The protocol slots: tcp, udp and sctp by port (0-65535), `other` by protocol number (0-255). */
export type Slot = 0 | 1 | 2 | 3;

/**
 * A compile's lookups indexed once: `functionOf(src, dst, slot)` is a pair's whole verdict function of a
 * slot as the datapath decides it (the high stages of its ends first, high.ts; then the pair's profile
 * where it has segments, else the side stages, else the default), as sorted segments covering the slot's
 * domain. For tests, `verify` and `--dry-run`; not for the packet path. One walk over the cut points
 * of the segments involved, each list followed by a cursor (each is sorted and disjoint): a hostile
 * policy's 250 port ranges on a pair made a scan of every list at every point, 11 s for a dry run's
 * 200 endpoints.
 */
export function lookups(c: CompiledPolicy): { functionOf: (src: number, dst: number, slot: Slot) => Segment[] } {
  const pairs = new Map(c.pairs.map((p) => [`${p.src}/${p.dst}`, p]));
  const profiles = new Map(c.profiles.map((p) => [p.id, p]));
  const sideProfiles = new Map(c.sideProfiles.map((p) => [p.id, p]));
  const highProfiles = new Map(c.highProfiles.map((p) => [p.id, p]));
  const sides = new Map(c.sides.map((x) => [x.cls, x]));
  const highs = new Map(c.highs.map((x) => [x.cls, x]));
  // Pairs are of roles (roles.ts): a class's role, then the role's pair (`bit`: a direction decided open).
  const ownOf = (src: number, dst: number, slot: Slot, bit = 0): number => {
    const pair = pairs.get(`${c.roles.src.get(src) ?? src}/${(c.roles.dst.get(dst) ?? dst) + bit}`);
    return pair === undefined ? 0 : [pair.tcp, pair.udp, pair.other, pair.sctp][slot] as number;
  };
  // A function depends only on the profiles it is made of (interned, never changed): pairs of classes
  // with the same ones share it (200 endpoints each its own class were 40,000 functions of ~200 kinds).
  const made = new Map<string, Segment[]>();
  const functionOf = (src: number, dst: number, slot: Slot): Segment[] => {
    const ids = [highs.get(dst)?.in[slot] ?? 0, highs.get(src)?.out[slot] ?? 0, ownOf(src, dst, slot), ownOf(src, dst, slot, DECIDED_IN), ownOf(src, dst, slot, DECIDED_OUT),
      sides.get(dst)?.in[slot] ?? 0, sides.get(src)?.out[slot] ?? 0, sides.has(src) || sides.has(dst) ? 1 : 0, slot];
    const key = ids.join(',');
    let f = made.get(key);
    if (!f) made.set(key, (f = functionOfProfiles(ids)));
    return f;
  };
  const functionOfProfiles = ([hinId, houtId, own0, own1, own2, inId, outId, sided, slot]: number[]): Segment[] => {
    const hin = highProfiles.get(hinId as number)?.segs ?? [];
    const hout = highProfiles.get(houtId as number)?.segs ?? [];
    // The pair's profile for each direction left after the high stages (the key says which).
    const own = [own0, own1, own2].map((id) => profiles.get(id as number)?.segs ?? []);
    const dropsIn = sideProfiles.get(inId as number)?.segs ?? [];
    const dropsOut = sideProfiles.get(outId as number)?.segs ?? [];
    const last = slot === 2 ? 255 : 65535;
    // Cut points of every segment, then each piece's verdict by the datapath's order.
    const cuts = new Set<number>([0]);
    for (const xs of [...own, dropsIn, dropsOut, hin, hout]) for (const x of xs) { cuts.add(x.first); if (x.last < last) cuts.add(x.last + 1); }
    const points = Float64Array.from(cuts).sort();
    const atIn = cursor(hin);
    const atOut = cursor(hout);
    const atOwn = own.map(cursor);
    const atDropIn = cursor(dropsIn);
    const atDropOut = cursor(dropsOut);
    const out: Segment[] = [];
    for (let i = 0; i < points.length; i++) {
      const first = points[i] as number;
      const end = (points[i + 1] ?? last + 1) - 1;
      const i1 = atIn(first)?.verdict;
      const o1 = atOut(first)?.verdict;
      // Every cursor is moved at every point, whichever decides: they only ever go forward.
      const pairVerdicts = atOwn.map((at) => at(first)?.verdict);
      const dropped = atDropIn(first) !== undefined || atDropOut(first) !== undefined;
      let verdict: Verdict;
      if (i1 === 'drop' || o1 === 'drop') verdict = 'drop';
      else if (i1 && o1) verdict = 'accept';
      else {
        // After the high stages: the pair (the key says which directions are left), then the side stages.
        verdict = pairVerdicts[i1 ? 1 : o1 ? 2 : 0] ?? (dropped ? 'drop' : sided ? 'accept' : c.fallback);
      }
      const prev = out[out.length - 1];
      if (prev && prev.verdict === verdict) prev.last = end;
      else out.push({ first, last: end, verdict });
    }
    return out;
  };
  return { functionOf };
}

/** The segment holding each of a rising series of numbers, if any, in sorted disjoint segments: one pass in all. */
function cursor(xs: readonly Segment[]): (n: number) => Segment | undefined {
  let i = 0;
  return (n) => {
    while (i < xs.length && (xs[i] as Segment).last < n) i++;
    const x = xs[i];
    return x !== undefined && x.first <= n ? x : undefined;
  };
}

const lookupCache = new Attached<CompiledPolicy, ReturnType<typeof lookups>>('lookups');

/**
 * What the compiled tables decide for a new connection between two classes: tcp, udp (and sctp where the
 * compile decides it by port) by port, the others by protocol number (`lookups`).
 */
export function lookupVerdict(c: CompiledPolicy, src: number, dst: number, proto: number, port: number): Verdict {
  let l = lookupCache.get(c);
  if (!l) lookupCache.set(c, (l = lookups(c)));
  const byPort = proto === 6 || proto === 17 || (proto === 132 && c.sctp);
  const slot: Slot = proto === 6 ? 0 : proto === 17 ? 1 : byPort ? 3 : 2;
  const key = byPort ? port : proto;
  return l.functionOf(src, dst, slot).find((s) => key >= s.first && key <= s.last)?.verdict ?? c.fallback;
}
