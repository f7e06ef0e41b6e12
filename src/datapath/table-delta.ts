import { chainIndex, mapBody, type ChainSet, type LeftSince, type NftMap, type NftTable, type SharedChain } from './table.js';
import { Attached } from '../model/attached.js';
import { elementLines } from './nft-elements.js';

/**
 * The `nft -f` script that turns `prev` (what the kernel holds) into `next`, touching only the maps and
 * chains that differ, in one transaction: '' when nothing differs, undefined when only a whole-table
 * replace will do (another table, a map's type or a base chain's hook changed, a counter changed).
 *
 * A map that comes under a new name (the policy's maps are named by their content, policy-nft.ts) is
 * written beside the old one, the chains are pointed at it and the old one deleted, all in one
 * transaction. A changed map under its old name is flushed and written whole, never patched with
 * `add element`/`delete element`: for any element command nft 1.0.6 first fetches every element of
 * every set in the table (measured: adding one element took 1.2 s beside a 50,000-element map, 15 s in
 * a table of a million elements), while flushing and refilling a small map takes ~6 ms whatever else
 * the table holds. Sets (no values) in a small table are the exception: patched by element commands
 * (ELEMENT_COMMANDS_MAX). Maps and chains are written as `add map`/`add chain NAME { ... }` commands,
 * never in a `table { }` block and never by `add rule`: for either nft 1.0.6 first lists every chain of
 * the table (~2.5 µs a chain: 40 ms of a commit beside 14,000 chains), for `add chain` it lists only
 * the sets, and only when a rule names one; a map a written chain names that the script does not write
 * is declared again by its header (a no-op for the kernel) so that nft knows it. Order: new chains exist
 * (empty) before map elements jump to them, maps are filled before chains refer to them, and chains and
 * maps go only after nothing refers to them any more.
 */
export function diffTables(prev: NftTable, next: NftTable, opts: DiffOptions = {}): Delta | undefined {
  if (prev.family !== next.family || prev.name !== next.name) return undefined;
  const at = `${next.family} ${next.name}`;
  // What an earlier change left in the kernel unused (keepGone) counts as there, and goes unless used again.
  const leftMaps = prev.leftover?.maps ?? [];
  const leftShared = prev.leftover?.shared ?? [];
  // By name: the live maps' index is kept with their array (next's now is prev's at the next change).
  const prevMaps = byName(prev.maps);
  const leftByName = leftMaps.length ? new Map(leftMaps.map((m) => [m.name, m])) : NO_MAPS;
  // A leftover of a live map's name wins, as it did in one map of both (the two never share a name).
  const oldMap = (name: string) => leftByName.get(name) ?? prevMaps.get(name);
  const newMaps = byName(next.maps);
  // Every resync diffs an unchanged table: the same lines (the same strings, from the render cache)
  // compare in microseconds, and only changed chains are worth parsing.
  const chainsSame = same(prev.chains, next.chains);
  const oldLive = chainsSame ? NO_BLOCKS : blocksOf(prev.chains);
  const oldLeft = prev.leftover ? blocksOf(prev.leftover.chains) : NO_BLOCKS;
  const newBlocks = chainsSame ? NO_BLOCKS : blocksOf(next.chains, oldLive);
  if (!blocksCompatible(oldLive, newBlocks)) return undefined;
  const oldBlock = (key: string) => oldLive.get(key) ?? oldLeft.get(key);
  const shared = sharedDelta(prev.shared, next.shared, leftShared);
  const created: string[] = [];
  const flushed: string[] = [];
  const written: string[] = [];
  const removed: string[] = [];
  const writtenMaps = new Set<string>();
  const elementParts: string[] = [];
  const chainLines: string[] = [];
  let structural = false;
  // Element commands make nft fetch every element of the table, what an earlier change left included.
  let elements = elementsIn(prev.maps) + elementsIn(leftMaps) + (prev.shared?.elements ?? 0);
  for (const c of leftShared) elements += elementsIn(c.maps);
  const small = elements <= ELEMENT_COMMANDS_MAX;
  const writeMap = (m: NftMap, o: NftMap | undefined): void | 'replace' => {
    if (o && (o.type !== m.type || o.interval !== m.interval || (o.set ?? false) !== (m.set ?? false))) return 'replace';
    if (o && same(o.elements, m.elements)) return;
    const ops = o && small ? elementCommands(at, o, m) : undefined;
    if (ops) {
      flushed.push(...ops);
      return;
    }
    if (o) flushed.push(`flush ${kindOf(m)} ${at} ${m.name}`);
    structural ||= !o;
    // A flushed map left empty needs nothing more.
    if (!o || m.elements.length > 0) {
      const lines = opts.elements && m.elements.length > 0 ? elementLines(next.family, next.name, m) : undefined;
      written.push(`add ${kindOf(m)} ${at} ${m.name} {`, ...mapBody(lines ? { ...m, elements: [] } : m), '}');
      if (lines) elementParts.push(lines);
      writtenMaps.add(m.name);
    }
  };
  const writeChain = (name: string, head: readonly string[], lines: readonly string[], o: { head: readonly string[]; lines: readonly string[] } | undefined): void | 'replace' => {
    if (o && !same(o.head, head)) return 'replace';
    if (o && same(o.lines, lines)) return;
    structural = true;
    if (o) flushed.push(`flush chain ${at} ${name}`);
    else created.push(`add chain ${at} ${name}${head.length ? ` { ${head.map((l) => l.trim()).join(' ')} }` : ''}`);
    chainLines.push(`add chain ${at} ${name} {`, ...lines.slice(1, -1), '}');
  };
  for (const m of next.maps) if (writeMap(m, oldMap(m.name)) === 'replace') return undefined;
  for (const c of shared.added) {
    const o = shared.before(c.name);
    const old = new Map((o?.maps ?? []).map((m) => [m.name, m]));
    for (const m of c.maps) if (writeMap(m, old.get(m.name) ?? oldMap(m.name)) === 'replace') return undefined;
    if (writeChain(c.name, NO_HEAD, c.block, o && { head: NO_HEAD, lines: o.block }) === 'replace') return undefined;
  }
  for (const [key, b] of newBlocks) if (writeChain(b.name, b.head, b.lines, oldBlock(key)) === 'replace') return undefined;
  // The maps and sets those chains look up that this script does not write, declared again (header only).
  const sharedMaps = new Map<string, NftMap>();
  for (const c of shared.added) for (const m of c.maps) sharedMaps.set(m.name, m);
  const named = (name: string) => sharedMaps.get(name) ?? newMaps.get(name);
  const declared = new Set<string>();
  for (const line of chainLines) {
    for (const [, name] of line.matchAll(/@([A-Za-z0-9_.-]+)/g)) {
      const m = named(name as string);
      if (!m || writtenMaps.has(m.name) || declared.has(m.name)) continue;
      declared.add(m.name);
      written.push(`add ${kindOf(m)} ${at} ${m.name} {`, ...mapBody({ ...m, elements: [] }), '}');
    }
  }
  // Not as arguments: a delta may write hundreds of thousands of lines.
  for (const l of chainLines) written.push(l);
  const gone: Block[] = [];
  for (const from of [oldLive, oldLeft]) for (const [key, o] of from) if (!newBlocks.has(key)) gone.push(o);
  const goneMaps: NftMap[] = [];
  for (const from of [prev.maps, leftMaps]) for (const m of from) if (!named(m.name)) goneMaps.push(m);
  const goneShared = shared.removed;
  structural ||= shared.removed.length > 0;
  // Removals go last: as script lines, or as lines for the helper (no nft work, and no listing of every
  // chain, which a delete makes nft do).
  const removals = (rs: readonly Removal[]) => {
    if (rs.length === 0) return;
    structural = true;
    if (opts.elements) elementParts.push(`${rs.map((r) => `${r.verb} ${r.kind} ${next.family} ${next.name} ${r.name}`).join('\n')}\n`);
    else for (const r of rs) removed.push(`${r.verb} ${r.kind} ${at} ${r.name}`);
  };
  const done = (table: NftTable, kept: number): Delta => {
    const all = [...created, ...flushed, ...written, ...removed];
    return { script: all.length ? `${all.join('\n')}\n` : '', elements: elementParts.join(''), structural, table, kept };
  };
  // A base chain stays on its hook while it exists, filtering: one that goes is always deleted now.
  if ((opts.keepGone || opts.sweep) && gone.every((b) => b.head.length === 0)) {
    // Left in the kernel, unreferenced by anything live, each with the change it went at: the oldest go
    // once more than the bounds are left (the table holds next plus what stays).
    const epoch = (prev.leftover?.epoch ?? 0) + 1;
    const before = prev.leftover?.since;
    // By kind, then by name: the names are the objects' own strings (their hashes kept), where keys
    // built as `kind name` were made and hashed anew several times per object and change (~2,000 objects
    // at the bounds: most of a change's diff, session 62).
    const since: LeftSince = { chains: new Map(), maps: new Map(), shared: new Map() };
    for (const b of gone) since.chains.set(b.name, before?.chains.get(b.name) ?? epoch);
    for (const m of goneMaps) since.maps.set(m.name, before?.maps.get(m.name) ?? epoch);
    for (const c of goneShared) since.shared.set(c.name, before?.shared.get(c.name) ?? epoch);
    const sizes = sizesOf(since, gone, goneMaps, goneShared);
    const bounded = keptFrom(sizes, opts.keep ?? KEEP_MAX);
    // A sweep takes the oldest, up to its share; the bounds may take more (the later of the two cuts).
    const cut = opts.sweep && !opts.keepGone ? Math.max(bounded, sweptTo(sizes, opts.sweep)) : bounded;
    const chains = split(gone, since.chains, cut);
    const maps = split(goneMaps, since.maps, cut);
    const sharedGo = split(goneShared, since.shared, cut);
    const keep = { chains: chains.stay, maps: maps.stay, shared: sharedGo.stay };
    removals(removalsOf(chains.go, maps.go, sharedGo.go));
    const left = keep.chains.length + keep.maps.length + keep.shared.reduce((n, c) => n + 1 + c.maps.length, 0);
    for (const [at, went] of [[since.chains, chains.go], [since.maps, maps.go], [since.shared, sharedGo.go]] as const) for (const o of went) at.delete(o.name);
    return done(left === 0 ? next : { ...next, leftover: { maps: keep.maps, chains: keep.chains.flatMap((b) => b.lines), shared: keep.shared, epoch, since } }, left);
  }
  removals(removalsOf(gone, goneMaps, goneShared));
  return done(next, 0);
}

/** One command of what goes: `flush|delete chain|map|set NAME`. */
interface Removal { verb: 'flush' | 'delete'; kind: 'chain' | 'map' | 'set'; name: string }

/**
 * Chains that go are emptied first (their rules may look maps up), then maps go, then the chains. A map
 * whose elements jump to chains is flushed before it is deleted: kernels before 6.4 (and Debian 12's 6.1
 * before the backport) release those jumps only on a flush, and refuse to delete the chains otherwise. It
 * is no longer looked up by then (its chains were rewritten before).
 */
function removalsOf(chains: readonly Block[], maps: readonly NftMap[], shared: readonly SharedChain[]): Removal[] {
  const out: Removal[] = [];
  for (const b of chains) out.push({ verb: 'flush', kind: 'chain', name: b.name });
  for (const c of shared) out.push({ verb: 'flush', kind: 'chain', name: c.name });
  for (const m of [...maps, ...shared.flatMap((c) => c.maps)]) {
    if (m.elements.some((e) => / (?:jump|goto) /.test(e))) out.push({ verb: 'flush', kind: kindOf(m), name: m.name });
    out.push({ verb: 'delete', kind: kindOf(m), name: m.name });
  }
  for (const b of chains) out.push({ verb: 'delete', kind: 'chain', name: b.name });
  for (const c of shared) out.push({ verb: 'delete', kind: 'chain', name: c.name });
  return out;
}

/** Per change (its epoch), how many objects went at it and how many elements they hold. */
type Sizes = ReadonlyMap<number, { objects: number; elements: number }>;

function sizesOf(since: LeftSince, chains: readonly Block[], maps: readonly NftMap[], shared: readonly SharedChain[]): Sizes {
  const per = new Map<number, { objects: number; elements: number }>();
  const add = (e: number, objects: number, elements: number) => {
    let t = per.get(e);
    if (!t) per.set(e, (t = { objects: 0, elements: 0 }));
    t.objects += objects;
    t.elements += elements;
  };
  for (const b of chains) add(since.chains.get(b.name) as number, 1, 0);
  for (const m of maps) add(since.maps.get(m.name) as number, 1, m.elements.length);
  for (const c of shared) add(since.shared.get(c.name) as number, 1 + c.maps.length, elementsIn(c.maps));
  return per;
}

/** What went at `cut` or later stays; what went before goes. */
function split<T extends { name: string }>(objects: readonly T[], since: ReadonlyMap<string, number>, cut: number): { stay: T[]; go: T[] } {
  const stay: T[] = [];
  const go: T[] = [];
  for (const o of objects) ((since.get(o.name) as number) >= cut ? stay : go).push(o);
  return { stay, go };
}

const NO_MAPS: ReadonlyMap<string, NftMap> = new Map();
const elementCount = new Attached<readonly NftMap[], { n: number }>('elements of maps');

/** How many elements the maps hold, kept with the array. */
function elementsIn(maps: readonly NftMap[]): number {
  let c = elementCount.get(maps);
  if (!c) elementCount.set(maps, (c = { n: maps.reduce((n, m) => n + m.elements.length, 0) }));
  return c.n;
}

/**
 * Whole changes' leftovers taken in order (the oldest first, or the newest first) while they fit in
 * `bound` (objects and their elements): `last` is the last change taken (Infinity: none), `next` the first
 * left (Infinity: none). With `oneAtLeast` the first change is taken whatever its size. Whole changes
 * only: within one change the order of its deletions would matter.
 */
function fit(per: Sizes, bound: Bounds, oldestFirst: boolean, oneAtLeast: boolean): { last: number; next: number } {
  let objects = 0;
  let elements = 0;
  let last = Infinity;
  for (const e of [...per.keys()].sort((a, b) => (oldestFirst ? a - b : b - a))) {
    const t = per.get(e) as { objects: number; elements: number };
    objects += t.objects;
    elements += t.elements;
    if ((objects > bound.objects || elements > bound.elements) && !(oneAtLeast && last === Infinity)) return { last, next: e };
    last = e;
  }
  return { last, next: Infinity };
}

/**
 * The oldest change whose leftovers stay: the newest changes' leftovers, within the bounds; what went
 * before goes now. What an object refers to went no earlier than it (it was in use while the object
 * was), so the oldest go first without breaking a reference.
 */
const keptFrom = (per: Sizes, bound: Bounds): number => fit(per, bound, false, false).last;

/**
 * A sweep's share: the oldest changes' leftovers, as many whole changes as fit in `bound` (the oldest
 * one's at least); returns the first change whose leftovers stay (Infinity: none).
 */
const sweptTo = (per: Sizes, bound: Bounds): number => fit(per, bound, true, true).next;

const NO_HEAD: readonly string[] = [];

/** How a table's shared chains change: those to write (new, or changed under their name), those that go, and what stood under a name before. */
interface SharedDelta {
  added: readonly SharedChain[];
  removed: readonly SharedChain[];
  before: (name: string) => SharedChain | undefined;
}

/**
 * The shared chains that differ between two sets, in O(change) when `next` was made from `prev` (its
 * patch names `prev`), else by name. What a change left unused (`left`) is there too: a chain that
 * comes back is found there, and one no longer used stays gone unless the set holds it again.
 */
function sharedDelta(prev: ChainSet | undefined, next: ChainSet | undefined, left: readonly SharedChain[]): SharedDelta {
  const leftBy = new Map(left.map((c) => [c.name, c]));
  const stillLeft = (inNext: (name: string) => boolean) => left.filter((c) => !inNext(c.name));
  if (prev === next) return { added: NO_CHAINS, removed: stillLeft((n) => has(next, n)), before: (n) => leftBy.get(n) };
  if (next?.patch && next.patch.base === (prev?.id ?? 0)) {
    const { added, removed } = next.patch;
    return { added, removed: [...removed, ...stillLeft((n) => has(next, n))], before: (n) => leftBy.get(n) };
  }
  const was = byName(prev?.chains ?? NO_CHAINS);
  const now = byName(next?.chains ?? NO_CHAINS);
  const added = (next?.chains ?? NO_CHAINS).filter((c) => (was.get(c.name) ?? leftBy.get(c.name)) !== c);
  const removed = [...(prev?.chains ?? NO_CHAINS), ...left].filter((c) => !now.has(c.name));
  return { added, removed, before: (n) => was.get(n) ?? leftBy.get(n) };
}

const NO_CHAINS: readonly SharedChain[] = [];
const nameIndex = new Attached<readonly { name: string }[], ReadonlyMap<string, { name: string }>>('by name');

/** Objects by name (a table's maps, a set's chains), kept with their array: a table is diffed as next, then as prev. */
function byName<T extends { name: string }>(list: readonly T[]): ReadonlyMap<string, T> {
  let out = nameIndex.get(list);
  if (!out) nameIndex.set(list, (out = new Map(list.map((o) => [o.name, o]))));
  return out as ReadonlyMap<string, T>;
}

/** Whether a set holds a chain of that name. */
function has(set: ChainSet | undefined, name: string): boolean {
  const cs = set?.chains ?? NO_CHAINS;
  return cs[chainIndex(cs, name)]?.name === name;
}

export interface DiffOptions {
  /** Changes may leave chains and maps nothing uses in the kernel (see KEEP_MAX). */
  keepGone?: boolean;
  /** With keepGone or sweep, how much may stay (KEEP_MAX; tests make it small). */
  keep?: Bounds;
  /**
   * Without keepGone (a full pass): what earlier changes left goes, but at most this much of it in this
   * delta, the oldest first (whole changes, at least one); the rest stays for the next. What this delta
   * itself leaves unused stays too, as a change's would. Absent: everything unused goes; so it does, share
   * or not, when a base chain goes (it must stop filtering now, and what refers to it goes with it).
   */
  sweep?: Bounds;
  /**
   * The committer writes lines of its own (weft-nftd, linux/nftd-elements.c), in the same transaction,
   * after the script's commands: a map written whole is declared in the script without its elements,
   * which go in `elements`, and what goes (flush, delete) goes there too. Maps whose type nft-elements.ts
   * does not encode stay whole in the script.
   */
  elements?: boolean;
}

export interface Delta {
  script: string;
  /** With the `elements` option, the helper's lines: the elements of the maps the script declares (nft-elements.ts), then what goes; '' if none. */
  elements: string;
  /** Chains or maps come or go (a listing of the table's objects changes). */
  structural: boolean;
  /** What the table holds once the script is committed: `next`, or with keepGone, `next` and what stays of `prev`. */
  table: NftTable;
  /** How many chains and maps no longer used stay in the table (keepGone, or what a sweep left). */
  kept: number;
}

/**
 * With keepGone, chains and maps nothing uses any more may stay until a later delta without it (the
 * agent's next full pass), base chains excepted (one on a hook filters whether anything refers to it or
 * not: a tenant whose last rule goes loses its forward chain, which must stop filtering now). Named by
 * content, a kept map or chain that comes back (a rule toggled back) is used again as it is. Kept at most
 * `objects` of them, holding at most `elements`; past either, those that went longest ago go, in the
 * change that passed the bound.
 */
export interface Bounds { objects: number; elements: number }

// 256 objects were reached every ~50 changes in a stream of changes at 50,000 rules (~5 a change), and
// that change then carried the sweep: 27 KB, 170-180 ms of commit against ~25 (bench:policy, session 38).
// 2,048 holds a minute of such changes (the full pass sweeps what is a minute old). Until session 42 a
// change past a bound swept everything kept (bench:policy's new-port column: 50,000 elements every ~10
// changes, 120-135 ms commits against ~30); now only the oldest go, a change's worth at a time.
export const KEEP_MAX: Bounds = { objects: 2_048, elements: 50_000 };
export const KEEP_MAX_OBJECTS = KEEP_MAX.objects;

interface Block {
  kind: string;
  name: string;
  /** A base chain's `type ... hook ...; policy ...;` line. */
  head: string[];
  /** Every line, `\tKIND NAME {` to `\t}`. */
  lines: string[];
}

const kindOf = (m: NftMap) => (m.set ? 'set' : 'map');

/**
 * Up to this many elements in the whole table, a set changes by `add element`/`delete element` (nft
 * 1.0.6 fetches every element of the table for those, affordable in a small table) instead of a flush
 * and refill of every element: a tenant's guard set with 5,000 endpoints was rewritten whole on each
 * ADD.
 */
export const ELEMENT_COMMANDS_MAX = 20_000;

/**
 * The element commands that turn set `o` into `m`, or undefined where a flush and refill is the way:
 * maps (a changed value would be the same key deleted and added in one transaction) and interval sets
 * keep that; and so does a set that changes more than it keeps.
 */
function elementCommands(at: string, o: NftMap, m: NftMap): string[] | undefined {
  if (!m.set || m.interval) return undefined;
  const was = new Set(o.elements);
  const now = new Set(m.elements);
  const added = m.elements.filter((e) => !was.has(e));
  const gone = o.elements.filter((e) => !now.has(e));
  if (added.length + gone.length > m.elements.length) return undefined;
  return [
    ...(gone.length ? [`delete element ${at} ${m.name} { ${gone.join(', ')} }`] : []),
    ...(added.length ? [`add element ${at} ${m.name} { ${added.join(', ')} }`] : []),
  ];
}

function same(a: readonly string[], b: readonly string[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

const NO_BLOCKS: ReadonlyMap<string, Block> = new Map();

/** Whether `a` is `b`'s lines from `from` up to `to`. */
function sameAt(a: readonly string[], b: readonly string[], from: number, to: number): boolean {
  if (a.length !== to - from) return false;
  for (let k = 0; k < a.length; k++) if (a[k] !== b[from + k]) return false;
  return true;
}

/** Blocks by the chains array they were read from: a table diffed twice (as next, then as prev) is read once. */
const blockCache = new Attached<readonly string[], Map<string, Block>>('blocks');

/**
 * The table's chains (and named objects such as counters) as written: `\tKIND NAME {`, lines, `\t}`.
 * A block whose lines are those of the same block in `like` (the last table's) is that block: a change
 * rewrites a few chains of ~15,000, and the others' copies lived until the next change (promoted, ~0.5 MB
 * a change at 50,000 rules, hastening the next major collection).
 */
export function blocksOf(lines: readonly string[], like: ReadonlyMap<string, Block> = NO_BLOCKS): ReadonlyMap<string, Block> {
  const cached = blockCache.get(lines);
  if (cached) return cached;
  const out = new Map<string, Block>();
  for (let i = 0; i < lines.length;) {
    const first = lines[i] as string;
    const m = /^\t(\S+) (\S+) \{$/.exec(first);
    if (!m) throw new Error(`an nft table's chains start with "\\tKIND NAME {", not ${JSON.stringify(first)}`);
    let end = i + 1;
    const head: string[] = [];
    for (; end < lines.length && lines[end] !== '\t}'; end++) {
      const l = lines[end] as string;
      if (l.startsWith('\t\ttype ') && /^\t\ttype \S+ hook /.test(l)) head.push(l);
    }
    if (end >= lines.length) throw new Error(`an nft table's ${m[1]} ${m[2]} is not closed`);
    // Keyed by that first line: the render's own string, whose hash V8 keeps (a `kind name` key was
    // made and hashed anew for each of a table's ~700 blocks at every change).
    const key = first;
    const o = like.get(key);
    out.set(key, o && sameAt(o.lines, lines, i, end + 1) ? o : { kind: m[1] as string, name: m[2] as string, head, lines: lines.slice(i, end + 1) });
    i = end + 1;
  }
  blockCache.set(lines, out);
  return out;
}

/** Only chains change in place, and only while their hook stays: anything else is a replace. */
function blocksCompatible(prev: ReadonlyMap<string, Block>, next: ReadonlyMap<string, Block>): boolean {
  for (const [key, b] of next) {
    const o = prev.get(key);
    if (b.kind !== 'chain' && (!o || !same(o.lines, b.lines))) return false;
    if (o && !same(o.head, b.head)) return false;
  }
  for (const [key, o] of prev) if (o.kind !== 'chain' && !next.has(key)) return false;
  return true;
}
