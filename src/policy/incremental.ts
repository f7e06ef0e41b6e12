import { once } from '../model/once.js';
import type { Endpoint, Policy, Rule } from '../model/index.js';
import { classKey, identityOf, rangeAt, rangeAt6, sweep, sweep6, type AddressClass, type Klass } from './classes.js';
import { peerOf, slotsOf } from './rule-index.js';
import { coverage } from './sides.js';
import { refOf, type Engine } from './engine.js';
import type { RuleRef } from './decide.js';
import type { Netpol } from './netpol.js';
import { inCidr6, ip6Number, isCidr6, span6 } from './cidr6.js';
import { CidrAliases } from './aliases.js';
import { overBudget } from './budget.js';

/** One rule as it was and as it is now (absent: added or removed). */
export interface RuleChange { policy: string; before: Rule | undefined; after: Rule | undefined }

/**
 * Past this many changed rules a cold compile is as cheap as working out what they touch (a bulk write,
 * a re-listed state): the incremental path is for the one rule a user or script just changed.
 */
export const MAX_INCREMENTAL_CHANGES = 500;

const SAME_FIELDS = ['priority', 'direction', 'action', 'protocol', 'ports', 'fromGroup', 'fromNetwork', 'fromCidr', 'toGroup', 'toNetwork', 'toCidr'] as const;
const sameRule = (a: Rule, b: Rule) => a === b || SAME_FIELDS.every((k) => a[k] === b[k]);

/** The rules that differ between two versions of the scoped policies; undefined when a diff is not safe. */
export function ruleChanges(before: ReadonlyMap<string, Policy>, after: ReadonlyMap<string, Policy>): RuleChange[] | undefined {
  const out: RuleChange[] = [];
  for (const [name, p] of after) {
    const q = before.get(name);
    if (q === p) continue;
    if (!q) return undefined;
    const diff = walked(q, p) ?? keyed(q, p);
    if (!diff) return undefined;
    for (const [was, r] of diff) out.push({ policy: name, before: was, after: r });
    if (out.length > MAX_INCREMENTAL_CHANGES) return undefined;
  }
  return out;
}

type Diff = Array<readonly [Rule | undefined, Rule | undefined]>;

/** How far the walk looks ahead to get back in step after rules put in or taken out together. */
const LOOKAHEAD = 16;

/**
 * Each policy version's rule ids, while it is the last one diffed (null: some id is there twice). Handed
 * from a version to the next one as the diff finds it (the old version gives its set up), so a rule
 * changed in a 50,000-rule policy costs the rules that changed, not a map of every rule.
 */
const idSets = new WeakMap<Policy, Set<string> | null>();

function idsOf(p: Policy): Set<string> | null {
  let ids = idSets.get(p);
  if (ids === undefined) {
    ids = new Set(p.rules.map((r) => r.id));
    if (ids.size !== p.rules.length) ids = null;
    idSets.set(p, ids);
  }
  return ids;
}

/**
 * Two versions of a policy walked side by side: the agent's policy book keeps every unchanged rule the same
 * object, so the rules that differ are where the walk loses step (a rule put in, taken out or changed).
 * Only those are matched by id. Undefined when the walk finds too many (keyed, then) or the ids are not
 * unique (a change could not be told from a move: the caller compiles cold).
 */
function walked(q: Policy, p: Policy): Diff | undefined {
  const [a, b] = [q.rules, p.rules];
  const olds: Rule[] = [];
  const news: Rule[] = [];
  // The same rules at both ends need no visit (a change is often one run of rules).
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  let ea = a.length;
  let eb = b.length;
  while (ea > i && eb > i && a[ea - 1] === b[eb - 1]) { ea--; eb--; }
  let j = i;
  while (i < ea || j < eb) {
    const x = a[i];
    const y = b[j];
    if (i < ea && j < eb && x === y) { i++; j++; continue; }
    // Back in step within LOOKAHEAD: that many rules put in before x, or taken out from x on.
    let d = 1;
    for (; d <= LOOKAHEAD; d++) {
      if (j + d < eb && x !== undefined && i < ea && b[j + d] === x) { for (let k = 0; k < d; k++) news.push(b[j + k] as Rule); j += d; break; }
      if (i + d < ea && y !== undefined && j < eb && a[i + d] === y) { for (let k = 0; k < d; k++) olds.push(a[i + k] as Rule); i += d; break; }
    }
    if (d > LOOKAHEAD) {
      if (i < ea) olds.push(a[i++] as Rule);
      if (j < eb) news.push(b[j++] as Rule);
    }
    if (olds.length + news.length > 2 * MAX_INCREMENTAL_CHANGES) return undefined;
  }
  const ids = idsOf(q);
  if (ids === null) return undefined;
  const was = new Map(olds.map((r) => [r.id, r]));
  const now = new Map(news.map((r) => [r.id, r]));
  if (was.size !== olds.length || now.size !== news.length) return undefined;
  const out: Diff = [];
  for (const [id, r] of now) {
    const old = was.get(id);
    // A new id the policy already holds elsewhere (in a rule the walk kept): two rules with one id.
    if (!old && ids.has(id)) return undefined;
    if (!old || !sameRule(old, r)) out.push([old, r]);
  }
  for (const [id, r] of was) if (!now.has(id)) out.push([r, undefined]);
  // The set follows the policy to its new version (this one is not diffed again: the engine moved on).
  idSets.delete(q);
  for (const id of was.keys()) ids.delete(id);
  for (const id of now.keys()) ids.add(id);
  idSets.set(p, ids);
  return out;
}

/** Two versions of a policy matched by rule id (the walk found too much to match): undefined when ids repeat. */
function keyed(q: Policy, p: Policy): Diff | undefined {
  const old = new Map(q.rules.map((r) => [r.id, r]));
  const now = new Map(p.rules.map((r) => [r.id, r]));
  // Rule ids are unique within a policy; if not, a change cannot be told from a move.
  if (old.size !== q.rules.length || now.size !== p.rules.length) return undefined;
  const out: Diff = [];
  for (const [id, r] of now) {
    const was = old.get(id);
    if (!was || !sameRule(was, r)) out.push([was, r]);
    if (out.length > MAX_INCREMENTAL_CHANGES) return undefined;
  }
  for (const [id, r] of old) if (!now.has(id)) out.push([r, undefined]);
  return out;
}

/**
 * The addresses whose endpoint came, went or changed what a class is made of (group, network, and with
 * NetworkPolicies the sets its labels put it in and its isolation); undefined past MAX_INCREMENTAL_CHANGES.
 */
export function movedEndpoints<K>(before: ReadonlyMap<K, Endpoint>, after: ReadonlyMap<K, Endpoint>, np?: Netpol): K[] | undefined {
  // The IPv6 address too: IPv6 rule CIDRs select by it (an endpoint replaced in place may differ in it alone).
  const fields = (e: Endpoint) => `${e.group ?? ''}/${e.network}/${e.ip6 ?? ''}${np ? `/${np.endpointKey(e)}` : ''}`;
  const out: K[] = [];
  for (const [ip, ep] of after) {
    const was = before.get(ip);
    if (was !== ep && (!was || fields(was) !== fields(ep))) out.push(ip);
  }
  for (const ip of before.keys()) if (!after.has(ip)) out.push(ip);
  return out.length > MAX_INCREMENTAL_CHANGES ? undefined : out;
}

/**
 * Brings an engine from its last compile to `policies` and `eps`, the same frame (engine.ts `frameOf`)
 * with some rules and endpoints changed: the rule indexes take the changes, the address space is swept
 * again only where a CIDR appeared or went and at the moved endpoints, and only the pairs of classes a
 * changed rule can match (or a new class is in) are decided again. The result is what a cold compile
 * given the last one as `previous` produces.
 */
export function recompile(e: Engine, policies: Map<string, Policy>, changes: readonly RuleChange[], eps: Map<number, Endpoint>, movedEps: readonly number[], solo: Map<string, Endpoint> = new Map(), movedSolo: readonly string[] = [], budget?: number): number {
  e.policies = policies;
  const old = e.eps;
  const oldSolo = e.solo;
  e.eps = eps;
  e.solo = solo;
  e.pairs.detach();
  const { counted, high, flipped, toggled, renamed } = applyRules(e, changes);
  // A renamed CIDR's addresses are in other classes now: swept again, as a CIDR that came or went.
  const cidrs = e.countCidrs(counted);
  const movedCidrs = [...new Set([...cidrs.moved, ...renamed])];
  // An IPv6 CIDR that came or went moves the endpoints whose IPv6 address it covers (their IPv4 address
  // is where their class is swept), and the other addresses it covers (swept in IPv6 space).
  const moved = movedCidrs.flatMap((t) => (isCidr6(t) ? endpointsIn6(e, t) : [e.cidrSpan(t) as Region]));
  const moved6: Region6[] = e.dual ? movedCidrs.filter(isCidr6).map((t) => span6(t)) : [];
  for (const ip of movedEps) moved.push({ first: ip, last: ip });
  // Endpoints without an IPv4 address: their class again where they moved or an IPv6 CIDR around them did.
  const again = new Set(movedSolo);
  for (const t of movedCidrs) if (isCidr6(t)) for (const [k, ep] of solo) if (inCidr6(t, ep.ip6)) again.add(k);
  // In the map's order, as a cold compile places them (a new class's id depends on it), then those gone.
  const resolo = [...solo.keys()].filter((k) => again.has(k)).concat(movedSolo.filter((k) => !solo.has(k)));
  // An endpoint's IPv6 address is left out of the IPv6 ranges: one that came or went opens or closes a hole there.
  const [before6, after6] = [movedEps.map((ip) => old.get(ip)?.ip6).concat(movedSolo.map((k) => oldSolo.get(k)?.ip6)), movedEps.map((ip) => eps.get(ip)?.ip6).concat(movedSolo.map((k) => solo.get(k)?.ip6))];
  e.moveEndpoints6(before6, after6);
  if (e.dual && e.cidrList6.length) {
    for (const t of [...before6, ...after6]) { const n = t === undefined ? undefined : ip6Number(t); if (n !== undefined) moved6.push({ first: n, last: n }); }
  }
  // Nothing moved (a rule with no new CIDR): no sweep, and no copy of the class ids.
  const touched = moved.length > 0 || moved6.length > 0 || resolo.length > 0;
  const born = touched ? reclassify(e, moved, moved6, resolo, nextId(e.ids)) : [];
  // After the sweep: the classes of a CIDR named on another side now, as they are now, take their roles
  // again (a CIDR of a set: its classes hold the set's name, kept on both sides).
  for (const text of cidrs.flipped) {
    if (e.aliasOf(text) !== text) continue;
    for (const id of classesOfCidr(e, text)) { const k = e.classes.get(id) as Klass; e.roles.rekey(k, classKey(k)); }
  }
  const dirty = new Map<number, Set<number>>();
  // Pairs of roles (roles.ts): the changes below find classes and mark their roles' pairs, each role once
  // (10,000 endpoints of one destination role behind 10,000 rules were 10,000² marks of one pair).
  const markRole = (src: number, dst: number) => { let s = dirty.get(src); if (!s) dirty.set(src, (s = new Set())); s.add(dst); };
  if (touched) {
    const gone = e.classList.length + born.length !== e.classes.size;
    // By object: a class dropped and made again (the same id) is a new object, listed once, as born.
    e.classList = (gone ? e.classList.filter((k) => e.classes.get(k.id) === k) : e.classList).concat(born.map((id) => e.classes.get(id) as Klass));
  }
  const all = e.classList;
  // Pairs are kept by role (roles.ts): a role whose id moved to another of its classes leaves its pairs
  // on that side, and a new role (or a moved id) has all of its own decided.
  const roles = e.roles.take();
  for (const id of roles.src.stale) e.pairs.dropSrc(id);
  e.pairs.dropDsts(roles.dst.stale);
  // What the compile leaves is the whole policy: past the budget it is refused before any pair is decided
  // (the engine is spent: the next compile from it is cold, and refused before its pairs too).
  if (budget !== undefined) overBudget(e.tenant, e.roles, budget);
  for (const id of roles.src.fresh) for (const x of e.roles.src.enforced.has(id) ? e.roles.dst.ids() : e.roles.dst.enforced) markRole(id, x);
  for (const id of roles.dst.fresh) for (const x of e.roles.dst.enforced.has(id) ? e.roles.src.ids() : e.roles.src.enforced) markRole(x, id);
  const byIdentity = once(() => rolesByIdentity(e));
  const bySet = once(() => classesBySet(all));
  for (const c of changes) {
    for (const rule of [c.before, c.after]) {
      // Decided ahead of the pairs by every holder, as it went and as it came: no pair changes.
      if (!rule || high.has(changeKey(c.policy, rule, rule === c.before ? -1 : 1))) continue;
      const reach = reachOf(e, c.policy, rule);
      if (reach === 'all') markRule(e, c.policy, rule, all, markRole, bySet);
      else if (reach === 'met') markMet(e, sidesOf(e, ownersOf(e, c.policy)), rule, all, markRole, byIdentity(), bySet);
    }
  }
  // Rules without a peer that moved into or out of a high stage: the pairs they now (or no longer) decide
  // on their side, by the classes of the index they moved in (a NetworkPolicy's rule has no Weft holder).
  for (const [key, moved] of flipped) {
    const own = byIdentity().get(key.slice(key.indexOf('/') + 1)) ?? NO_SIDES;
    const rules = [...moved];
    if (rules.length > MAX_FLIPS || rules.some((r) => reachOf(e, r.policy, r.rule) === 'all')) markSide(e, key, own, false, markRole);
    else for (const r of rules) markMet(e, own, r.rule, all, markRole, byIdentity(), bySet);
  }
  // A side that gained its first high rule or lost its last: the pairs of enforced classes through it
  // get (or lose) their functions for a direction decided open (high.ts).
  for (const key of toggled) markSide(e, key, byIdentity().get(key.slice(key.indexOf('/') + 1)) ?? NO_SIDES, true, markRole);
  let decided = 0;
  for (const [src, dsts] of dirty) {
    const s = e.classes.get(src) as Klass;
    for (const dst of dsts) e.decide(s, e.classes.get(dst) as Klass);
    decided += dsts.size;
  }
  return decided;
}

/**
 * Takes the changed rules out of and into the indexes of the groups holding their policy. Returns them as
 * counted; the changed rules without a peer that every holder decides ahead of the pairs (high.ts), as
 * they went out and as they came in (they change no pair); and the rules without a peer the changes moved
 * into or out of the high stages (their pairs are decided again).
 */
function applyRules(e: Engine, changes: readonly RuleChange[]): { counted: Array<readonly [Rule, 1 | -1]>; high: Set<string>; flipped: Map<string, Set<RuleRef>>; toggled: Set<string>; renamed: string[] } {
  const counted: Array<readonly [Rule, 1 | -1]> = [];
  // The same with their policies: what the CIDRs' rules say (aliases.ts).
  const deltas: Array<readonly [string, Rule, 1 | -1]> = [];
  // By policy, rule id and way (a rule object may be shared by two policies' changes).
  const high = new Set<string>();
  const flipped = new Map<string, Set<RuleRef>>();
  // Whether each index touched had a high rule before the changes (a rule changed in place goes and comes).
  const had = new Map<string, boolean>();
  for (const c of changes) {
    // A group holding the policy twice holds its rules twice, as groupRules lists them.
    const holders = e.groups.filter((g) => e.enforcedGroups.has(g.name)).flatMap((g) => g.policies.filter((p) => p === c.policy).flatMap(() => e.identitiesOf(g.name)));
    for (const [rule, d] of [[c.before, -1], [c.after, 1]] as const) {
      if (!rule) continue;
      counted.push([rule, d]);
      deltas.push([c.policy, rule, d]);
      const peered = peerOf(rule).kind !== 'any';
      let allHigh = !peered;
      for (const g of holders) {
        const key = `${rule.direction}/${g}`;
        const idx = e.indexes.get(key);
        if (!idx) continue;
        if (d === -1 && !peered && !idx.isHigh(c.policy, rule)) allHigh = false;
        if (!had.has(key)) had.set(key, idx.hasHigh(e.sctp));
        if (d === 1) idx.add(refOf(c.policy, rule, e.policies.get(c.policy)?.mode));
        else idx.removeById(c.policy, rule);
        if (d === 1 && !peered && !idx.isHigh(c.policy, rule)) allHigh = false;
        if (idx.flipped.size > 0) {
          const xs = flipped.get(key) ?? new Set<RuleRef>();
          for (const x of idx.flipped) xs.add(x);
          flipped.set(key, xs);
          idx.flipped.clear();
        }
        const b = peered ? idx.bucketFor(rule) : undefined;
        if (b) e.reindex(key, b);
      }
      if (allHigh) high.add(changeKey(c.policy, rule, d));
    }
  }
  const toggled = new Set([...had].filter(([key, was]) => e.indexes.get(key)?.hasHigh(e.sctp) !== was).map(([key]) => key));
  // CIDRs whose name changed (aliases.ts): their addresses are in other classes now.
  const renamed = e.aliases.change(deltas);
  return { counted, high, flipped, toggled, renamed: [...renamed.keys()] };
}

function endpointsIn6(e: Engine, text: string): Region[] {
  const out: Region[] = [];
  for (const [ip, ep] of e.eps) if (inCidr6(text, ep.ip6)) out.push({ first: ip, last: ip });
  return out;
}

/**
 * How many endpoints the IPv6 CIDRs of the changed rules cover, counted up to `limit`: each is a region
 * swept again, one at a time, so past MAX_INCREMENTAL_CHANGES a cold compile is cheaper (one sweep).
 */
export function reach6(changes: readonly RuleChange[], eps: Iterable<Endpoint>, limit = MAX_INCREMENTAL_CHANGES): number {
  const texts = new Set<string>();
  for (const c of changes) for (const r of [c.before, c.after]) for (const t of [r?.fromCidr, r?.toCidr]) if (t !== undefined && isCidr6(t)) texts.add(t);
  if (texts.size === 0) return 0;
  let n = 0;
  for (const ep of eps) {
    if (ep.ip6 === undefined) continue;
    for (const t of texts) if (inCidr6(t, ep.ip6)) { if (++n > limit) return n; break; }
  }
  return n;
}

function nextId(ids: ReadonlyMap<string, number>): () => number {
  let fresh = 1;
  for (const id of ids.values()) if (id >= fresh) fresh = id + 1;
  return () => fresh++;
}

interface Region { first: number; last: number }
interface Region6 { first: bigint; last: bigint }

/**
 * Sweeps again where a CIDR or an endpoint moved (prefixes: outermost first, the inner ones are in it),
 * in IPv4 space and in IPv6 space; returns the new classes.
 */
function reclassify(e: Engine, moved: readonly Region[], moved6: readonly Region6[], solo: readonly string[], fresh: () => number): number[] {
  const regions = [...moved].sort((a, b) => a.first - b.first || b.last - a.last);
  const born: number[] = [];
  let covered = -1;
  // A class dropped in one region and made again in a later one (an endpoint gone here, one of the same
  // group there) gets its id back, as a cold compile given the last one's ids does: the result must not
  // depend on the order the regions are swept in. The ids of the classes this sweep drops are kept for
  // that (a copy of every class id was ~5 ms at 38,000 classes, per change that sweeps).
  const dropped = new Map<string, number>();
  const bornIds = new Set<number>();
  const make = e.idMaker(fresh, dropped);
  const idOf = (key: string, k: Parameters<typeof make>[1]): number => {
    const had = e.ids.has(key);
    const id = make(key, k);
    if (!had) { born.push(id); bornIds.add(id); }
    return id;
  };
  const drop = (id: number) => {
    const k = e.classes.get(id);
    // Only the ids the compile started with: those are the ones a copy taken at the start held.
    if (k && !bornIds.has(id)) dropped.set(classKey(k), id);
    e.dropClass(id);
  };
  for (const r of regions) {
    if (r.last <= covered) continue; // inside a region already swept
    covered = r.last;
    const { merged, replaced, ranges } = splice(e.ranges, r, sweep(e.sweepInput(r), idOf), rangeAt, 1);
    e.ranges = ranges;
    for (const id of e.setRanges(merged, replaced)) drop(id);
  }
  let covered6 = -1n;
  for (const r of [...moved6].sort((a, b) => (a.first < b.first ? -1 : a.first > b.first ? 1 : a.last > b.last ? -1 : a.last < b.last ? 1 : 0))) {
    if (r.last <= covered6) continue;
    covered6 = r.last;
    const { merged, replaced, ranges } = splice(e.ranges6, r, sweep6(e.sweepInput6(r), idOf), rangeAt6, 1n);
    // Unchanged (an endpoint outside every IPv6 CIDR came or went): the same array, so its map is not made again.
    if (merged.length !== replaced.length || merged.some((m, i) => m.first !== replaced[i]?.first || m.last !== replaced[i]?.last || m.cls !== replaced[i]?.cls)) e.ranges6 = ranges;
    for (const id of e.setRanges(merged, replaced)) drop(id);
  }
  for (const id of e.placeSolo(solo, idOf)) drop(id);
  return born.filter((id) => e.classes.has(id));
}

/**
 * Puts a region's new ranges in place of the old, merged with their neighbours as a full sweep would
 * (IPv4 ranges by number, IPv6 ones by bigint: `one` is 1 in that kind).
 */
function splice<N extends number | bigint, R extends { first: N; last: N; cls: number }>(ranges: readonly R[], region: { first: N; last: N }, fresh: readonly R[], at: (rs: readonly R[], n: N) => number, one: N): { merged: R[]; replaced: R[]; ranges: R[] } {
  const plus = (n: N, d: N) => ((n as number) + (d as number)) as N;
  const minus = (n: N, d: N) => ((n as number) - (d as number)) as N;
  let i = at(ranges, region.first);
  if (i >= 0 && (ranges[i] as R).last < region.first) i++;
  i = Math.max(0, i);
  const j = at(ranges, region.last);
  const lo = Math.max(0, i - 1);
  const hi = Math.min(ranges.length - 1, j + 1);
  const replaced = ranges.slice(lo, hi + 1);
  const pieces: R[] = [];
  for (const r of replaced) if (r.first < region.first) pieces.push(r.last < region.first ? r : { ...r, last: minus(region.first, one) });
  pieces.push(...fresh);
  for (const r of replaced) if (r.last > region.last) pieces.push(r.first > region.last ? r : { ...r, first: plus(region.last, one) });
  const merged: R[] = [];
  for (const r of pieces) {
    const prev = merged[merged.length - 1];
    if (prev && prev.cls === r.cls && plus(prev.last, one) === r.first) merged[merged.length - 1] = { ...prev, last: r.last };
    else merged.push(r);
  }
  return { merged, replaced, ranges: ranges.slice(0, lo).concat(merged, ranges.slice(hi + 1)) };
}

/**
 * Which pairs a changed rule can change (sides.ts): `all`, every pair its holders and its peer make (a rule
 * with a peer; or a rule whose side keeps its peerless rules in the pairs: one of them is in audit mode, a
 * Weft policy's or a NetworkPolicy's in audit mode, its isolation and its allows without a peer);
 * `met`, a rule without a peer whose ports meet those of some rule with a peer: only the pairs such a rule
 * decides (markMet); `none`, a rule without a peer elsewhere: it changes only its holders' side profiles.
 */
function reachOf(e: Engine, policy: string, rule: RuleRef['rule']): 'all' | 'met' | 'none' {
  if (peerOf(rule).kind !== 'any') return 'all';
  // A rule of a policy in audit mode was (or now is) itself in the pairs: removing the last one leaves no
  // audit rule in its bucket to say so afterwards.
  if (e.policies.get(policy)?.mode === 'audit') return 'all';
  let met = false;
  for (const slot of slotsOf(rule)) {
    for (const idx of e.indexes.values()) if (idx.any.audits[slot] > 0) return 'all';
    const mine = coverage(rule, slot);
    if (mine !== undefined && e.peeredMeets(slot, mine)) met = true;
  }
  return met ? 'met' : 'none';
}

/** Roles of some classes: as sources, as destinations (each once). */
interface Sides { src: Set<number>; dst: Set<number> }
const NO_SIDES: Sides = { src: new Set(), dst: new Set() };

function sidesOf(e: Engine, classes: Iterable<number>): Sides {
  const out: Sides = { src: new Set(), dst: new Set() };
  for (const id of classes) { out.src.add(e.roles.src.of(id)); out.dst.add(e.roles.dst.of(id)); }
  return out;
}

/** The roles of the enforced classes of each identity (an index's key is `DIRECTION/IDENTITY`). */
function rolesByIdentity(e: Engine): Map<string, Sides> {
  const out = new Map<string, Sides>();
  for (const id of e.enforcedClasses) {
    const key = identityOf(e.classes.get(id) as Klass);
    let x = out.get(key);
    if (!x) out.set(key, (x = { src: new Set(), dst: new Set() }));
    x.src.add(e.roles.src.of(id));
    x.dst.add(e.roles.dst.of(id));
  }
  return out;
}

/** The roles of a rule's peers on the side its peer is (a source for an ingress rule, a destination for an egress one). */
function peerRoles(e: Engine, rule: Rule, all: readonly Klass[], bySet: () => ReadonlyMap<string, number[]>): number[] {
  const side = rule.direction === 'in' ? e.roles.src : e.roles.dst;
  const p = peerOf(rule);
  // Every class: every role of that side, without a pass over the classes.
  if (p.kind === 'any') return side.ids();
  const out = new Set<number>();
  for (const id of peersOf(e, rule, all, bySet)) out.add(side.of(id));
  return [...out];
}

/**
 * Marks the pairs a rule without a peer can change when its ports meet some rule with a peer. A pair's
 * functions hold only the ports where its verdict differs from what its ends' side profiles decide, which
 * needs a rule with a peer that matches the pair on that port (sides.ts): so of the pairs with a holder on
 * the rule's side, only those such a rule decides on the changed ports, either end's (ingress rules of the
 * destination naming the source, egress rules of the source naming the destination). At 50,000 rules a
 * port the rules from one group use is a few pairs, not the 10,000 pairs into the holders.
 */
function markMet(e: Engine, ownerRoles: Sides, rule: RuleRef['rule'], all: readonly Klass[], mark: (src: number, dst: number) => void, byIdentity: ReadonlyMap<string, Sides>, bySet: () => ReadonlyMap<string, number[]>): void {
  const ins = rule.direction === 'in';
  // The holders' roles on the rule's side (a role is of one identity: all its classes hold the rule, or none).
  const owners = ins ? ownerRoles.dst : ownerRoles.src;
  if (owners.size === 0) return;
  for (const slot of slotsOf(rule)) {
    const mine = coverage(rule, slot);
    if (mine === undefined) continue;
    // The CIDRs of one set (aliases.ts) have a bucket each, and one set of classes: looked up once per index.
    const sets = new Set<string>();
    for (const [b, key] of e.peeredAt(slot, mine)) {
      const cut = key.indexOf('/');
      const dir = key.slice(0, cut);
      const sides = byIdentity.get(key.slice(cut + 1));
      const own = sides && (dir === 'in' ? sides.dst : sides.src);
      // The bucket's rules decide pairs with `own` on the side `dir`: none of them has an owner there.
      if (!sides || !own || (dir === rule.direction && ![...own].some((k) => owners.has(k)))) continue;
      const first = (b.rules[slot][0] as { rule: Rule }).rule;
      const p = peerOf(first);
      const name = p.kind === 'cidr' ? e.aliasOf(p.name) : '';
      if (CidrAliases.isAlias(name)) { if (sets.has(`${key}\n${name}`)) continue; sets.add(`${key}\n${name}`); }
      const peers = peerRoles(e, first as Rule, all, bySet);
      const [srcs, dsts] = dir === 'in' ? [peers, own] : [own, peers];
      for (const s of srcs) for (const d of dsts) if (owners.has(ins ? d : s)) mark(s, d);
    }
  }
}

const changeKey = (policy: string, rule: Rule, d: 1 | -1) => `${policy}\n${rule.id}\n${d}`;

/** Past this many rules moved in or out of one side's high stage, every pair on that side is decided again (cheaper than looking each up). */
const MAX_FLIPS = 64;

/**
 * Marks every pair with one of `own`'s roles on the side an index key names (`in/…`: as destination) and a
 * role at the other end (`enforced`: only the roles of enforced classes).
 */
function markSide(e: Engine, key: string, own: Sides, enforced: boolean, mark: (src: number, dst: number) => void): void {
  const ins = key.startsWith('in/');
  const others = ins ? (enforced ? e.roles.src.enforced : e.roles.src.ids()) : enforced ? e.roles.dst.enforced : e.roles.dst.ids();
  for (const c of ins ? own.dst : own.src) for (const x of others) { if (ins) mark(x, c); else mark(c, x); }
}

/** The enforced classes of the groups holding a policy. */
function ownersOf(e: Engine, policy: string): number[] {
  const holders = new Set(e.groups.filter((g) => e.enforcedGroups.has(g.name) && g.policies.includes(policy)).map((g) => g.name));
  if (holders.size === 0) return [];
  return [...e.enforcedClasses].filter((id) => holders.has((e.classes.get(id) as Klass).group ?? ''));
}

/** Marks every pair whose sides' rule lists hold this rule: its owners (the groups holding it) and its peers. */
function markRule(e: Engine, policy: string, rule: Rule, all: readonly Klass[], mark: (src: number, dst: number) => void, bySet: () => ReadonlyMap<string, number[]>): void {
  const owners = ownersOf(e, policy);
  if (owners.length === 0) return;
  const own = sidesOf(e, owners);
  for (const peer of peerRoles(e, rule, all, bySet)) {
    if (rule.direction === 'in') for (const o of own.dst) mark(peer, o);
    else for (const o of own.src) mark(o, peer);
  }
}

/** The classes in each NetworkPolicy peer set. */
function classesBySet(all: readonly Klass[]): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const k of all) {
    for (const set of k.np?.sets ?? []) {
      const xs = out.get(set);
      if (xs) xs.push(k.id);
      else out.set(set, [k.id]);
    }
  }
  return out;
}

/**
 * The classes a rule's peer matches (RuleIndex.parts, the other way round). `bySet`: the classes of each
 * peer set, made once for a recompile (a change meeting 10,000 peer sets' buckets scanned every class for
 * each: 2.3 s at 4,000 pods, 9.8 s at 10,000, bench:policy-compile `selectors`).
 */
function peersOf(e: Engine, rule: Rule, all: readonly Klass[], bySet: () => ReadonlyMap<string, number[]>): number[] {
  const p = peerOf(rule);
  if (p.kind === 'any') return all.map((k) => k.id);
  if (p.kind === 'group') return [...(e.classesByGroup.get(p.name) ?? [])];
  if (p.kind === 'network') return [...(e.classesByNetwork.get(p.name) ?? [])];
  // A NetworkPolicy's peer set (in an index, never a changed rule: a NetworkPolicy change is a cold compile).
  if (p.kind === 'set') return [...(bySet().get(p.name) ?? [])];
  return classesOfCidr(e, p.name);
}

/** The classes holding a rule CIDR (under its name in classes: its own text, or its set's: aliases.ts). */
function classesOfCidr(e: Engine, text: string): number[] {
  // An IPv6 CIDR: the classes holding it, endpoints' and those of the other addresses it covers (indexed).
  if (isCidr6(text)) return [...(e.classesByCidr6.get(text) ?? [])];
  // A CIDR of a set (aliases.ts): the classes holding the set's name, wherever its CIDRs are.
  const name = e.aliasOf(text);
  if (CidrAliases.isAlias(name)) return [...(e.classesByAlias.get(name) ?? [])];
  const span = e.cidrSpan(text);
  const out = new Set<number>();
  for (let i = Math.max(0, rangeAt(e.ranges, span.first)); i < e.ranges.length; i++) {
    const r = e.ranges[i] as AddressClass;
    if (r.first > span.last) break;
    if (r.last >= span.first && (e.classes.get(r.cls) as Klass).cidrs.includes(name)) out.add(r.cls);
  }
  return [...out];
}
