import { filters, type CompiledPolicy } from '../policy/index.js';
import type { NftMap } from './table.js';
import { AUDIT_CHAIN, AUDIT_LOG_GROUP, blockOf, bookOf, byContent, hex, ipRange, PREFIX, SIDE_MARK, sortedLike, type Chain } from './policy-nft-parts.js';
import { clsCache, emptyStages, pairElements, profileElements, renderStage, sideStages, stageOf, type Keyed, type Names, type ProfileElements } from './policy-nft-stages.js';

export { AUDIT_CHAIN, AUDIT_LOG_GROUP, INLINE_RANGES, PROFILE_MARK, SIDE_MARK, splitSingles } from './policy-nft-parts.js';
export { SHARDS } from './policy-nft-stages.js';

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

const rendered = new WeakMap<CompiledPolicy, PolicyNft>();

/** Rendered once per compiled policy: the same arrays come back, so diffing them is free. */
export function renderPolicy(p: CompiledPolicy): PolicyNft {
  const cached = rendered.get(p);
  if (cached) return cached;
  const out = render(p);
  rendered.set(p, out);
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
  const pairEls = pairElements(p);
  const book = bookOf(p);
  const profEls = profileElements(p);
  // SCTP by port only where the compile decides it so (a rule compares SCTP ports); else it is an `other`.
  for (const proto of p.sctp ? ['tcp', 'udp', 'other', 'sctp'] as const : ['tcp', 'udp', 'other'] as const) {
    const { singles, rest, chains: used } = profEls.get(proto) as ProfileElements;
    for (const c of used) chains.set(c.name, c);
    const x = PREFIX[proto];
    const l4 = proto === 'other' ? `meta l4proto != { ${p.sctp ? 'tcp, udp, sctp' : 'tcp, udp'} } ` : `meta l4proto ${proto} `;
    const stage = (base: string, tag: 'p' | 's' | 'r', els: Keyed[], type: string, prefix: string, rule: (map: string) => string): string[] => {
      const out = stageOf(els, () => renderStage(x, l4, base, tag, els, type, prefix, rule, book.shards));
      maps.push(...out.maps);
      shardChains.push(...out.shardChains);
      return out.lines;
    };
    const n = names[proto];
    n.prof = stage('prof', 'p', pairEls.get(proto) as Keyed[], 'mark . mark : mark', l4, (m) => `meta mark set meta mark . ct mark map @${m}`);
    if (proto !== 'other') n.singles = stage('singles', 's', singles, 'mark . inet_service : verdict', '', (m) => `meta mark . ${proto} dport vmap @${m}`);
    n.rest = stage('rest', 'r', rest, 'mark : verdict', l4, (m) => `meta mark vmap @${m}`);
    n.sides = sideStages(p, proto, sides, chains, maps);
  }
  const sorted = sortedLike(chains.values(), book.chainOrder, (a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  book.chainOrder = sorted;
  const audit = p.profiles.some((x) => x.segs.some((g) => g.verdict === 'audit')) ? [
    `\tchain ${AUDIT_CHAIN} {`, '\t\tcounter',
    `\t\tlimit rate 20/second burst 40 packets log prefix "weft-audit " group ${AUDIT_LOG_GROUP}`, '\t\taccept', '\t}',
  ] : [];
  return {
    maps: [...maps, ...sorted.flatMap((c) => c.maps)],
    chains: [...audit, ...sorted.flatMap(blockOf), ...shardChains, ...renderForward(p, names)],
  };
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
