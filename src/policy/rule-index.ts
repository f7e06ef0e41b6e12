import type { Klass } from './classes.js';
import type { RuleRef } from './decide.js';

/**
 * A group's rules of one direction, indexed by what their peer names, so finding the rules that match a
 * peer class costs what matches, not what exists (10,000 rules with distinct CIDRs stay cheap). An
 * incremental compile adds and removes single rules; the order within a list does not matter, since a
 * pair's verdicts count rules by priority and action.
 */
export class RuleIndex {
  private readonly any: RuleRef[] = [];
  private readonly byGroup = new Map<string, RuleRef[]>();
  private readonly byNetwork = new Map<string, RuleRef[]>();
  private readonly byCidr = new Map<string, RuleRef[]>();
  size = 0;

  constructor(rules: readonly RuleRef[]) {
    for (const r of rules) this.add(r);
  }

  add(r: RuleRef): void {
    const list = this.listOf(r, true) as RuleRef[];
    list.push(r);
    this.size++;
  }

  /**
   * Removes a policy's rule by its id (ids are unique within a policy): the entry may hold an older but
   * equal object of the rule. `rule` says where to look (its peer); false if there is no such entry.
   */
  removeById(policy: string, rule: RuleRef['rule']): boolean {
    const list = this.listOf({ policy, rule }, false);
    const i = list ? list.findIndex((x) => x.rule.id === rule.id && x.policy === policy) : -1;
    if (!list || i < 0) return false;
    list.splice(i, 1);
    this.size--;
    return true;
  }

  matching(peer: Klass): RuleRef[] {
    const out = [...this.any];
    if (peer.group !== undefined) out.push(...(this.byGroup.get(peer.group) ?? []));
    if (peer.network !== undefined) out.push(...(this.byNetwork.get(peer.network) ?? []));
    for (const c of peer.cidrs) out.push(...(this.byCidr.get(c) ?? []));
    return out;
  }

  private listOf(r: RuleRef, make: boolean): RuleRef[] | undefined {
    const peer = peerOf(r.rule);
    if (peer.kind === 'any') return this.any;
    const m = peer.kind === 'group' ? this.byGroup : peer.kind === 'network' ? this.byNetwork : this.byCidr;
    let v = m.get(peer.name);
    if (!v && make) m.set(peer.name, (v = []));
    return v;
  }
}

export type Peer = { kind: 'any' } | { kind: 'group' | 'network' | 'cidr'; name: string };

/** What a rule's peer names (fromX for `in`, toX for `out`); the first of group, network, CIDR counts. */
export function peerOf(x: RuleRef['rule']): Peer {
  const g = x.direction === 'in' ? x.fromGroup : x.toGroup;
  if (g !== undefined) return { kind: 'group', name: g };
  const n = x.direction === 'in' ? x.fromNetwork : x.toNetwork;
  if (n !== undefined) return { kind: 'network', name: n };
  const c = x.direction === 'in' ? x.fromCidr : x.toCidr;
  return c !== undefined ? { kind: 'cidr', name: c } : { kind: 'any' };
}
