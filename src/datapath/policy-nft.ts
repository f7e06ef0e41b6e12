import { createHash } from 'node:crypto';
import { formatIp } from '../model/index.js';
import { filters, type CompiledPolicy, type PairProfiles, type Profile, type SideProfile, type Verdict } from '../policy/index.js';
import type { NftMap } from './table.js';

/**
 * The policy part of a tenant's table.
 * Every map is named by its content (byContent: never changed in place while in use). Per new connection:
 *   1. source and destination address → class: a one-field interval map each (rbtree, O(log n)), into
 *      meta mark and ct mark;
 *   2. per protocol function (tcp, udp, the others; sctp where a rule compares its ports): (source class . destination class) → profile, an
 *      exact-match map (hash, O(1)) into meta mark. A profile is one distinct verdict function of that
 *      protocol, shared by every pair that has it (the compiler interns them): a rule whose peer covers
 *      10,000 classes is one profile's elements, not 10,000 pairs' copies of its ports. A pair whose
 *      function is the default has no element, and its mark stays its class (below PROFILE_MARK);
 *   3. (profile . port) → verdict: an exact-match map (hash, O(1)) holding the single ports whose verdict
 *      differs from the rest of the profile's ports (a rule with one port, the usual kind);
 *   4. profile → verdict: an exact-match map giving the profile's verdict outright when it is the same
 *      for every remaining port, or a jump to a chain that looks the port up in rules (at most
 *      INLINE_RANGES) or a one-field interval map (rbtree). Profiles whose remaining ports look alike
 *      share one chain (named by its content), so chains grow with the distinct port patterns.
 * No lookup is linear in the number of rules. (One map keyed by the whole concatenation with ranges uses
 * nft's pipapo backend, whose cost measured here grew by ~33 ns per entry: +0.84 ms per new connection
 * at 25,000 entries.) Established and related traffic passes before any lookup. Nothing after the policy
 * reads meta mark or ct mark (services, DSCP and the host table match on addresses and ports).
 */
export interface PolicyNft {
  maps: NftMap[];
  chains: string[];
}

/** Profile ids as marks: above any class id, so a class left in meta mark never meets a profile's element. */
export const PROFILE_MARK = 0x40000000;
/** Side profiles' marks (sides.ts): apart from classes' and profiles', so a mark left by one stage never meets another's element. */
export const SIDE_MARK = 0x20000000;
const hex = (n: number) => `0x${n.toString(16)}`;
const markOf = (id: number) => hex(PROFILE_MARK + id);

const rendered = new WeakMap<CompiledPolicy, PolicyNft>();

/** Rendered once per compiled policy: the same arrays come back, so diffing them is free. */
export function renderPolicy(p: CompiledPolicy): PolicyNft {
  const cached = rendered.get(p);
  if (cached) return cached;
  const out = render(p);
  rendered.set(p, out);
  return out;
}

/** `none`: the profile does not decide these ports; the next stage does. */
type Decided = Verdict | 'none';
interface Seg { first: number; last: number; verdict: Decided }

const range = (a: number, b: number) => (a === b ? String(a) : `${a}-${b}`);

/**
 * Audit mode: a connection only policies in audit mode would drop passes through this chain, counted
 * (`nft list chain inet weft audit`) and logged to NFLOG group AUDIT_LOG_GROUP, at most 20 a second.
 */
export const AUDIT_CHAIN = 'audit';
export const AUDIT_LOG_GROUP = 7;
const verdictText = (v: Decided) => {
  if (v === 'none') throw new Error('an undecided port has no element');
  return v === 'audit' ? `jump ${AUDIT_CHAIN}` : v;
};
const ipRange = (a: number, b: number) => (a === b ? formatIp(a) : `${formatIp(a)}-${formatIp(b)}`);

type Proto = Profile['proto'];
const PREFIX: Record<Proto, string> = { tcp: 'tcp', udp: 'udp', other: 'x', sctp: 'sctp' };

/** A profile as its elements: its single ports, and the rest as one verdict (`none`: no element) or as segments for a chain. */
interface ProfileParts { singles: string[]; verdict: Decided | undefined; rest: Seg[] }

/** Profiles are immutable and kept across compiles while their function stands: each is split once. */
const parts = new WeakMap<Profile | SideProfile, ProfileParts>();

/**
 * A pair's profile (marks from PROFILE_MARK) or a side profile (from SIDE_MARK) as elements. `sctp`: the
 * compile decides SCTP by port, so `other` skips 132 too (a profile belongs to one compile mode).
 */
function partsOf(x: Profile | SideProfile, base: number, sctp: boolean): ProfileParts {
  let out = parts.get(x);
  if (out) return out;
  const mark = hex(base + x.id);
  const singles: string[] = [];
  const rest = x.proto === 'other' ? [...x.segs] : splitSingles(x.segs, mark, singles);
  const skipped = x.proto !== 'other' ? 0 : sctp ? 3 : 2;
  out = { singles, verdict: restVerdict(rest, x.proto === 'other' ? 255 : 65535, skipped), rest };
  parts.set(x, out);
  return out;
}

function render(p: CompiledPolicy): PolicyNft {
  if (!filters(p)) return { maps: [], chains: renderForward(p, undefined) };
  let cls = clsCache.get(p.classification.ranges);
  if (!cls) clsCache.set(p.classification.ranges, (cls = byContent('cls', { type: 'ipv4_addr : mark', interval: true, elements: p.classification.ranges.map((r) => `${ipRange(r.first, r.last)} : ${r.cls}`) })));
  const maps: NftMap[] = [cls];
  const shardChains: string[] = [];
  const names: Names = { cls: cls.name, tcp: emptyStages(), udp: emptyStages(), other: emptyStages(), sctp: emptyStages() };
  const sides = new Map(p.sides.map((x) => [x.cls, x]));
  const chains = new Map<string, Chain>();
  const byText = new Map<string, Chain>();
  const pairEls = pairElements(p);
  const profEls = profileElements(p);
  // SCTP by port only where the compile decides it so (a rule compares SCTP ports); else it is an `other`.
  for (const proto of p.sctp ? ['tcp', 'udp', 'other', 'sctp'] as const : ['tcp', 'udp', 'other'] as const) {
    const { singles, rest, chains: used } = profEls.get(proto) as ProfileElements;
    for (const c of used) { chains.set(c.name, c); byText.set(c.text, c); }
    const x = PREFIX[proto];
    const l4 = proto === 'other' ? `meta l4proto != { ${p.sctp ? 'tcp, udp, sctp' : 'tcp, udp'} } ` : `meta l4proto ${proto} `;
    const stage = (base: string, tag: 'p' | 's' | 'r', els: Keyed[], type: string, prefix: string, rule: (map: string) => string): string[] => {
      const out = stageOf(els, () => renderStage(x, l4, base, tag, els, type, prefix, rule));
      maps.push(...out.maps);
      shardChains.push(...out.shardChains);
      return out.lines;
    };
    const n = names[proto];
    n.prof = stage('prof', 'p', pairEls.get(proto) as Keyed[], 'mark . mark : mark', l4, (m) => `meta mark set meta mark . ct mark map @${m}`);
    if (proto !== 'other') n.singles = stage('singles', 's', singles, 'mark . inet_service : verdict', '', (m) => `meta mark . ${proto} dport vmap @${m}`);
    n.rest = stage('rest', 'r', rest, 'mark : verdict', l4, (m) => `meta mark vmap @${m}`);
    n.sides = sideStages(p, proto, sides, byText, chains, maps);
  }
  const sorted = [...chains.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
  const audit = p.profiles.some((x) => x.segs.some((g) => g.verdict === 'audit')) ? [
    `\tchain ${AUDIT_CHAIN} {`, '\t\tcounter',
    `\t\tlimit rate 20/second burst 40 packets log prefix "weft-audit " group ${AUDIT_LOG_GROUP}`, '\t\taccept', '\t}',
  ] : [];
  return {
    maps: [...maps, ...sorted.flatMap((c) => c.maps)],
    chains: [...audit, ...sorted.flatMap((c) => [`\tchain ${c.name} {`, ...c.lines, '\t}']), ...shardChains, ...renderForward(p, names)],
  };
}

/**
 * Rendering by identity (issue 13): a compile that changed no pair hands back the same pairs array, and
 * one that changed no profile the same profiles array (pairs.ts), so a rule change that touches only side
 * profiles rebuilds neither the pair stages' elements nor their maps' names (hashing 10,000s of elements).
 */
const pairCache = new WeakMap<readonly PairProfiles[], Map<Proto, Keyed[]>>();
/** The class map, per ranges array (an incremental compile whose classes did not move keeps it). */
const clsCache = new WeakMap<CompiledPolicy['classification']['ranges'], NftMap>();
const profileCache = new WeakMap<readonly Profile[], Map<Proto, ProfileElements>>();
const stageCache = new WeakMap<Keyed[], StageOut>();

/** A protocol's profile elements: single ports, rests, and the chains the rests jump to. */
interface ProfileElements { singles: Keyed[]; rest: Keyed[]; chains: Chain[] }
/** What a stage renders to: its maps, its shards' chains, its forward-chain rules. */
interface StageOut { maps: NftMap[]; shardChains: string[]; lines: string[] }

const ALL_PROTOS = ['tcp', 'udp', 'other', 'sctp'] as const;

/** Each protocol's pair-stage elements, in pair order, with the marks a packet looks them up with. */
function pairElements(p: CompiledPolicy): Map<Proto, Keyed[]> {
  let out = pairCache.get(p.pairs);
  if (out) return out;
  const pairs = [...p.pairs].sort((a, b) => a.src - b.src || a.dst - b.dst);
  out = new Map();
  for (const proto of ALL_PROTOS) {
    // Before this stage meta mark holds the source's class and ct mark the destination's: a pair's shard
    // is chosen by whichever of the two spreads the pairs better (ingress rules: the sources; egress: the
    // destinations).
    const prof: Keyed[] = [];
    for (const x of pairs) if (x[proto]) prof.push({ key: x.src, alt: x.dst, e: `${x.src} . ${x.dst} : ${markOf(x[proto])}` });
    out.set(proto, prof);
  }
  pairCache.set(p.pairs, out);
  return out;
}

/** Each protocol's profile elements, in profile order. */
function profileElements(p: CompiledPolicy): Map<Proto, ProfileElements> {
  let out = profileCache.get(p.profiles);
  if (out) return out;
  out = new Map(ALL_PROTOS.map((x) => [x, { singles: [], rest: [], chains: [] }]));
  const byText = new Map<string, Chain>();
  const taken = new Map<string, Chain>();
  for (const prof of p.profiles) {
    const to = out.get(prof.proto) as ProfileElements;
    const q = partsOf(prof, PROFILE_MARK, p.sctp);
    for (const e of q.singles) to.singles.push({ key: prof.id, e }); // not spread: a profile may hold more ports than a call takes arguments
    const mark = markOf(prof.id);
    if (q.verdict !== undefined) {
      if (q.verdict !== 'none') to.rest.push({ key: prof.id, e: `${mark} : ${verdictText(q.verdict)}` });
      continue;
    }
    const known = byText.size;
    const chain = chainOf(prof.proto, q.rest, byText, taken);
    if (byText.size > known) to.chains.push(chain);
    to.rest.push({ key: prof.id, e: `${mark} : jump ${chain.name}` });
  }
  profileCache.set(p.profiles, out);
  return out;
}

function stageOf(els: Keyed[], make: () => StageOut): StageOut {
  let out = stageCache.get(els);
  if (!out) stageCache.set(els, (out = make()));
  return out;
}

/**
 * A stage's forward-chain rule: one map as it always was while the stage is small, else its shards
 * (each a map in a chain of its own) behind a jump by the mark's low bits. Nothing to look up (no pair
 * holds a profile of this protocol, or none has single ports): no rule.
 */
function renderStage(x: string, l4: string, base: string, tag: 'p' | 's' | 'r', els: Keyed[], type: string, prefix: string, rule: (map: string) => string): StageOut {
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
    const m = byContent(`${x}_${tag}${k}`, { type, interval: false, elements: e });
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
interface Keyed { key: number; alt?: number; e: string }

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
const emptyStages = (): ProtoNames => ({ prof: [], singles: [], rest: [], sides: [] });

const SLOT: Record<Proto, 0 | 1 | 2 | 3> = { tcp: 0, udp: 1, other: 2, sctp: 3 };

/**
 * The side stages of a protocol (sides.ts), after its pair stages: the destination's address → its
 * ingress side profile, that profile's single ports and rest (drops only: a port it leaves goes on), then
 * the same for the source's egress. Small maps (the endpoints enforced here, the few distinct side
 * profiles), so one map each. In a tenant whose default is deny every enforced end has an element (its
 * mark, from SIDE_MARK, is how the forward chain's last rules know an end was enforced); else only the
 * ends whose profile drops something.
 */
function sideStages(p: CompiledPolicy, proto: Proto, sides: ReadonlyMap<number, CompiledPolicy['sides'][number]>, byText: Map<string, Chain>, chains: Map<string, Chain>, maps: NftMap[]): string[] {
  const x = PREFIX[proto];
  const slot = SLOT[proto];
  const singles: string[] = [];
  const rest: string[] = [];
  for (const sp of p.sideProfiles) {
    if (sp.proto !== proto) continue;
    const q = partsOf(sp, SIDE_MARK, p.sctp);
    for (const e of q.singles) singles.push(e);
    const mark = hex(SIDE_MARK + sp.id);
    if (q.verdict === undefined) rest.push(`${mark} : jump ${chainOf(proto, q.rest, byText, chains).name}`);
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
interface Names { cls: string; tcp: ProtoNames; udp: ProtoNames; other: ProtoNames; sctp: ProtoNames }
interface ProtoNames { prof: string[]; singles: string[]; rest: string[]; sides: string[] }

/**
 * A map named by its content (`BASE_` and 12 hex digits of its hash): a map the forward chain uses is
 * never changed in place. A change is a new map, the forward chain's rules pointed at it and the old map
 * deleted, in one transaction (table-delta.ts). Flushing and refilling the interval map `cls` in one
 * transaction let connections through on this machine's kernel (6.18): for ~20 ms after the commit, a
 * lookup still found an address's flushed element (its old class) while the pair map already held the
 * new classes, so the pair had no profile and got the tenant's default (denied ports passed; reproduced
 * with bench:policy's transition from 50,000 CIDR rules, one run in ten). A new map holds only its own
 * elements, and rules switch maps atomically.
 */
function byContent(base: string, m: Omit<NftMap, 'name'>): NftMap {
  const h = createHash('sha256').update(m.type);
  for (const e of m.elements) h.update('\n').update(e);
  return { name: `${base}_${h.digest('hex').slice(0, 12)}`, ...m };
}

/**
 * The full function over 0-65535 from a profile's segments (`none` in the gaps: another stage decides),
 * with every decided single-port segment moved into `singles` (as "KEY . PORT : VERDICT", KEY the
 * profile's mark) and its port given to the segment before it, so the rest merges into as few ranges as
 * it can. An undecided single port stays in the rest (a lookup that found it would have to skip the
 * rest, which a verdict map cannot say). Returns the rest's decided segments.
 */
export function splitSingles(segs: readonly Seg[], key: string, singles: string[]): Seg[] {
  const full: Seg[] = [];
  let next = 0;
  for (const s of [...segs].sort((a, b) => a.first - b.first)) {
    if (s.first > next) full.push({ first: next, last: s.first - 1, verdict: 'none' });
    full.push(s);
    next = s.last + 1;
  }
  if (next <= 65535) full.push({ first: next, last: 65535, verdict: 'none' });
  const rest: Seg[] = [];
  for (const s of full) {
    const prev = rest[rest.length - 1];
    if (s.first === s.last && s.verdict !== 'none') {
      // The port takes the verdict of what surrounds it (what follows, at port 0); an exact entry says
      // otherwise where it differs.
      const around = prev?.verdict ?? full[1]?.verdict ?? 'none';
      if (s.verdict !== around) singles.push(`${key} . ${s.first} : ${verdictText(s.verdict)}`);
      if (prev) prev.last = s.last;
      else rest.push({ first: s.first, last: s.last, verdict: around });
    } else if (prev && prev.verdict === s.verdict) prev.last = s.last;
    else rest.push({ ...s });
  }
  return rest.filter((s) => s.verdict !== 'none');
}

/** The one verdict of a profile's rest (`none` when it has none), or undefined when it varies. */
function restVerdict(segs: readonly Seg[], last: number, skipped: number): Decided | undefined {
  if (segs.length === 0) return 'none';
  const covered = segs.reduce((n, s) => n + (s.last - s.first + 1), 0) + skipped;
  return covered === last + 1 && segs.every((s) => s.verdict === segs[0]?.verdict) ? segs[0]?.verdict : undefined;
}

/** A chain shared by every profile with the same remaining verdicts, and the interval map it looks ports up in. */
interface Chain { name: string; lines: string[]; maps: NftMap[]; text: string }

const elementsOf = (segs: readonly Seg[]) => segs.map((x) => `${range(x.first, x.last)} : ${verdictText(x.verdict)}`);

/**
 * Beyond this many ranges a protocol's verdicts go into a named interval map; up to it, one rule per
 * range. nft keeps its sets in lists: 19,000 profiles with a map each loaded in 108 s here (and listed
 * in 101 s), 20,000 chains of plain rules in 6.5 s; 4,000 chains with anonymous vmaps took 4.9 s. The
 * rules a new connection meets in a profile are bounded by this, whatever the number of rules.
 */
export const INLINE_RANGES = 16;

/**
 * The chain of a rest that varies: its ranges as rules (or, past INLINE_RANGES, a lookup in a named
 * interval map). Where nothing matches the chain returns to the forward chain, whose last rule is the
 * tenant's default. Named by its content, so a new profile with a known pattern is only map elements.
 */
function chainOf(proto: Proto, segs: readonly Seg[], byText: Map<string, Chain>, taken: Map<string, Chain>): Chain {
  const x = PREFIX[proto];
  const text = `${x}:${elementsOf(segs).join(',')}`;
  const known = byText.get(text);
  if (known) return known;
  const h = createHash('sha256').update(text).digest('hex');
  let name = '';
  // 64 bits: the name must follow the content alone (a name that came to stand for other content would
  // be flushed and refilled in place); the longer names below are a safety net that never comes up.
  for (let n = 16; !name || taken.has(name); n += 2) name = `pp_${h.slice(0, n)}`;
  const [match, type] = proto === 'other' ? ['meta l4proto', 'inet_proto'] : [`${proto} dport`, 'inet_service'];
  const chain: Chain = { name, lines: [], maps: [], text };
  if (segs.length <= INLINE_RANGES) {
    for (const s of segs) chain.lines.push(`\t\t${match} ${range(s.first, s.last)} ${verdictText(s.verdict)}`);
  } else {
    chain.maps.push({ name: `${name}_${x}`, type: `${type} : verdict`, interval: true, elements: elementsOf(segs) });
    chain.lines.push(`\t\t${match} vmap @${name}_${x}`);
  }
  byText.set(text, chain);
  taken.set(name, chain);
  return chain;
}

function renderForward(p: CompiledPolicy, n: Names | undefined): string[] {
  if (!n && p.fallback === 'accept') return [];
  return [
    '\tchain forward {',
    '\t\ttype filter hook forward priority filter; policy accept;',
    '\t\tct state established,related accept',
    '\t\tct state invalid drop',
    // DNS queries to a gateway are DNATed to the agent on the uplink (169.254.0.0/16): always allowed.
    '\t\tct status dnat ip daddr 169.254.0.0/16 accept comment "dns"',
    ...(n ? [
      `\t\tmeta mark set ip saddr map @${n.cls}`,
      `\t\tct mark set ip daddr map @${n.cls}`,
      // Each protocol: pair → profile (the mark stays the class where the pair has none), then the
      // profile's single ports, then its rest; each stage through the shard its mark's low bits name.
      // Then its side stages: what the ends' rules without a peer drop, where the pair did not decide.
      ...(p.sctp ? ['tcp', 'udp', 'sctp', 'other'] as const : ['tcp', 'udp', 'other'] as const).flatMap((x) => [...n[x].prof, ...n[x].singles, ...n[x].rest, ...n[x].sides]),
      // Neither end's side stage dropped it, and one of them is enforced here (its side mark is set).
      ...(p.fallback === 'drop' ? [`\t\tmeta mark & 0xf0000000 == ${hex(SIDE_MARK)} accept`] : []),
    ] : []),
    `\t\t${p.fallback} comment "tenant default"`,
    '\t}',
  ];
}
