import type { CompiledPolicy, PairProfiles, Profile } from '../policy/index.js';
import type { NftMap } from './table.js';
import { bookOf, byContent, chainOf, sortedLike, hex, ipRange, markOf, partsOf, PREFIX, PROFILE_MARK, SIDE_MARK, verdictText, type Chain, type Proto } from './policy-nft-parts.js';

// The stages of a policy's forward chain (policy-nft.ts): each protocol's pair stage, its profiles' single
// ports and rests (one map each, or shards), and its side stages.

/**
 * Rendering by identity (issue 13): a compile that changed no pair hands back the same pairs array, and
 * one that changed no profile the same profiles array (pairs.ts), so a rule change that touches only side
 * profiles rebuilds neither the pair stages' elements nor their maps' names (hashing 10,000s of elements).
 */
const pairCache = new WeakMap<readonly PairProfiles[], Map<Proto, Keyed[]>>();
/** The class map, per ranges array (an incremental compile whose classes did not move keeps it). */
export const clsCache = new WeakMap<CompiledPolicy['classification']['ranges'], NftMap>();
const profileCache = new WeakMap<readonly Profile[], Map<Proto, ProfileElements>>();
const stageCache = new WeakMap<Keyed[], StageOut>();

/** A protocol's profile elements: single ports, rests, and the chains the rests jump to. */
export interface ProfileElements { singles: Keyed[]; rest: Keyed[]; chains: Chain[] }
/** What a stage renders to: its maps, its shards' chains, its forward-chain rules. */
export interface StageOut { maps: NftMap[]; shardChains: string[]; lines: string[] }

const ALL_PROTOS = ['tcp', 'udp', 'other', 'sctp'] as const;

/** A pair's element per protocol, kept with the pair (an incremental compile keeps unchanged pairs' objects). */
const keyedCache = new WeakMap<PairProfiles, Partial<Record<Proto, Keyed>>>();

function keyedOf(x: PairProfiles, proto: Proto): Keyed {
  let byProto = keyedCache.get(x);
  if (!byProto) keyedCache.set(x, (byProto = {}));
  return (byProto[proto] ??= { key: x.src, alt: x.dst, e: `${x.src} . ${x.dst} : ${markOf(x[proto])}` });
}

/** Each protocol's pair-stage elements, in pair order, with the marks a packet looks them up with. */
export function pairElements(p: CompiledPolicy): Map<Proto, Keyed[]> {
  let out = pairCache.get(p.pairs);
  if (out) return out;
  const book = bookOf(p);
  const pairs = sortedLike(p.pairs, book.pairOrder, (a, b) => a.src - b.src || a.dst - b.dst);
  book.pairOrder = pairs;
  out = new Map();
  for (const proto of ALL_PROTOS) {
    // Before this stage meta mark holds the source's class and ct mark the destination's: a pair's shard
    // is chosen by whichever of the two spreads the pairs better (ingress rules: the sources; egress: the
    // destinations).
    const prof: Keyed[] = [];
    for (const x of pairs) if (x[proto]) prof.push(keyedOf(x, proto));
    out.set(proto, prof);
  }
  pairCache.set(p.pairs, out);
  return out;
}

/** Each protocol's profile elements, in profile order. */
export function profileElements(p: CompiledPolicy): Map<Proto, ProfileElements> {
  let out = profileCache.get(p.profiles);
  if (out) return out;
  out = new Map(ALL_PROTOS.map((x) => [x, { singles: [], rest: [], chains: [] }]));
  const seen = new Set<Chain>();
  const book = bookOf(p);
  for (const prof of p.profiles) {
    const to = out.get(prof.proto) as ProfileElements;
    const own = profileParts(prof, p.sctp, book);
    for (const k of own.singles) to.singles.push(k); // not spread: a profile may hold more ports than a call takes arguments
    if (own.rest) to.rest.push(own.rest);
    if (own.chain && !seen.has(own.chain)) { seen.add(own.chain); to.chains.push(own.chain); }
  }
  profileCache.set(p.profiles, out);
  return out;
}

/**
 * One profile's elements, kept with the profile (an unchanged profile is the same object in the next
 * compile), per chain book (its chains are that lineage's) and per SCTP mode (it decides the rest).
 */
interface Own { sctp: boolean; singles: Keyed[]; rest?: Keyed; chain?: Chain }
const ownCache = new WeakMap<ReturnType<typeof bookOf>, WeakMap<Profile, Own>>();

function profileParts(prof: Profile, sctp: boolean, book: ReturnType<typeof bookOf>): Own {
  let byProfile = ownCache.get(book);
  if (!byProfile) ownCache.set(book, (byProfile = new WeakMap()));
  let own = byProfile.get(prof);
  if (own?.sctp === sctp) return own;
  const q = partsOf(prof, PROFILE_MARK, sctp);
  const mark = markOf(prof.id);
  const singles = q.singles.map((e) => ({ key: prof.id, e }));
  if (q.verdict !== undefined) own = q.verdict === 'none' ? { sctp, singles } : { sctp, singles, rest: { key: prof.id, e: `${mark} : ${verdictText(q.verdict)}` } };
  else {
    const chain = chainOf(book, prof.proto, q.rest);
    own = { sctp, singles, rest: { key: prof.id, e: `${mark} : jump ${chain.name}` }, chain };
  }
  byProfile.set(prof, own);
  return own;
}

export function stageOf(els: Keyed[], make: () => StageOut): StageOut {
  let out = stageCache.get(els);
  if (!out) stageCache.set(els, (out = make()));
  return out;
}

/**
 * A stage's forward-chain rule: one map as it always was while the stage is small, else its shards
 * (each a map in a chain of its own) behind a jump by the mark's low bits. Nothing to look up (no pair
 * holds a profile of this protocol, or none has single ports): no rule.
 */
export function renderStage(x: string, l4: string, base: string, tag: 'p' | 's' | 'r', els: Keyed[], type: string, prefix: string, rule: (map: string) => string, memo?: Map<string, NftMap>): StageOut {
  const out: StageOut = { maps: [], shardChains: [], lines: [] };
  if (els.length === 0) return out;
  const n = shardsFor(els.length);
  if (n === 1) {
    const m = byContent(`${x}_${base}`, { type, interval: false, elements: els.map((k) => k.e) });
    out.maps.push(m);
    out.lines.push(`\t\t${prefix}${rule(m.name)}`);
    return out;
  }
  const byAlt = tag === 'p' && spread(els, n, (k) => k.alt ?? 0) < spread(els, n, (k) => k.key);
  const parts = Array.from({ length: n }, () => [] as string[]);
  for (const k of els) (parts[(byAlt ? k.alt ?? 0 : k.key) & (n - 1)] as string[]).push(k.e);
  const jumps = parts.flatMap((e, k) => {
    if (e.length === 0) return [];
    const m = shardMap(`${x}_${tag}${k}`, type, e, memo);
    out.maps.push(m);
    const chain = `${x}_${tag}${k}`;
    out.shardChains.push(`\tchain ${chain} {`, `\t\t${rule(m.name)}`, '\t}');
    return [`${k} : jump ${chain}`];
  });
  // A named map (content-named, as every map): the applier flushes a map that jumps before deleting
  // it, which kernels before 6.4 need to let its chains go; an anonymous one in a rule it cannot flush.
  const dispatch = byContent(`${x}_${tag}d`, { type: 'mark : verdict', interval: false, elements: jumps });
  out.maps.push(dispatch);
  out.lines.push(`\t\t${l4}${byAlt ? 'ct' : 'meta'} mark and ${n - 1} vmap @${dispatch.name}`);
  return out;
}

/**
 * A shard's map, named by its content; the same map as the last render of that shard (in `memo`) when its
 * elements are the same strings, which a change leaves in all shards but the few it touches: no hashing.
 */
function shardMap(base: string, type: string, elements: string[], memo: Map<string, NftMap> | undefined): NftMap {
  const last = memo?.get(base);
  if (last && last.type === type && last.elements.length === elements.length && last.elements.every((e, i) => e === elements[i])) return last;
  const m = byContent(base, { type, interval: false, elements });
  memo?.set(base, m);
  return m;
}

/**
 * A large stage's map is split into up to SHARDS maps by the low bits of the mark it is looked up with (the
 * source class for the pair stage, the profile for the others), each in a chain of its own that the
 * forward chain jumps to by those bits (one more exact lookup per new connection). A map is named by its
 * content and a change writes it whole (byContent): split, a rule between two groups rewrites the shard
 * its pairs and profiles fall in, not every element of the stage (with 50,000 mixed rules, 5,000 single
 * ports for one rule from a group). A stage of at most SHARD_SIZE × 2 elements stays one map, in the
 * forward chain itself, as small tenants' tables always were. Shards hold ~SHARD_SIZE elements up to
 * SHARDS × SHARD_SIZE in a stage, more each beyond. The pair stage splits by the source's class
 * (meta mark) or the destination's (ct mark), whichever spreads its pairs better.
 */
export const SHARDS = 64;
const SHARD_SIZE = 256;

/** An element of a stage and the mark a packet looks it up with (`alt`: the pair stage's other mark, ct mark). */
export interface Keyed { key: number; alt?: number; e: string }

/** The largest shard when `els` are split by the low bits of `key` into `n`. */
function spread(els: readonly Keyed[], n: number, key: (k: Keyed) => number): number {
  const counts = new Array<number>(n).fill(0);
  for (const k of els) {
    const i = key(k) & (n - 1);
    counts[i] = (counts[i] ?? 0) + 1;
  }
  return Math.max(...counts);
}
/** How many shards a stage of `elements` gets: a power of two, so the low bits of a mark choose one. */
function shardsFor(elements: number): number {
  let n = 1;
  while (n < SHARDS && elements > n * SHARD_SIZE * 2) n *= 2;
  return n;
}
export const emptyStages = (): ProtoNames => ({ prof: [], singles: [], rest: [], sides: [] });

const SLOT: Record<Proto, 0 | 1 | 2 | 3> = { tcp: 0, udp: 1, other: 2, sctp: 3 };

/**
 * The side stages of a protocol (sides.ts), after its pair stages: the destination's address → its
 * ingress side profile, that profile's single ports and rest (drops only: a port it leaves goes on), then
 * the same for the source's egress. Small maps (the endpoints enforced here, the few distinct side
 * profiles), so one map each. In a tenant whose default is deny every enforced end has an element (its
 * mark, from SIDE_MARK, is how the forward chain's last rules know an end was enforced); else only the
 * ends whose profile drops something.
 */
export function sideStages(p: CompiledPolicy, proto: Proto, sides: ReadonlyMap<number, CompiledPolicy['sides'][number]>, chains: Map<string, Chain>, maps: NftMap[]): string[] {
  const x = PREFIX[proto];
  const slot = SLOT[proto];
  const singles: string[] = [];
  const rest: string[] = [];
  for (const sp of p.sideProfiles) {
    if (sp.proto !== proto) continue;
    const q = partsOf(sp, SIDE_MARK, p.sctp);
    for (const e of q.singles) singles.push(e);
    const mark = hex(SIDE_MARK + sp.id);
    if (q.verdict === undefined) {
      const c = chainOf(bookOf(p), proto, q.rest);
      chains.set(c.name, c);
      rest.push(`${mark} : jump ${c.name}`);
    }
    else if (q.verdict !== 'none') rest.push(`${mark} : ${verdictText(q.verdict)}`);
  }
  const l4 = proto === 'other' ? `meta l4proto != { ${p.sctp ? 'tcp, udp, sctp' : 'tcp, udp'} } ` : `meta l4proto ${proto} `;
  const lookups: string[] = [];
  if (singles.length > 0) {
    const m = byContent(`${x}_ss`, { type: 'mark . inet_service : verdict', interval: false, elements: singles });
    maps.push(m);
    lookups.push(`\t\tmeta mark . ${proto} dport vmap @${m.name}`);
  }
  if (rest.length > 0) {
    const m = byContent(`${x}_sr`, { type: 'mark : verdict', interval: false, elements: rest });
    maps.push(m);
    lookups.push(`\t\t${l4}meta mark vmap @${m.name}`);
  }
  const out: string[] = [];
  for (const [dir, addr] of [['in', 'daddr'], ['out', 'saddr']] as const) {
    const els: string[] = [];
    for (const r of p.classification.ranges) {
      const id = sides.get(r.cls)?.[dir][slot];
      if (id === undefined || (id === 0 && p.fallback === 'accept')) continue;
      els.push(`${ipRange(r.first, r.last)} : ${hex(SIDE_MARK + id)}`);
    }
    if (els.length === 0) continue;
    const m = byContent(`${x}_${dir}`, { type: 'ipv4_addr : mark', interval: true, elements: els });
    maps.push(m);
    out.push(`\t\t${l4}meta mark set ip ${addr} map @${m.name}`, ...lookups);
  }
  return out;
}

/** What the forward chain looks up per protocol: the class map, and per stage its rule (a map, or a jump to its shards). */
export interface Names { cls: string; tcp: ProtoNames; udp: ProtoNames; other: ProtoNames; sctp: ProtoNames }
export interface ProtoNames { prof: string[]; singles: string[]; rest: string[]; sides: string[] }

