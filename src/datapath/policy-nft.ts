import { once } from '../model/once.js';
import { filters, listChangesOf, type CompiledPolicy, type PairProfiles, type Profile } from '../policy/index.js';
import { chainIndex, nextChainSetId, type ChainSet, type NftMap, type SharedChain } from './table.js';
import { AUDIT_CHAIN, bookOf, chainBlock, byContent, hex, ipRange, l4Of, PREFIX, SIDE_MARK, tailChain, verdictText, type Chain, type ChainBook, type Proto } from './policy-nft-parts.js';
import { AUDIT_MARK } from './flows-nft.js';
import { clsCache, emptyStages, keyedOf, profileParts, sideStages, Stage, type Keyed, type Names, type Own } from './policy-nft-stages.js';
import { Attached } from '../model/attached.js';
import { highKey, highStages } from './policy-nft-high.js';
import { formatIp6, UPLINK_SPACE6 } from '../model/index.js';
import { names as linkNames } from './names.js';

/** A compile's IPv6 ranges' map, by the ranges (a compile that moved none keeps the array). */
const cls6rCache = new Attached<object, NftMap>('IPv6 class map');

export { AUDIT_CHAIN, INLINE_RANGES, PROFILE_MARK, SIDE_MARK, splitSingles } from './policy-nft-parts.js';
export { SHARDS } from './policy-nft-stages.js';

/**
 * The policy part of a tenant's table.
 * Every map is named by its content (byContent: never changed in place while in use). Per new connection:
 *   1. source address → its class's source role, destination address → its destination role
 *      (policy/roles.ts): a one-field interval map each (rbtree, O(log n)), into meta mark and ct mark
 *      (one map for both where every class is its own role on both sides), each looked up in a chain of
 *      its own (`roleChains`);
 *   2. per protocol function (tcp, udp, the others; sctp where a rule compares its ports): (source class . destination class) → profile, an
 *      exact-match map (hash, O(1)) into meta mark. A profile is one distinct verdict function of that
 *      protocol, shared by every pair that has it (the compiler interns them): a rule whose peer covers
 *      10,000 classes is one profile's elements, not 10,000 pairs' copies of its ports. A pair whose
 *      function is the default has no element, and its mark stays its source role (below PROFILE_MARK);
 *   3. (profile . port) → verdict: an exact-match map (hash, O(1)) holding the single ports whose verdict
 *      differs from the rest of the profile's ports (a rule with one port, the usual kind);
 *   4. profile → verdict: an exact-match map giving the profile's verdict outright when it is the same
 *      for every remaining port, or a jump to a chain that looks the port up in rules (at most
 *      INLINE_RANGES) or a one-field interval map (rbtree) of decisions, which a rule per decision acts on
 *      (data, not verdicts: the kernel's validation of the table walks no element of it). Profiles whose
 *      remaining ports look alike share one chain (named by its content), so chains grow with the
 *      distinct port patterns.
 * No lookup is linear in the number of rules. (One map keyed by the whole concatenation with ranges uses
 * nft's pipapo backend, whose cost measured here grew by ~33 ns per entry: +0.84 ms per new connection
 * at 25,000 entries.) Established and related traffic passes before any lookup. After the policy only the
 * flow log reads a mark: its accepted-connections chain (flows-nft.ts, priority filter + 10) tells an
 * audit verdict by AUDIT_MARK in meta mark, which the policy's audit chain sets for it; services, DSCP
 * and the host table match on addresses and ports.
 */
export interface PolicyNft {
  maps: NftMap[];
  chains: string[];
  /** The chains the profiles' rests jump to and the audit chain, with the maps they look ports up in (table.ts ChainSet). */
  shared?: ChainSet;
}

const rendered = new Attached<CompiledPolicy, PolicyNft>('render');

/** Rendered once per compiled policy: the same arrays come back, so diffing them is free. */
export function renderPolicy(p: CompiledPolicy): PolicyNft {
  const cached = rendered.get(p);
  if (cached) return cached;
  const out = render(p);
  rendered.set(p, out);
  return out;
}

/**
 * What the last render of a lineage (one tenant's compiles) left to build the next one from: the pairs
 * and profiles it rendered, each stage's shards, how many profiles use each chain, and its chain set.
 * The next render takes what differs between its compile and these (pairs: an incremental compile
 * patches its list in place, so they differ at the few positions it touched; profiles: sorted by id) and
 * patches the stages and the chain set with it: a change costs what it touches, not the table (issue 13:
 * at 50,000 rules a render walked 29,000 pairs, 15,000 profiles and 14,000 chains for a change of one).
 * Used by one render at a time and then replaced; a render that throws leaves none (the next starts over).
 */
interface RenderState {
  sctp: boolean;
  pairs: readonly PairProfiles[];
  profiles: readonly Profile[];
  stages: Map<string, Stage>;
  /** Profile chains by name, and how many profiles jump to each. */
  refs: Map<string, { chain: Chain; n: number }>;
  audits: number;
  /** Per protocol, how many of its profiles' single ports go to its tail chain (policy-nft-parts.ts splitSingles). */
  holes: Map<Proto, number>;
  /** The side stages' chains, output and inputs (sideKey) of the last render. */
  sides: Sides | undefined;
  set: ChainSet | undefined;
}
const states = new Attached<ChainBook, RenderState>('render state');

/**
 * The side and high stages of every protocol: their shared chains and maps, the chains holding their
 * lookups (`texts`: `tcp_high`, `tcp_side`...), and the lookup chain's rules for them (`highs`: the jump
 * and what follows it; `lines`: the jump). In chains of their own because their maps are named by their
 * content and change with every rule without a peer: rewriting the lookup chain instead binds its class
 * map again, and the kernel walks all of that map's elements when a rule binds it (~15 ms at 52,000
 * address ranges, most of such a change's commit: issue 13, session 37).
 */
interface Sides { key: string; chains: ReadonlyMap<string, Chain>; maps: Map<Proto, NftMap[]>; texts: Map<Proto, string[]>; lines: Map<Proto, string[]>; highs: Map<Proto, string[]> }

const freshState = (sctp: boolean): RenderState => ({ sctp, pairs: [], profiles: [], stages: new Map(), refs: new Map(), audits: 0, holes: new Map(), sides: undefined, set: undefined });

function render(p: CompiledPolicy): PolicyNft {
  if (!filters(p)) return { maps: [], chains: renderForward(p, undefined) };
  // The source's role and the destination's (policy/roles.ts): one map where every class is its own role on both sides.
  const cls = classMap(roleRanges(p.classification.ranges, p.roles.src, 1));
  const clsd = classMap(roleRanges(p.classification.ranges, p.roles.dst, 1));
  const book = bookOf(p);
  let st = states.get(book);
  states.delete(book);
  if (!st || st.sctp !== p.sctp) st = freshState(p.sctp);
  const protos = p.sctp ? ['tcp', 'udp', 'other', 'sctp'] as const : ['tcp', 'udp', 'other'] as const;
  const pairs = changed(st.pairs, p.pairs);
  const profiles = listChangesOf(p.profiles, st.profiles) ?? changedById(st.profiles, p.profiles);
  const ownOf = (x: Profile) => profileParts(x, p.sctp, book);
  const sortedPairs = once(() => [...p.pairs].sort((a, b) => a.src - b.src || a.dst - b.dst));
  const v6Map = (roles: ReadonlyMap<number, number>) => (p.v6.length > 0 ? byContent('cls6', { type: 'ipv6_addr : mark', interval: false, elements: p.v6.map((x) => `${x.addr} : ${roles.get(x.cls) ?? x.cls}`) }) : undefined);
  const [cls6, cls6d] = [v6Map(p.roles.src), v6Map(p.roles.dst)];
  const r6 = p.classification.ranges6;
  const [cls6r, cls6rd] = r6.length > 0 ? [class6Map(roleRanges(r6, p.roles.src, 1n)), class6Map(roleRanges(r6, p.roles.dst, 1n))] : [undefined, undefined];
  const names: Names = { cls: cls.name, clsd: clsd.name, ...(cls6 && cls6d ? { cls6: cls6.name, cls6d: cls6d.name } : {}), ...(cls6r && cls6rd ? { cls6r: cls6r.name, cls6rd: cls6rd.name } : {}), tcp: emptyStages(), udp: emptyStages(), other: emptyStages(), sctp: emptyStages() };
  // A map both sides look up is listed once.
  const maps: NftMap[] = [...new Map([cls, clsd, cls6, cls6d, cls6r, cls6rd].filter((m): m is NftMap => m !== undefined).map((m) => [m.name, m])).values()];
  const shardChains: string[] = [];
  // The high stages put the source's role back in meta mark by a jump to the chain that looks it up.
  const sides = sideStagesOf(p, st, protos, [`jump ${SRC_ROLE}`]);
  for (const proto of protos) {
    const x = PREFIX[proto];
    // SCTP by port only where the compile decides it so (a rule compares SCTP ports); else it is an `other`.
    const l4 = l4Of(proto, p.sctp);
    const stage = (base: string, tag: 'p' | 's' | 'r', type: string, prefix: string, rule: (map: string) => string, removed: Keyed[], added: Keyed[], all: () => Keyed[]): string[] => {
      const key = `${proto}/${tag}`;
      let s = (st as RenderState).stages.get(key);
      if (!s) (st as RenderState).stages.set(key, (s = new Stage(x, l4, base, tag, type, prefix, rule)));
      s.update(removed, added, all);
      maps.push(...s.out.maps);
      shardChains.push(...s.out.shardChains);
      return s.out.lines;
    };
    const pairEls = (xs: readonly PairProfiles[]) => xs.filter((e) => e[proto]).map((e) => keyedOf(e, proto));
    const mine = (xs: readonly Profile[]) => xs.filter((e) => e.proto === proto).map(ownOf);
    const singles = (xs: readonly Profile[]) => mine(xs).flatMap((o) => o.singles);
    const rests = (xs: readonly Profile[]) => mine(xs).flatMap((o) => (o.rest ? [o.rest] : []));
    const n = names[proto];
    n.prof = stage('prof', 'p', 'mark . mark : mark', l4, (m) => `meta mark set meta mark . ct mark map @${m}`, pairEls(pairs.removed), pairEls(pairs.added), () => pairEls(sortedPairs()));
    if (proto !== 'other') {
      const [gone, come] = [singles(profiles.removed), singles(profiles.added)];
      const holes = (st.holes.get(proto) ?? 0) + holesIn(come, proto) - holesIn(gone, proto);
      st.holes.set(proto, holes);
      n.singles = stage('singles', 's', 'mark . inet_service : verdict', '', (m) => `meta mark . ${proto} dport vmap @${m}`, gone, come, () => singles(p.profiles));
    }
    n.rest = stage('rest', 'r', 'mark : verdict', l4, (m) => `meta mark vmap @${m}`, rests(profiles.removed), rests(profiles.added), () => rests(p.profiles));
    n.sides = sides.lines.get(proto) ?? [];
    // What this protocol's lookup chain and then the forward chain do after its pair stages, for its
    // profiles' undecided single ports (the other protocols' stages never match its packets); it ends with
    // the tenant default's verdict, so a goto to it never returns. Only while one has such a port.
    if ((st.holes.get(proto) ?? 0) > 0) shardChains.push(`\tchain ${tailChain(proto)} {`, ...n.sides, ...tenantDefault(p), '\t}');
    n.highs = sides.highs.get(proto) ?? [];
    maps.push(...sides.maps.get(proto) ?? []);
    shardChains.push(...sides.texts.get(proto) ?? []);
  }
  const set = chainSet(st, profiles, ownOf, sides.chains);
  st.pairs = p.pairs;
  st.profiles = p.profiles;
  st.sides = sides;
  st.set = set;
  states.set(book, st);
  return { maps, chains: [...shardChains, ...roleChains(names), ...lookupChains(protos, names), ...renderForward(p, names)], shared: set };
}

/**
 * Each protocol's stages (highs, pair → profile, single ports, rests, sides) in a chain of its own that the
 * forward chain jumps to for that protocol. Their rules name maps that are named by their content, so
 * they are written again whenever a stage's map is new (most rule changes); in the forward chain that
 * wrote the whole chain again, and Linux then makes the anonymous sets of its multicast and `other` rules
 * anew (each a walk of every set of the table for a free name: ~23 ms of a commit beside 12,761 maps,
 * bench:nft-commit) and looks every map it names up by name again (another walk of every set each).
 * The forward chain stays as it is. Verdicts are unchanged: every stage's rules match their protocol
 * only, and the chain's end goes on to the forward chain's next rules as the stages' end did.
 */
export const lookupChain = (proto: Proto) => `${PREFIX[proto]}_lookups`;
function lookupChains(protos: readonly Proto[], n: Names): string[] {
  return protos.flatMap((x) => {
    const lines = stageLines(n, x);
    return lines.length ? [`\tchain ${lookupChain(x)} {`, ...lines, '\t}'] : [];
  });
}
const stageLines = (n: Names, x: Proto): string[] => [...n[x].highs, ...n[x].prof, ...n[x].singles, ...n[x].rest, ...n[x].sides];

/** What came and went between two lists of the same objects, mostly at the same positions (PairStore's list). */
function changed<T>(was: readonly T[], now: readonly T[]): { removed: T[]; added: T[] } {
  if (was === now) return { removed: [], added: [] };
  let removed: T[] = [];
  let added: T[] = [];
  for (let i = 0; i < Math.max(was.length, now.length); i++) {
    const a = was[i];
    const b = now[i];
    if (a === b) continue;
    if (i < was.length) removed.push(a as T);
    if (i < now.length) added.push(b as T);
  }
  // An object that moved is in both.
  if (removed.length > 0 && added.length > 0) {
    const out = new Set(removed);
    const into = new Set(added);
    removed = removed.filter((x) => !into.has(x));
    added = added.filter((x) => !out.has(x));
  }
  return { removed, added };
}

/** What came and went between two lists sorted by id (a profile changed under its id is one of each). */
function changedById<T extends { id: number }>(was: readonly T[], now: readonly T[]): { removed: T[]; added: T[] } {
  const removed: T[] = [];
  const added: T[] = [];
  if (was === now) return { removed, added };
  let i = 0;
  let j = 0;
  while (i < was.length || j < now.length) {
    const a = was[i];
    const b = now[j];
    if (a && b && a.id === b.id) {
      if (a !== b) { removed.push(a); added.push(b); }
      i++;
      j++;
    } else if (a && (!b || a.id < b.id)) { removed.push(a); i++; }
    else { added.push(b as T); j++; }
  }
  return { removed, added };
}

/**
 * The side stages (policy-nft-stages.ts sideStages) and high stages (policy-nft-high.ts) of every
 * protocol: small maps, but made from every address range (52,000 at 50,000 nested rules), so kept while
 * their inputs stand.
 */
function sideStagesOf(p: CompiledPolicy, st: RenderState, protos: readonly Proto[], cls: readonly string[]): Sides {
  const key = `${sideKey(p)}|${highKey(p)}|${cls.join(',')}`;
  if (st.sides && st.sides.key === key) return st.sides;
  const chains = new Map<string, Chain>();
  const maps = new Map<Proto, NftMap[]>();
  const texts = new Map<Proto, string[]>();
  const lines = new Map<Proto, string[]>();
  const highs = new Map<Proto, string[]>();
  const bySide = new Map(p.sides.map((x) => [x.cls, x]));
  for (const proto of protos) {
    const own: NftMap[] = [];
    const x = PREFIX[proto];
    const jump = (name: string) => `\t\t${l4Of(proto, p.sctp)}jump ${name}`;
    const text: string[] = [];
    const high = highStages(p, proto, chains, own, cls);
    if (high.body.length > 0) {
      text.push(`\tchain ${x}_high {`, ...high.body, '\t}');
      highs.set(proto, [jump(`${x}_high`), ...high.after]);
    }
    const side = sideStages(p, proto, bySide, chains, own);
    if (side.length > 0) {
      text.push(`\tchain ${x}_side {`, ...side, '\t}');
      lines.set(proto, [jump(`${x}_side`)]);
    }
    texts.set(proto, text);
    maps.set(proto, own);
  }
  return { key, chains, maps, texts, lines, highs };
}

type Range<N> = { first: N; last: N; cls: number };
/** Role ranges by the class ranges they were made from, per side's role map (the last few). */
const roleRangeCache = new Attached<object, Array<{ roles: ReadonlyMap<number, number>; out: readonly Range<number | bigint>[] }>>('role ranges');

/**
 * Class ranges with each class's role on one side (policy/roles.ts), neighbours of one role merged: the
 * same array where every class is its own role, and the same array again while the ranges and the roles
 * stand (the class map is made once per array).
 */
function roleRanges<N extends number | bigint>(ranges: readonly Range<N>[], roles: ReadonlyMap<number, number>, one: N): readonly Range<N>[] {
  if (roles.size === 0) return ranges;
  const kept = roleRangeCache.get(ranges) ?? [];
  const hit = kept.find((x) => x.roles === roles);
  if (hit) return hit.out as readonly Range<N>[];
  const out: Range<N>[] = [];
  for (const r of ranges) {
    const cls = roles.get(r.cls) ?? r.cls;
    const prev = out[out.length - 1];
    if (prev && prev.cls === cls && ((prev.last as number) + (one as number)) === r.first) prev.last = r.last;
    else out.push({ first: r.first, last: r.last, cls });
  }
  roleRangeCache.set(ranges, [{ roles, out }, ...kept.slice(0, 3)]);
  return out;
}

function classMap(ranges: readonly Range<number>[]): NftMap {
  let m = clsCache.get(ranges);
  if (!m) clsCache.set(ranges, (m = byContent('cls', { type: 'ipv4_addr : mark', interval: true, elements: ranges.map((r) => `${ipRange(r.first, r.last)} : ${r.cls}`) })));
  return m;
}

function class6Map(ranges: readonly Range<bigint>[]): NftMap {
  let m = cls6rCache.get(ranges);
  if (!m) cls6rCache.set(ranges, (m = byContent('cls6r', { type: 'ipv6_addr : mark', interval: true, elements: ranges.map((r) => `${r.first === r.last ? formatIp6(r.first) : `${formatIp6(r.first)}-${formatIp6(r.last)}`} : ${r.cls}`) })));
  return m;
}

/**
 * The source's role into meta mark and the destination's into ct mark, each in a chain of its own that the
 * forward chain jumps to: a rule that names a map binds it, and the kernel walks every element of a map a
 * rule binds (~15 ms at 52,000 address ranges: session 37). A protocol's lookup chain (lookupChains) is
 * written again whenever one of its stage's maps is new; with the role lookups in chains of their own,
 * that binds no class map (two of them since classes per role: the agent step's slowest changes grew
 * ~10 ms with both in the forward chain, where the stages' rules were until session 68).
 */
const SRC_ROLE = 'src_role';
const DST_ROLE = 'dst_role';
function roleChains(n: Names): string[] {
  const dst = [`ct mark set ip daddr map @${n.clsd}`, ...(n.cls6rd ? [`ct mark set ip6 daddr map @${n.cls6rd}`] : []), ...(n.cls6d ? [`ct mark set ip6 daddr map @${n.cls6d}`] : [])];
  return [`\tchain ${SRC_ROLE} {`, ...classLines(n).map((l) => `\t\t${l}`), '\t}', `\tchain ${DST_ROLE} {`, ...dst.map((l) => `\t\t${l}`), '\t}'];
}

/** The rules that put the source's role in meta mark (IPv4, then IPv6's ranges and endpoints: a miss leaves the mark as it was). */
function classLines(n: Names): string[] {
  return [`meta mark set ip saddr map @${n.cls}`, ...(n.cls6r ? [`meta mark set ip6 saddr map @${n.cls6r}`] : []), ...(n.cls6 ? [`meta mark set ip6 saddr map @${n.cls6}`] : [])];
}

/** What the side stages are made from, as one string (the ranges by identity: a compile that moved no class keeps them). */
const rangeIds = new Attached<object, number>('ranges id');
let rangeSeq = 0;
function sideKey(p: CompiledPolicy): string {
  let r = rangeIds.get(p.classification.ranges);
  if (r === undefined) rangeIds.set(p.classification.ranges, (r = ++rangeSeq));
  const profiles = p.sideProfiles.map((x) => `${x.id}=${x.proto}:${x.segs.map((g) => `${g.first}-${g.last}:${g.verdict}`).join(',')}`).join(';');
  return `${r}|${p.fallback}|${p.sctp}|${p.v6.map((x) => `${x.addr}=${x.cls}`).join(',')}|${p.sides.map((x) => `${x.cls}:${x.in.join(',')}/${x.out.join(',')}`).join(';')}|${profiles}`;
}

/** Two lists of chains sorted by name, as one. */
function merged(a: readonly SharedChain[], b: readonly SharedChain[]): SharedChain[] {
  const out: SharedChain[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    const x = a[i];
    const y = b[j];
    if (x && (!y || x.name < y.name)) { out.push(x); i++; } else { out.push(y as SharedChain); j++; }
  }
  return out;
}

const AUDIT: Chain = {
  name: AUDIT_CHAIN, text: '', maps: [],
  block: chainBlock(AUDIT_CHAIN, ['\t\tcounter', `\t\tmeta mark set ${hex(AUDIT_MARK)}`, '\t\taccept']),
};

/**
 * The chain set after the profiles that came and went: the profiles' chains (counted), the side stages'
 * and the audit chain while a profile audits, sorted by name, with the patch from the last set. The same
 * set when nothing came or went.
 */
function chainSet(st: RenderState, profiles: { removed: Profile[]; added: Profile[] }, ownOf: (x: Profile) => Own, sideChains: ReadonlyMap<string, Chain>): ChainSet {
  const was = (name: string) => st.refs.has(name) || (st.sides?.chains.has(name) ?? false) || (name === AUDIT_CHAIN && st.audits > 0);
  const touched = new Map<string, { chain: Chain; had: boolean }>();
  const touch = (c: Chain) => { if (!touched.has(c.name)) touched.set(c.name, { chain: st.refs.get(c.name)?.chain ?? st.sides?.chains.get(c.name) ?? c, had: was(c.name) }); };
  touch(AUDIT);
  for (const c of st.sides?.chains.values() ?? []) touch(c);
  for (const c of sideChains.values()) touch(c);
  for (const x of profiles.removed) {
    const o = ownOf(x);
    if (o.audit) st.audits--;
    if (!o.chain) continue;
    touch(o.chain);
    const r = st.refs.get(o.chain.name);
    if (r && --r.n === 0) st.refs.delete(o.chain.name);
  }
  for (const x of profiles.added) {
    const o = ownOf(x);
    if (o.audit) st.audits++;
    if (!o.chain) continue;
    touch(o.chain);
    const r = st.refs.get(o.chain.name);
    if (r) r.n++;
    else st.refs.set(o.chain.name, { chain: o.chain, n: 1 });
  }
  const is = (name: string) => st.refs.has(name) || sideChains.has(name) || (name === AUDIT_CHAIN && st.audits > 0);
  const added: Chain[] = [];
  const removed: Chain[] = [];
  for (const [name, t] of touched) {
    const now = is(name);
    if (now && !t.had) added.push(st.refs.get(name)?.chain ?? sideChains.get(name) ?? AUDIT);
    else if (!now && t.had) removed.push(t.chain);
  }
  const last = st.set;
  if (last && added.length === 0 && removed.length === 0) return last;
  // A copy of the last set with the few that went taken out and the few that came put in, each found
  // by a binary search: a change among 14,000 chains costs a copy of the array, not a walk comparing names.
  // Many (a render from nothing): sorted and merged.
  let chains = [...(last?.chains ?? [])];
  for (const c of removed) {
    const i = chainIndex(chains, c.name);
    if (chains[i]?.name === c.name) chains.splice(i, 1);
  }
  if (added.length <= 64) for (const c of added) chains.splice(chainIndex(chains, c.name), 0, c);
  else chains = merged(chains, [...added].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)));
  const count = (cs: readonly SharedChain[]) => cs.reduce((n, c) => n + c.maps.reduce((k, m) => k + m.elements.length, 0), 0);
  const elements = (last?.elements ?? 0) + count(added) - count(removed);
  return { id: nextChainSetId(), chains, elements, ...(last ? { patch: { base: last.id, added, removed } } : {}) };
}

function renderForward(p: CompiledPolicy, n: Names | undefined): string[] {
  if (!n && p.fallback === 'accept') return [];
  return [
    '\tchain forward {',
    '\t\ttype filter hook forward priority filter; policy accept;',
    '\t\tct state established,related accept',
    '\t\tct state invalid drop',
    // A datagram to a group or broadcast address would be decided by its sender's egress towards
    // "elsewhere" (class 0) and never by a receiver's ingress: in a tenant that filters, it is not
    // forwarded (neighbour discovery and MLD are ICMPv6, not touched).
    ...(n ? ['\t\tmeta pkttype { broadcast, multicast } meta l4proto { tcp, udp, udplite, sctp } drop comment "no multicast past ingress rules"'] : []),
    // DNS queries to a gateway are DNATed to the agent on the uplink (169.254.0.0/16): always allowed.
    // Out of the uplink only: a network made in 169.254/16 before such subnets were refused must not
    // have its endpoints' DNATed traffic (published ports, VIPs) pass as DNS.
    `\t\tct status dnat oifname "${linkNames.uplinkTenant}" ip daddr 169.254.0.0/16 accept comment "dns"`,
    // Over IPv6 to the uplink's IPv6 host end (the only DNAT into the uplinks' /64 in a tenant namespace).
    ...(p.dual ? [`\t\tct status dnat ip6 daddr ${UPLINK_SPACE6} accept comment "dns"`] : []),
    // Untracked, so never established: without this a deny would cut IPv6 neighbours off each other.
    ...(p.dual ? [
      '\t\ticmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } ip6 hoplimit 255 accept comment "neighbour discovery"',
      // Link-local addresses have no class (only an endpoint's global IPv6 address is its IPv4 one's):
      // unicast to or from one would be decided as "elsewhere", so it is not forwarded at all.
      '\t\tip6 daddr fe80::/10 drop comment "link-local unicast"',
      '\t\tip6 saddr fe80::/10 ip6 daddr != ff00::/8 drop comment "link-local unicast"',
    ] : []),
    ...(n ? [
      // The source's role and the destination's (roleChains; IPv6: the addresses inside rules' IPv6 CIDRs
      // that are no endpoint's, outside the tenant by NAT66, then the endpoints' own, each its IPv4 address's).
      `\t\tjump ${SRC_ROLE}`,
      `\t\tjump ${DST_ROLE}`,
      // Each protocol: its high stages (the rules without a peer above every rule with a peer on their
      // ports, policy-nft-high.ts), then pair → profile (the mark stays the source role where the pair has none), then the
      // profile's single ports, then its rest; each stage through the shard its mark's low bits name.
      // Then its side stages: what the ends' rules without a peer drop, where the pair did not decide.
      // In a chain per protocol (lookupChains), jumped to for that protocol's packets only.
      ...(p.sctp ? ['tcp', 'udp', 'sctp', 'other'] as const : ['tcp', 'udp', 'other'] as const).flatMap((x) => (stageLines(n, x).length ? [`\t\t${l4Of(x, p.sctp)}jump ${lookupChain(x)}`] : [])),
    ] : []),
    ...tenantDefault(p, n !== undefined),
    '\t}',
  ];
}

/** The forward chain's last rules: the tenant's default, where the stages decided nothing (`filtered`: there are stages). */
function tenantDefault(p: CompiledPolicy, filtered = true): string[] {
  return [
    // Neither end's side stage dropped it, and one of them is enforced here (its side mark is set).
    ...(filtered && p.fallback === 'drop' ? [`\t\tmeta mark & 0xf0000000 == ${hex(SIDE_MARK)} accept`] : []),
    `\t\t${verdictText(p.fallback)} comment "tenant default"`,
  ];
}

/** How many single-port elements of a protocol go to its tail chain. */
function holesIn(singles: readonly Keyed[], proto: Proto): number {
  const end = `: goto ${tailChain(proto)}`;
  let n = 0;
  for (const k of singles) if (k.e.endsWith(end)) n++;
  return n;
}
