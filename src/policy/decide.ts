import type { Action, Rule } from '../model/index.js';
import { NETPOL_ISOLATION, WEFT_TOP } from './netpol.js';

/** Protocol numbers for the names rules use. */
export const PROTO: Record<string, number> = { icmp: 1, tcp: 6, udp: 17, sctp: 132 };

/**
 * A rule's or a question's protocol as the compiler decides it: ICMPv6 (58) is ICMP (1), so `icmp` rules
 * decide ping in both families (the datapath matches 58 wherever it matches 1: policy-nft-parts.ts).
 */
export function protocolNumber(protocol: string): number {
  const n = PROTO[protocol] ?? Number(protocol);
  return n === 58 ? 1 : n;
}

/** What one side of a connection looks like to a rule's peer match. */
export interface PeerView {
  group: string | undefined;
  network: string | undefined;
  /** The rule CIDRs (as written in rules) this address falls in. */
  cidrs: ReadonlySet<string>;
  /** The NetworkPolicy peer sets it is in. */
  sets?: ReadonlySet<string>;
}

/**
 * A rule as the compiler takes it: Weft's own, or one made from a Kubernetes tier (netpol.ts), whose peer
 * may be a peer set and whose action may be Pass (skip the rest of the AdminNetworkPolicy tier).
 */
export type PolicyRule = Omit<Rule, 'action'> & {
  action: Action | 'pass';
  fromSet?: string;
  toSet?: string;
  /** Of a policy in audit mode: it decides what would happen, and the connection passes counted instead of dropped. */
  audit?: boolean;
};

export interface RuleRef {
  policy: string;
  rule: PolicyRule;
}

export interface Decision {
  action: Action;
  /** The rule that decided, or undefined when the tenant's default action did. */
  by: RuleRef | undefined;
}

/** Which tier made a decision (netpol.ts): AdminNetworkPolicy, Weft's rules (1-100), NetworkPolicy (0, -1), the baseline, or the tenant's default. */
export function layerOf(d: Decision): 'adminnetworkpolicy' | 'weft' | 'networkpolicy' | 'baselineadminnetworkpolicy' | 'default' {
  if (!d.by) return 'default';
  const p = d.by.rule.priority;
  return p > WEFT_TOP ? 'adminnetworkpolicy' : p >= 1 ? 'weft' : p >= NETPOL_ISOLATION ? 'networkpolicy' : 'baselineadminnetworkpolicy';
}

export function protoOf(rule: PolicyRule): number | 'any' {
  if (rule.protocol === 'any') return 'any';
  return protocolNumber(rule.protocol);
}

/**
 * Port ranges by their text, parsed once: compiling asks for every pair of classes a rule meets. Keyed by
 * the text, not the rule object: the rules are the caller's (the compile leaves nothing on them), and a
 * WeakMap of 50,000 rules was marked in V8's final pauses (docs/decisions.md, session 20). Bounded: a
 * tenant's distinct ranges are few, and past the bound it starts over.
 */
const ranges = new Map<string, [number, number]>();
const RANGES_MAX = 100_000;

export function portRange(rule: PolicyRule): [number, number] | undefined {
  if (rule.ports === undefined) return undefined;
  let r = ranges.get(rule.ports);
  if (!r) {
    if (ranges.size >= RANGES_MAX) ranges.clear();
    const [a, b] = rule.ports.split('-').map(Number);
    ranges.set(rule.ports, (r = [a as number, (b ?? a) as number]));
  }
  return r;
}

/** Does the rule's peer (fromX for `in`, toX for `out`) match this side? No peer matches everyone. */
export function peerMatches(rule: PolicyRule, peer: PeerView): boolean {
  const set = rule.direction === 'in' ? rule.fromSet : rule.toSet;
  if (set !== undefined) return peer.sets?.has(set) ?? false;
  const g = rule.direction === 'in' ? rule.fromGroup : rule.toGroup;
  const n = rule.direction === 'in' ? rule.fromNetwork : rule.toNetwork;
  const c = rule.direction === 'in' ? rule.fromCidr : rule.toCidr;
  if (g !== undefined) return peer.group === g;
  if (n !== undefined) return peer.network === n;
  if (c !== undefined) return peer.cidrs.has(c);
  return true;
}

export function trafficMatches(rule: PolicyRule, proto: number, port: number | undefined): boolean {
  const p = protoOf(rule);
  if (p !== 'any' && p !== proto) return false;
  const r = portRange(rule);
  if (r === undefined) return true;
  return port !== undefined && port >= r[0] && port <= r[1];
}

/**
 * DESIGN section 4, for one direction: among matching rules the highest priority decides, deny wins a
 * tie, and with no match the tenant's default action decides. Rules made from NetworkPolicies sit below
 * every Weft rule (priorities 0 and -1, netpol.ts). This one function backs both the compiler
 * (through `decideSegment`) and `explain`, so they cannot disagree.
 */
export function decide(rules: readonly RuleRef[], fallback: Action): Decision {
  let best: RuleRef | undefined;
  for (const r of rules) {
    if (!best || r.rule.priority > best.rule.priority || (r.rule.priority === best.rule.priority && rank(r.rule.action) > rank(best.rule.action))) {
      best = r;
    }
  }
  if (!best) return { action: fallback, by: undefined };
  // Pass: the AdminNetworkPolicy tier says nothing more; what is below it decides.
  if (best.rule.action === 'pass') return decide(rules.filter((r) => r.rule.priority <= WEFT_TOP), fallback);
  return { action: best.rule.action, by: best };
}

/** At one priority: deny wins, then Pass (rules of one priority are never both, in practice), then allow. */
const rank = (a: PolicyRule['action']) => (a === 'deny' ? 2 : a === 'pass' ? 1 : 0);

/** The ports (protocol numbers in `other`) of a protocol slot (tcp, udp, other, sctp) a rule applies to; undefined: none. */
export function coverage(r: PolicyRule, p: 0 | 1 | 2 | 3): [number, number] | undefined {
  if (p !== 2) return portRange(r) ?? [0, 65535];
  if (portRange(r) !== undefined) return undefined;
  const n = protoOf(r);
  return n === 'any' ? [0, 255] : [n, n];
}
