import { blockOf, parseIp, type Network } from '../model/index.js';
import type { DesiredHostState, TenantPlan } from './plan.js';

/**
 * Routed networks on the host side (encap routed, issue 17): the routes the host namespace holds and
 * what its BGP daemon announces and learns. Pure: the Linux half converges routes (linux/routes.ts) and
 * runs bird (linux/bird.ts).
 */

/** Weft's routes in the host namespace carry this protocol number (`ip route ... proto 87`), and only they are ever deleted. */
export const ROUTE_PROTO = 87;

/** One route in the host's main table: to a block through a tenant's uplink or another host, or unreachable. */
export interface HostRoute {
  dst: string;
  via?: string;
  dev?: string;
  unreachable?: boolean;
}

export interface BgpSession {
  /** bird's protocol name for it. */
  name: string;
  peer: string;
  peerAs: number;
  localAs: number;
  /** This host's blocks of the networks that name this peer: announced. */
  exports: string[];
  /**
   * What may be learned from it: blocks of those networks, as bird prefix patterns (`subnet{26,26}`: only
   * prefixes of exactly the block size inside the subnet; never a default, an aggregate or a more specific
   * route that would pull a block's addresses elsewhere).
   */
  imports: string[];
}

export interface BgpPlan {
  routerId: string;
  /** Every block this host holds of networks with BGP (announced to the sessions that carry its network; never learned back). */
  blocks: string[];
  sessions: BgpSession[];
}

export interface RoutedHostPlan {
  routes: HostRoute[];
  bgp: BgpPlan | undefined;
}

/**
 * Per routed network: its subnet unreachable as a whole (an address no host holds goes nowhere, not out of
 * the default route), each block this host holds routed into its tenant's uplink, and, for a network
 * without BGP peers, every other host's blocks routed straight to that host over the underlay (one
 * segment: the hosts are each other's next hop). A network with peers learns the others' blocks by BGP.
 */
export function planRouted(d: DesiredHostState, tenants: readonly TenantPlan[]): RoutedHostPlan {
  const byTenant = new Map(tenants.map((t) => [t.tenant, t]));
  // Routed networks are IPv4: one without a subnet (a record no server makes) is left out.
  const routed = d.networks.flatMap((n) => (n.encap === 'routed' && byTenant.has(n.tenant) && n.subnet !== undefined ? [{ ...n, subnet: n.subnet }] : []))
    .sort((a, b) => (a.subnet < b.subnet ? -1 : a.subnet > b.subnet ? 1 : 0));
  const routes: HostRoute[] = [];
  const others = new Map((d.hosts ?? []).filter((h) => h.name !== d.host && h.vtepIp !== d.vtep).map((h) => [h.name, h.vtepIp]));
  const sessions = new Map<string, BgpSession>();
  const allBlocks: string[] = [];
  for (const n of routed) {
    const t = byTenant.get(n.tenant) as TenantPlan;
    routes.push({ dst: n.subnet, unreachable: true });
    const mine = t.bridges.find((b) => b.network === n.name)?.routed?.blocks ?? [];
    for (const b of mine) routes.push({ dst: b, via: t.uplink.tenantIp, dev: t.uplink.hostLink });
    if (!n.bgpPeers?.length) {
      routes.push(...remoteBlocks(d, n, new Set(mine), others));
      continue;
    }
    allBlocks.push(...mine);
    for (const peer of n.bgpPeers) {
      const s = sessions.get(peer) ?? { name: `weft_${peer.replaceAll('.', '_')}`, peer, peerAs: n.bgpPeerAs ?? 0, localAs: n.bgpLocalAs ?? 0, exports: [], imports: [] };
      s.exports.push(...mine);
      s.imports.push(`${n.subnet}{${n.blockSize ?? 32},${n.blockSize ?? 32}}`);
      sessions.set(peer, s);
    }
  }
  const bgp = d.vtep && sessions.size > 0
    ? { routerId: d.vtep, blocks: [...allBlocks].sort(), sessions: [...sessions.values()].sort((a, b) => (a.peer < b.peer ? -1 : 1)) }
    : undefined;
  return { routes, bgp };
}

/** Other hosts' blocks of a network without BGP: by their endpoints, each block to its holder (one, should two claim it). */
function remoteBlocks(d: DesiredHostState, n: Network, mine: ReadonlySet<string>, others: ReadonlyMap<string, string>): HostRoute[] {
  const holder = new Map<string, string>();
  for (const e of d.endpoints) {
    if (e.tenant !== n.tenant || e.network !== n.name || !others.has(e.host)) continue;
    const ip = e.ip === undefined ? undefined : parseIp(e.ip);
    if (ip === undefined) continue;
    const b = blockOf(n, ip).cidr;
    if (mine.has(b)) continue;
    const h = holder.get(b);
    if (h === undefined || e.host < h) holder.set(b, e.host);
  }
  return [...holder].sort(([a], [b]) => (a < b ? -1 : 1)).map(([dst, h]) => ({ dst, via: others.get(h) as string }));
}
