import { mapBody, type NftMap, type NftTable } from './table.js';

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
 * (ELEMENT_COMMANDS_MAX). Order: new chains exist
 * (empty) before map elements jump to them, maps are filled before chains refer to them, and chains and
 * maps go only after nothing refers to them any more.
 */
export function diffTables(prev: NftTable, next: NftTable): { script: string; structural: boolean } | undefined {
  if (prev.family !== next.family || prev.name !== next.name) return undefined;
  const at = `${next.family} ${next.name}`;
  const oldMaps = new Map(prev.maps.map((m) => [m.name, m]));
  const newMaps = new Set(next.maps.map((m) => m.name));
  // Every resync diffs an unchanged table: the same lines (the same strings, from the render cache)
  // compare in microseconds, and only changed chains are worth parsing.
  const chainsSame = same(prev.chains, next.chains);
  const oldBlocks = chainsSame ? new Map<string, Block>() : blocksOf(prev.chains);
  const newBlocks = chainsSame ? new Map<string, Block>() : blocksOf(next.chains);
  if (!blocksCompatible(oldBlocks, newBlocks)) return undefined;
  const created: string[] = [];
  const flushed: string[] = [];
  const written: string[] = [];
  const removed: string[] = [];
  let structural = false;
  const small = prev.maps.reduce((n, m) => n + m.elements.length, 0) <= ELEMENT_COMMANDS_MAX;
  for (const m of next.maps) {
    const o = oldMaps.get(m.name);
    if (o && (o.type !== m.type || o.interval !== m.interval || (o.set ?? false) !== (m.set ?? false))) return undefined;
    if (o && same(o.elements, m.elements)) continue;
    const ops = o && small ? elementCommands(at, o, m) : undefined;
    if (ops) {
      flushed.push(...ops);
      continue;
    }
    if (o) flushed.push(`flush ${kindOf(m)} ${at} ${m.name}`);
    structural ||= !o;
    // A flushed map left empty needs nothing more.
    if (!o || m.elements.length > 0) written.push(`\t${kindOf(m)} ${m.name} {`, ...mapBody(m), '\t}');
  }
  for (const [key, b] of newBlocks) {
    const o = oldBlocks.get(key);
    if (o && same(o.lines, b.lines)) continue;
    structural = true;
    if (o) flushed.push(`flush chain ${at} ${b.name}`);
    else created.push(`add chain ${at} ${b.name}${b.head.length ? ` { ${b.head.map((l) => l.trim()).join(' ')} }` : ''}`);
    written.push(...b.lines);
  }
  // Chains that go are emptied first (their rules may look maps up), then maps go, then the chains. A
  // map whose elements jump to chains is flushed before it is deleted: kernels before 6.4 (and Debian
  // 12's 6.1 before the backport) release those jumps only on a flush, and refuse to delete the chains
  // otherwise. It is no longer looked up by then (its chains were rewritten above).
  const goneChains = [...oldBlocks].filter(([key]) => !newBlocks.has(key)).map(([, o]) => o.name);
  for (const name of goneChains) removed.push(`flush chain ${at} ${name}`);
  for (const m of prev.maps) {
    if (newMaps.has(m.name)) continue;
    if (m.elements.some((e) => / (?:jump|goto) /.test(e))) removed.push(`flush ${kindOf(m)} ${at} ${m.name}`);
    removed.push(`delete ${kindOf(m)} ${at} ${m.name}`);
  }
  for (const name of goneChains) removed.push(`delete chain ${at} ${name}`);
  structural ||= removed.length > 0;
  const body = written.length ? [`table ${at} {`, ...written, '}'] : [];
  const all = [...created, ...flushed, ...body, ...removed];
  return { script: all.length ? `${all.join('\n')}\n` : '', structural };
}

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

/** The table's chains (and named objects such as counters) as written: `\tKIND NAME {`, lines, `\t}`. */
export function blocksOf(lines: readonly string[]): Map<string, Block> {
  const out = new Map<string, Block>();
  let cur: Block | undefined;
  for (const line of lines) {
    if (cur === undefined) {
      const m = /^\t(\S+) (\S+) \{$/.exec(line);
      if (!m) throw new Error(`an nft table's chains start with "\\tKIND NAME {", not ${JSON.stringify(line)}`);
      cur = { kind: m[1] as string, name: m[2] as string, head: [], lines: [line] };
      continue;
    }
    cur.lines.push(line);
    if (line === '\t}') {
      out.set(`${cur.kind} ${cur.name}`, cur);
      cur = undefined;
    } else if (/^\t\ttype \S+ hook /.test(line)) {
      cur.head.push(line);
    }
  }
  if (cur) throw new Error(`an nft table's ${cur.kind} ${cur.name} is not closed`);
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
