import type { CompiledPolicy, PairProfiles, Profile } from '../policy/index.js';
import type { NftMap } from './table.js';
import { bookOf, byContent, chainOf, hex, ipRange, l4Of, markOf, partsOf, PREFIX, PROFILE_MARK, SIDE_MARK, verdictText, type Chain, type ChainBook, type Proto } from './policy-nft-parts.js';
import { Attached } from '../model/attached.js';

// The stages of a policy's forward chain (policy-nft.ts; each protocol's in its lookup chain, which the
// forward chain jumps to): each protocol's pair stage, its profiles' single ports and rests (one map each,
// or shards), and its side stages.

/** The class map, per ranges array (an incremental compile whose classes did not move keeps it). */
export const clsCache = new Attached<object, NftMap>('class map');

/** What a stage renders to: its maps, its shards' chains, its rules (in its protocol's lookup chain, policy-nft.ts lookupChains). */
export interface StageOut { maps: NftMap[]; shardChains: string[]; lines: string[] }

/** A pair's element per protocol, kept with the pair (an incremental compile keeps unchanged pairs' objects). */
const keyedCache = new Attached<PairProfiles, Partial<Record<Proto, Keyed>>>('pair elements');

export function keyedOf(x: PairProfiles, proto: Proto): Keyed {
  let byProto = keyedCache.get(x);
  if (!byProto) keyedCache.set(x, (byProto = {}));
  return (byProto[proto] ??= { key: x.src, alt: x.dst, e: `${x.src} . ${x.dst} : ${markOf(x[proto])}` });
}

/**
 * One profile's elements, kept with the profile (an unchanged profile is the same object in the next
 * compile), per chain book (its chains are that lineage's) and per SCTP mode (it decides the rest).
 */
export interface Own { sctp: boolean; singles: Keyed[]; rest?: Keyed; chain?: Chain; audit: boolean }
const ownCache = new Attached<ChainBook, Attached<Profile, Own>>('profile elements by book');

export function profileParts(prof: Profile, sctp: boolean, book: ChainBook): Own {
  let byProfile = ownCache.get(book);
  if (!byProfile) ownCache.set(book, (byProfile = new Attached<Profile, Own>('profile elements')));
  let own = byProfile.get(prof);
  if (own?.sctp === sctp) return own;
  const q = partsOf(prof, PROFILE_MARK, sctp);
  const mark = markOf(prof.id);
  const singles = q.singles.map((e, seq) => ({ key: prof.id, seq, e }));
  const audit = prof.segs.some((g) => g.verdict === 'audit');
  if (q.verdict !== undefined) own = q.verdict === 'none' ? { sctp, singles, audit } : { sctp, singles, audit, rest: { key: prof.id, e: `${mark} : ${verdictText(q.verdict)}` } };
  else {
    const chain = chainOf(book, prof.proto, q.rest);
    own = { sctp, singles, audit, rest: { key: prof.id, e: `${mark} : jump ${chain.name}` }, chain };
  }
  byProfile.set(prof, own);
  return own;
}

/** Stage elements in their rendered order: by mark, then the other mark (the pair stage), then as the profile lists them. */
export function byKey(a: Keyed, b: Keyed): number {
  return a.key - b.key || (a.alt ?? 0) - (b.alt ?? 0) || (a.seq ?? 0) - (b.seq ?? 0);
}

const EMPTY_OUT: StageOut = { maps: [], shardChains: [], lines: [] };

/**
 * A stage's elements (one protocol's pairs, single ports or rests), split into shards and patched in
 * place by the elements that came and went: a change rewrites the shards it touches and reads nothing
 * else (issue 13: a change of one pair among 29,000 no longer walks them all). The layout (how many
 * shards, split by which mark) is what a split of every element gives; when a change moves it, or is a
 * large part of the stage, the stage is split again from its own elements (`all`, every element the
 * compile holds, where its shards do not hold them).
 */
export class Stage {
  /** Shards; 0 until the first split. */
  private n = 0;
  private byAlt = false;
  private count = 0;
  private parts: Keyed[][] = [];
  private maps: Array<NftMap | undefined> = [];
  private readonly keyCounts = new Array<number>(SHARDS).fill(0);
  private readonly altCounts = new Array<number>(SHARDS).fill(0);
  out: StageOut = EMPTY_OUT;

  constructor(private readonly x: string, private readonly l4: string, private readonly base: string, private readonly tag: 'p' | 's' | 'r', private readonly type: string, private readonly prefix: string, private readonly rule: (map: string) => string) {}

  update(removed: readonly Keyed[], added: readonly Keyed[], all: () => Keyed[]): void {
    if (this.n > 0 && removed.length === 0 && added.length === 0) return;
    for (const k of removed) this.tally(k, -1);
    for (const k of added) this.tally(k, 1);
    const n = shardsFor(this.count);
    const byAlt = this.tag === 'p' && n > 1 && spread(this.altCounts, n) < spread(this.keyCounts, n);
    // A new layout, or a change that is much of the stage (a small one: a few single ports), is split
    // from the stage's own elements: `all` walks every profile of the policy (~4 ms at 19,000, for a
    // stage of six elements: the udp single ports of a rule without a peer, every such change).
    if (n !== this.n || byAlt !== this.byAlt || 2 * (removed.length + added.length) > this.count) this.split(this.after(removed, added) ?? all());
    else if (!this.patch(removed, added)) this.split(all());
  }

  /** The stage's elements after a change, in order, from its shards; undefined if they do not hold it (then `all`). */
  private after(removed: readonly Keyed[], added: readonly Keyed[]): Keyed[] | undefined {
    if (this.n === 0) return undefined;
    const gone = new Set(removed);
    const out: Keyed[] = [];
    let found = 0;
    for (const part of this.parts) {
      for (const k of part) {
        if (gone.has(k)) found++;
        else out.push(k);
      }
    }
    if (found !== gone.size) return undefined;
    out.push(...added);
    out.sort(byKey);
    for (let i = 1; i < out.length; i++) if (byKey(out[i - 1] as Keyed, out[i] as Keyed) === 0) return undefined;
    return out;
  }

  private tally(k: Keyed, d: 1 | -1): void {
    this.count += d;
    const i = k.key & (SHARDS - 1);
    const j = (k.alt ?? 0) & (SHARDS - 1);
    this.keyCounts[i] = (this.keyCounts[i] as number) + d;
    this.altCounts[j] = (this.altCounts[j] as number) + d;
  }

  private shardOf(k: Keyed): number {
    return (this.byAlt ? k.alt ?? 0 : k.key) & (this.n - 1);
  }

  /** Every element again, in order: the layout follows their count. */
  private split(all: Keyed[]): void {
    this.keyCounts.fill(0);
    this.altCounts.fill(0);
    this.count = 0;
    for (const k of all) this.tally(k, 1);
    this.n = shardsFor(this.count);
    this.byAlt = this.tag === 'p' && this.n > 1 && spread(this.altCounts, this.n) < spread(this.keyCounts, this.n);
    this.parts = Array.from({ length: this.n }, () => []);
    for (const k of all) (this.parts[this.shardOf(k)] as Keyed[]).push(k);
    this.maps = new Array<NftMap | undefined>(this.n).fill(undefined);
    this.render(new Set(this.parts.keys()));
  }

  /** Takes the elements out of and into their shards; false if one to take out is not where it should be. */
  private patch(removed: readonly Keyed[], added: readonly Keyed[]): boolean {
    const dirty = new Set<number>();
    for (const k of removed) {
      const s = this.shardOf(k);
      const part = this.parts[s] as Keyed[];
      const i = lowerBound(part, k);
      if (part[i] !== k) return false;
      part.splice(i, 1);
      dirty.add(s);
    }
    for (const k of added) {
      const s = this.shardOf(k);
      const part = this.parts[s] as Keyed[];
      const i = lowerBound(part, k);
      if (part[i] !== undefined && byKey(part[i] as Keyed, k) === 0) return false;
      part.splice(i, 0, k);
      dirty.add(s);
    }
    this.render(dirty);
    return true;
  }

  /**
   * The stage's maps and rules: one map in its protocol's lookup chain while the stage is small, else its shards
   * (each a map in a chain of its own) behind a jump by the mark's low bits. Only `dirty` shards' maps
   * are made again (named by content: hashing a shard's elements is most of what a change costs here).
   * Nothing to look up: no rule.
   */
  private render(dirty: ReadonlySet<number>): void {
    const { x, base, tag, type, prefix, rule } = this;
    if (this.count === 0) {
      this.out = EMPTY_OUT;
      return;
    }
    if (this.n === 1) {
      const m = byContent(`${x}_${base}`, { type, interval: false, elements: (this.parts[0] as Keyed[]).map((k) => k.e) });
      this.out = { maps: [m], shardChains: [], lines: [`\t\t${prefix}${rule(m.name)}`] };
      return;
    }
    const out: StageOut = { maps: [], shardChains: [], lines: [] };
    const jumps: string[] = [];
    for (let k = 0; k < this.n; k++) {
      const part = this.parts[k] as Keyed[];
      if (part.length === 0) {
        this.maps[k] = undefined;
        continue;
      }
      let m = this.maps[k];
      if (!m || dirty.has(k)) this.maps[k] = m = byContent(`${x}_${tag}${k}`, { type, interval: false, elements: part.map((e) => e.e) });
      out.maps.push(m);
      const chain = `${x}_${tag}${k}`;
      out.shardChains.push(`\tchain ${chain} {`, `\t\t${rule(m.name)}`, '\t}');
      jumps.push(`${k} : jump ${chain}`);
    }
    // A named map (content-named, as every map): the applier flushes a map that jumps before deleting
    // it, which kernels before 6.4 need to let its chains go; an anonymous one in a rule it cannot flush.
    const dispatch = byContent(`${x}_${tag}d`, { type: 'mark : verdict', interval: false, elements: jumps });
    out.maps.push(dispatch);
    out.lines.push(`\t\t${this.l4}${this.byAlt ? 'ct' : 'meta'} mark and ${this.n - 1} vmap @${dispatch.name}`);
    this.out = out;
  }
}

/** Where `k` goes in a part sorted by byKey: the first element not before it. */
function lowerBound(part: readonly Keyed[], k: Keyed): number {
  let lo = 0;
  let hi = part.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (byKey(part[mid] as Keyed, k) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * A large stage's map is split into up to SHARDS maps by the low bits of the mark it is looked up with (the
 * source class for the pair stage, the profile for the others), each in a chain of its own that the
 * protocol's lookup chain jumps to by those bits (one more exact lookup per new connection). A map is named by its
 * content and a change writes it whole (byContent): split, a change rewrites the shards its pairs and
 * profiles fall in, not every element of the stage. A stage of at most ONE_MAP elements stays one map, in
 * the protocol's lookup chain itself, as small tenants' tables always were; a larger one gets shards of ~SHARD_SIZE
 * elements (up to SHARDS × SHARD_SIZE × 2 in a stage, more each beyond). Small shards because a change
 * touches pairs all over the stage: at 50,000 nested rules, a change of a rule without a peer changes
 * ~120-300 pairs' and profiles' elements, spread over most shards; with 64 shards of ~450 it wrote ~900 KB
 * of nft (186 ms to commit, median of 16 such changes offline through weft-nftd), with 512 of ~60 ~170 KB
 * (85 ms). Not smaller: the kernel finds a table's sets by name in a list, so a commit costs more with
 * every set in the table and every set it makes (1,024 shards of ~30: 112 KB, 95 ms). The cost: up to
 * SHARDS chains and maps per stage in the kernel (a 50,000-rule table loads in ~1.5 s instead of ~1.4 s).
 * The pair stage splits by the source's class (meta mark) or the destination's (ct mark), whichever
 * spreads its pairs better.
 */
export const SHARDS = 512;
const SHARD_SIZE = 32;
const ONE_MAP = 512;

/** An element of a stage and the mark a packet looks it up with (`alt`: the pair stage's other mark, ct mark). */
export interface Keyed { key: number; alt?: number; seq?: number; e: string }

/** The largest shard when elements counted by the low bits of a mark (`counts`, SHARDS of them) are split into `n`. */
function spread(counts: readonly number[], n: number): number {
  const shards = new Array<number>(n).fill(0);
  for (let i = 0; i < counts.length; i++) shards[i & (n - 1)] = (shards[i & (n - 1)] as number) + (counts[i] as number);
  return Math.max(...shards);
}
/** How many shards a stage of `elements` gets: a power of two, so the low bits of a mark choose one. */
function shardsFor(elements: number): number {
  if (elements <= ONE_MAP) return 1;
  let n = 2;
  while (n < SHARDS && elements > n * SHARD_SIZE * 2) n *= 2;
  return n;
}
export const emptyStages = (): ProtoNames => ({ highs: [], prof: [], singles: [], rest: [], sides: [] });

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
  const l4 = l4Of(proto, p.sctp);
  const lookups = markLookups(`${x}_s`, proto, l4, singles, rest, maps);
  const out: string[] = [];
  for (const [dir, addr] of [['in', 'daddr'], ['out', 'saddr']] as const) {
    const markOf = (cls: number): string | undefined => {
      const id = sides.get(cls)?.[dir][slot];
      return id === undefined || (id === 0 && p.fallback === 'accept') ? undefined : hex(SIDE_MARK + id);
    };
    const els: string[] = [];
    for (const r of classRanges(sided, p, sides)) {
      const mark = markOf(r.cls);
      if (mark !== undefined) els.push(`${ipRange(r.first, r.last)} : ${mark}`);
    }
    // Dual stack: an endpoint's IPv6 address takes the side of its IPv4 address's class.
    const els6 = p.v6.flatMap((v) => { const mark = markOf(v.cls); return mark === undefined ? [] : [`${v.addr} : ${mark}`]; });
    if (els.length === 0 && els6.length === 0) continue;
    if (els.length > 0) {
      const m = byContent(`${x}_${dir}`, { type: 'ipv4_addr : mark', interval: true, elements: els });
      maps.push(m);
      out.push(`\t\t${l4}meta mark set ip ${addr} map @${m.name}`);
    }
    if (els6.length > 0) {
      const m = byContent(`${x}_${dir}6`, { type: 'ipv6_addr : mark', interval: false, elements: els6 });
      maps.push(m);
      out.push(`\t\t${l4}meta mark set ip6 ${addr} map @${m.name}`);
    }
    out.push(...lookups);
  }
  return out;
}

/**
 * A side or high stage's lookups by the mark its address map set: its profiles' single ports
 * (`BASEs`, not for `other`) and their rests (`BASEr`), each one small map.
 */
export function markLookups(base: string, proto: Proto, l4: string, singles: readonly string[], rest: readonly string[], maps: NftMap[]): string[] {
  const out: string[] = [];
  if (singles.length > 0) {
    const m = byContent(`${base}s`, { type: 'mark . inet_service : verdict', interval: false, elements: [...singles] });
    maps.push(m);
    out.push(`\t\tmeta mark . ${proto} dport vmap @${m.name}`);
  }
  if (rest.length > 0) {
    const m = byContent(`${base}r`, { type: 'mark : verdict', interval: false, elements: [...rest] });
    maps.push(m);
    out.push(`\t\t${l4}meta mark vmap @${m.name}`);
  }
  return out;
}

type Ranges = CompiledPolicy['classification']['ranges'];
/** The last `classRanges` of a ranges array, by the classes asked for. */
export type RangesCache = Attached<Ranges, { key: string; ranges: Ranges }>;
export const rangesCache = (what: string): RangesCache => new Attached(what);

/**
 * The address ranges of some classes (the endpoints enforced here: those with side profiles, those with
 * high profiles), in address order: read from every range (52,000 at 50,000 nested rules) once per ranges
 * array and set of classes, not once per protocol and direction. A cache per kind of question: each keeps
 * only its last answer.
 */
export function classRanges(cache: RangesCache, p: CompiledPolicy, classes: ReadonlyMap<number, unknown> | ReadonlySet<number>): Ranges {
  const key = [...classes.keys()].join(',');
  const last = cache.get(p.classification.ranges);
  if (last?.key === key) return last.ranges;
  const ranges = p.classification.ranges.filter((r) => classes.has(r.cls));
  cache.set(p.classification.ranges, { key, ranges });
  return ranges;
}
const sided = rangesCache('side ranges');

/** What the policy looks up per protocol: the class map, and per stage its rule (a map, or a jump to its shards), in the protocol's lookup chain. */
/** `cls`, `cls6`, `cls6r`: the source's role by its address; `clsd`, `cls6d`, `cls6rd`: the destination's (policy/roles.ts). */
export interface Names { cls: string; clsd: string; cls6?: string; cls6d?: string; cls6r?: string; cls6rd?: string; tcp: ProtoNames; udp: ProtoNames; other: ProtoNames; sctp: ProtoNames }
export interface ProtoNames { highs: string[]; prof: string[]; singles: string[]; rest: string[]; sides: string[] }

