/**
 * An nft table as structure: its maps (with their elements) and its chains. Kept as parts so a change is
 * applied to the parts it changed (table-delta.ts): replacing a table whose interval maps hold thousands
 * of elements costs ~850 ms of `nft -f` here, rewriting one small map ~6 ms.
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
  /**
   * Maps and chains nothing uses any more that a change left in the kernel (table-delta.ts, keepGone): the
   * next delta made without keepGone deletes them. Only in what the applier records; never written.
   */
  leftover?: { maps: NftMap[]; chains: string[] };
  /** Tables this one replaces (an older layout): a whole-table replace deletes them in the same transaction. */
  supersedes?: ReadonlyArray<{ family: string; name: string }>;
}

/** A map's or set's declaration lines (type, flags, elements), as inside its braces. */
export function mapBody(m: NftMap): string[] {
  return [
    `\t\t${m.type.startsWith('typeof ') ? '' : 'type '}${m.type}`, ...(m.interval ? ['\t\tflags interval'] : []),
    ...(m.elements.length ? [`\t\telements = { ${m.elements.join(',\n\t\t\t')} }`] : []),
  ];
}

export function tableText(t: NftTable): string {
  const maps = t.maps.flatMap((m) => [`\t${m.set ? 'set' : 'map'} ${m.name} {`, ...mapBody(m), '\t}']);
  const old = (t.supersedes ?? []).flatMap((o) => [`add table ${o.family} ${o.name}`, `delete table ${o.family} ${o.name}`]);
  return [...old, `add table ${t.family} ${t.name}`, `delete table ${t.family} ${t.name}`, `table ${t.family} ${t.name} {`, ...maps, ...t.chains, '}', ''].join('\n');
}

