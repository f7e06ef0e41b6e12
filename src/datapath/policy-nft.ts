import { createHash } from 'node:crypto';
import { formatIp } from '../model/index.js';
import type { CompiledPolicy, Verdict } from '../policy/index.js';
import type { NftMap } from './table.js';

/**
 * The policy part of a tenant's table. Per new connection:
 *   1. source and destination address → class: a one-field interval map each (rbtree, O(log n)), into
 *      meta mark and ct mark;
 *   2. (source class . destination class . port) → verdict for tcp and for udp: exact-match maps (hash,
 *      O(1)) holding the single ports whose verdict differs from the rest of the pair's ports (a rule
 *      with one port, the usual kind);
 *   3. (source class . destination class) → verdict: an exact-match map (hash, O(1)) giving the pair's
 *      verdict outright when it is the same for every remaining port and protocol, or a jump to a chain
 *      that looks the port up in a one-field interval map per protocol (rbtree). Pairs whose remaining
 *      ports look alike share one chain (named by its content): 10,000 rules with a distinct CIDR and a
 *      port each compile to map elements and one chain, not to a chain and a map per rule.
 * No lookup is linear in the number of rules, and the number of chains grows with the distinct port
 * patterns, not the pairs. (One map keyed by the whole concatenation with ranges uses nft's pipapo
 * backend, whose cost measured here grew by ~33 ns per entry: +0.84 ms per new connection at 25,000
 * entries.) Established and related traffic passes before any lookup.
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

interface Seg { first: number; last: number; verdict: Verdict }
/** One pair's verdicts: tcp and udp by port, other protocols by number (0-255 without 6 and 17). */
interface PairVerdicts { tcp: Seg[]; udp: Seg[]; other: Seg[] }

const range = (a: number, b: number) => (a === b ? String(a) : `${a}-${b}`);
const ipRange = (a: number, b: number) => (a === b ? formatIp(a) : `${formatIp(a)}-${formatIp(b)}`);

function render(p: CompiledPolicy): PolicyNft {
  if (p.portEntries.length === 0 && p.protoEntries.length === 0) return { maps: [], chains: renderForward(p, false) };
  const pairs = new Map<string, PairVerdicts>();
  const pair = (src: number, dst: number) => {
    const k = `${src} . ${dst}`;
    let v = pairs.get(k);
    if (!v) pairs.set(k, (v = { tcp: [], udp: [], other: [] }));
    return v;
  };
  for (const e of p.portEntries) pair(e.src, e.dst)[e.proto === 6 ? 'tcp' : 'udp'].push(e);
  for (const e of p.protoEntries) pair(e.src, e.dst).other.push(e);
  const singles = { tcp: [] as string[], udp: [] as string[] };
  const pairElements: string[] = [];
  const profiles = new Map<string, Profile>();
  for (const k of [...pairs.keys()].sort(byPair)) {
    const v = pairs.get(k) as PairVerdicts;
    const rest = { tcp: splitSingles(v.tcp, p.fallback, k, singles.tcp), udp: splitSingles(v.udp, p.fallback, k, singles.udp), other: v.other };
    const verdict = restVerdict(rest, p.fallback);
    if (verdict === p.fallback) continue;
    if (verdict !== undefined) { pairElements.push(`${k} : ${verdict}`); continue; }
    const prof = profileOf(rest, profiles);
    profiles.set(prof.name, prof);
    pairElements.push(`${k} : jump ${prof.name}`);
  }
  const maps: NftMap[] = [
    { name: 'cls', type: 'ipv4_addr : mark', interval: true, elements: p.classification.ranges.map((r) => `${ipRange(r.first, r.last)} : ${r.cls}`) },
    { name: 'tcp_ports', type: 'mark . mark . inet_service : verdict', interval: false, elements: singles.tcp },
    { name: 'udp_ports', type: 'mark . mark . inet_service : verdict', interval: false, elements: singles.udp },
    { name: 'pairs', type: 'mark . mark : verdict', interval: false, elements: pairElements },
  ];
  const sorted = [...profiles.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
  return {
    maps: [...maps, ...sorted.flatMap((x) => x.maps)],
    chains: [...sorted.flatMap((x) => [`\tchain ${x.name} {`, ...x.lines, '\t}']), ...renderForward(p, true)],
  };
}

/** Pairs in numeric order of their classes, so elements keep their place as classes are added. */
function byPair(a: string, b: string): number {
  const [a1, a2] = a.split(' . ').map(Number) as [number, number];
  const [b1, b2] = b.split(' . ').map(Number) as [number, number];
  return a1 - b1 || a2 - b2;
}

/**
 * The full verdict over 0-65535 from the non-default segments, with every single-port segment moved
 * into `singles` (as "SRC . DST . PORT : VERDICT") and its port given to the segment before it, so the
 * rest merges into as few ranges as it can. Returns the rest's non-default segments.
 */
export function splitSingles(segs: readonly Seg[], fallback: Verdict, pairKey: string, singles: string[]): Seg[] {
  const full: Seg[] = [];
  let next = 0;
  for (const s of [...segs].sort((a, b) => a.first - b.first)) {
    if (s.first > next) full.push({ first: next, last: s.first - 1, verdict: fallback });
    full.push(s);
    next = s.last + 1;
  }
  if (next <= 65535) full.push({ first: next, last: 65535, verdict: fallback });
  const rest: Seg[] = [];
  for (const s of full) {
    const prev = rest[rest.length - 1];
    if (s.first === s.last) {
      // The port takes the verdict of what surrounds it (what follows, at port 0); an exact entry says
      // otherwise where it differs.
      const around = prev?.verdict ?? full[1]?.verdict ?? fallback;
      if (s.verdict !== around) singles.push(`${pairKey} . ${s.first} : ${s.verdict}`);
      if (prev) prev.last = s.last;
      else rest.push({ first: s.first, last: s.last, verdict: around });
    } else if (prev && prev.verdict === s.verdict) prev.last = s.last;
    else rest.push({ ...s });
  }
  return rest.filter((s) => s.verdict !== fallback);
}

/** The one verdict of a pair's rest (the fallback when it has none), or undefined when it varies. */
function restVerdict(rest: PairVerdicts, fallback: Verdict): Verdict | undefined {
  const whole = (segs: Seg[], last: number, skip: number[] = []) => {
    if (segs.length === 0) return fallback;
    const covered = segs.reduce((n, s) => n + (s.last - s.first + 1), 0) + skip.length;
    return covered === last + 1 && segs.every((s) => s.verdict === segs[0]?.verdict) ? segs[0]?.verdict : undefined;
  };
  const vs = [whole(rest.tcp, 65535), whole(rest.udp, 65535), whole(rest.other, 255, [6, 17])];
  return vs.every((v) => v !== undefined && v === vs[0]) ? vs[0] : undefined;
}

/** A chain shared by every pair with the same remaining verdicts, and the interval maps it looks ports up in. */
interface Profile { name: string; lines: string[]; maps: NftMap[]; text: string }

const elementsOf = (segs: readonly Seg[]) => segs.map((x) => `${range(x.first, x.last)} : ${x.verdict}`);

/**
 * Beyond this many ranges a protocol's verdicts go into a named interval map; up to it, one rule per
 * range. nft keeps its sets in lists: 19,000 profiles with a map each loaded in 108 s here (and listed
 * in 101 s), 20,000 chains of plain rules in 6.5 s; 4,000 chains with anonymous vmaps took 4.9 s. The
 * rules a new connection meets in a profile are bounded by this, whatever the number of rules.
 */
export const INLINE_RANGES = 16;

/**
 * Per protocol a verdict when it is uniform, else its ranges as rules (or, past INLINE_RANGES, a
 * lookup in a named interval map). Where nothing matches the chain returns to the forward chain, whose
 * last rule is the tenant's default. Named by its content, so a new pair with a known pattern is only
 * map elements.
 */
function profileOf(rest: PairVerdicts, taken: ReadonlyMap<string, Profile>): Profile {
  const parts = [['tcp', rest.tcp, 'tcp dport', 'inet_service'], ['udp', rest.udp, 'udp dport', 'inet_service'], ['x', rest.other, 'meta l4proto', 'inet_proto']] as const;
  const text = parts.map(([proto, segs]) => `${proto}:${elementsOf(segs).join(',')}`).join(';');
  const h = createHash('sha256').update(text).digest('hex');
  let name = '';
  for (let n = 10; !name || (taken.has(name) && taken.get(name)?.text !== text); n += 2) name = `pp_${h.slice(0, n)}`;
  const lines: string[] = [];
  const maps: NftMap[] = [];
  for (const [proto, segs, match, type] of parts) {
    if (segs.length === 0) continue;
    const only = segs[0] as Seg;
    if (proto !== 'x' && segs.length === 1 && only.first === 0 && only.last === 65535) {
      lines.push(`\t\tmeta l4proto ${proto} ${only.verdict}`);
      continue;
    }
    if (segs.length <= INLINE_RANGES) {
      for (const x of segs) lines.push(`\t\t${match} ${range(x.first, x.last)} ${x.verdict}`);
      continue;
    }
    maps.push({ name: `${name}_${proto}`, type: `${type} : verdict`, interval: true, elements: elementsOf(segs) });
    lines.push(`\t\t${match} vmap @${name}_${proto}`);
  }
  return { name, lines, maps, text };
}

function renderForward(p: CompiledPolicy, lookups: boolean): string[] {
  if (!lookups && p.fallback === 'accept') return [];
  return [
    '\tchain forward {',
    '\t\ttype filter hook forward priority filter; policy accept;',
    '\t\tct state established,related accept',
    '\t\tct state invalid drop',
    // DNS queries to a gateway are DNATed to the agent on the uplink (169.254.0.0/16): always allowed.
    '\t\tct status dnat ip daddr 169.254.0.0/16 accept comment "dns"',
    ...(lookups ? [
      '\t\tmeta mark set ip saddr map @cls',
      '\t\tct mark set ip daddr map @cls',
      '\t\tmeta mark . ct mark . tcp dport vmap @tcp_ports',
      '\t\tmeta mark . ct mark . udp dport vmap @udp_ports',
      '\t\tmeta mark . ct mark vmap @pairs',
    ] : []),
    `\t\t${p.fallback} comment "tenant default"`,
    '\t}',
  ];
}
