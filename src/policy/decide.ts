import type { Action, Rule } from '../model/index.js';
import type { NetpolRule } from './netpol.js';

/** Protocol numbers for the names rules use. */
export const PROTO: Record<string, number> = { icmp: 1, tcp: 6, udp: 17 };

/** What one side of a connection looks like to a rule's peer match. */
export interface PeerView {
  group: string | undefined;
  network: string | undefined;
  /** The rule CIDRs (as written in rules) this address falls in. */
  cidrs: ReadonlySet<string>;
  /** The NetworkPolicy peer sets it is in. */
  sets?: ReadonlySet<string>;
}

export interface RuleRef {
  policy: string;
  rule: Rule;
}

export interface Decision {
  action: Action;
  /** The rule that decided, or undefined when the tenant's default action did. */
  by: RuleRef | undefined;
}

/** Which layer made a decision: Weft's rules (priorities 1-100), NetworkPolicy (0 and -1), or the tenant's default. */
export function layerOf(d: Decision): 'weft' | 'networkpolicy' | 'default' {
  if (!d.by) return 'default';
  return d.by.rule.priority >= 1 ? 'weft' : 'networkpolicy';
}

export function protoOf(rule: Rule): number | 'any' {
  if (rule.protocol === 'any') return 'any';
  return PROTO[rule.protocol] ?? Number(rule.protocol);
}

const ranges = new WeakMap<Rule, [number, number]>();

/** Parsed once per rule object: compiling asks for every pair of classes a rule meets. */
export function portRange(rule: Rule): [number, number] | undefined {
  if (rule.ports === undefined) return undefined;
  let r = ranges.get(rule);
  if (!r) {
    const [a, b] = rule.ports.split('-').map(Number);
    ranges.set(rule, (r = [a as number, (b ?? a) as number]));
  }
  return r;
}

/** Does the rule's peer (fromX for `in`, toX for `out`) match this side? No peer matches everyone. */
export function peerMatches(rule: Rule, peer: PeerView): boolean {
  const set = rule.direction === 'in' ? (rule as NetpolRule).fromSet : (rule as NetpolRule).toSet;
  if (set !== undefined) return peer.sets?.has(set) ?? false;
  const g = rule.direction === 'in' ? rule.fromGroup : rule.toGroup;
  const n = rule.direction === 'in' ? rule.fromNetwork : rule.toNetwork;
  const c = rule.direction === 'in' ? rule.fromCidr : rule.toCidr;
  if (g !== undefined) return peer.group === g;
  if (n !== undefined) return peer.network === n;
  if (c !== undefined) return peer.cidrs.has(c);
  return true;
}

export function trafficMatches(rule: Rule, proto: number, port: number | undefined): boolean {
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
    if (!best || r.rule.priority > best.rule.priority || (r.rule.priority === best.rule.priority && r.rule.action === 'deny' && best.rule.action === 'allow')) {
      best = r;
    }
  }
  return best ? { action: best.rule.action, by: best } : { action: fallback, by: undefined };
}
