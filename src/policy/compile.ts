import type { Action, Endpoint, Group, Network, Policy, Tenant } from '../model/index.js';
import type { Classification, Klass } from './classes.js';
import { endpointsByIp, groupOfIdentity } from './classes.js';
import { Netpol, type NetpolInput } from './netpol.js';
import { Engine, frameOf, refOf, type Scope } from './engine.js';
import { movedEndpoints, recompile, ruleChanges } from './incremental.js';
import type { PeerView, RuleRef } from './decide.js';
import type { PairProfiles, Profile } from './pairs.js';

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
  /** The tenant's NetworkPolicies and namespaces (absent or empty: none). */
  netpol?: NetpolInput;
}

/** `audit`: only rules of policies in audit mode would drop it; it passes, counted (the datapath's audit chain). */
export type Verdict = 'accept' | 'drop' | 'audit';

/**
 * A tenant's policy as the datapath runs it: classes; the pairs of classes whose verdict is not the
 * default, each naming a profile per protocol; and the profiles, each distinct verdict function once
 * (10,000 pairs with the same udp function share one profile, not 10,000 copies of its ports).
 */
export interface CompiledPolicy {
  tenant: string;
  fallback: 'accept' | 'drop';
  classification: Classification;
  pairs: readonly PairProfiles[];
  /** Every profile a pair names, by id (ids are unique across protocols; 0 is none). */
  profiles: readonly Profile[];
  /** SCTP is decided by port (pairs' `sctp`); else as one protocol number of `other`. */
  sctp: boolean;
  ruleCount: number;
  /** How this compile was made: from scratch, or from `previous` with only the changed rules redone. */
  how: 'cold' | 'incremental';
}

const verdictOf = (a: Action): 'accept' | 'drop' => (a === 'allow' ? 'accept' : 'drop');

export function viewOf(k: Klass): PeerView {
  return { group: k.group, network: k.network, cidrs: new Set(k.cidrs), sets: new Set(k.np?.sets ?? []) };
}

/** The Kubernetes tiers of a compile, or undefined when the tenant has no such policy. */
export function netpolOf(s: PolicyState): Netpol | undefined {
  const n = s.netpol;
  return n && (n.policies.length > 0 || (n.anps?.length ?? 0) > 0 || n.banp !== undefined) ? new Netpol(n, s.endpoints) : undefined;
}

/** The rules of a direction attached to a group, with the policy each came from. */
export function groupRules(s: PolicyState, group: string | undefined, direction: 'in' | 'out'): RuleRef[] {
  if (group === undefined) return [];
  const g = s.groups.find((x) => x.name === group);
  if (!g) return [];
  const byName = new Map(s.policies.map((p) => [p.name, p]));
  return g.policies.flatMap((name) => (byName.get(name)?.rules ?? []).filter((r) => r.direction === direction).map((rule) => refOf(name, rule, byName.get(name)?.mode)));
}

const EMPTY: Klass = { id: 0, group: undefined, network: undefined, cidrs: [], endpoint: false };

/**
 * What this host compiles: the identities it enforces (a group by name, '' for endpoints without one,
 * joined by a NetworkPolicy isolation: classes.ts `identityOf`), the policies attached to their groups,
 * and the endpoints that need a class of their own (an enforced one, a member of a group an enforced
 * rule names, or one a NetworkPolicy peer may hold); any other endpoint is just an address of its
 * network here.
 */
function scope(s: PolicyState, np: Netpol | undefined): Scope {
  const known = new Set(s.groups.map((g) => g.name));
  const groupKey = (e: Endpoint) => (e.group !== undefined && known.has(e.group) ? e.group : '');
  const identity = (e: Endpoint) => { const own = np?.ownOf(e); return own ? `${groupKey(e)}#${own}` : groupKey(e); };
  const enforced = new Set((s.host === undefined ? s.endpoints : s.endpoints.filter((e) => e.host === s.host)).map(identity));
  if (s.host === undefined) {
    for (const g of known) enforced.add(g);
    return { enforced, policies: [...s.policies], endpoints: [...s.endpoints], np };
  }
  const groups = new Set([...enforced].map(groupOfIdentity));
  const attached = new Set(s.groups.filter((g) => groups.has(g.name)).flatMap((g) => g.policies));
  const policies = s.policies.filter((p) => attached.has(p.name));
  // A plain loop: this runs on every compile, over every rule (50,000 of them, a rule change's compile).
  const named = new Set<string | undefined>();
  for (const p of policies) for (const r of p.rules) named.add(r.direction === 'in' ? r.fromGroup : r.toGroup);
  const endpoints = s.endpoints.filter((e) => enforced.has(identity(e)) || (e.group !== undefined && named.has(e.group)) || np?.matters(e));
  return { enforced, policies, endpoints, np };
}

/** Each compile's working state, for the next compile that names it `previous` (taken over, then dropped). */
const engines = new WeakMap<CompiledPolicy, Engine>();

/**
 * The tenant's policy for this host. Given `previous` (the last compile here) and the same frame (only
 * rules changed), it redoes only what the changed rules touch; the result is the cold compile's.
 */
export function compilePolicy(s: PolicyState): CompiledPolicy {
  const fallback = verdictOf(s.tenant.defaultAction);
  const sc = scope(s, netpolOf(s));
  const withRules = new Set(sc.policies.filter((p) => p.rules.length > 0).map((p) => p.name));
  const groups = new Set([...sc.enforced].map(groupOfIdentity));
  // No rule applies here: every flow gets the default, and no address needs a class. This keeps the CNI
  // ADD path of rule-less tenants from classifying every endpoint on each ADD.
  const isolated = sc.np !== undefined && [...sc.enforced].some((x) => x.includes('#'));
  if (!isolated && !s.groups.some((g) => groups.has(g.name) && g.policies.some((p) => withRules.has(p)))) {
    return { tenant: s.tenant.name, fallback, classification: { classes: [], ids: new Map(), ranges: [], byIp: () => EMPTY }, pairs: [], profiles: [], sctp: false, ruleCount: 0, how: 'cold' };
  }
  const frame = frameOf(s, sc);
  const warm = incremental(s.previous, frame, sc);
  const engine = warm ?? Engine.build(s, sc, frame, s.previous?.classification.ids, s.previous?.profiles);
  const out: CompiledPolicy = {
    tenant: s.tenant.name, fallback, classification: engine.classification(), pairs: engine.pairs.list, profiles: engine.pairs.profiles.list(engine.pairs.list.length), sctp: engine.sctp,
    ruleCount: sc.policies.reduce((n, p) => n + p.rules.length, 0) + (sc.np?.ruleCount ?? 0), how: warm ? 'incremental' : 'cold',
  };
  engines.set(out, engine);
  return out;
}

/** The previous compile's engine brought up to `policies`, or undefined when only a cold compile will do. */
function incremental(previous: CompiledPolicy | undefined, frame: string, sc: Scope): Engine | undefined {
  const e = previous && engines.get(previous);
  if (!e || e.frame !== frame) return undefined;
  const now = new Map(sc.policies.map((p) => [p.name, p]));
  const changes = ruleChanges(e.policies, now);
  const eps = endpointsByIp(sc.endpoints);
  const moved = movedEndpoints(e.eps, eps, sc.np);
  if (!changes || !moved) return undefined;
  // The engine changes in place: `previous` can no longer start another compile (that one will be cold).
  engines.delete(previous);
  recompile(e, now, changes, eps, moved);
  return e;
}

/**
 * What the compiled tables decide for a new connection between two classes: the pair's profile of the
 * protocol, its segment holding the port (tcp, udp, sctp where the compile decides it by port) or the
 * protocol number, else the tenant's default. The datapath's lookups, as plain code (tests walk compiles
 * with it; a scan, not for the packet path).
 */
export function lookupVerdict(c: CompiledPolicy, src: number, dst: number, proto: number, port: number): Verdict {
  const pair = c.pairs.find((p) => p.src === src && p.dst === dst);
  const byPort = proto === 6 || proto === 17 || (proto === 132 && c.sctp);
  const id = pair === undefined ? 0 : proto === 6 ? pair.tcp : proto === 17 ? pair.udp : byPort ? pair.sctp : pair.other;
  const key = byPort ? port : proto;
  const seg = c.profiles.find((p) => p.id === id)?.segs.find((s) => key >= s.first && key <= s.last);
  return seg?.verdict ?? c.fallback;
}
