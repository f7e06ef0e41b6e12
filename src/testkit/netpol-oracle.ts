// The NetworkPolicy truth tables' oracle (issue 15): what upstream Kubernetes allows for one connection,
// written straight from the API's documented semantics and apart from Weft's compiler, so that the
// compiler (and the datapath, probed with real packets) can be checked against it. Not used by Weft itself.
import { NAMESPACE_NAME_LABEL, cidrRange, parseCidr, parseIp, policyTypesOf, selectorMatches } from '../model/index.js';
import type { LabelMap, NetpolProtocol, NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort } from '../model/index.js';

export interface OraclePod {
  namespace: string;
  name: string;
  labels: LabelMap;
  ip: string;
  /** Named ports the pod serves (what a named port in a policy resolves to on this pod). */
  ports?: Readonly<Record<string, { port: number; protocol: NetpolProtocol }>>;
}

export interface OracleNamespace { name: string; labels: LabelMap }

/** One end of a connection: a pod, or an address outside every pod. */
export type OracleEnd = { pod: OraclePod } | { ip: string };

/** One direction's say: no policy selects the pod for it (the next layer decides), or allowed / denied. */
export type DirectionVerdict = 'not-isolated' | 'allow' | 'deny';

export interface OracleVerdict { egress: DirectionVerdict; ingress: DirectionVerdict; allowed: boolean }

const ipOf = (end: OracleEnd) => ('pod' in end ? end.pod.ip : end.ip);

function namespaceLabels(namespaces: readonly OracleNamespace[], name: string): LabelMap {
  return { ...(namespaces.find((n) => n.name === name)?.labels ?? {}), [NAMESPACE_NAME_LABEL]: name };
}

function inCidr(ip: string, cidr: string): boolean {
  const a = parseIp(ip);
  // Kubernetes takes an ipBlock's CIDR with host bits set (10.0.0.1/24 is 10.0.0.0/24).
  const r = cidrRange(parseCidr(cidr, 'cidr', false));
  return a !== undefined && a >= r.first && a <= r.last;
}

/** Does `peer` (of a policy in namespace `ns`) cover `end`? */
function peerMatches(peer: NetworkPolicyPeer, ns: string, end: OracleEnd, namespaces: readonly OracleNamespace[]): boolean {
  if (peer.ipBlock) {
    const ip = ipOf(end);
    return inCidr(ip, peer.ipBlock.cidr) && !(peer.ipBlock.except ?? []).some((x) => inCidr(ip, x));
  }
  if (!('pod' in end)) return false;
  const pod = end.pod;
  if (peer.namespaceSelector) {
    if (!selectorMatches(peer.namespaceSelector, namespaceLabels(namespaces, pod.namespace))) return false;
  } else if (pod.namespace !== ns) {
    return false;
  }
  if (peer.podSelector) return selectorMatches(peer.podSelector, pod.labels);
  return peer.namespaceSelector !== undefined;
}

/** Does one of `ports` cover (protocol, port) to `dst` (where a named port is looked up)? Absent or empty: every port. */
function portMatches(ports: readonly NetworkPolicyPort[] | undefined, protocol: NetpolProtocol, port: number, dst: OracleEnd): boolean {
  if (!ports || ports.length === 0) return true;
  return ports.some((p) => {
    if ((p.protocol ?? 'TCP') !== protocol) return false;
    if (p.port === undefined) return true;
    if (typeof p.port === 'string') {
      const named = 'pod' in dst ? dst.pod.ports?.[p.port] : undefined;
      return named !== undefined && named.protocol === protocol && named.port === port;
    }
    return port >= p.port && port <= (p.endPort ?? p.port);
  });
}

/**
 * Upstream semantics for one connection from `src` to `dst`: a pod is isolated in a direction when a
 * policy of its namespace selects it with that policy type; an isolated direction allows only what some
 * rule of those policies allows (the union of their rules); the connection needs both directions.
 */
export function netpolVerdict(policies: readonly NetworkPolicy[], namespaces: readonly OracleNamespace[], src: OracleEnd, dst: OracleEnd, protocol: NetpolProtocol, port: number): OracleVerdict {
  /** `pod`'s say for `type`, the other end being `peer`: the rules (peers, ports) of the policies isolating it. */
  const verdict = (pod: OraclePod, type: 'Ingress' | 'Egress', peer: OracleEnd): DirectionVerdict => {
    const isolating = policies.filter((p) => p.namespace === pod.namespace && policyTypesOf(p).includes(type) && selectorMatches(p.spec.podSelector, pod.labels));
    if (isolating.length === 0) return 'not-isolated';
    const ok = isolating.some((p) => {
      const rules = type === 'Ingress' ? (p.spec.ingress ?? []).map((r) => ({ peers: r.from ?? [], ports: r.ports })) : (p.spec.egress ?? []).map((r) => ({ peers: r.to ?? [], ports: r.ports }));
      return rules.some((r) => (r.peers.length === 0 || r.peers.some((x) => peerMatches(x, p.namespace, peer, namespaces))) && portMatches(r.ports, protocol, port, dst));
    });
    return ok ? 'allow' : 'deny';
  };
  const egress = 'pod' in src ? verdict(src.pod, 'Egress', dst) : 'not-isolated';
  const ingress = 'pod' in dst ? verdict(dst.pod, 'Ingress', src) : 'not-isolated';
  return { egress, ingress, allowed: egress !== 'deny' && ingress !== 'deny' };
}
