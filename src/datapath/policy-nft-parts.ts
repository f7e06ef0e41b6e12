import { createHash } from 'node:crypto';
import { formatIp } from '../model/index.js';
import type { Profile, Verdict } from '../policy/index.js';
import type { NftMap } from './table.js';
import { Attached } from '../model/attached.js';
import { DENY_CHAIN } from './flows-nft.js';

// The elements a policy's verdict functions become (policy-nft.ts): marks, a profile's single ports and
// rest, the chains shared by content, and content-named maps.

/** Profile ids as marks: above any class id, so a class left in meta mark never meets a profile's element. */
export const PROFILE_MARK = 0x40000000;
/** Side profiles' marks (sides.ts): apart from classes' and profiles', so a mark left by one stage never meets another's element. */
export const SIDE_MARK = 0x20000000;
export const hex = (n: number) => `0x${n.toString(16)}`;
export const markOf = (id: number) => hex(PROFILE_MARK + id);

/**
 * `none`: the profile does not decide these ports; the next stage does. `open-in`, `open-out`: a high
 * stage decided that direction open (policy-nft-high.ts), the packet goes on to the pairs.
 */
export type Decided = Verdict | 'none' | 'open-in' | 'open-out';
export interface Seg { first: number; last: number; verdict: Decided }

const range = (a: number, b: number) => (a === b ? String(a) : `${a}-${b}`);

/**
 * Audit mode: a connection only policies in audit mode would drop passes through this chain, counted
 * (`nft list chain inet weft audit`) and marked AUDIT_MARK, so that its flow record says so (flows-nft.ts).
 */
export const AUDIT_CHAIN = 'audit';
/** A decision as a verdict: a drop goes to the deny chain, which logs it when flow records are on (flows-nft.ts). */
export const verdictText = (v: Decided) => {
  if (v === 'none') throw new Error('an undecided port has no element');
  return v === 'audit' ? `jump ${AUDIT_CHAIN}` : v === 'drop' ? `goto ${DENY_CHAIN}` : v === 'open-in' ? `jump ${OPEN_CHAIN.in}` : v === 'open-out' ? `jump ${OPEN_CHAIN.out}` : v;
};
/** The chains a high stage's "decided open" jumps to: each sets its bit in ct mark (policy/high.ts DECIDED_IN, DECIDED_OUT). */
export const OPEN_CHAIN = { in: 'open_in', out: 'open_out' } as const;
export const ipRange = (a: number, b: number) => (a === b ? formatIp(a) : `${formatIp(a)}-${formatIp(b)}`);

export type Proto = Profile['proto'];
export const PREFIX: Record<Proto, string> = { tcp: 'tcp', udp: 'udp', other: 'x', sctp: 'sctp' };
/**
 * A protocol's tail: what its rules after the pair stages do (its lookup chain's side stages, then the
 * forward chain's tenant default). A pair's undecided single port goes there from the single-port lookup
 * (splitSingles). It ends with the tenant default's verdict: a goto to it from the protocol's lookup chain
 * never comes back to the forward chain.
 */
export const tailChain = (proto: Proto) => `${PREFIX[proto]}_tail`;
/** The match a protocol's stage rules start with, and the forward chain's jump to them (SCTP has lookups of its own only where `sctp`). */
export const l4Of = (proto: Proto, sctp: boolean): string => (proto === 'other' ? `meta l4proto != { ${sctp ? 'tcp, udp, sctp' : 'tcp, udp'} } ` : `meta l4proto ${proto} `);

/**
 * A profile as its elements: its single ports, and the rest as one verdict (`none`: no element) or as
 * segments for a chain; `made`: the base and mode it was split under (partsOf answers from it only for those).
 */
interface ProfileParts { singles: string[]; verdict: Decided | undefined; rest: Seg[]; made: number }

/** What partsOf splits: a profile, a side profile, or a high stage's profile with its open verdicts. */
export interface Parted { id: number; proto: Proto; segs: readonly Seg[] }

/**
 * Profiles are immutable and kept across compiles while their function stands: each is split once for
 * the base and mode it is rendered under (one of each per profile today: pair, side and high profiles are
 * distinct objects; a split under another is made again, as the hole's verdict depends on the base).
 */
const parts = new Attached<Parted, ProfileParts>('profile parts');

/**
 * A pair's profile (marks from PROFILE_MARK) or a side profile (from SIDE_MARK) as elements. `sctp`: the
 * compile decides SCTP by port, so `other` skips 132 too (a profile belongs to one compile mode).
 */
export function partsOf(x: Parted, base: number, sctp: boolean): ProfileParts {
  const made = base * 2 + (sctp ? 1 : 0);
  let out = parts.get(x);
  if (out?.made === made) return out;
  const mark = hex(base + x.id);
  const singles: string[] = [];
  // A pair's profile only: its undecided ports go on to the side stages and the tenant default, which is
  // what its protocol's tail chain holds (policy-nft.ts). A side or high stage's undecided port goes on
  // to that stage's next lookup, which no chain holds alone.
  const hole = base === PROFILE_MARK ? `goto ${tailChain(x.proto)}` : undefined;
  const rest = x.proto === 'other' ? [...x.segs] : splitSingles(x.segs, mark, singles, hole);
  const skipped = x.proto !== 'other' ? 0 : sctp ? 3 : 2;
  out = { singles, verdict: restVerdict(rest, x.proto === 'other' ? 255 : 65535, skipped), rest, made };
  parts.set(x, out);
  return out;
}

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
export function byContent(base: string, m: Omit<NftMap, 'name'>): NftMap {
  // The type, then each element after a newline, hashed as one string: one call, not one per element.
  const text = m.elements.length ? `${m.type}\n${m.elements.join('\n')}` : m.type;
  return { name: `${base}_${createHash('sha256').update(text).digest('hex').slice(0, 12)}`, ...m };
}

/**
 * The full function over 0-65535 from a profile's segments (`none` in the gaps: another stage decides),
 * with every decided single-port segment moved into `singles` (as "KEY . PORT : VERDICT", KEY the
 * profile's mark) and its port given to the segment before it, so the rest merges into as few ranges as
 * it can. An undecided single port between decided ones goes there too when `hole` says where its packet
 * goes instead of the rest (a goto past it: a pair's profile, `goto tcp_tail`); without `hole` it stays
 * in the rest, as a gap. Returns the rest's decided segments.
 *
 * Why holes go to `singles` (issue 13, session 63): a rule without a peer on one port, above rules with
 * peers on ranges around it, leaves that port undecided in every pair those rules decide. In the rest,
 * that hole made each of ~150 profiles a new port pattern: a new chain each (and its map), 52 KB of
 * nft for one rule at 50,000 nested rules. As singles the rests keep their chains.
 */
export function splitSingles(segs: readonly Seg[], key: string, singles: string[], hole?: string): Seg[] {
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
    // A hole needs a range before it to take its port: at port 0 it stays a gap (taking what follows, a
    // lone port itself perhaps, would make singles of the ports around it and a pattern of its own).
    if (s.first === s.last && (s.verdict !== 'none' || (hole !== undefined && prev !== undefined))) {
      // The port takes the verdict of what surrounds it (what follows, at port 0); an exact entry says
      // otherwise where it differs.
      const around = prev?.verdict ?? full[1]?.verdict ?? 'none';
      if (s.verdict !== around) singles.push(`${key} . ${s.first} : ${s.verdict === 'none' ? hole : verdictText(s.verdict)}`);
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
export interface Chain {
  name: string;
  maps: NftMap[];
  text: string;
  /** Its lines as a table's chains hold them (`\tchain NAME {`, rules, `\t}`). */
  block: string[];
}

/** A chain of these rules, as a table holds it. */
export const chainBlock = (name: string, rules: readonly string[]): string[] => [`\tchain ${name} {`, ...rules, '\t}'];

const elementsOf = (segs: readonly Seg[]) => segs.map((x) => `${range(x.first, x.last)} : ${verdictText(x.verdict)}`);

/**
 * A decision as data: what a long pattern's interval map gives (makeChain), acted on by its chain's rules.
 * Apart from classes', profiles', side and high stages' marks and AUDIT_MARK, so a mark left by another
 * stage never meets a decision's rule.
 */
export const DECISION_MARK = 0x60000000;
const DECISIONS: Record<Exclude<Decided, 'none'>, number> = { accept: 1, drop: 2, audit: 3, 'open-in': 4, 'open-out': 5 };
export const decisionMark = (v: Decided): string => {
  if (v === 'none') throw new Error('an undecided port has no element');
  return hex(DECISION_MARK + DECISIONS[v]);
};

/**
 * Beyond this many ranges a protocol's decisions go into a named interval map; up to it, one rule per
 * range. nft keeps its sets in lists: 19,000 profiles with a map each loaded in 108 s here (and listed
 * in 101 s), 20,000 chains of plain rules in 6.5 s; 4,000 chains with anonymous vmaps took 4.9 s. The
 * rules a new connection meets in a profile are bounded by this, whatever the number of rules.
 *
 * The map holds decisions as data (DECISION_MARK), which the chain's few rules then act on, not verdicts:
 * at every commit that adds a rule the kernel validates the table, and it walks each element of every
 * verdict map it reaches (a `goto deny` is a jump to check) but no element of a map of data. With
 * 11,400 such maps of ~35 ranges (50,000 nested rules, bench:policy-compile's shape) that walk was ~87
 * ms of every rule change's commit (issue 13, session 57); as data, none.
 */
export const INLINE_RANGES = 16;

/**
 * Chains by their content's text, and the names taken, for one lineage of compiles (CompiledPolicy's
 * `lineage`: one tenant here): a rest's chain is named by its content, so a later render that meets the same
 * text gets the same chain without hashing it again. Forgotten past CHAIN_CACHE texts.
 */
export class ChainBook {
  readonly byText = new Map<string, Chain>();
  readonly taken = new Map<string, Chain>();
  /** A profile's rest (its segments array, kept with the profile: partsOf) → its chain. */
  readonly bySegs = new Attached<readonly Seg[], Chain>('chain of segments');
}
const books = new Attached<object, ChainBook>('chain book');

const CHAIN_CACHE = 100_000;

/** The chain book of a compile's lineage. */
export function bookOf(p: { lineage: object }): ChainBook {
  let b = books.get(p.lineage);
  if (!b) books.set(p.lineage, (b = new ChainBook()));
  return b;
}

/**
 * The chain of a rest that varies: its ranges as rules (or, past INLINE_RANGES, a lookup in a named
 * interval map). Where nothing matches the chain returns to its protocol's lookup chain and then to the
 * forward chain, whose last rule is the tenant's default. Named by its content, so a new profile with a known pattern is only map elements.
 */
export function chainOf(book: ChainBook, proto: Proto, compiled: readonly Seg[]): Chain {
  const cached = book.bySegs.get(compiled);
  if (cached) return cached;
  const segs = proto === 'other' ? withIcmp6(compiled) : compiled;
  const x = PREFIX[proto];
  const text = `${x}:${elementsOf(segs).join(',')}`;
  let chain = book.byText.get(text);
  if (!chain) {
    if (book.byText.size >= CHAIN_CACHE) { book.byText.clear(); book.taken.clear(); }
    chain = makeChain(book, proto, segs, text);
  }
  book.bySegs.set(compiled, chain);
  return chain;
}

/**
 * ICMPv6 (58) takes ICMP's (1) verdict: the compiler knows one ICMP (`icmp` and `58` are protocol 1 to
 * it, decide.ts protoOf), the datapath sees two protocol numbers.
 */
export function withIcmp6(segs: readonly Seg[]): Seg[] {
  const icmp = segs.find((s) => s.first <= 1 && 1 <= s.last);
  const out: Seg[] = [];
  for (const s of segs) {
    if (s.first > 58 || s.last < 58) { out.push(s); continue; }
    if (s.first < 58) out.push({ ...s, last: 57 });
    if (s.last > 58) out.push({ ...s, first: 59 });
  }
  if (icmp) out.push({ first: 58, last: 58, verdict: icmp.verdict });
  return out.sort((a, b) => a.first - b.first);
}

function makeChain(book: ChainBook, proto: Proto, segs: readonly Seg[], text: string): Chain {
  const x = PREFIX[proto];
  // A long pattern's chain holds decisions as data since session 57: its name says which form it is, so a
  // table written by an older agent never has a chain of this name with the other form.
  const h = createHash('sha256').update(segs.length > INLINE_RANGES ? `${text}|data` : text).digest('hex');
  let name = '';
  // 64 bits: the name must follow the content alone (a name that came to stand for other content would
  // be flushed and refilled in place); the longer names below are a safety net that never comes up.
  for (let n = 16; !name || (book.taken.has(name) && book.taken.get(name)?.text !== text); n += 2) name = `pp_${h.slice(0, n)}`;
  const [match, type] = proto === 'other' ? ['meta l4proto', 'inet_proto'] : [`${proto} dport`, 'inet_service'];
  const rules: string[] = [];
  const maps: NftMap[] = [];
  if (segs.length <= INLINE_RANGES) {
    for (const s of segs) rules.push(`\t\t${match} ${range(s.first, s.last)} ${verdictText(s.verdict)}`);
  } else {
    // Each range's decision into meta mark (a port in no range leaves the profile's mark: no rule below
    // matches it and the chain returns), then one rule per decision this pattern makes.
    maps.push({ name: `${name}_${x}`, type: `${type} : mark`, interval: true, elements: segs.map((s) => `${range(s.first, s.last)} : ${decisionMark(s.verdict)}`) });
    rules.push(`\t\tmeta mark set ${match} map @${name}_${x}`);
    for (const v of new Set(segs.map((s) => s.verdict))) rules.push(`\t\tmeta mark ${decisionMark(v)} ${verdictText(v)}`);
  }
  const chain: Chain = { name, maps, text, block: chainBlock(name, rules) };
  book.byText.set(text, chain);
  book.taken.set(name, chain);
  return chain;
}
