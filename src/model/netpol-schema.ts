import { Type, type Static } from '@sinclair/typebox';
import { invalid } from './errors.js';
import { cidrRange, parseCidr } from './ipv4.js';
import { cidrRange6, meetsRuleSpace6, parseCidr6 } from './ipv6.js';
import type { LabelSelector, NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort } from './netpol.js';

// The schema of a NetworkPolicy's spec (networking.k8s.io/v1), as upstream validates it, and the checks a
// schema cannot express (issue 15). Not yet a kind the API takes: it must not be before it is enforced.

const LabelKey = Type.String({ pattern: '^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$', description: 'a label key: [prefix/]name' });
const LabelValue = Type.String({ pattern: '^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$' });

/** Labels as Kubernetes takes them (a Namespace's): [prefix/]name keys. */
export const K8sLabels = Type.Record(LabelKey, LabelValue, { maxProperties: 64, additionalProperties: false, description: 'key: value labels' });

/** Annotations as Kubernetes takes them; Weft reads `weft.io/mode` on policies and ignores the rest. */
export const K8sAnnotations = Type.Record(LabelKey, Type.String({ maxLength: 4096 }), { maxProperties: 64, additionalProperties: false, description: 'key: value annotations' });
/** The annotation that puts a Kubernetes policy in audit mode (`weft apply --audit` sets it for every policy). */
export const MODE_ANNOTATION = 'weft.io/mode';

export const LabelSelectorSchema = Type.Object({
  matchLabels: Type.Optional(Type.Record(LabelKey, LabelValue, { maxProperties: 64, additionalProperties: false })),
  matchExpressions: Type.Optional(Type.Array(Type.Object({
    key: LabelKey,
    operator: Type.Unsafe<'In' | 'NotIn' | 'Exists' | 'DoesNotExist'>({ type: 'string', enum: ['In', 'NotIn', 'Exists', 'DoesNotExist'] }),
    values: Type.Optional(Type.Array(LabelValue, { maxItems: 256 })),
  }, { additionalProperties: false }), { maxItems: 64 })),
}, { additionalProperties: false });

const Peer = Type.Object({
  podSelector: Type.Optional(LabelSelectorSchema),
  namespaceSelector: Type.Optional(LabelSelectorSchema),
  ipBlock: Type.Optional(Type.Object({
    // 43: the longest IPv6 prefix text (39 characters and /128); IPv4's is 18.
    cidr: Type.String({ maxLength: 43 }),
    except: Type.Optional(Type.Array(Type.String({ maxLength: 43 }), { maxItems: 256 })),
  }, { additionalProperties: false })),
}, { additionalProperties: false });

const Port = Type.Object({
  protocol: Type.Optional(Type.Unsafe<'TCP' | 'UDP' | 'SCTP'>({ type: 'string', enum: ['TCP', 'UDP', 'SCTP'] })),
  // A number, or an IANA service name (what a container's named port is called).
  port: Type.Optional(Type.Union([Type.Integer({ minimum: 1, maximum: 65535 }), Type.String({ pattern: '^(?=.*[a-z])[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?$' })])),
  endPort: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
}, { additionalProperties: false });

const Rules = (peers: 'from' | 'to') => Type.Array(Type.Object({
  [peers]: Type.Optional(Type.Array(Peer, { maxItems: 256 })),
  ports: Type.Optional(Type.Array(Port, { maxItems: 256 })),
}, { additionalProperties: false }), { maxItems: 1024 });

export const NetworkPolicySpecSchema = Type.Object({
  podSelector: LabelSelectorSchema,
  policyTypes: Type.Optional(Type.Array(Type.Unsafe<'Ingress' | 'Egress'>({ type: 'string', enum: ['Ingress', 'Egress'] }), { maxItems: 2, uniqueItems: true })),
  ingress: Type.Optional(Rules('from')),
  egress: Type.Optional(Rules('to')),
}, { additionalProperties: false });
export type NetworkPolicySpecInput = Static<typeof NetworkPolicySpecSchema>;

function checkSelector(s: LabelSelector, path: string): void {
  for (const [i, r] of (s.matchExpressions ?? []).entries()) {
    const set = r.operator === 'In' || r.operator === 'NotIn';
    if (set && (r.values?.length ?? 0) === 0) throw invalid(`${path}.matchExpressions.${i}.values`, `operator ${r.operator} needs at least one value`);
    if (!set && (r.values?.length ?? 0) > 0) throw invalid(`${path}.matchExpressions.${i}.values`, `operator ${r.operator} takes no values`);
  }
}

function checkPeer(p: NetworkPolicyPeer, path: string): void {
  if (!p.podSelector && !p.namespaceSelector && !p.ipBlock) throw invalid(path, 'a peer needs a podSelector, a namespaceSelector or an ipBlock');
  if (p.ipBlock && (p.podSelector || p.namespaceSelector)) throw invalid(`${path}.ipBlock`, 'an ipBlock cannot be combined with a podSelector or namespaceSelector in one peer');
  if (p.podSelector) checkSelector(p.podSelector, `${path}.podSelector`);
  if (p.namespaceSelector) checkSelector(p.namespaceSelector, `${path}.namespaceSelector`);
  if (p.ipBlock) {
    // Either family (a dual-stack tenant's IPv6 blocks decide IPv6 addresses, as IPv4 ones IPv4 addresses);
    // an except is of its block's family.
    const six = p.ipBlock.cidr.includes(':');
    const rangeOf = (text: string, field: string) => {
      if (text.includes(':') !== six) throw invalid(field, `'${text.slice(0, 50)}' is not of the block's family (${p.ipBlock?.cidr.slice(0, 50)})`);
      return six ? cidrRange6(parseCidr6(text, field, false)) : cidrRange(parseCidr(text, field, false));
    };
    const outer = rangeOf(p.ipBlock.cidr, `${path}.ipBlock.cidr`);
    if (six && !meetsRuleSpace6(outer as ReturnType<typeof cidrRange6>)) {
      throw invalid(`${path}.ipBlock.cidr`, `'${p.ipBlock.cidr.slice(0, 50)}' holds no global unicast (2000::/3), unique local (fc00::/7) or NAT64 address: no packet of a tenant carries one`);
    }
    for (const [i, x] of (p.ipBlock.except ?? []).entries()) {
      const r = rangeOf(x, `${path}.ipBlock.except.${i}`);
      if (r.first < outer.first || r.last > outer.last || (r.first === outer.first && r.last === outer.last)) {
        throw invalid(`${path}.ipBlock.except.${i}`, `'${x}' must lie strictly inside the block's cidr ${p.ipBlock.cidr}`);
      }
    }
  }
}

function checkPort(p: NetworkPolicyPort, path: string): void {
  if (p.endPort === undefined) return;
  if (typeof p.port !== 'number') throw invalid(`${path}.endPort`, 'needs a numeric port to start the range');
  if (p.endPort < p.port) throw invalid(`${path}.endPort`, `${p.endPort} is below port ${p.port}`);
}

/**
 * At most this many rules per Kubernetes policy once expanded (each rule's peers × ports): what the
 * compiler makes of one document, and what it costs its owner in the rules quota. One document may
 * otherwise name 1,024 rules × 256 peers × 256 ports (67 million rules: a host's compile ran out of
 * memory on one, review of session 14).
 */
export const MAX_POLICY_EXPANSION = 1000;

/** The rules a NetworkPolicy's spec expands to (peers × ports per rule, at least one of each). */
export function netpolWeight(spec: NetworkPolicy['spec']): number {
  let n = 0;
  for (const r of spec.ingress ?? []) n += Math.max(1, r.from?.length ?? 0) * Math.max(1, r.ports?.length ?? 0);
  for (const r of spec.egress ?? []) n += Math.max(1, r.to?.length ?? 0) * Math.max(1, r.ports?.length ?? 0);
  return n;
}

/** What a schema cannot say of a NetworkPolicy's spec; errors name the field under `path` (e.g. `spec`). */
export function checkNetworkPolicySpec(spec: NetworkPolicy['spec'], path = 'spec'): void {
  const at = (x: string) => (path ? `${path}.${x}` : x);
  const weight = netpolWeight(spec);
  if (weight > MAX_POLICY_EXPANSION) {
    throw invalid(at((spec.ingress?.length ?? 0) > 0 ? 'ingress' : 'egress'), `the policy expands to ${weight} rules (each rule's peers × ports), past ${MAX_POLICY_EXPANSION}: split it into several policies`);
  }
  checkSelector(spec.podSelector, at('podSelector'));
  for (const dir of ['ingress', 'egress'] as const) {
    for (const [i, r] of (spec[dir] ?? []).entries()) {
      const peers = dir === 'ingress' ? (r as { from?: readonly NetworkPolicyPeer[] }).from : (r as { to?: readonly NetworkPolicyPeer[] }).to;
      for (const [j, p] of (peers ?? []).entries()) checkPeer(p, at(`${dir}.${i}.${dir === 'ingress' ? 'from' : 'to'}.${j}`));
      for (const [j, p] of (r.ports ?? []).entries()) checkPort(p, at(`${dir}.${i}.ports.${j}`));
    }
  }
}
