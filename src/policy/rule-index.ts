import type { Klass } from './classes.js';
import { coverage, protoOf, type PolicyRule, type RuleRef } from './decide.js';
import type { NetpolRule } from './netpol.js';
import { Levels } from './levels.js';
import { CidrAliases } from './aliases.js';

/**
 * The verdict functions a pair has: tcp by port, udp by port, every other protocol by number, and sctp
 * by port in a tenant where some rule names SCTP ports (else SCTP is one of the others: compile.ts).
 */
export const PROTOS = ['tcp', 'udp', 'other', 'sctp'] as const;
export type ProtoName = (typeof PROTOS)[number];
export type ProtoSlot = 0 | 1 | 2 | 3;
export const SLOTS = [0, 1, 2, 3] as const;

/** The functions a rule can change (a rule for any protocol changes all; an SCTP rule, both where SCTP may be decided). */
export function slotsOf(rule: RuleRef['rule']): ProtoSlot[] {
  const p = protoOf(rule);
  if (p === 'any') return [0, 1, 2, 3];
  return p === 6 ? [0] : p === 17 ? [1] : p === 132 ? [2, 3] : [2];
}

/**
 * What sides.ts keeps of a slot's rules (its port events), made at `stamp`, and the rules that came (+1)
 * and went (-1) since: none yet (undefined), or too many to patch (null: made again whole).
 */
export interface Made { stamp: number; edits: Array<{ rule: PolicyRule; d: 1 | -1 }> | null | undefined }
/** Edits a slot keeps for what was made of it; past this it is made again from its rules. */
export const MAX_EDITS = 256;

/**
 * The rules of one peer (one group, network or CIDR, or no peer) of an index, per protocol function, each
 * with a stamp that is new whenever that protocol's rules change. A pair's function of a protocol depends
 * only on the rules in the buckets its sides match, so the stamps of those buckets name the function:
 * pairs with the same stamps share it, and it is computed once (pairs.ts).
 */
export class Bucket {
  readonly rules: [RuleRef[], RuleRef[], RuleRef[], RuleRef[]] = [[], [], [], []];
  readonly stamps: [number, number, number, number];
  /** Rules of policies in audit mode, per protocol function. */
  readonly audits: [number, number, number, number] = [0, 0, 0, 0];
  size = 0;
  /** Per slot, what sides.ts made of its rules (port events, with the stamp they were made at): stale once the stamp moves. */
  made: [Made | undefined, Made | undefined, Made | undefined, Made | undefined] | undefined;
  /** `any`: the bucket of rules without a peer (sides.ts). */
  constructor(private readonly stamp: () => number, readonly any = false) {
    this.stamps = [stamp(), stamp(), stamp(), stamp()];
  }

  add(r: RuleRef): void {
    for (const p of slotsOf(r.rule)) { this.rules[p].push(r); this.stamps[p] = this.stamp(); if (r.rule.audit) this.audits[p]++; this.note(p, r.rule, 1); }
    this.size++;
  }

  /** The entry of a policy's rule by its id, in whichever slot holds it. */
  find(policy: string, id: string): RuleRef | undefined {
    for (const list of this.rules) for (const x of list) if (x.rule.id === id && x.policy === policy) return x;
    return undefined;
  }

  remove(policy: string, id: string): boolean {
    let found = false;
    for (const p of SLOTS) if (this.take(policy, id, p)) found = true;
    if (found) this.size--;
    return found;
  }

  /**
   * One protocol slot only (the peerless buckets: a rule for several protocols may be decided ahead of
   * the pairs in one and not in another, high.ts). `size` counts slots held, not rules.
   */
  addAt(r: RuleRef, p: ProtoSlot): void {
    this.rules[p].push(r);
    this.stamps[p] = this.stamp();
    if (r.rule.audit) this.audits[p]++;
    this.note(p, r.rule, 1);
    this.size++;
  }

  removeAt(policy: string, id: string, p: ProtoSlot): boolean {
    const found = this.take(policy, id, p);
    if (found) this.size--;
    return found;
  }

  /** A slot's rules replaced by `rules` (`gone` of them left, `came` came: neither in audit mode). */
  replaceAt(p: ProtoSlot, rules: RuleRef[], gone: number, came: number): void {
    this.rules[p] = rules;
    this.stamps[p] = this.stamp();
    const m = this.made?.[p];
    if (m) m.edits = null;
    this.size += came - gone;
  }

  /** A rule came into (+1) or went from (-1) a slot: noted on what sides.ts made of it, which patches it (MAX_EDITS at most). */
  private note(p: ProtoSlot, rule: PolicyRule, d: 1 | -1): void {
    const m = this.made?.[p];
    if (m === undefined || m.edits === null) return;
    if ((m.edits ??= []).length >= MAX_EDITS) m.edits = null;
    else m.edits.push({ rule, d });
  }

  private take(policy: string, id: string, p: ProtoSlot): boolean {
    const list = this.rules[p];
    const i = list.findIndex((x) => x.rule.id === id && x.policy === policy);
    if (i < 0) return false;
    const held = list[i] as RuleRef;
    if (held.rule.audit) this.audits[p]--;
    list.splice(i, 1);
    this.note(p, held.rule, -1);
    this.stamps[p] = this.stamp();
    return true;
  }
}

/**
 * A group's rules of one direction, indexed by what their peer names, so finding the rules that match a
 * peer class costs what matches, not what exists (10,000 rules with distinct CIDRs stay cheap). An
 * incremental compile adds and removes single rules; the order within a list does not matter, since a
 * pair's verdicts count rules by priority and action.
 */
export class RuleIndex {
  /**
   * The rules without a peer that the pairs and side stages decide: they match every class (sides.ts
   * decides them per side, not per pair).
   */
  readonly any: Bucket;
  /**
   * The rules without a peer decided ahead of the pairs (high.ts): per protocol slot, those above every
   * rule with a peer of this index on their ports. A pair's functions never depend on them.
   */
  readonly high: Bucket;
  private readonly byGroup = new Map<string, Bucket>();
  private readonly byNetwork = new Map<string, Bucket>();
  private readonly byCidr = new Map<string, Bucket>();
  private readonly bySet = new Map<string, Bucket>();
  /** The ports of the rules with a peer by priority, per slot: whether a rule without a peer is high. */
  private readonly levels = [new Levels(), new Levels(), new Levels(), new Levels()] as const;
  /** Pass rules (AdminNetworkPolicy), per slot: a slot with one decides nothing ahead of the pairs. */
  private readonly passes: [number, number, number, number] = [0, 0, 0, 0];
  /** Rules without a peer that moved between `any` and `high` because others changed (the engine decides their pairs again). */
  readonly flipped = new Set<RuleRef>();
  size = 0;

  /**
   * `stamp`: the engine's counter, so stamps are unique across every index of a compile. `member`: for a
   * class's CIDR name that is a set's (aliases.ts), a CIDR of the set, whose rules stand for the set's.
   */
  constructor(rules: readonly RuleRef[], private readonly stamp: () => number, private readonly member: (name: string) => string | undefined = () => undefined) {
    this.any = new Bucket(stamp, true);
    this.high = new Bucket(stamp, true);
    const peerless: RuleRef[] = [];
    for (const r of rules) {
      if (peerOf(r.rule).kind === 'any') peerless.push(r);
      else this.addPeered(r);
      this.size++;
    }
    // Pass and audit rules first: they keep the others of their slot out of the high stage.
    const first = (r: RuleRef) => r.rule.audit === true || r.rule.action === 'pass';
    for (const r of [...peerless.filter(first), ...peerless.filter((r) => !first(r))]) for (const p of slotsOf(r.rule)) this.place(r, p);
  }

  add(r: RuleRef): void {
    this.size++;
    if (peerOf(r.rule).kind !== 'any') {
      this.addPeered(r);
      this.recheck(r);
      return;
    }
    for (const p of slotsOf(r.rule)) this.place(r, p);
    if (r.rule.audit || r.rule.action === 'pass') this.recheck(r);
  }

  /**
   * Removes a policy's rule by its id (ids are unique within a policy): the entry may hold an older but
   * equal object of the rule. `rule` says where to look (its peer); false if there is no such entry.
   */
  removeById(policy: string, rule: RuleRef['rule']): boolean {
    if (peerOf(rule).kind === 'any') {
      // As held: a rule of a policy in audit mode is marked so (engine.ts refOf), the caller's is not.
      const held = this.any.find(policy, rule.id) ?? this.high.find(policy, rule.id);
      if (!held) return false;
      for (const p of slotsOf(rule)) if (!this.any.removeAt(policy, rule.id, p)) this.high.removeAt(policy, rule.id, p);
      this.size--;
      if (held.rule.action === 'pass') for (const p of slotsOf(rule)) this.passes[p]--;
      if (held.rule.audit || held.rule.action === 'pass') this.recheck(held);
      return true;
    }
    const b = this.bucketOf(rule, false);
    const old = b?.find(policy, rule.id);
    if (!b || !old || !b.remove(policy, rule.id)) return false;
    this.size--;
    for (const p of slotsOf(old.rule)) {
      const c = coverage(old.rule, p);
      if (c) this.levels[p].add(old.rule.priority, c, -1);
      if (old.rule.action === 'pass') this.passes[p]--;
    }
    this.recheck(old);
    return true;
  }

  /** Whether some rule is decided ahead of the pairs in a slot the datapath has (sctp: its own slot). */
  hasHigh(sctp: boolean): boolean {
    return this.high.size > 0 && SLOTS.some((p) => (p !== 3 || sctp) && this.high.rules[p].length > 0);
  }

  /** Whether a rule without a peer is decided ahead of the pairs in every slot this index holds it in. */
  isHigh(policy: string, rule: RuleRef['rule']): boolean {
    return slotsOf(rule).every((p) => this.high.rules[p].some((x) => x.rule.id === rule.id && x.policy === policy));
  }

  /** The bucket holding a rule like this one (by its peer), if there is one. */
  bucketFor(rule: RuleRef['rule']): Bucket | undefined {
    return this.bucketOf(rule, false);
  }

  /** The buckets of rules with a peer. */
  *peered(): Iterable<Bucket> {
    for (const m of [this.byGroup, this.byNetwork, this.byCidr, this.bySet]) yield* m.values();
  }

  /** The buckets holding rules whose peer matches this class (without the high rules: high.ts). */
  parts(peer: Klass): Bucket[] {
    const out: Bucket[] = [];
    const take = (b: Bucket | undefined) => { if (b && b.size > 0) out.push(b); };
    take(this.any);
    if (peer.group !== undefined) take(this.byGroup.get(peer.group));
    if (peer.network !== undefined) take(this.byNetwork.get(peer.network));
    for (const c of peer.cidrs) take(this.byCidr.get(CidrAliases.isAlias(c) ? this.member(c) ?? c : c));
    if (this.bySet.size > 0) for (const x of peer.np?.sets ?? []) take(this.bySet.get(x));
    return out;
  }

  private addPeered(r: RuleRef): void {
    (this.bucketOf(r.rule, true) as Bucket).add(r);
    for (const p of slotsOf(r.rule)) {
      const c = coverage(r.rule, p);
      if (c) this.levels[p].add(r.rule.priority, c, 1);
      if (r.rule.action === 'pass') this.passes[p]++;
    }
  }

  /**
   * A rule without a peer is high in a slot when nothing below it can matter on its ports: no rule with a
   * peer of this index at its priority or above meets them, it decides (allow or deny, not Pass, not in
   * audit mode), and the slot has no Pass and no rule in audit mode (an audit verdict needs both
   * directions in the pairs; a Pass makes what lies below it count).
   */
  private highAt(r: RuleRef, p: ProtoSlot): boolean {
    if (r.rule.audit || r.rule.action === 'pass' || this.passes[p] > 0 || this.any.audits[p] > 0) return false;
    const c = coverage(r.rule, p);
    return c !== undefined && !this.levels[p].meetsFrom(r.rule.priority, c);
  }

  private place(r: RuleRef, p: ProtoSlot): void {
    if (r.rule.action === 'pass') this.passes[p]++;
    (this.highAt(r, p) ? this.high : this.any).addAt(r, p);
  }

  /**
   * After a change of `r` (a rule with a peer, or a Pass or audit rule without one), the rules without a
   * peer it may move between `any` and `high`: those meeting its ports at or below its priority (all of
   * the slot's for a Pass or an audit rule). Each that moved is in `flipped`. One pass over the slot's
   * rules without a peer, its lists rebuilt once (not a removal per rule moved).
   */
  private recheck(r: RuleRef): void {
    const all = r.rule.audit || r.rule.action === 'pass';
    for (const p of slotsOf(r.rule)) {
      const c = coverage(r.rule, p);
      if (!c && !all) continue;
      const moves = (x: RuleRef, isHigh: boolean): boolean => {
        if (x === r) return false;
        if (!all) {
          const mine = coverage(x.rule, p);
          if (!mine || mine[1] < (c as [number, number])[0] || mine[0] > (c as [number, number])[1] || x.rule.priority > r.rule.priority) return false;
        }
        return this.highAt(x, p) !== isHigh;
      };
      const up = this.any.rules[p].filter((x) => moves(x, false));
      const down = this.high.rules[p].filter((x) => moves(x, true));
      if (up.length === 0 && down.length === 0) continue;
      const [ups, downs] = [new Set(up), new Set(down)];
      this.any.replaceAt(p, this.any.rules[p].filter((x) => !ups.has(x)).concat(down), up.length, down.length);
      this.high.replaceAt(p, this.high.rules[p].filter((x) => !downs.has(x)).concat(up), down.length, up.length);
      for (const x of [...up, ...down]) this.flipped.add(x);
    }
  }

  private bucketOf(rule: RuleRef['rule'], make: boolean): Bucket | undefined {
    const peer = peerOf(rule);
    if (peer.kind === 'any') return this.any;
    const m = peer.kind === 'group' ? this.byGroup : peer.kind === 'network' ? this.byNetwork : peer.kind === 'set' ? this.bySet : this.byCidr;
    let v = m.get(peer.name);
    if (!v && make) m.set(peer.name, (v = new Bucket(this.stamp)));
    return v;
  }
}

export type Peer = { kind: 'any' } | { kind: 'group' | 'network' | 'cidr' | 'set'; name: string };

/**
 * What a rule's peer names (fromX for `in`, toX for `out`); the first of group, network, CIDR counts.
 * Rules made from NetworkPolicies may name a peer set instead (netpol.ts).
 */
export function peerOf(x: RuleRef['rule']): Peer {
  const set = x.direction === 'in' ? (x as NetpolRule).fromSet : (x as NetpolRule).toSet;
  if (set !== undefined) return { kind: 'set', name: set };
  const g = x.direction === 'in' ? x.fromGroup : x.toGroup;
  if (g !== undefined) return { kind: 'group', name: g };
  const n = x.direction === 'in' ? x.fromNetwork : x.toNetwork;
  if (n !== undefined) return { kind: 'network', name: n };
  const c = x.direction === 'in' ? x.fromCidr : x.toCidr;
  return c !== undefined ? { kind: 'cidr', name: c } : { kind: 'any' };
}
