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
  /**
   * Where the table is checked by listing it (a namespace the agent does not own: linux/nft.ts), this
   * map's elements are listed and compared too, so one added or deleted by anyone else is undone. Only for
   * small maps whose elements are behaviour a user counts on (the host table's sets and maps: peers, VNIs
   * in clear, DNS listeners, published ports): a listing costs per element. A table with a checked map
   * is listed whole (every map's elements) in one command.
   */
  checked?: boolean;
}

/**
 * A chain of a large set that comes and goes by content (the policy's port chains, policy-nft.ts): one
 * object while it stands, its lines (`\tchain NAME {` to `\t}`) and the maps only it looks up.
 */
export interface SharedChain {
  readonly name: string;
  readonly block: readonly string[];
  readonly maps: readonly NftMap[];
}

/**
 * Such chains as a set, sorted by name, with how it was made from an earlier set (`patch`, by that set's
 * id), so that a delta between the two reads only what changed (table-delta.ts): at 50,000 rules a table
 * holds 14,000 of these chains, and a change touches a few.
 */
export interface ChainSet {
  readonly id: number;
  readonly chains: readonly SharedChain[];
  /** Elements of the chains' maps, all together. */
  readonly elements: number;
  readonly patch?: { readonly base: number; readonly added: readonly SharedChain[]; readonly removed: readonly SharedChain[] };
}

/** Where a chain of this name is, or would go, in chains sorted by name (a ChainSet's): a binary search. */
export function chainIndex(chains: readonly SharedChain[], name: string): number {
  let lo = 0;
  let hi = chains.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((chains[mid] as SharedChain).name < name) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

let chainSets = 0;
/** A new set's id: ids are never reused, so a patch's base names one set only. */
export const nextChainSetId = () => ++chainSets;

export interface NftTable {
  family: string;
  name: string;
  maps: NftMap[];
  /** Chains, verbatim (tab-indented lines). */
  chains: string[];
  /** Chains (and their maps) kept as a set of objects, written before `chains`. */
  shared?: ChainSet;
  /**
   * Maps and chains nothing uses any more that a change left in the kernel (table-delta.ts, keepGone): the
   * next delta made without keepGone deletes them. Only in what the applier records; never written.
   */
  leftover?: {
    maps: NftMap[];
    chains: string[];
    shared?: readonly SharedChain[];
    /** The count of changes that left something, and per object (by kind, then name) the one it went at. */
    epoch?: number;
    since?: LeftSince;
  };
  /** Tables this one replaces (an older layout): a whole-table replace deletes them in the same transaction. */
  supersedes?: ReadonlyArray<{ family: string; name: string }>;
}

/** Per kind of object a change left, by name: the change (epoch) it went at. */
export interface LeftSince {
  readonly chains: Map<string, number>;
  readonly maps: Map<string, number>;
  readonly shared: Map<string, number>;
}

/** A map's or set's declaration lines (type, flags, elements), as inside its braces. */
export function mapBody(m: NftMap): string[] {
  return [
    `\t\t${m.type.startsWith('typeof ') ? '' : 'type '}${m.type}`, ...(m.interval ? ['\t\tflags interval'] : []),
    ...(m.elements.length ? [`\t\telements = { ${m.elements.join(',\n\t\t\t')} }`] : []),
  ];
}

/** Every map of a table: its own, then its shared chains'. */
export function allMaps(t: Pick<NftTable, 'maps' | 'shared'>): NftMap[] {
  return t.shared ? [...t.maps, ...t.shared.chains.flatMap((c) => c.maps)] : t.maps;
}

/** Every chain line of a table: its shared chains', then its own. */
export function allChains(t: Pick<NftTable, 'chains' | 'shared'>): string[] {
  return t.shared ? [...t.shared.chains.flatMap((c) => c.block), ...t.chains] : [...t.chains];
}

export function tableText(t: NftTable): string {
  const maps = allMaps(t).flatMap((m) => [`\t${m.set ? 'set' : 'map'} ${m.name} {`, ...mapBody(m), '\t}']);
  const old = (t.supersedes ?? []).flatMap((o) => [`add table ${o.family} ${o.name}`, `delete table ${o.family} ${o.name}`]);
  return [...old, `add table ${t.family} ${t.name}`, `delete table ${t.family} ${t.name}`, `table ${t.family} ${t.name} {`, ...maps, ...allChains(t), '}', ''].join('\n');
}

