import type { Klass } from './classes.js';
import { protoOf, type RuleRef } from './decide.js';
import type { NetpolRule } from './netpol.js';

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
  /** `any`: the bucket of rules without a peer (sides.ts). */
  constructor(private readonly stamp: () => number, readonly any = false) {
    this.stamps = [stamp(), stamp(), stamp(), stamp()];
  }

  add(r: RuleRef): void {
    for (const p of slotsOf(r.rule)) { this.rules[p].push(r); this.stamps[p] = this.stamp(); if (r.rule.audit) this.audits[p]++; }
    this.size++;
  }

  remove(policy: string, id: string): boolean {
    let found = false;
    for (const p of SLOTS) {
      const list = this.rules[p];
      const i = list.findIndex((x) => x.rule.id === id && x.policy === policy);
      if (i < 0) continue;
      if (list[i]?.rule.audit) this.audits[p]--;
      list.splice(i, 1);
      this.stamps[p] = this.stamp();
      found = true;
    }
    if (found) this.size--;
    return found;
  }
}

/**
 * A group's rules of one direction, indexed by what their peer names, so finding the rules that match a
 * peer class costs what matches, not what exists (10,000 rules with distinct CIDRs stay cheap). An
 * incremental compile adds and removes single rules; the order within a list does not matter, since a
 * pair's verdicts count rules by priority and action.
 */
export class RuleIndex {
  /** The rules without a peer: they match every class (sides.ts decides them per side, not per pair). */
  readonly any: Bucket;
  private readonly byGroup = new Map<string, Bucket>();
  private readonly byNetwork = new Map<string, Bucket>();
  private readonly byCidr = new Map<string, Bucket>();
  private readonly bySet = new Map<string, Bucket>();
  size = 0;

  /** `stamp`: the engine's counter, so stamps are unique across every index of a compile. */
  constructor(rules: readonly RuleRef[], private readonly stamp: () => number) {
    this.any = new Bucket(stamp, true);
    for (const r of rules) this.add(r);
  }

  add(r: RuleRef): void {
    (this.bucketOf(r.rule, true) as Bucket).add(r);
    this.size++;
  }

  /**
   * Removes a policy's rule by its id (ids are unique within a policy): the entry may hold an older but
   * equal object of the rule. `rule` says where to look (its peer); false if there is no such entry.
   */
  removeById(policy: string, rule: RuleRef['rule']): boolean {
    const found = this.bucketOf(rule, false)?.remove(policy, rule.id) ?? false;
    if (found) this.size--;
    return found;
  }

  /** The bucket holding a rule like this one (by its peer), if there is one. */
  bucketFor(rule: RuleRef['rule']): Bucket | undefined {
    return this.bucketOf(rule, false);
  }

  /** The buckets of rules with a peer. */
  *peered(): Iterable<Bucket> {
    for (const m of [this.byGroup, this.byNetwork, this.byCidr, this.bySet]) yield* m.values();
  }

  /** The buckets holding rules whose peer matches this class. */
  parts(peer: Klass): Bucket[] {
    const out: Bucket[] = [];
    const take = (b: Bucket | undefined) => { if (b && b.size > 0) out.push(b); };
    take(this.any);
    if (peer.group !== undefined) take(this.byGroup.get(peer.group));
    if (peer.network !== undefined) take(this.byNetwork.get(peer.network));
    for (const c of peer.cidrs) take(this.byCidr.get(c));
    if (this.bySet.size > 0) for (const x of peer.np?.sets ?? []) take(this.bySet.get(x));
    return out;
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
