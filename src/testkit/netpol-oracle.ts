// The NetworkPolicy truth tables' oracle (issue 15): what upstream Kubernetes allows for one connection,
// written straight from the API's documented semantics and apart from Weft's compiler, so that the
// compiler (and the datapath, probed with real packets) can be checked against it. Not used by Weft itself.
import { NAMESPACE_NAME_LABEL, cidrRange, cidrRange6, parseCidr, parseCidr6, parseIp, parseIp6, policyTypesOf, selectorMatches } from '../model/index.js';
import type { AdminNetworkPolicy, AnpPeer, AnpPort, AnpSubject, BaselineAdminNetworkPolicy, LabelMap, NetpolProtocol, NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort } from '../model/index.js';

export interface OraclePod {
  namespace: string;
  name: string;
  labels: LabelMap;
  ip: string;
  /**
   * The pod's addresses of the other family (a dual-stack pod). Kubernetes leaves pod addresses in
   * ipBlocks to the implementation; Weft matches a pod as one endpoint, so an ipBlock (or an admin
   * policy's network) covering any of its addresses covers the pod in both families (docs/decisions.md).
   */
  also?: readonly string[];
  /** Named ports the pod serves (what a named port in a policy resolves to on this pod). */
  ports?: Readonly<Record<string, { port: number; protocol: NetpolProtocol }>>;
}

export interface OracleNamespace { name: string; labels: LabelMap }

/** One end of a connection: a pod, or an address outside every pod. */
export type OracleEnd = { pod: OraclePod } | { ip: string };

/** One direction's say: no policy selects the pod for it (the next layer decides), or allowed / denied. */
export type DirectionVerdict = 'not-isolated' | 'allow' | 'deny';

export interface OracleVerdict { egress: DirectionVerdict; ingress: DirectionVerdict; allowed: boolean }

function namespaceLabels(namespaces: readonly OracleNamespace[], name: string): LabelMap {
  return { ...(namespaces.find((n) => n.name === name)?.labels ?? {}), [NAMESPACE_NAME_LABEL]: name };
}

function inCidr(ip: string, cidr: string): boolean {
  // A CIDR holds addresses of its own family only. Kubernetes takes an ipBlock's CIDR with host bits set
  // (10.0.0.1/24 is 10.0.0.0/24).
  if (ip.includes(':') !== cidr.includes(':')) return false;
  if (cidr.includes(':')) {
    const a = parseIp6(ip);
    const r = cidrRange6(parseCidr6(cidr, 'cidr', false));
    return a !== undefined && a >= r.first && a <= r.last;
  }
  const a = parseIp(ip);
  const r = cidrRange(parseCidr(cidr, 'cidr', false));
  return a !== undefined && a >= r.first && a <= r.last;
}

/** The addresses an ipBlock or a network may cover for `end`: a pod's own and its other family's. */
const addressesOf = (end: OracleEnd): readonly string[] => ('pod' in end ? [end.pod.ip, ...(end.pod.also ?? [])] : [end.ip]);

/** Does `peer` (of a policy in namespace `ns`) cover `end`? */
function peerMatches(peer: NetworkPolicyPeer, ns: string, end: OracleEnd, namespaces: readonly OracleNamespace[]): boolean {
  if (peer.ipBlock) {
    const block = peer.ipBlock;
    return addressesOf(end).some((ip) => inCidr(ip, block.cidr) && !(block.except ?? []).some((x) => inCidr(ip, x)));
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

/** The admin tiers (issue 15): AdminNetworkPolicies before NetworkPolicy, the BaselineAdminNetworkPolicy after it. */
export interface OracleAdmin { anps: readonly AdminNetworkPolicy[]; banp?: BaselineAdminNetworkPolicy | undefined }

function subjectMatches(s: AnpSubject, pod: OraclePod, namespaces: readonly OracleNamespace[]): boolean {
  const ns = namespaceLabels(namespaces, pod.namespace);
  if ('namespaces' in s) return selectorMatches(s.namespaces, ns);
  return selectorMatches(s.pods.namespaceSelector, ns) && selectorMatches(s.pods.podSelector, pod.labels);
}

function adminPeerMatches(p: AnpPeer, end: OracleEnd, namespaces: readonly OracleNamespace[]): boolean {
  if ('networks' in p) return p.networks.some((c) => addressesOf(end).some((ip) => inCidr(ip, c)));
  return 'pod' in end && subjectMatches(p, end.pod, namespaces);
}

function adminPortMatches(ports: readonly AnpPort[] | undefined, protocol: NetpolProtocol, port: number, dst: OracleEnd): boolean {
  if (!ports) return true;
  return ports.some((p) => {
    if ('portNumber' in p) return p.portNumber.protocol === protocol && p.portNumber.port === port;
    if ('portRange' in p) return p.portRange.protocol === protocol && port >= p.portRange.start && port <= p.portRange.end;
    const named = 'pod' in dst ? dst.pod.ports?.[p.namedPort] : undefined;
    return named !== undefined && named.protocol === protocol && named.port === port;
  });
}

/**
 * One connection through every tier, per direction: the AdminNetworkPolicies selecting the pod, lowest
 * priority first and each rule in order, the first matching rule deciding (Pass: go on to NetworkPolicy);
 * then NetworkPolicy (a pod it isolates gets its answer); then the BaselineAdminNetworkPolicy's first
 * matching rule; else nothing decided ('not-isolated': the default, allow in Kubernetes).
 */
export function adminVerdict(admin: OracleAdmin, policies: readonly NetworkPolicy[], namespaces: readonly OracleNamespace[], src: OracleEnd, dst: OracleEnd, protocol: NetpolProtocol, port: number): OracleVerdict {
  const np = netpolVerdict(policies, namespaces, src, dst, protocol, port);
  const side = (pod: OraclePod, type: 'ingress' | 'egress', peer: OracleEnd, npSays: DirectionVerdict): DirectionVerdict => {
    const anps = admin.anps.filter((a) => subjectMatches(a.subject, pod, namespaces)).sort((a, b) => a.priority - b.priority || (a.name < b.name ? -1 : 1));
    tiers: for (const a of anps) {
      for (const r of a[type]) {
        if (!r.peers.some((p) => adminPeerMatches(p, peer, namespaces)) || !adminPortMatches(r.ports, protocol, port, dst)) continue;
        if (r.action === 'Pass') break tiers;
        return r.action === 'Allow' ? 'allow' : 'deny';
      }
    }
    if (npSays !== 'not-isolated') return npSays;
    const b = admin.banp;
    if (b && subjectMatches(b.subject, pod, namespaces)) {
      const r = b[type].find((x) => x.peers.some((p) => adminPeerMatches(p, peer, namespaces)) && adminPortMatches(x.ports, protocol, port, dst));
      if (r) return r.action === 'Allow' ? 'allow' : 'deny';
    }
    return 'not-isolated';
  };
  const egress = 'pod' in src ? side(src.pod, 'egress', dst, np.egress) : 'not-isolated';
  const ingress = 'pod' in dst ? side(dst.pod, 'ingress', src, np.ingress) : 'not-isolated';
  return { egress, ingress, allowed: egress !== 'deny' && ingress !== 'deny' };
}
