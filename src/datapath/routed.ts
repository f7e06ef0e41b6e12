import { block6Of, blockOf, parseIp, type Network } from '../model/index.js';
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
  /** For a route on a device: the source address it prefers (a tenant's routed bridge: its gateway). */
  src?: string;
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
  /** The same for IPv6 (dual-stack routed networks: an ipv6 channel on the same session). */
  exports6: string[];
  imports6: string[];
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
  /** Their IPv6 twins (block6Of). */
  blocks6: string[];
  sessions: BgpSession[];
  /** This host's IPv6 underlay address: its sessions carry an ipv6 channel announcing it as next hop. */
  nextHop6?: string;
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
  const others6 = new Map((d.hosts ?? []).filter((h) => h.name !== d.host && h.vtepIp !== d.vtep && h.vtepIp6 !== undefined).map((h) => [h.name, h.vtepIp6 as string]));
  // Without an IPv6 underlay address of its own this host reaches no other host's IPv6 blocks, and no one
  // reaches its own: it routes IPv6 only between its endpoints and its tenants' uplinks.
  const me6 = (d.hosts ?? []).find((h) => h.name === d.host)?.vtepIp6;
  const allBlocks: string[] = [];
  const allBlocks6: string[] = [];
  for (const n of routed) {
    const t = byTenant.get(n.tenant) as TenantPlan;
    routes.push({ dst: n.subnet, unreachable: true });
    const bridge = t.bridges.find((b) => b.network === n.name)?.routed;
    const mine = bridge?.blocks ?? [];
    for (const b of mine) routes.push({ dst: b, via: t.uplink.tenantIp, dev: t.uplink.hostLink });
    // IPv6 (a dual-stack routed network): the same routes for the paired blocks, through the uplink's IPv6
    // end here and other hosts' IPv6 underlay addresses (a host without one is not reached over IPv6).
    const six = n.subnet6 !== undefined && t.uplink.tenantIp6 !== undefined;
    const mine6 = six ? bridge?.blocks6 ?? [] : [];
    if (six) {
      routes.push({ dst: n.subnet6 as string, unreachable: true });
      for (const b of mine6) routes.push({ dst: b, via: t.uplink.tenantIp6 as string, dev: t.uplink.hostLink });
    }
    const out6 = six && me6 !== undefined;
    if (!n.bgpPeers?.length) {
      const remote = remoteBlocks(d, n, new Set(mine), others);
      routes.push(...remote.flatMap(([b, h]) => [{ dst: b.cidr, via: others.get(h) as string }]));
      if (out6) {
        routes.push(...remote.flatMap(([b, h]) => {
          const via = others6.get(h);
          const b6 = block6Of(n, b.index);
          return via !== undefined && b6 ? [{ dst: b6.cidr, via }] : [];
        }));
      }
      continue;
    }
    allBlocks.push(...mine);
    if (out6) allBlocks6.push(...mine6);
    const size = n.blockSize ?? 32;
    const size6 = out6 ? (block6Of(n, 0)?.cidr.split('/')[1] ?? '128') : '';
    for (const peer of n.bgpPeers) {
      const s = sessions.get(peer) ?? { name: `weft_${peer.replaceAll('.', '_')}`, peer, peerAs: n.bgpPeerAs ?? 0, localAs: n.bgpLocalAs ?? 0, exports: [], imports: [], exports6: [], imports6: [] };
      s.exports.push(...mine);
      s.imports.push(`${n.subnet}{${size},${size}}`);
      if (out6) {
        s.exports6.push(...mine6);
        s.imports6.push(`${n.subnet6 as string}{${size6},${size6}}`);
      }
      sessions.set(peer, s);
    }
  }
  const bgp = d.vtep && sessions.size > 0
    ? {
      routerId: d.vtep, blocks: [...allBlocks].sort(), blocks6: [...allBlocks6].sort(), sessions: [...sessions.values()].sort((a, b) => (a.peer < b.peer ? -1 : 1)),
      ...(me6 !== undefined ? { nextHop6: me6 } : {}),
    }
    : undefined;
  return { routes, bgp };
}

/**
 * Other hosts' blocks of a network without BGP, by their endpoints: each block (with its index, for its IPv6
 * pair) and its holder (one, should two claim it), sorted by block.
 */
function remoteBlocks(d: DesiredHostState, n: Network, mine: ReadonlySet<string>, others: ReadonlyMap<string, string>): Array<[{ cidr: string; index: number }, string]> {
  const holder = new Map<string, [{ cidr: string; index: number }, string]>();
  for (const e of d.endpoints) {
    if (e.tenant !== n.tenant || e.network !== n.name || !others.has(e.host)) continue;
    const ip = e.ip === undefined ? undefined : parseIp(e.ip);
    if (ip === undefined) continue;
    const b = blockOf(n, ip);
    if (mine.has(b.cidr)) continue;
    const h = holder.get(b.cidr);
    if (h === undefined || e.host < h[1]) holder.set(b.cidr, [{ cidr: b.cidr, index: b.index }, e.host]);
  }
  return [...holder.values()].sort(([a], [b]) => (a.cidr < b.cidr ? -1 : 1));
}
