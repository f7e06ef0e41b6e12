import type { Action } from '../model/index.js';
import { classify } from './classes.js';
import { decide, peerMatches, trafficMatches, PROTO, type Decision } from './decide.js';
import { groupRules, netpolOf, viewOf, type PolicyState } from './compile.js';

export interface Explanation {
  /** Undefined when that side is not an endpoint (no policy applies to it). */
  egress: (Decision & { group: string | undefined }) | undefined;
  ingress: (Decision & { group: string | undefined }) | undefined;
  allowed: boolean;
}

/** Why a new connection from srcIp to dstIp (proto, port) is allowed or denied: the contract of DESIGN §4. */
export function explainFlow(s: PolicyState, srcIp: string, dstIp: string, protocol: string, port?: number): Explanation {
  const np = netpolOf(s);
  const c = classify(s.networks, s.groups, s.policies, s.endpoints, undefined, np);
  const src = c.byIp(srcIp);
  const dst = c.byIp(dstIp);
  const proto = PROTO[protocol] ?? Number(protocol);
  const fallback: Action = s.tenant.defaultAction;
  const side = (own: typeof src, peer: typeof src, direction: 'in' | 'out') => {
    if (!own.endpoint) return undefined;
    const mine = groupRules(s, own.group, direction).concat(np && own.np?.own ? np.rules(own.np.own, direction) : []);
    const rules = mine.filter((r) => peerMatches(r.rule, viewOf(peer)) && trafficMatches(r.rule, proto, port));
    return { ...decide(rules, fallback), group: own.group };
  };
  const egress = side(src, dst, 'out');
  const ingress = side(dst, src, 'in');
  return { egress, ingress, allowed: (egress?.action ?? 'allow') === 'allow' && (ingress?.action ?? 'allow') === 'allow' };
}
