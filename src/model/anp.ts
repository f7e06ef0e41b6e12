import { Type, type Static } from '@sinclair/typebox';
import { invalid } from './errors.js';
import { parseCidr } from './ipv4.js';
import { cidrRange6, meetsRuleSpace6, parseCidr6 } from './ipv6.js';
import type { LabelSelector, NetpolProtocol } from './netpol.js';
import { LabelSelectorSchema, MAX_POLICY_EXPANSION } from './netpol-schema.js';

// AdminNetworkPolicy and BaselineAdminNetworkPolicy (policy.networking.k8s.io/v1alpha1, issue 15): the
// cluster admin's tiers around NetworkPolicy. In Weft a tenant is the cluster: both are per tenant.
// Types, schema and the checks a schema cannot make; the semantics are the policy compiler's, and the
// oracle's (src/testkit/netpol-oracle.ts) apart from it.

/** Namespaces by selector, or pods by a namespace and a pod selector. */
export type AnpSubject = { namespaces: LabelSelector } | { pods: { namespaceSelector: LabelSelector; podSelector: LabelSelector } };
/** A rule's peer: pods as a subject is, or (egress only) addresses. */
export type AnpPeer = AnpSubject | { networks: readonly string[] };
export type AnpPort =
  | { portNumber: { protocol: NetpolProtocol; port: number } }
  | { namedPort: string }
  | { portRange: { protocol: NetpolProtocol; start: number; end: number } };
export type AnpAction = 'Allow' | 'Deny' | 'Pass';

export interface AnpRule<A extends AnpAction = AnpAction> {
  name?: string;
  action: A;
  /** Ingress: from; egress: to. */
  peers: readonly AnpPeer[];
  /** Absent: every port of every protocol. */
  ports?: readonly AnpPort[];
}

/** One AdminNetworkPolicy: a lower `priority` comes first; within one, the first matching rule decides. */
export interface AdminNetworkPolicy {
  name: string;
  priority: number;
  subject: AnpSubject;
  ingress: readonly AnpRule[];
  egress: readonly AnpRule[];
}

/** The BaselineAdminNetworkPolicy: after NetworkPolicy, for pods it does not isolate; Allow and Deny only. */
export interface BaselineAdminNetworkPolicy {
  subject: AnpSubject;
  ingress: readonly AnpRule<'Allow' | 'Deny'>[];
  egress: readonly AnpRule<'Allow' | 'Deny'>[];
}

const Protocol = Type.Unsafe<NetpolProtocol>({ type: 'string', enum: ['TCP', 'UDP', 'SCTP'] });
const Port = Type.Integer({ minimum: 1, maximum: 65535 });
const Subject = Type.Union([
  Type.Object({ namespaces: LabelSelectorSchema }, { additionalProperties: false }),
  Type.Object({ pods: Type.Object({ namespaceSelector: LabelSelectorSchema, podSelector: LabelSelectorSchema }, { additionalProperties: false }) }, { additionalProperties: false }),
]);
const Ports = Type.Array(Type.Union([
  Type.Object({ portNumber: Type.Object({ protocol: Protocol, port: Port }, { additionalProperties: false }) }, { additionalProperties: false }),
  Type.Object({ namedPort: Type.String({ pattern: '^(?=.*[a-z])[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?$' }) }, { additionalProperties: false }),
  Type.Object({ portRange: Type.Object({ protocol: Protocol, start: Port, end: Port }, { additionalProperties: false }) }, { additionalProperties: false }),
]), { minItems: 1, maxItems: 100 });
const RuleName = Type.String({ maxLength: 100 });
// 43: the longest IPv6 prefix text (39 characters and /128); IPv4's is 18.
const Networks = Type.Object({ networks: Type.Array(Type.String({ maxLength: 43 }), { minItems: 1, maxItems: 25 }) }, { additionalProperties: false });
const Action = <A extends AnpAction>(actions: readonly A[]) => Type.Unsafe<A>({ type: 'string', enum: [...actions] });
const inRules = <A extends AnpAction>(actions: readonly A[]) => Type.Array(Type.Object({
  name: Type.Optional(RuleName), action: Action(actions), from: Type.Array(Subject, { minItems: 1, maxItems: 100 }), ports: Type.Optional(Ports),
}, { additionalProperties: false }), { maxItems: 100 });
const outRules = <A extends AnpAction>(actions: readonly A[]) => Type.Array(Type.Object({
  name: Type.Optional(RuleName), action: Action(actions), to: Type.Array(Type.Union([Subject, Networks]), { minItems: 1, maxItems: 100 }), ports: Type.Optional(Ports),
}, { additionalProperties: false }), { maxItems: 100 });
const ALL = ['Allow', 'Deny', 'Pass'] as const;
const BASE = ['Allow', 'Deny'] as const;

export const AdminNetworkPolicySpecSchema = Type.Object({
  priority: Type.Integer({ minimum: 0, maximum: 1000, description: 'lower first' }),
  subject: Subject,
  ingress: Type.Optional(inRules(ALL)),
  egress: Type.Optional(outRules(ALL)),
}, { additionalProperties: false });
export type AdminNetworkPolicySpec = Static<typeof AdminNetworkPolicySpecSchema>;

export const BaselineAdminNetworkPolicySpecSchema = Type.Object({
  subject: Subject,
  ingress: Type.Optional(inRules(BASE)),
  egress: Type.Optional(outRules(BASE)),
}, { additionalProperties: false });
export type BaselineAdminNetworkPolicySpec = Static<typeof BaselineAdminNetworkPolicySpecSchema>;

/** The one BaselineAdminNetworkPolicy's name, as upstream requires. */
export const BANP_NAME = 'default';

type SpecRule = { name?: string | undefined; action: string; from?: readonly unknown[] | undefined; to?: readonly unknown[] | undefined; ports?: readonly AnpPort[] | undefined };

/** The rules an admin policy's spec expands to (peers, a network's each CIDR, × ports). */
export function adminWeight(spec: { ingress?: readonly SpecRule[] | undefined; egress?: readonly SpecRule[] | undefined }): number {
  let n = 0;
  for (const r of [...(spec.ingress ?? []), ...(spec.egress ?? [])]) {
    const peers = (r.from ?? r.to ?? []).reduce<number>((k, p) => k + ((p as { networks?: readonly string[] }).networks?.length ?? 1), 0);
    n += Math.max(1, peers) * Math.max(1, r.ports?.length ?? 0);
  }
  return n;
}

/** What a schema cannot say: port ranges in order, CIDRs parse. */
export function checkAdminSpec(spec: { ingress?: readonly SpecRule[] | undefined; egress?: readonly SpecRule[] | undefined }, path = ''): void {
  const at = (x: string) => (path ? `${path}.${x}` : x);
  const weight = adminWeight(spec);
  if (weight > MAX_POLICY_EXPANSION) {
    throw invalid(at((spec.ingress?.length ?? 0) > 0 ? 'ingress' : 'egress'), `the policy expands to ${weight} rules (each rule's peers × ports), past ${MAX_POLICY_EXPANSION}: split it into several policies`);
  }
  for (const dir of ['ingress', 'egress'] as const) {
    for (const [i, r] of (spec[dir] ?? []).entries()) {
      for (const [j, p] of (r.ports ?? []).entries()) {
        if ('portRange' in p && p.portRange.end < p.portRange.start) throw invalid(at(`${dir}.${i}.ports.${j}.portRange.end`), `${p.portRange.end} is below start ${p.portRange.start}`);
      }
      for (const [j, peer] of (r.to ?? []).entries()) {
        const nets = (peer as { networks?: readonly string[] }).networks;
        for (const [k, c] of (nets ?? []).entries()) {
          const field = at(`${dir}.${i}.to.${j}.networks.${k}`);
          // Either family, as an ipBlock's cidr: a dual-stack tenant's IPv6 networks decide IPv6 addresses.
          if (!c.includes(':')) parseCidr(c, field, false);
          else if (!meetsRuleSpace6(cidrRange6(parseCidr6(c, field, false)))) {
            throw invalid(field, `'${c}' holds no global unicast (2000::/3), unique local (fc00::/7) or NAT64 address: no packet of a tenant carries one`);
          }
        }
      }
    }
  }
}

/** A stored spec as the compiler and the oracle take it: rules with their peers under one name. */
export function adminRules<A extends AnpAction>(rules: readonly SpecRule[] | undefined): AnpRule<A>[] {
  return (rules ?? []).map((r) => ({
    ...(r.name !== undefined ? { name: r.name } : {}), action: r.action as A, peers: (r.from ?? r.to ?? []) as AnpPeer[], ...(r.ports ? { ports: r.ports } : {}),
  }));
}

/** A stored AdminNetworkPolicy as the compiler and the oracle take it. */
export function adminPolicyOf(name: string, spec: AdminNetworkPolicySpec): AdminNetworkPolicy {
  return { name, priority: spec.priority, subject: spec.subject as AnpSubject, ingress: adminRules(spec.ingress), egress: adminRules(spec.egress) };
}

/** The stored BaselineAdminNetworkPolicy as the compiler and the oracle take it. */
export function baselinePolicyOf(spec: BaselineAdminNetworkPolicySpec): BaselineAdminNetworkPolicy {
  return { subject: spec.subject as AnpSubject, ingress: adminRules<'Allow' | 'Deny'>(spec.ingress), egress: adminRules<'Allow' | 'Deny'>(spec.egress) };
}

/** A stored policy's mode as the compiler takes it (audit: evaluated, would-be drops pass counted). */
export const auditOf = (x: { mode?: string | undefined }): { audit?: true } => (x.mode === 'audit' ? { audit: true } : {});
