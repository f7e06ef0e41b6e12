import { DECIDED_IN, DECIDED_OUT, type CompiledPolicy, type SideEntry, type SideProfile } from '../policy/index.js';
import type { NftMap } from './table.js';
import { bookOf, byContent, chainBlock, chainOf, hex, ipRange, l4Of, OPEN_CHAIN, partsOf, PREFIX, verdictText, type Chain, type Parted, type Proto } from './policy-nft-parts.js';
import { Attached } from '../model/attached.js';
import { classRanges, markLookups, rangesCache } from './policy-nft-stages.js';

// The high stages of a policy's forward chain (policy/high.ts), per protocol and ahead of its pair stage.

/**
 * High profiles' marks, one base per direction: the destination's lookup leaves its mark when the source
 * has no high profile, and that mark must not meet an element of the source's maps.
 */
export const HIGH_IN_MARK = 0x30000000;
export const HIGH_OUT_MARK = 0x50000000;

/**
 * The chains the open verdicts jump to: a direction decided open sets its bit in ct mark (the pair
 * stage's key), and clears meta mark: a jump returns, and the profile's rest, looked up next by the same
 * mark, would otherwise decide the port again (a single open port in a profile whose rest drops).
 */
export const OPEN_CHAINS: readonly Chain[] = [[OPEN_CHAIN.in, DECIDED_IN], [OPEN_CHAIN.out, DECIDED_OUT]].map(([name, bit]) => ({
  name: name as string, text: '', maps: [], block: chainBlock(name as string, [`\t\tct mark set ct mark or ${hex(bit as number)}`, '\t\tmeta mark set 0']),
}));

const SLOT: Record<Proto, 0 | 1 | 2 | 3> = { tcp: 0, udp: 1, other: 2, sctp: 3 };

const highs = rangesCache('high ranges');

/** A high profile with a direction's open verdict in place of `accept` (made once per profile and direction). */
const opened = new Attached<SideProfile, { in?: Parted; out?: Parted }>('high profile, opened');
function openedOf(x: SideProfile, dir: 'in' | 'out'): Parted {
  let o = opened.get(x);
  if (!o) opened.set(x, (o = {}));
  return (o[dir] ??= { id: x.id, proto: x.proto, segs: x.segs.map((s) => ({ ...s, verdict: s.verdict === 'accept' ? (dir === 'in' ? 'open-in' : 'open-out') : s.verdict })) });
}

/**
 * A protocol's high stages: the destination's address → its ingress high profile, that profile's single
 * ports and rest (drop, or "ingress decided open": a jump setting DECIDED_IN in ct mark); the same for
 * the source's egress (DECIDED_OUT); then meta mark is the source's role again, and a connection both
 * of whose directions were decided open is accepted. The pair stage then looks the pair up with those
 * bits in its key (ct mark): the function of the direction left. Nothing when no end has a high profile.
 * `body`: the lookups (policy-nft.ts puts them in a chain of their own, `after` in the forward chain);
 * `classLines`: the rules that put the source's role in meta mark (a jump to the chain that looks it up: policy-nft.ts roleChains).
 */
export function highStages(p: CompiledPolicy, proto: Proto, chains: Map<string, Chain>, maps: NftMap[], classLines: readonly string[]): { body: string[]; after: string[] } {
  const none = { body: [], after: [] };
  if (p.highs.length === 0) return none;
  const x = PREFIX[proto];
  const slot = SLOT[proto];
  const l4 = l4Of(proto, p.sctp);
  const profiles = new Map(p.highProfiles.map((h) => [h.id, h]));
  // The ranges of the classes with a high profile, read from every range once (not per protocol and direction).
  const ranges = classRanges(highs, p, new Set(p.highs.map((h) => h.cls)));
  const out: string[] = [];
  for (const [dir, addr, base] of [['in', 'daddr', HIGH_IN_MARK], ['out', 'saddr', HIGH_OUT_MARK]] as const) {
    const own = p.highs.filter((h) => h[dir][slot] !== 0);
    if (own.length === 0) continue;
    const markOf = new Map(own.map((h) => [h.cls, hex(base + (h[dir][slot] as number))]));
    const tag = `${x}_h${dir === 'in' ? 'i' : 'o'}`;
    const els = ranges.filter((r) => markOf.has(r.cls)).map((r) => `${ipRange(r.first, r.last)} : ${markOf.get(r.cls) as string}`);
    const els6 = p.v6.filter((v) => markOf.has(v.cls)).map((v) => `${v.addr} : ${markOf.get(v.cls) as string}`);
    if (els.length > 0) {
      const m = byContent(tag, { type: 'ipv4_addr : mark', interval: true, elements: els });
      maps.push(m);
      out.push(`\t\t${l4}meta mark set ip ${addr} map @${m.name}`);
    }
    if (els6.length > 0) {
      const m = byContent(`${tag}6`, { type: 'ipv6_addr : mark', interval: false, elements: els6 });
      maps.push(m);
      out.push(`\t\t${l4}meta mark set ip6 ${addr} map @${m.name}`);
    }
    const singles: string[] = [];
    const rest: string[] = [];
    for (const id of new Set(own.map((h) => h[dir][slot] as number))) {
      const q = partsOf(openedOf(profiles.get(id) as SideProfile, dir), base, p.sctp);
      singles.push(...q.singles);
      const mark = hex(base + id);
      if (q.verdict === undefined) {
        const c = chainOf(bookOf(p), proto, q.rest);
        chains.set(c.name, c);
        rest.push(`${mark} : jump ${c.name}`);
      } else if (q.verdict !== 'none') rest.push(`${mark} : ${verdictText(q.verdict)}`);
    }
    out.push(...markLookups(tag, proto, l4, singles, rest, maps));
  }
  if (out.length === 0) return none;
  for (const c of OPEN_CHAINS) chains.set(c.name, c);
  const both = hex(DECIDED_IN + DECIDED_OUT);
  // The source's class again for the pair stage (an address no class map holds is class 0, as before).
  return { body: out, after: [`\t\t${l4}meta mark set 0`, ...classLines.map((l) => `\t\t${l4}${l.trim()}`), `\t\t${l4}ct mark & ${both} == ${both} accept`] };
}

/** What the high stages are made from, as one string (policy-nft.ts keeps the side and high stages while it stands). */
export function highKey(p: CompiledPolicy): string {
  if (p.highs.length === 0) return '';
  const profiles = p.highProfiles.map((x) => `${x.id}=${x.proto}:${x.segs.map((g) => `${g.first}-${g.last}:${g.verdict}`).join(',')}`).join(';');
  return `${p.highs.map((x: SideEntry) => `${x.cls}:${x.in.join(',')}/${x.out.join(',')}`).join(';')}|${profiles}`;
}
