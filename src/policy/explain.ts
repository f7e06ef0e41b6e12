import type { Action } from '../model/index.js';
import { decide, peerMatches, trafficMatches, protocolNumber, type Decision, type RuleRef } from './decide.js';
import { groupRules, netpolOf, viewOf, type PolicyState } from './compile.js';
import { pointClassifier, RuleCidrs } from './point.js';
import type { Klass } from './classes.js';

export interface Explanation {
  /** Undefined when that side is not an endpoint (no policy applies to it). */
  egress: (Decision & { group: string | undefined }) | undefined;
  ingress: (Decision & { group: string | undefined }) | undefined;
  allowed: boolean;
  /**
   * When policies in audit mode would drop what passes: their decisions (what the connection would get
   * were they enforced). The datapath passes it through its audit chain, counted and logged.
   */
  audit?: { egress: Explanation['egress']; ingress: Explanation['ingress']; allowed: false };
}

/** Why a new connection from srcIp to dstIp (proto, port) is allowed or denied: the contract of DESIGN §4. */
export function explainFlow(s: PolicyState, srcIp: string, dstIp: string, protocol: string, port?: number): Explanation {
  const { would: _, ...e } = explainer(s)(srcIp, dstIp, protocol, port);
  return e;
}

/** What one flow gets, with both sides' decisions were policies in audit mode enforced (`would`), whatever the verdict. */
export type FullExplanation = Explanation & { would: { egress: Explanation['egress']; ingress: Explanation['ingress'] } };

/** explainFlow for many flows of one state; `classOf`: the address class an address falls in (addresses of one class get the same answers). */
export type Explainer = ((srcIp: string, dstIp: string, protocol: string, port?: number) => FullExplanation) & { classOf(ip: string): number };

/**
 * explainFlow for many flows of one state (flow records, issue 16): addresses are classified as they
 * are asked about (point.ts, no sweep of the tenant's address space), and a group's rules in each
 * direction are gathered once.
 */
export function explainer(s: PolicyState, cidrs?: RuleCidrs): Explainer {
  const np = netpolOf(s);
  const c = pointClassifier(s.networks, s.groups, s.policies, s.endpoints, np, cidrs);
  const rulesOf = new Map<string, RuleRef[]>();
  const groupRulesOf = (group: string | undefined, direction: 'in' | 'out') => {
    const key = `${direction}|${group ?? ''}`;
    let r = rulesOf.get(key);
    if (!r) rulesOf.set(key, (r = groupRules(s, group, direction)));
    return r;
  };
  const explain = (srcIp: string, dstIp: string, protocol: string, port?: number) => explainOne(s, np, c, groupRulesOf, srcIp, dstIp, protocol, port);
  return Object.assign(explain, { classOf: (ip: string) => c(ip).id });
}

/** Rules whose CIDRs are gathered between two calls of explainerYielding's `pause`. */
const RULES_PER_PAUSE = 512;

/**
 * explainer, made with `pause()` every RULES_PER_PAUSE rules while the rules' CIDRs are gathered (the most
 * of its making: ~50-80 ms at 50,000 rules with CIDRs), so a server's event loop serves requests between.
 */
export async function explainerYielding(s: PolicyState, pause: () => Promise<void>): Promise<Explainer> {
  const cidrs = new RuleCidrs();
  let n = 0;
  for (const p of s.policies) {
    for (const r of p.rules) {
      cidrs.addRule(r);
      if (++n % RULES_PER_PAUSE === 0) await pause();
    }
  }
  return explainer(s, cidrs);
}

function explainOne(s: PolicyState, np: ReturnType<typeof netpolOf>, c: (ip: string) => Klass, groupRulesOf: (group: string | undefined, direction: 'in' | 'out') => RuleRef[],
  srcIp: string, dstIp: string, protocol: string, port?: number): FullExplanation {
  const src = c(srcIp);
  const dst = c(dstIp);
  const proto = protocolNumber(protocol);
  const fallback: Action = s.tenant.defaultAction;
  /** One side's decision: by the enforced rules, or (`all`) with those of policies in audit mode too. */
  const side = (own: typeof src, peer: typeof src, direction: 'in' | 'out', all: boolean) => {
    if (!own.endpoint) return undefined;
    const mine = groupRulesOf(own.group, direction).concat(np && own.np?.own ? np.rules(own.np.own, direction) : []);
    const rules = mine.filter((r) => (all || !r.rule.audit) && peerMatches(r.rule, viewOf(peer)) && trafficMatches(r.rule, proto, port));
    return { ...decide(rules, fallback), group: own.group };
  };
  const passes = (e: Explanation['egress'], i: Explanation['ingress']) => (e?.action ?? 'allow') === 'allow' && (i?.action ?? 'allow') === 'allow';
  const egress = side(src, dst, 'out', false);
  const ingress = side(dst, src, 'in', false);
  const allowed = passes(egress, ingress);
  const wouldEgress = side(src, dst, 'out', true);
  const wouldIngress = side(dst, src, 'in', true);
  const audit = allowed && !passes(wouldEgress, wouldIngress) ? { audit: { egress: wouldEgress, ingress: wouldIngress, allowed: false as const } } : {};
  return { egress, ingress, allowed, ...audit, would: { egress: wouldEgress, ingress: wouldIngress } };
}
