import type { Action, Endpoint, Group, Network, Policy, Rule, Tenant } from '../model/index.js';
import { classify, type Classification, type Klass } from './classes.js';
import { PROTO, type PeerView, type RuleRef } from './decide.js';
import { segmentPorts, segmentProtos } from './segments.js';

export interface PolicyState {
  tenant: Tenant;
  networks: readonly Network[];
  groups: readonly Group[];
  policies: readonly Policy[];
  endpoints: readonly Endpoint[];
  /**
   * The host this is compiled for. Each host enforces the rules of the groups that have an endpoint on
   * it (egress where the connection starts, ingress where it ends: both hosts see its first packet), so a
   * group with no endpoint here contributes nothing, and a direction owned by another host is left to
   * it. Absent: every group is enforced (one host, or a whole-tenant view).
   */
  host?: string;
  /** The last compile of this tenant here: classes keep their ids (their marks) across compiles. */
  previous?: CompiledPolicy;
}

export type Verdict = 'accept' | 'drop';

export interface PortEntry { src: number; dst: number; proto: 6 | 17; first: number; last: number; verdict: Verdict }
export interface ProtoEntry { src: number; dst: number; first: number; last: number; verdict: Verdict }

/** A tenant's policy as the datapath runs it: classes, and the pairs of classes whose verdict is not the default. */
export interface CompiledPolicy {
  tenant: string;
  fallback: Verdict;
  classification: Classification;
  portEntries: PortEntry[];
  protoEntries: ProtoEntry[];
  ruleCount: number;
}

const verdictOf = (a: Action): Verdict => (a === 'allow' ? 'accept' : 'drop');
const TCP = PROTO['tcp'] as 6;
const UDP = PROTO['udp'] as 17;

export function viewOf(k: Klass): PeerView {
  return { group: k.group, network: k.network, cidrs: new Set(k.cidrs) };
}

/** The rules of a direction attached to a group, with the policy each came from. */
export function groupRules(s: PolicyState, group: string | undefined, direction: 'in' | 'out'): RuleRef[] {
  if (group === undefined) return [];
  const g = s.groups.find((x) => x.name === group);
  if (!g) return [];
  const byName = new Map(s.policies.map((p) => [p.name, p]));
  return g.policies.flatMap((name) => (byName.get(name)?.rules ?? []).filter((r) => r.direction === direction).map((rule) => ({ policy: name, rule })));
}

/**
 * A group's rules of one direction, indexed by what their peer names, so finding the rules that match a
 * peer class costs what matches, not what exists (10,000 rules with distinct CIDRs stay cheap).
 */
class RuleIndex {
  private readonly any: RuleRef[] = [];
  private readonly byGroup = new Map<string, RuleRef[]>();
  private readonly byNetwork = new Map<string, RuleRef[]>();
  private readonly byCidr = new Map<string, RuleRef[]>();
  readonly size: number;

  constructor(rules: readonly RuleRef[]) {
    const put = (m: Map<string, RuleRef[]>, k: string, r: RuleRef) => { let v = m.get(k); if (!v) m.set(k, (v = [])); v.push(r); };
    for (const r of rules) {
      const x = r.rule;
      const g = x.direction === 'in' ? x.fromGroup : x.toGroup;
      const n = x.direction === 'in' ? x.fromNetwork : x.toNetwork;
      const c = x.direction === 'in' ? x.fromCidr : x.toCidr;
      if (g !== undefined) put(this.byGroup, g, r);
      else if (n !== undefined) put(this.byNetwork, n, r);
      else if (c !== undefined) put(this.byCidr, c, r);
      else this.any.push(r);
    }
    this.size = rules.length;
  }

  matching(peer: Klass): RuleRef[] {
    const out = [...this.any];
    if (peer.group !== undefined) out.push(...(this.byGroup.get(peer.group) ?? []));
    if (peer.network !== undefined) out.push(...(this.byNetwork.get(peer.network) ?? []));
    for (const c of peer.cidrs) out.push(...(this.byCidr.get(c) ?? []));
    return out;
  }
}

const EMPTY: Klass = { id: 0, group: undefined, network: undefined, cidrs: [], endpoint: false };

/**
 * What this host compiles: the groups it enforces (by name, '' for endpoints without one), the policies
 * attached to them, and the endpoints that need a class of their own (an enforced one, or a member of a
 * group an enforced rule names); any other endpoint is just an address of its network here.
 */
function scope(s: PolicyState): { enforced: Set<string>; policies: Policy[]; endpoints: Endpoint[] } {
  const known = new Set(s.groups.map((g) => g.name));
  const groupKey = (e: Endpoint) => (e.group !== undefined && known.has(e.group) ? e.group : '');
  const enforced = new Set((s.host === undefined ? s.endpoints : s.endpoints.filter((e) => e.host === s.host)).map(groupKey));
  if (s.host === undefined) {
    for (const g of known) enforced.add(g);
    return { enforced, policies: [...s.policies], endpoints: [...s.endpoints] };
  }
  const attached = new Set(s.groups.filter((g) => enforced.has(g.name)).flatMap((g) => g.policies));
  const policies = s.policies.filter((p) => attached.has(p.name));
  const named = new Set(policies.flatMap((p) => p.rules.map((r) => (r.direction === 'in' ? r.fromGroup : r.toGroup))));
  const endpoints = s.endpoints.filter((e) => enforced.has(groupKey(e)) || (e.group !== undefined && named.has(e.group)));
  return { enforced, policies, endpoints };
}

export function compilePolicy(s: PolicyState): CompiledPolicy {
  const fallback = verdictOf(s.tenant.defaultAction);
  const { enforced, policies, endpoints } = scope(s);
  const withRules = new Set(policies.filter((p) => p.rules.length > 0).map((p) => p.name));
  const none = (): CompiledPolicy => ({ tenant: s.tenant.name, fallback, classification: { classes: [], ids: new Map(), ranges: [], byIp: () => EMPTY }, portEntries: [], protoEntries: [], ruleCount: 0 });
  // No rule applies here: every flow gets the default, and no address needs a class. This keeps the CNI
  // ADD path of rule-less tenants from classifying every endpoint on each ADD.
  if (!s.groups.some((g) => enforced.has(g.name) && g.policies.some((p) => withRules.has(p)))) return none();
  const classification = classify(s.networks, s.groups, policies, endpoints, s.previous?.classification.ids);
  const portEntries: PortEntry[] = [];
  const protoEntries: ProtoEntry[] = [];
  const indexes = new Map<string, RuleIndex>();
  const scoped: PolicyState = { ...s, policies };
  // A side's rules, or undefined when this host does not enforce that side (not an endpoint, or its group is another host's).
  const indexOf = (k: Klass, d: 'in' | 'out'): RuleIndex | undefined => {
    if (!k.endpoint || !enforced.has(k.group ?? '')) return undefined;
    const key = `${d}/${k.group ?? ''}`;
    let v = indexes.get(key);
    if (!v) indexes.set(key, (v = new RuleIndex(groupRules(scoped, k.group, d))));
    return v;
  };
  const cs = classification.classes;
  const enforcedClasses = cs.filter((k) => indexOf(k, 'in') !== undefined);
  for (const src of cs) {
    const egressIdx = indexOf(src, 'out');
    // Policy applies only where an endpoint this host enforces is on at least one side.
    for (const dst of egressIdx ? cs : enforcedClasses) {
      const ingressIdx = indexOf(dst, 'in');
      if (!egressIdx?.size && !ingressIdx?.size) continue; // every enforced side falls back: the default
      const sides = { egress: egressIdx?.matching(dst), ingress: ingressIdx?.matching(src) };
      if (!sides.egress?.length && !sides.ingress?.length) continue;
      for (const proto of [TCP, UDP] as const) {
        for (const seg of segmentPorts(sides, proto, s.tenant.defaultAction)) {
          if (seg.verdict !== fallback) portEntries.push({ src: src.id, dst: dst.id, proto, ...seg });
        }
      }
      for (const seg of segmentProtos(sides, s.tenant.defaultAction)) {
        if (seg.verdict !== fallback) protoEntries.push({ src: src.id, dst: dst.id, ...seg });
      }
    }
  }
  return { tenant: s.tenant.name, fallback, classification, portEntries, protoEntries, ruleCount: policies.reduce((n, p) => n + p.rules.length, 0) };
}
