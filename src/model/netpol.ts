// Kubernetes NetworkPolicy (networking.k8s.io/v1) as data, and the label selectors it is built from
// (issue 15). Types and selector matching only: the semantics live in the policy compiler, and the
// truth-table oracle the tests check it against is written apart from it (src/testkit/netpol-oracle.ts).

export type LabelMap = Readonly<Record<string, string>>;

export interface LabelSelectorRequirement {
  key: string;
  operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
  values?: readonly string[];
}

/** Kubernetes' LabelSelector: every matchLabels pair and every expression must hold; {} selects everything. */
export interface LabelSelector {
  matchLabels?: LabelMap;
  matchExpressions?: readonly LabelSelectorRequirement[];
}

export type NetpolProtocol = 'TCP' | 'UDP' | 'SCTP';

export interface NetworkPolicyPort {
  /** Default TCP. */
  protocol?: NetpolProtocol;
  /** A number, or a named port resolved on the destination pod. Absent: every port. */
  port?: number | string;
  /** With a numeric `port`: the range port..endPort. */
  endPort?: number;
}

export interface IPBlock {
  cidr: string;
  except?: readonly string[];
}

/** One peer: pods (in the policy's namespace, or in the namespaces a namespaceSelector picks), or addresses. */
export interface NetworkPolicyPeer {
  podSelector?: LabelSelector;
  namespaceSelector?: LabelSelector;
  ipBlock?: IPBlock;
}

export interface NetworkPolicyIngressRule {
  /** Absent or empty: every source. */
  from?: readonly NetworkPolicyPeer[];
  /** Absent or empty: every port. */
  ports?: readonly NetworkPolicyPort[];
}

export interface NetworkPolicyEgressRule {
  to?: readonly NetworkPolicyPeer[];
  ports?: readonly NetworkPolicyPort[];
}

export interface NetworkPolicy {
  name: string;
  namespace: string;
  spec: {
    podSelector: LabelSelector;
    policyTypes?: ReadonlyArray<'Ingress' | 'Egress'>;
    ingress?: readonly NetworkPolicyIngressRule[];
    egress?: readonly NetworkPolicyEgressRule[];
  };
}

/** A pod's namespace when its endpoint has no `namespace` label; a NetworkPolicy's when its document names none. */
export const DEFAULT_NAMESPACE = 'default';

/** The label every namespace has (Kubernetes sets it since 1.21; Weft always does). */
export const NAMESPACE_NAME_LABEL = 'kubernetes.io/metadata.name';

export function selectorMatches(selector: LabelSelector, labels: LabelMap): boolean {
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const r of selector.matchExpressions ?? []) {
    const has = Object.prototype.hasOwnProperty.call(labels, r.key);
    const value = has ? labels[r.key] : undefined;
    const inValues = value !== undefined && (r.values ?? []).includes(value);
    if (r.operator === 'In' && !inValues) return false;
    if (r.operator === 'NotIn' && inValues) return false;
    if (r.operator === 'Exists' && !has) return false;
    if (r.operator === 'DoesNotExist' && has) return false;
  }
  return true;
}

/** policyTypes as Kubernetes defaults them: Ingress always, Egress when the policy has egress rules. */
export function policyTypesOf(p: NetworkPolicy): ReadonlyArray<'Ingress' | 'Egress'> {
  if (p.spec.policyTypes && p.spec.policyTypes.length > 0) return p.spec.policyTypes;
  return (p.spec.egress?.length ?? 0) > 0 ? ['Ingress', 'Egress'] : ['Ingress'];
}
