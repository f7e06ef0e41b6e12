import { createHash } from 'node:crypto';
import { cidrRange, formatCidr6, formatIp, maskOf6, parseCidr, parseCidr6, selectorMatches } from '../model/index.js';
import type { AnpPeer, AnpPort, Endpoint, LabelMap, LabelSelector, NetpolProtocol, NetworkPolicyPeer, NetworkPolicyPort } from '../model/index.js';

// The pieces of the NetworkPolicy layer (netpol.ts) that name things: peer sets, ports, named ports.

export const NAMED_PORT_PREFIX = 'port.weft.io/';

export type Protocol = 'tcp' | 'udp' | 'sctp';
export interface NamedPort { protocol: Protocol; port: number }

/** One peer set: pods (by namespace and selectors) or addresses, optionally only pods declaring a named port as given. */
export interface SetSpec {
  id: string;
  /** Pods: the policy's namespace when there is no namespace selector. */
  namespace?: string;
  namespaceSelector?: LabelSelector;
  podSelector?: LabelSelector;
  /** Addresses: the block and its holes, as the CIDR texts classes carry. */
  block?: { cidr: string; except: string[] };
  /** Only pods that declare this named port with this protocol and number. */
  named?: { name: string } & NamedPort;
  /** Any address (an egress rule to everything, narrowed by `named`). */
  any?: true;
}
export type SetBase = Omit<SetSpec, 'id'>;

/** A port entry of any tier: a protocol (absent: any), a range, or a name resolved on the destination pod. */
export interface TierPort { protocol?: Protocol; range?: [number, number]; named?: { name: string; protocol?: Protocol } }

/** 96 bits: a set or an identity is named by its content, and two contents must never share a name. */
export const hash = (text: string) => createHash('sha256').update(text).digest('hex').slice(0, 24);

/** An ipBlock CIDR as classes carry it: its network address and length (Kubernetes accepts host bits). */
export function blockCidr(text: string): string {
  // IPv6: its network address in RFC 5952 form, as rule CIDRs are stored (cidr6.ts keys them by text).
  if (text.includes(':')) { const c = parseCidr6(text, 'cidr', false); return formatCidr6({ base: c.base & maskOf6(c.prefix), prefix: c.prefix }); }
  const c = cidrRange(parseCidr(text, 'cidr', false));
  const len = 32 - Math.log2(c.last - c.first + 1);
  return `${formatIp(c.first)}/${len}`;
}

export const lower = (p: NetpolProtocol | undefined): Protocol => (p ?? 'TCP').toLowerCase() as Protocol;

/** The named ports an endpoint declares by label. */
export function namedPortsOf(labels: LabelMap): Record<string, NamedPort> {
  const out: Record<string, NamedPort> = {};
  for (const [k, v] of Object.entries(labels)) {
    if (!k.startsWith(NAMED_PORT_PREFIX)) continue;
    const m = /^(?:(tcp|udp|sctp)-)?(\d{1,5})$/.exec(v);
    const port = m ? Number(m[2]) : 0;
    if (m && port >= 1 && port <= 65535) out[k.slice(NAMED_PORT_PREFIX.length)] = { protocol: (m[1] ?? 'tcp') as Protocol, port };
  }
  return out;
}

export function npPeer(x: NetworkPolicyPeer, ns: string): SetBase {
  if (x.ipBlock) return { block: { cidr: blockCidr(x.ipBlock.cidr), except: (x.ipBlock.except ?? []).map(blockCidr).sort() } };
  return {
    ...(x.namespaceSelector ? { namespaceSelector: x.namespaceSelector } : { namespace: ns }),
    // A namespaceSelector alone selects every pod of those namespaces.
    podSelector: x.podSelector ?? {},
  };
}

/** An AdminNetworkPolicy peer: one set per network CIDR, else pods. */
export function anpPeers(x: AnpPeer): SetBase[] {
  if ('networks' in x) return x.networks.map((c) => ({ block: { cidr: blockCidr(c), except: [] } }));
  if ('namespaces' in x) return [{ namespaceSelector: x.namespaces, podSelector: {} }];
  return [{ namespaceSelector: x.pods.namespaceSelector, podSelector: x.pods.podSelector }];
}

export function npPort(q: NetworkPolicyPort): TierPort {
  const protocol = lower(q.protocol);
  if (q.port === undefined) return { protocol };
  if (typeof q.port === 'string') return { named: { name: q.port, protocol } };
  return { protocol, range: [q.port, q.endPort ?? q.port] };
}

export function anpPort(q: AnpPort): TierPort {
  if ('portNumber' in q) return { protocol: lower(q.portNumber.protocol), range: [q.portNumber.port, q.portNumber.port] };
  if ('portRange' in q) return { protocol: lower(q.portRange.protocol), range: [q.portRange.start, q.portRange.end] };
  return { named: { name: q.namedPort } };
}

export function hasNamed(named: Record<string, NamedPort>, want: { name: string } & NamedPort): boolean {
  const n = named[want.name];
  return n !== undefined && n.protocol === want.protocol && n.port === want.port;
}

export function podInSet(s: SetSpec, ns: string, nsLabels: LabelMap, labels: LabelMap, named: Record<string, NamedPort>): boolean {
  if (s.named && !hasNamed(named, s.named)) return false;
  if (s.any) return true;
  if (s.namespace !== undefined && s.namespace !== ns) return false;
  if (s.namespaceSelector && !selectorMatches(s.namespaceSelector, nsLabels)) return false;
  return selectorMatches(s.podSelector ?? {}, labels);
}

/** Per named port, the (protocol, number) pairs endpoints declare for it, sorted. */
export function declarations(endpoints: readonly Endpoint[]): Map<string, NamedPort[]> {
  const out = new Map<string, Map<string, NamedPort>>();
  for (const e of endpoints) {
    for (const [name, n] of Object.entries(namedPortsOf(e.labels))) {
      const m = out.get(name) ?? out.set(name, new Map()).get(name)!;
      m.set(`${n.protocol}/${n.port}`, n);
    }
  }
  return new Map([...out].map(([k, v]) => [k, [...v.values()].sort((a, b) => (a.protocol < b.protocol ? -1 : a.protocol > b.protocol ? 1 : a.port - b.port))]));
}
