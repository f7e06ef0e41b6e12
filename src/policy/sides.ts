import type { Action } from '../model/index.js';
import type { RuleRef } from './decide.js';
import { PROTOS, type Bucket, type ProtoName, type ProtoSlot } from './rule-index.js';
import { differingInto, patchEvents, portEvents, segmentPorts, segmentPortsOf, segmentProtos, type PortEvents, type Segment, type Sides } from './segments.js';
import { highSegments } from './high.js';

/**
 * Side stages (issue 13: a rule without a peer at 50,000 rules). A rule without a peer matches every class
 * on the other side, so folded into the pairs' functions it changed the function of every pair of its
 * group: thousands of profiles rewritten for one port opened to everyone. Instead each enforced side
 * (an identity's ingress or egress) decides its peerless rules once, in a side stage the datapath runs
 * after the pair stage; a pair's profile holds only the ports where the pair's verdict differs from what
 * the side stages of its two ends give. That happens only where some rule with a peer applies (elsewhere
 * both directions are their peerless rules alone), so a peerless rule on ports no rule with a peer
 * touches changes one side profile and no pair.
 *
 * A side stage only drops: a direction that allows leaves the decision to the other, and a connection
 * that neither drops is accepted when one of its ends is enforced here (else the tenant's default). A
 * side with a peerless rule of a policy in audit mode keeps its peerless rules in the pairs (an audit
 * verdict is known only once both directions are), and its side stage drops nothing.
 */

/** The peerless rules a side stage decides for this protocol; undefined when the pairs hold them (audit). */
export function sideRules(any: Bucket | undefined, p: ProtoSlot): RuleRef[] | undefined {
  if (!any) return [];
  return any.audits[p] > 0 ? undefined : any.rules[p];
}

/** Whether a bucket's rules of this protocol are decided in the pairs (rules with a peer; peerless ones under audit). */
export function inPairs(b: Bucket, p: ProtoSlot): boolean {
  return b.rules[p].length > 0 && (!b.any || b.audits[p] > 0);
}

export { coverage } from './decide.js';

/** The protocol numbers of the slots decided by port. */
export const PROTO_NUMBER = [6, 17, 0, 132] as const;

/** Segments of one slot's domain (ports 0-65535, or protocol numbers for `other`) with their verdicts. */
export function slotSegments(p: ProtoSlot, sides: Sides, defaultAction: Action, sctp: boolean): Segment[] {
  return p === 2 ? segmentProtos(sides, defaultAction, sctp) : segmentPorts(sides, PROTO_NUMBER[p], defaultAction);
}

/**
 * A pair's segments of one slot from the buckets its sides match (undefined: a side not enforced here);
 * with `against` (what the side stages decide), only where they differ from it (`differing`).
 * By port, each bucket's rules as sorted port events, made once while the bucket's rules of that slot
 * stand (its stamp): deciding a pair again merges them, so a pair from a group many rules name costs no
 * allocation per rule.
 */
export function bucketSegments(p: ProtoSlot, eg: readonly Bucket[] | undefined, ig: readonly Bucket[] | undefined, defaultAction: Action, sctp: boolean, against?: readonly Segment[]): Segment[] {
  if (p === 2) {
    const rules = (bs: readonly Bucket[] | undefined) => (bs === undefined ? undefined : ([] as RuleRef[]).concat(...bs.map((b) => b.rules[p])));
    const all = segmentProtos({ egress: rules(eg), ingress: rules(ig) }, defaultAction, sctp);
    return against ? differing(all, against) : all;
  }
  const lists = (bs: readonly Bucket[] | undefined) => bs?.map((b) => eventsOf(b, p));
  return segmentPortsOf([lists(eg), lists(ig)], defaultAction, against);
}

/**
 * A bucket's port events of a slot, kept on the bucket with the stamp they were made at (not in a
 * WeakMap: 51,000 buckets at 50,000 rules with distinct CIDRs were 51,000 ephemerons for every major
 * collection to trace).
 */
function eventsOf(b: Bucket, p: ProtoSlot): PortEvents {
  const made = (b.made ??= [undefined, undefined, undefined, undefined]);
  const hit = made[p] as PortEvents | undefined;
  if (hit && hit.stamp === b.stamps[p]) return hit;
  // Patched when the slot's edits since are known (rule-index.ts Made), else made again from its rules.
  return (made[p] = hit?.edits ? patchEvents(hit, PROTO_NUMBER[p], b.stamps[p]) : portEvents(b.rules[p], PROTO_NUMBER[p], b.stamps[p]));
}

/** The segments of `a` whose verdict differs from `b`'s (both cover the same domain), merged. */
export function differing(a: readonly Segment[], b: readonly Segment[]): Segment[] {
  const out: Segment[] = [];
  let j = 0;
  for (const s of a) j = differingInto(out, s.first, s.last, s.verdict, b, j);
  return out;
}

/**
 * A side stage's function of one protocol: the segments its peerless rules drop; or a high stage's
 * (high.ts): the segments its high rules decide, accept or drop.
 */
export interface SideProfile { id: number; proto: ProtoName; segs: readonly Segment[]; text: string }

/** An enforced class's side profiles per direction and protocol slot (tcp, udp, other, sctp); 0 drops nothing. */
export interface SideEntry { cls: number; in: readonly number[]; out: readonly number[] }

/**
 * The side profiles of a compile (`kind` side), or its high profiles (`kind` high): each computed once per
 * stamps of a side's buckets without a peer and interned by content (an id is kept across compiles while
 * its function stands, as the pairs' profiles are).
 */
export class SideProfiles {
  private readonly memo = new Map<string, number>();
  private readonly byKey = new Map<string, SideProfile>();
  private readonly kept: Map<string, number>;
  /** Ids in use, and ids `kept` for functions that may come back (a fresh id takes neither). */
  private readonly taken = new Set<number>();
  private readonly reserved: Set<number>;
  private fresh = 1;

  constructor(private readonly defaultAction: Action, private readonly sctp: boolean, previous: readonly SideProfile[] = [], private readonly kind: 'side' | 'high' = 'side') {
    this.kept = new Map(previous.map((x) => [`${x.proto}:${x.text}`, x.id]));
    this.reserved = new Set(this.kept.values());
    for (const x of previous) if (x.id >= this.fresh) this.fresh = x.id + 1;
  }

  /** The profile of a side's buckets without a peer (undefined: the side has none) for one protocol slot. */
  idOf(any: Bucket | undefined, high: Bucket | undefined, p: ProtoSlot): number {
    const memoKey = `${p}:${any ? any.stamps[p] : '-'}:${high ? high.stamps[p] : '-'}`;
    const known = this.memo.get(memoKey);
    if (known !== undefined) return known;
    const segs = this.kind === 'high' ? highSegments(any, high, p, this.sctp) : this.drops(any, high, p);
    const id = segs.length === 0 ? 0 : this.intern(PROTOS[p], segs);
    this.memo.set(memoKey, id);
    return id;
  }

  /** What every rule without a peer of a side drops (its high ones too: where they allow, the side must not drop). */
  private drops(any: Bucket | undefined, high: Bucket | undefined, p: ProtoSlot): Segment[] {
    const rules = sideRules(any, p);
    if (rules === undefined) return [];
    const all = high && high.rules[p].length > 0 ? rules.concat(high.rules[p]) : rules;
    return slotSegments(p, { egress: all, ingress: undefined }, this.defaultAction, this.sctp).filter((s) => s.verdict === 'drop');
  }

  private intern(proto: ProtoName, segs: Segment[]): number {
    const text = segs.map((s) => `${s.first}-${s.last}${s.verdict === 'drop' ? '' : '+'}`).join(',');
    const key = `${proto}:${text}`;
    const known = this.byKey.get(key);
    if (known) return known.id;
    const kept = this.kept.get(key);
    const id = kept !== undefined && !this.taken.has(kept) ? kept : this.next();
    this.byKey.set(key, { id, proto, segs, text });
    this.taken.add(id);
    return id;
  }

  /** The highest id given so far (they only grow here: compile.ts starts over before they reach ID_LIMIT). */
  get highest(): number {
    return this.fresh - 1;
  }

  private next(): number {
    while (this.taken.has(this.fresh) || this.reserved.has(this.fresh)) this.fresh++;
    return this.fresh++;
  }

  /** The side profiles some entry names, by id; forgets the others once they pile up (each toggle of a rule makes one). */
  list(entries: readonly SideEntry[]): SideProfile[] {
    const used = new Set(entries.flatMap((e) => [...e.in, ...e.out]));
    const out = [...this.byKey.values()].filter((x) => used.has(x.id)).sort((a, b) => a.id - b.id);
    if (this.byKey.size > 2 * out.length + 64) {
      for (const [k, x] of this.byKey) if (!used.has(x.id)) { this.byKey.delete(k); this.taken.delete(x.id); this.kept.set(k, x.id); this.reserved.add(x.id); }
      this.memo.clear();
      if (this.kept.size > 4096) { this.kept.clear(); this.reserved.clear(); }
    }
    return out;
  }
}
