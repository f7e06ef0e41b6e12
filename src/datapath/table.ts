/**
 * An nft table as structure: its declarations (chains and map headers) and the elements of its maps.
 * Kept apart so a change that only adds or removes map elements (a new endpoint, a changed rule) is
 * applied as element deltas: replacing a table whose interval maps hold thousands of elements costs
 * ~850 ms of `nft -f` here, adding one element ~6 ms.
 */
export interface NftMap {
  name: string;
  /** `type A : B` (or `typeof ...`) for a map; a set has no value part and `set: true`. */
  type: string;
  set?: boolean;
  /** Interval maps hold ranges (rbtree for one field); others are exact-match hashes. */
  interval: boolean;
  /** "KEY : VALUE" strings (just "KEY" in a set), as nft writes them. */
  elements: string[];
}

export interface NftTable {
  family: string;
  name: string;
  maps: NftMap[];
  /** Chains, verbatim (tab-indented lines). */
  chains: string[];
  /** Tables this one replaces (an older layout): a whole-table replace deletes them in the same transaction. */
  supersedes?: ReadonlyArray<{ family: string; name: string }>;
}

export function tableText(t: NftTable): string {
  const maps = t.maps.flatMap((m) => [
    `\t${m.set ? 'set' : 'map'} ${m.name} {`, `\t\t${m.type.startsWith('typeof ') ? '' : 'type '}${m.type}`, ...(m.interval ? ['\t\tflags interval'] : []),
    ...(m.elements.length ? [`\t\telements = { ${m.elements.join(',\n\t\t\t')} }`] : []), '\t}',
  ]);
  const old = (t.supersedes ?? []).flatMap((o) => [`add table ${o.family} ${o.name}`, `delete table ${o.family} ${o.name}`]);
  return [...old, `add table ${t.family} ${t.name}`, `delete table ${t.family} ${t.name}`, `table ${t.family} ${t.name} {`, ...maps, ...t.chains, '}', ''].join('\n');
}

/** Everything but the elements: when two tables share it, element deltas turn one into the other. */
export function tableShape(t: NftTable): string {
  return JSON.stringify([t.family, t.name, t.maps.map((m) => [m.name, m.type, m.interval, m.set === true]), t.chains]);
}

const keyOf = (m: NftMap, element: string) => (m.set ? element : element.slice(0, element.lastIndexOf(' : ')));

/**
 * Beyond this many changed elements a whole-table replace is cheaper: deleting ~20,000 interval elements
 * in one transaction ran for ~30 s here (and was then refused), while replacing a table of 10,000 rules
 * takes ~0.15 s.
 */
export const DELTA_LIMIT = 1000;

/**
 * The `nft -f` script that turns `prev` into `next` by element deltas (deletes first, then adds, in one
 * transaction), '' when nothing differs, or undefined when the table must be replaced (its shape
 * differs, or more than DELTA_LIMIT elements change).
 */
export function diffTables(prev: NftTable, next: NftTable): string | undefined {
  if (tableShape(prev) !== tableShape(next)) return undefined;
  const lines: string[] = [];
  const adds: string[] = [];
  let changed = 0;
  for (let i = 0; i < next.maps.length; i++) {
    if (prev.maps[i]?.elements === next.maps[i]?.elements) continue;
    const a = new Set(prev.maps[i]?.elements ?? []);
    const b = new Set(next.maps[i]?.elements ?? []);
    const m = next.maps[i] as NftMap;
    const name = m.name;
    const gone = [...a].filter((e) => !b.has(e)).map((e) => keyOf(m, e));
    const added = [...b].filter((e) => !a.has(e));
    changed += gone.length + added.length;
    if (gone.length) lines.push(`delete element ${next.family} ${next.name} ${name} { ${gone.join(', ')} }`);
    if (added.length) adds.push(`add element ${next.family} ${next.name} ${name} { ${added.join(', ')} }`);
  }
  const all = [...lines, ...adds];
  if (changed > DELTA_LIMIT) return undefined;
  return all.length ? `${all.join('\n')}\n` : '';
}
