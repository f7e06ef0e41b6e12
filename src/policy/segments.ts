import type { Action } from '../model/index.js';
import { PROTO, portRange, protoOf, type PolicyRule, type RuleRef } from './decide.js';
import type { Verdict } from './compile.js';
import { NETPOL_ISOLATION, WEFT_TOP } from './netpol.js';
import type { Made } from './rule-index.js';

const TCP = PROTO['tcp'] as 6;
const UDP = PROTO['udp'] as 17;
const SCTP = PROTO['sctp'] as 132;

export interface Sides { egress: RuleRef[] | undefined; ingress: RuleRef[] | undefined }
export interface Segment { first: number; last: number; verdict: Verdict }

/**
 * Tracks the rules in force over a sweep: counts per (priority, action), so the winner is found by
 * scanning the priorities in force (at most 100 of Weft's, plus the Kubernetes tiers' few), whatever
 * the number of rules. Priorities run from `lowest` (the baseline tier's last rule, below 0) up to
 * `highest` (the first AdminNetworkPolicy rule, above 100): netpol.ts.
 */
class Tally {
  private counts = new Int32Array(3 * 102);
  /** Rules in force per priority level, and a bit per level that has any: the winner is found from the highest set bit. */
  private levels = new Int32Array(102);
  private bits = new Uint32Array(4);
  private lowest = NETPOL_ISOLATION;
  /** Cleared for rules of priorities lowest..highest. */
  reset(lowest = NETPOL_ISOLATION, highest = WEFT_TOP): void {
    this.lowest = lowest;
    const n = highest - lowest + 1;
    if (this.levels.length < n) {
      this.counts = new Int32Array(3 * n);
      this.levels = new Int32Array(n);
      this.bits = new Uint32Array(Math.ceil(n / 32));
    } else {
      this.counts.fill(0, 0, 3 * n);
      this.levels.fill(0, 0, n);
      this.bits.fill(0);
    }
  }
  add(r: PolicyRule, d: 1 | -1): void {
    const level = r.priority - this.lowest;
    this.counts[level * 3 + (r.action === 'deny' ? 2 : r.action === 'pass' ? 1 : 0)]! += d;
    const now = (this.levels[level]! += d);
    const w = level >> 5;
    if (now === 0) this.bits[w] = this.bits[w]! & ~(1 << (level & 31));
    else if (d === 1 && now === 1) this.bits[w] = this.bits[w]! | (1 << (level & 31));
  }
  /** The action of the highest priority in force (deny before allow at one priority), else `fallback`. */
  winner(fallback: Action): Action {
    // Below a pass, the rest of the AdminNetworkPolicy tier is skipped: Weft's rules and those below decide.
    let cap = Infinity;
    for (let w = this.bits.length - 1; w >= 0; w--) {
      let word = this.bits[w]!;
      while (word !== 0) {
        const b = 31 - Math.clz32(word);
        word = (word & ~(1 << b)) >>> 0;
        const level = (w << 5) + b;
        const p = level + this.lowest;
        if (p > cap) continue;
        const i = level * 3;
        if (this.counts[i + 2]! > 0) return 'deny';
        if (this.counts[i + 1]! > 0) { cap = Math.min(p - 1, WEFT_TOP); continue; }
        if (this.counts[i]! > 0) return 'allow';
      }
    }
    return fallback;
  }
}

/** The priorities the rules of a sweep span (Weft's 1-100 and NetworkPolicy's at least). */
function spanOf(dirs: ReadonlyArray<readonly RuleRef[] | undefined>): [number, number] {
  let lo = NETPOL_ISOLATION;
  let hi = WEFT_TOP;
  for (const rules of dirs) for (const r of rules ?? []) { if (r.rule.priority < lo) lo = r.rule.priority; if (r.rule.priority > hi) hi = r.rule.priority; }
  return [lo, hi];
}

/**
 * Reused by every sweep (compiling is synchronous): 10,000s of pairs allocated 10,000s of tallies. Per
 * direction, one over every rule and one over the enforced rules only (without those of policies in
 * audit mode); the second is used only when some rule of the sweep is in audit mode.
 */
const TALLIES = [new Tally(), new Tally()] as const;
const ENFORCED = [new Tally(), new Tally()] as const;

const audited = (dirs: ReadonlyArray<readonly RuleRef[] | undefined>) => dirs.some((rules) => rules?.some((r) => r.rule.audit === true) ?? false);

/**
 * A segment's verdict from each direction's winner: `drop` when the enforced rules deny it, `audit` when
 * only rules of policies in audit mode would (it passes, counted: DESIGN's audit mode), else `accept`.
 */
function verdictOf(dirs: ReadonlyArray<readonly unknown[] | undefined>, all: readonly Tally[], enforced: readonly Tally[] | undefined, fallback: Action): Verdict {
  const wouldBe = allowedBy(dirs, all, fallback);
  if (!enforced) return wouldBe ? 'accept' : 'drop';
  return !allowedBy(dirs, enforced, fallback) ? 'drop' : !wouldBe ? 'audit' : 'accept';
}

/**
 * Whether each direction's winner allows (a direction not enforced here allows). Asked at every step of
 * every sweep: no array made (an array per step was most of what a compile allocated at 50,000 nested
 * rules, ~2.4 MB a change).
 */
function allowedBy(dirs: ReadonlyArray<readonly unknown[] | undefined>, tallies: readonly Tally[], fallback: Action): boolean {
  for (let d = 0; d < dirs.length; d++) if (dirs[d] !== undefined && (tallies[d] as Tally).winner(fallback) !== 'allow') return false;
  return true;
}

/** Port segments of one protocol (tcp, udp or sctp) where the combined verdict is constant, merged. */
export function segmentPorts(sides: Sides, proto: number, fallback: Action): Segment[] {
  const one = (rules: readonly RuleRef[] | undefined) => (rules === undefined ? undefined : [portEvents(rules, proto)]);
  return segmentPortsOf([one(sides.egress), one(sides.ingress)], fallback);
}

/**
 * Rules of one protocol as port events sorted by port: where each starts and where it ends (the port
 * after its last). Made once per list of rules that stands (a bucket's, pairs.ts): a pair's sweep then
 * merges its buckets' lists instead of making and sorting an event per rule (at 50,000 rules, a pair from
 * a group named by 2,500 rules made 5,000 objects each time it was decided again). Kept for every bucket
 * while it stands (51,000 of them at 50,000 rules with distinct CIDRs), so it is lean: `at` holds each
 * event as port × 2 + 1 for a start, port × 2 for an end (small integers in a plain array), `rules[i]`
 * the rule of event i; `stamp`: the caller's, to tell whether its rules have changed since.
 */
export interface PortEvents { at: number[]; rules: PolicyRule[]; lo: number; hi: number; audit: boolean; stamp: number; edits: Made['edits'] }

/** Sort keys: an event's `at` times this, plus its index (`at` < 2^18, so exact in a double). */
const KEYED = 2 ** 24;

export function portEvents(rules: readonly RuleRef[], proto: number, stamp = 0): PortEvents {
  const at: number[] = [];
  const of: PolicyRule[] = [];
  let lo = NETPOL_ISOLATION;
  let hi = WEFT_TOP;
  let audit = false;
  let sorted = true;
  for (const r of rules) {
    const p = protoOf(r.rule);
    if (p !== 'any' && p !== proto) continue;
    const range = portRange(r.rule) ?? FULL;
    const start = range[0] * 2 + 1;
    if (at.length > 0 && start < (at[at.length - 1] as number)) sorted = false;
    at.push(start);
    of.push(r.rule);
    if (range[1] < 65535) { at.push((range[1] + 1) * 2); of.push(r.rule); }
    if (r.rule.priority < lo) lo = r.rule.priority;
    if (r.rule.priority > hi) hi = r.rule.priority;
    if (r.rule.audit === true) audit = true;
  }
  // One rule (most buckets: a CIDR named once) or rules whose ranges follow each other: already in order.
  // Copies of the exact length: arrays grown by push hold room for 17 elements and more.
  if (sorted) return { at: at.slice(), rules: of.slice(), lo, hi, audit, stamp, edits: undefined };
  const order = orderOf(at);
  return { at: order.map((i) => at[i] as number), rules: order.map((i) => of[i] as PolicyRule), lo, hi, audit, stamp, edits: undefined };
}

/**
 * `ev` with its edits applied, in place (the rules that came and went since it was made, rule-index.ts
 * Made): the events of rules gone dropped, those of rules come merged in, and `stamp` the new one. A
 * bucket of a group that 10,000 rules name was made again, 20,000 events sorted, for each rule changed in
 * it (~12 ms of a 30 ms change at 50,000 rules, bench:policy's "from app"); its arrays are not copied
 * either (on this VM a new array of 20,000 costs ~0.8 ms: each is a large object of fresh pages).
 * `lo`, `hi` and `audit` only widen: a sweep over a wider span of priorities, or with the enforced
 * tallies too, decides the same. Only the bucket holds its events (sides.ts): nothing else sees them change.
 */
export function patchEvents(ev: PortEvents, proto: number, stamp: number): PortEvents {
  const net = new Map<PolicyRule, number>();
  for (const e of ev.edits ?? []) net.set(e.rule, (net.get(e.rule) ?? 0) + e.d);
  const came: RuleRef[] = [];
  // Per rule gone: its starts and its ends still to drop.
  const gone = new Map<PolicyRule, [number, number]>();
  for (const [rule, n] of net) {
    for (let k = 0; k < n; k++) came.push({ policy: '', rule });
    if (n < 0) gone.set(rule, [-n, -n]);
  }
  const { at, rules } = ev;
  if (gone.size > 0) {
    let w = 0;
    for (let i = 0; i < at.length; i++) {
      const a = at[i] as number;
      const r = rules[i] as PolicyRule;
      const g = gone.get(r);
      if (g !== undefined) {
        const k = a & 1 ? 0 : 1;
        if ((g[k] as number) > 0) { g[k]--; continue; }
      }
      at[w] = a;
      rules[w] = r;
      w++;
    }
    at.length = w;
    rules.length = w;
  }
  const add = portEvents(came, proto);
  // Merged from the back: the arrays grow by the events that came, each old event moves up at most once.
  let i = at.length - 1;
  let j = add.at.length - 1;
  for (let k = 0; k <= j; k++) { at.push(0); rules.push(add.rules[0] as PolicyRule); }
  for (let w = at.length - 1; j >= 0; w--) {
    if (i >= 0 && (at[i] as number) > (add.at[j] as number)) { at[w] = at[i] as number; rules[w] = rules[i] as PolicyRule; i--; }
    else { at[w] = add.at[j] as number; rules[w] = add.rules[j] as PolicyRule; j--; }
  }
  ev.lo = Math.min(ev.lo, add.lo);
  ev.hi = Math.max(ev.hi, add.hi);
  ev.audit = ev.audit || add.audit;
  ev.stamp = stamp;
  ev.edits = undefined;
  return ev;
}

/** The indices of `at` in ascending order of their values: a numeric sort of keys, no comparator calls. */
function orderOf(at: readonly number[]): number[] {
  if (at.length >= KEYED) return [...at.keys()].sort((a, b) => (at[a] as number) - (at[b] as number));
  const keys = new Float64Array(at.length);
  for (let i = 0; i < at.length; i++) keys[i] = (at[i] as number) * KEYED + i;
  keys.sort();
  return Array.from(keys, (k) => k % KEYED);
}

/** Reused by every sweep: where each list's next event is. */
let cursors = new Int32Array(64);

/**
 * Port segments from each direction's lists of events (undefined: a direction this host does not
 * enforce: it allows), merged as one sweep over ports. With `against` (segments covering 0-65535: what
 * the side stages decide), only the parts whose verdict differs from it, as sides.ts `differing` would
 * give them: made without the whole segmentation first (a pair's was mostly the side stages' own
 * segments, ~2.5 MB of garbage a change at 50,000 nested rules, a third of what a change allocated).
 */
export function segmentPortsOf(dirs: readonly [readonly PortEvents[] | undefined, readonly PortEvents[] | undefined], fallback: Action, against?: readonly Segment[]): Segment[] {
  const lists: PortEvents[] = [];
  const dirOf: number[] = [];
  let lo = NETPOL_ISOLATION;
  let hi = WEFT_TOP;
  let audit = false;
  dirs.forEach((ls, d) => {
    for (const l of ls ?? []) {
      if (l.at.length > 0) { lists.push(l); dirOf.push(d); }
      if (l.lo < lo) lo = l.lo;
      if (l.hi > hi) hi = l.hi;
      if (l.audit) audit = true;
    }
  });
  if (cursors.length < lists.length) cursors = new Int32Array(lists.length * 2);
  cursors.fill(0, 0, lists.length);
  const present = [dirs[0], dirs[1]];
  const enforced = audit ? ENFORCED : undefined;
  for (const t of [...TALLIES, ...(enforced ?? [])]) t.reset(lo, hi);
  const segs: Segment[] = [];
  let port = 0;
  let j = 0;
  while (port <= 65535) {
    // Every event at this port, from each list; then the next port any list has an event at.
    let next = 65536;
    for (let i = 0; i < lists.length; i++) {
      const l = lists[i] as PortEvents;
      const t = TALLIES[dirOf[i] as 0 | 1];
      let c = cursors[i] as number;
      const at = l.at;
      while (c < at.length && (at[c] as number) >> 1 === port) {
        const rule = l.rules[c] as PolicyRule;
        const delta = (at[c] as number) & 1 ? 1 : -1;
        t.add(rule, delta);
        if (enforced && !rule.audit) enforced[dirOf[i] as 0 | 1].add(rule, delta);
        c++;
      }
      cursors[i] = c;
      if (c < at.length && (at[c] as number) >> 1 < next) next = (at[c] as number) >> 1;
    }
    const last = next - 1;
    const verdict = verdictOf(present, TALLIES, enforced, fallback);
    if (against) j = differingInto(segs, port, last, verdict, against, j);
    else {
      const prev = segs[segs.length - 1];
      if (prev && prev.verdict === verdict) prev.last = last;
      else segs.push({ first: port, last, verdict });
    }
    port = last + 1;
  }
  return segs;
}

/**
 * Appends to `out` the parts of [first, last] (verdict `v`) where `b` decides otherwise, merged with the
 * last part when they meet with one verdict; `j` is the first segment of `b` not wholly before `first`
 * (returned for the next call: calls come in ascending order).
 */
export function differingInto(out: Segment[], first: number, last: number, v: Verdict, b: readonly Segment[], j: number): number {
  while (j < b.length && (b[j] as Segment).last < first) j++;
  for (let k = j; k < b.length && (b[k] as Segment).first <= last; k++) {
    const t = b[k] as Segment;
    if (t.verdict === v) continue;
    const from = Math.max(first, t.first);
    const to = Math.min(last, t.last);
    const prev = out[out.length - 1];
    if (prev && prev.verdict === v && prev.last + 1 === from) prev.last = to;
    else out.push({ first: from, last: to, verdict: v });
  }
  return j;
}

const FULL: [number, number] = [0, 65535];

/** Protocol segments over 0-255 without tcp and udp (and sctp, with `sctp`): those are decided per port. */
export function segmentProtos(sides: Sides, fallback: Action, sctp = false): Segment[] {
  const byPort: number[] = sctp ? [TCP, UDP, SCTP] : [TCP, UDP];
  const named = new Set<number>();
  for (const r of [...(sides.egress ?? []), ...(sides.ingress ?? [])]) {
    const p = protoOf(r.rule);
    if (p !== 'any' && !byPort.includes(p)) named.add(p);
  }
  const cuts = new Set<number>([0]);
  for (const p of named) { cuts.add(p); cuts.add(p + 1); }
  for (const p of byPort) { cuts.add(p); cuts.add(p + 1); }
  const points = [...cuts].filter((p) => p <= 255).sort((a, b) => a - b);
  const segs: Segment[] = [];
  const dirs = [sides.egress, sides.ingress];
  const [lo, hi] = spanOf(dirs);
  const enforced = audited(dirs) ? ENFORCED : undefined;
  for (let i = 0; i < points.length; i++) {
    const first = points[i] as number;
    const last = (points[i + 1] ?? 256) - 1;
    if (byPort.includes(first)) continue;
    dirs.forEach((rules, d) => {
      const t = TALLIES[d as 0 | 1];
      t.reset(lo, hi);
      enforced?.[d as 0 | 1].reset(lo, hi);
      for (const r of rules ?? []) {
        const p = protoOf(r.rule);
        if ((p !== 'any' && p !== first) || portRange(r.rule) !== undefined) continue;
        t.add(r.rule, 1);
        if (enforced && !r.rule.audit) enforced[d as 0 | 1].add(r.rule, 1);
      }
    });
    const verdict = verdictOf(dirs, TALLIES, enforced, fallback);
    const prev = segs[segs.length - 1];
    if (prev && prev.verdict === verdict && prev.last + 1 === first) prev.last = last;
    else segs.push({ first, last, verdict });
  }
  return segs;
}
