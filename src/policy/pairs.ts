import type { Action } from '../model/index.js';
import { Attached } from '../model/attached.js';
import type { Klass } from './classes.js';
import type { RuleRef } from './decide.js';
import { PROTOS, type Bucket, type ProtoName, type ProtoSlot, type RuleIndex } from './rule-index.js';
import type { Segment } from './segments.js';
import { bucketSegments, inPairs, sideRules, slotSegments } from './sides.js';
import { DECIDED_IN, DECIDED_OUT } from './high.js';

/**
 * A verdict function of one protocol, shared by every pair that has it: for tcp, udp and sctp the segments
 * of 0-65535 whose verdict differs from what the side stages of the pair's ends decide (sides.ts), for
 * `other` those of 0-255 (without 6 and 17, and 132 where sctp has its own). The verdicts are explicit
 * (the tenant's default too); where a profile has no segment the side stages decide.
 * Immutable: a compile's result lists the profiles in force, and the next compile keeps the same objects
 * for the functions that did not change (so the datapath renders each once).
 */
export interface Profile { id: number; proto: ProtoName; segs: readonly Segment[]; text: string }

/**
 * A pair of classes and its profile per protocol (0: every flow of it gets the default; sctp: 0 unless the
 * compile decides SCTP by port). `dst` may carry DECIDED_IN or DECIDED_OUT (high.ts): the pair's function
 * once a high stage decided a direction open.
 */
export interface PairProfiles { src: number; dst: number; tcp: number; udp: number; other: number; sctp: number }

/** The rule indexes of the sides this host enforces: undefined where it does not enforce that side. */
export type SideIndex = (k: Klass, d: 'in' | 'out') => RuleIndex | undefined;

/** A computed function before it has an id: its segments, their text, and its identity (made once: a text may be long). */
interface Fn { proto: ProtoName; segs: Segment[]; text: string; key: string }
type Fns = [Fn | null, Fn | null, Fn | null, Fn | null];

/**
 * The verdict functions of a compile: each computed once per distinct set of rule buckets (the memo,
 * keyed by the buckets' stamps), and each distinct function given one id while a pair holds it.
 */
export class Profiles {
  private readonly memo = new Map<string, Fn | null>();
  /** What the side stages of a pair's two ends decide, by their peerless buckets' stamps. */
  private readonly sideMemo = new Map<string, Segment[]>();
  private readonly live = new Map<string, { profile: Profile; refs: number }>();
  private readonly byId = new Map<number, string>();
  private readonly kept: Map<string, number>;
  private fresh = 1;
  private listed: Profile[] | undefined;
  /** Ids whose profile came, went or changed since `listed` was made (list() patches it with them). */
  private readonly touched = new Set<number>();

  /**
   * `previous`: the profiles of the last compile here, whose ids a function keeps when it comes back.
   * `sctp`: SCTP is decided by port (its own slot) rather than as one protocol number among the others.
   */
  constructor(private readonly defaultAction: Action, previous: readonly Profile[] = [], private readonly sctp = false) {
    this.kept = new Map(previous.map((p) => [liveKey(p), p.id]));
    for (const p of previous) if (p.id >= this.fresh) this.fresh = p.id + 1;
  }

  /** The highest id given so far (they only grow here: compile.ts starts over before they reach ID_LIMIT). */
  get highest(): number {
    return this.fresh - 1;
  }

  /** The functions of a pair whose sides match these buckets (undefined: a side this host does not enforce). */
  fnsOf(eg: readonly Bucket[] | undefined, ig: readonly Bucket[] | undefined): Fns {
    return [this.fnOf(0, eg, ig), this.fnOf(1, eg, ig), this.fnOf(2, eg, ig), this.sctp ? this.fnOf(3, eg, ig) : null];
  }

  private fnOf(p: ProtoSlot, eg: readonly Bucket[] | undefined, ig: readonly Bucket[] | undefined): Fn | null {
    // No rule of this protocol with a peer on either side: the side stages decide every flow of it.
    if (!eg?.some((b) => inPairs(b, p)) && !ig?.some((b) => inPairs(b, p))) return null;
    const key = `${p}${eg ? `E${stampsOf(p, eg)}` : 'N'}|${ig ? `E${stampsOf(p, ig)}` : 'N'}`;
    let fn = this.memo.get(key);
    if (fn === undefined) this.memo.set(key, (fn = this.compute(p, eg, ig)));
    return fn;
  }

  private compute(p: ProtoSlot, eg: readonly Bucket[] | undefined, ig: readonly Bucket[] | undefined): Fn | null {
    const segs = bucketSegments(p, eg, ig, this.defaultAction, this.sctp, this.sidesOf(p, eg, ig));
    if (segs.length === 0) return null;
    const text = segs.map((s) => `${s.first}-${s.last}:${s.verdict}`).join(',');
    return { proto: PROTOS[p], segs, text, key: liveKey({ proto: PROTOS[p], text }) };
  }

  /** What the side stages of a pair's ends decide (an end not enforced here allows). */
  private sidesOf(p: ProtoSlot, eg: readonly Bucket[] | undefined, ig: readonly Bucket[] | undefined): Segment[] {
    const e = eg?.find((b) => b.any);
    const i = ig?.find((b) => b.any);
    const key = `${p}${eg ? (e ? e.stamps[p] : '-') : 'N'}|${ig ? (i ? i.stamps[p] : '-') : 'N'}`;
    let segs = this.sideMemo.get(key);
    if (!segs) {
      segs = slotSegments(p, { egress: eg && sideRules(e, p), ingress: ig && sideRules(i, p) }, this.defaultAction, this.sctp);
      this.sideMemo.set(key, segs);
    }
    return segs;
  }

  /** A function's id, counted as held once more. */
  acquire(fn: Fn | null): number {
    if (!fn) return 0;
    const k = fn.key;
    let entry = this.live.get(k);
    if (!entry) {
      // A kept id may have gone to another function since (swap): then a fresh one.
      const kept = this.kept.get(k);
      const id = kept !== undefined && !this.byId.has(kept) ? kept : this.fresh++;
      entry = { profile: { id, proto: fn.proto, segs: fn.segs, text: fn.text }, refs: 0 };
      this.live.set(k, entry);
      this.touched.add(id);
      this.byId.set(id, k);
    }
    entry.refs++;
    return entry.profile.id;
  }

  /**
   * A pair's function changed from `id` to `fn`. When that pair alone held `id` and `fn` is held by no
   * one, `fn` takes `id` over: the pair's element in the datapath's pair map stays as it is, and only the
   * profile's own elements change (a rule's port edited rewrites one port, not the map of every pair).
   */
  swap(id: number, fn: Fn | null): number {
    const k = this.byId.get(id);
    const entry = k === undefined ? undefined : this.live.get(k);
    if (!fn || !entry || entry.refs !== 1 || entry.profile.proto !== fn.proto || this.live.has(fn.key)) {
      const next = this.acquire(fn);
      if (id) this.release(id);
      return next;
    }
    this.live.delete(k as string);
    this.touched.add(id);
    entry.profile = { id, proto: fn.proto, segs: fn.segs, text: fn.text };
    this.live.set(fn.key, entry);
    this.byId.set(id, fn.key);
    return id;
  }

  /** How many pairs hold this id (0: none, or no such id). */
  refsOf(id: number): number {
    const k = this.byId.get(id);
    return k === undefined ? 0 : (this.live.get(k)?.refs ?? 0);
  }

  /**
   * The function under `from` takes the id `to`, which no function holds any more (PairStore.settle:
   * every pair that held `to` moved to `from`'s function in this compile). Refused when `to` is held.
   */
  rename(from: number, to: number): boolean {
    const k = this.byId.get(from);
    const entry = k === undefined ? undefined : this.live.get(k);
    if (!entry || this.byId.has(to)) return false;
    entry.profile = { ...entry.profile, id: to };
    this.byId.delete(from);
    this.byId.set(to, k as string);
    this.touched.add(from);
    this.touched.add(to);
    return true;
  }

  release(id: number): void {
    const k = this.byId.get(id);
    const entry = k === undefined ? undefined : this.live.get(k);
    if (!entry || --entry.refs > 0) return;
    this.live.delete(k as string);
    this.touched.add(id);
    this.byId.delete(id);
    // Remembered: a rule toggled off and on again brings its function back under the same id.
    this.kept.set(k as string, id);
  }

  /**
   * The profiles in force, by id. Also forgets the memo once it holds far more keys than there are
   * pairs: keys of changed buckets are never asked for again.
   */
  list(pairs: number): readonly Profile[] {
    if (this.memo.size > 3 * pairs + 4096) this.memo.clear();
    if (this.sideMemo.size > 4096) this.sideMemo.clear();
    if (this.kept.size > 2 * this.live.size + 4096) this.kept.clear();
    // The same array while no profile came, went or changed: the datapath renders by identity (policy-nft.ts).
    if (this.listed === undefined) this.listed = [...this.live.values()].map((e) => e.profile).sort((a, b) => a.id - b.id);
    else if (this.touched.size > 0) this.listed = patchList(this.listed, this.touched, (id) => this.profileOf(id));
    this.touched.clear();
    return this.listed;
  }

  private profileOf(id: number): Profile | undefined {
    const k = this.byId.get(id);
    return k === undefined ? undefined : this.live.get(k)?.profile;
  }
}

/**
 * What a list made by patchList changed from the list it was made from (its `was`), held weakly: each list
 * holding its predecessor would keep every list and every profile since the cold compile (~170 KB a
 * change at 19,000 profiles).
 */
interface ListChange { was: WeakRef<readonly object[]>; removed: object[]; added: object[] }
const listChanges = new Attached<readonly object[], ListChange>('list changes');

/**
 * What came and went between `was` and `now` (a profile changed under its id is one of each, in id
 * order), if `now` was patched from `was` (patchList): the render reads it instead of walking both lists
 * (~4 ms at 19,000 profiles, for a change of a few). Undefined otherwise.
 */
export function listChangesOf<T extends { id: number }>(now: readonly T[], was: readonly T[]): { removed: T[]; added: T[] } | undefined {
  const c = listChanges.get(now);
  return c !== undefined && c.was.deref() === was ? { removed: c.removed as T[], added: c.added as T[] } : undefined;
}

/**
 * A new list by id from `was` (sorted by id, left as it is: the last compile's result) where the ids in
 * `touched` now hold `now(id)` or nothing. One merge: rebuilding it from the live map and sorting it
 * again cost ~2.6 ms a change at 15,000 profiles (issue 13). What it changed is kept with it (listChangesOf).
 */
export function patchList<T extends { id: number }>(was: readonly T[], touched: ReadonlySet<number>, now: (id: number) => T | undefined): T[] {
  const ids = [...touched].sort((a, b) => a - b);
  // Made at its largest size once and cut to length (grown by push, it was copied at each doubling).
  const out = new Array<T>(was.length + ids.length);
  const removed: T[] = [];
  const added: T[] = [];
  let n = 0;
  let i = 0;
  for (const id of ids) {
    // Found by halving: the objects between are copied without a look at their ids (profiles of several
    // shapes: reading each one's id cost ~3 ms a change at 19,000).
    let lo = i;
    let hi = was.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((was[mid] as T).id < id) lo = mid + 1;
      else hi = mid;
    }
    while (i < lo) out[n++] = was[i++] as T;
    const old = i < was.length && (was[i] as T).id === id ? was[i++] : undefined;
    const x = now(id);
    if (x) out[n++] = x;
    if (x === old) continue;
    if (old) removed.push(old);
    if (x) added.push(x);
  }
  while (i < was.length) out[n++] = was[i++] as T;
  out.length = n;
  listChanges.set(out, { was: new WeakRef(was), removed, added });
  return out;
}

const liveKey = (x: { proto: ProtoName; text: string }) => `${x.proto}:${x.text}`;

/** The stamps of the buckets holding rules of this protocol ('' if none). */
function stampsOf(p: ProtoSlot, bs: readonly Bucket[] | undefined): string {
  let k = '';
  for (const b of bs ?? []) if (b.rules[p].length > 0) k += `${b.stamps[p]},`;
  return k;
}

/**
 * A pair's functions, or undefined when every flow between them gets the default. The only place a pair
 * is decided, so a cold compile and an incremental one cannot disagree.
 */
export function decidePair(src: Klass, dst: Klass, indexOf: SideIndex, profiles: Profiles): Fns | undefined {
  const egressIdx = indexOf(src, 'out');
  const ingressIdx = indexOf(dst, 'in');
  if (!egressIdx?.size && !ingressIdx?.size) return undefined; // every enforced side falls back: the default
  const eg = egressIdx?.parts(dst);
  const ig = ingressIdx?.parts(src);
  if (!eg?.length && !ig?.length) return undefined;
  const fns = profiles.fnsOf(eg, ig);
  return fns[0] || fns[1] || fns[2] || fns[3] ? fns : undefined;
}

/**
 * The functions of a pair of enforced classes once a high stage decided one direction open (high.ts):
 * the egress alone (the destination's ingress was decided) and the ingress alone (the source's egress
 * was), each only where that side has a high rule (`inHigh`, `outHigh`). Undefined where the side
 * stages decide every flow of it.
 */
export function decideVariants(src: Klass, dst: Klass, indexOf: SideIndex, profiles: Profiles, inHigh: boolean, outHigh: boolean): [Fns | undefined, Fns | undefined] {
  const one = (eg: readonly Bucket[] | undefined, ig: readonly Bucket[] | undefined): Fns | undefined => {
    if (!eg?.length && !ig?.length) return undefined;
    const fns = profiles.fnsOf(eg, ig);
    return fns[0] || fns[1] || fns[2] || fns[3] ? fns : undefined;
  };
  return [inHigh ? one(indexOf(src, 'out')?.parts(dst), undefined) : undefined, outHigh ? one(undefined, indexOf(dst, 'in')?.parts(src)) : undefined];
}

interface Stored { entry: PairProfiles; at: number }

const SLOTS = ['tcp', 'udp', 'other', 'sctp'] as const;
type Slot = 0 | 1 | 2 | 3;

/** The pairs (and slots) whose function moved from one id in this compile, by the id each went to. */
type Moves = Map<number, Array<{ s: Stored; slot: Slot }>>;

/**
 * Every pair with a profile, by source class then destination class, and the flat list the datapath
 * renders. The list is patched, not rebuilt: a pair leaves by swapping the last pair into its place (the
 * list has no order), so a recompile that decides a few pairs again costs a copy of the list.
 */
export class PairStore {
  private readonly bySrc = new Map<number, Map<number, Stored>>();
  list: PairProfiles[] = [];
  /** Whether `list` may be written: not while it is the last compile's result (until the first change copies it). */
  private owned = true;

  /** This compile's moves, by the id the pairs left (settle()). */
  private readonly moves = new Map<number, Moves>();
  /** Each pair changed in this compile, with its entry before it (settle() gives it back where nothing moved). */
  private readonly before = new Map<Stored, PairProfiles>();
  /** Pairs dropped in this compile: a move of theirs counts for nothing (settle). */
  private readonly dropped = new Set<Stored>();

  constructor(readonly profiles: Profiles) {}

  /**
   * The next compile starts: the last compile's list is its result and must not change, so the first
   * change copies it. A compile that changes no pair returns the same array (rendered by identity).
   */
  detach(): void {
    this.owned = false;
    // What a compile that threw (a budget refused) left unsettled.
    this.moves.clear();
    this.before.clear();
    this.dropped.clear();
  }

  private writable(): PairProfiles[] {
    if (!this.owned) { this.list = this.list.slice(); this.owned = true; }
    return this.list;
  }

  set(src: number, dst: number, fns: Fns | undefined): void {
    const m = this.bySrc.get(src);
    const old = m?.get(dst);
    const p = this.profiles;
    if (fns === undefined) {
      if (!old || !m) return;
      for (const id of [old.entry.tcp, old.entry.udp, old.entry.other, old.entry.sctp]) if (id) p.release(id);
      this.dropped.add(old);
      this.before.delete(old);
      this.unlist(old);
      m.delete(dst);
      if (m.size === 0) this.bySrc.delete(src);
      return;
    }
    const ids = old ? [p.swap(old.entry.tcp, fns[0]), p.swap(old.entry.udp, fns[1]), p.swap(old.entry.other, fns[2]), p.swap(old.entry.sctp, fns[3])] : fns.map((f) => p.acquire(f));
    // Decided again to the same profiles: the entry (and the list) stay as they are.
    if (old && old.entry.tcp === ids[0] && old.entry.udp === ids[1] && old.entry.other === ids[2] && old.entry.sctp === ids[3]) return;
    const entry: PairProfiles = { src, dst, tcp: ids[0] as number, udp: ids[1] as number, other: ids[2] as number, sctp: ids[3] as number };
    // A new object in the same place: the last compile's list may hold the old one.
    if (old) {
      const was = old.entry;
      old.entry = entry;
      this.writable()[old.at] = entry;
      if (!this.before.has(old)) this.before.set(old, was);
      for (let i = 0; i < 4; i++) {
        const k = SLOTS[i] as (typeof SLOTS)[number];
        if (was[k] !== 0 && ids[i] !== was[k]) this.moved(old, i as Slot, was[k], ids[i] as number);
      }
      return;
    }
    const at = this.writable().push(entry) - 1;
    if (m) m.set(dst, { entry, at });
    else this.bySrc.set(src, new Map([[dst, { entry, at }]]));
  }

  /** A pair's function in `slot` moved from id `from` to `to` (0: to none). */
  private moved(s: Stored, slot: Slot, from: number, to: number): void {
    let m = this.moves.get(from);
    if (!m) this.moves.set(from, (m = new Map()));
    const at = m.get(to);
    if (at) at.push({ s, slot });
    else m.set(to, [{ s, slot }]);
  }

  /**
   * Before the compile's result is listed: where no pair holds a profile id any more, the new function
   * most of its pairs moved to (one that only they hold) takes that id over, and those pairs keep their
   * elements in the datapath's pair maps: only the profile's own elements change. Given a fresh id
   * instead, each such pair's element changed, and with it the whole shard map holding it: at 50,000
   * nested rules a port opened on db for everyone rewrote ~90 pair maps, ~4,500 elements, 150 KB a change
   * (a rule without a peer on ports that rules with a peer name changes every pair of db alike). The
   * one-pair case is `swap`.
   */
  settle(): void {
    const back = new Set<Stored>();
    for (const [from, m] of this.moves) {
      if (this.profiles.refsOf(from) > 0) continue;
      let best: Array<{ s: Stored; slot: Slot }> | undefined;
      let to = 0;
      for (const [t, moved] of m) {
        // Only a function these pairs alone hold, and still hold (a pair decided twice may hold another by now).
        if (t === 0 || (best && best.length >= moved.length) || this.profiles.refsOf(t) !== moved.length) continue;
        // Nor one a pair moved to and then was dropped (a review: its place in the list is another's by then).
        if (!moved.every((x) => x.s.entry[SLOTS[x.slot]] === t && !this.dropped.has(x.s))) continue;
        best = moved;
        to = t;
      }
      if (!best || !this.profiles.rename(to, from)) continue;
      for (const x of best) {
        // The entry was made in this compile (set): no earlier result holds it.
        x.s.entry[SLOTS[x.slot]] = from;
        back.add(x.s);
      }
    }
    this.moves.clear();
    this.dropped.clear();
    // A pair whose every slot is as it was is its old entry again (the datapath renders by identity).
    for (const s of back) {
      const was = this.before.get(s);
      if (was && this.list[s.at] === s.entry && SLOTS.every((k) => was[k] === s.entry[k])) {
        s.entry = was;
        this.list[s.at] = was;
      }
    }
    this.before.clear();
  }

  /** Drops the pairs with this source (it is no source role any more: roles.ts). */
  dropSrc(id: number): void {
    for (const dst of [...(this.bySrc.get(id)?.keys() ?? [])]) this.set(id, dst, undefined);
  }

  /**
   * Drops the pairs with these destinations, and their functions for a direction decided open: by looking
   * each up under every source, or by one pass over the pairs when that is less.
   */
  dropDsts(ids: readonly number[]): void {
    if (ids.length === 0) return;
    if (ids.length * this.bySrc.size <= this.list.length) {
      for (const id of ids) for (const [src, m] of this.bySrc) for (const dst of [id, id + DECIDED_IN, id + DECIDED_OUT]) if (m.has(dst)) this.set(src, dst, undefined);
      return;
    }
    const gone = new Set(ids);
    const decided = DECIDED_IN | DECIDED_OUT;
    // A copy: a pair dropped moves the last one into its place.
    for (const p of this.list.slice()) if (gone.has(p.dst & ~decided)) this.set(p.src, p.dst, undefined);
  }

  private unlist(s: Stored): void {
    const moved = this.writable().pop() as PairProfiles;
    if (s.at === this.list.length) return;
    this.list[s.at] = moved;
    (this.bySrc.get(moved.src)?.get(moved.dst) as Stored).at = s.at;
  }
}
