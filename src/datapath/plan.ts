import { ENCAPS, block6Of, blockOf, linkLocalOf, parseCidr6, parseIp, adminPolicyOf, auditOf, baselinePolicyOf, parseCidr, type AdminNetworkPolicySpec, type AdminPolicyObject, type BaselineAdminNetworkPolicySpec, type OverlayEncap, type Encryption, type Endpoint, type Group, type Host, type NamespaceObject, type Netprofile, type Network, type NetworkPolicyObject, type Policy, type PortMapping, type Service, type Tenant } from '../model/index.js';
import { compilePolicy, filters, type CompiledPolicy } from '../policy/index.js';
import { names } from './names.js';
import { planTunnel, type TunnelPlan } from './tunnel.js';
import { transit, transit6 } from './transit.js';
import { planProfiles, planServices, vips6Of, vipsOf, type DnsPlan, type DscpPlan, type QosPlan, type ServicePlan } from './services.js';
import type { FlowLimits } from './flows-nft.js';
import { planRouted, type BgpPlan, type HostRoute } from './routed.js';

/**
 * Whether bridged traffic (between endpoints of one network) must pass IP netfilter in this tenant's
 * namespace (bridge-nf-call-iptables): conntrack on every bridged packet costs throughput, so only while
 * the tenant filters (a policy that decides something, or a default of drop), has services (replies
 * between two endpoints of one bridge must pass conntrack to be un-DNATed) or DSCP marks (set in the
 * forward hook). Flow records do not need it: without it, the guard table logs bridged connections
 * (flows-nft.ts renderBridgeFlows).
 */
export function bridgedThroughNetfilter(p: Pick<TenantPlan, 'policy' | 'services' | 'dscp'>): boolean {
  const pol = p.policy;
  return (pol !== undefined && (filters(pol) || pol.fallback === 'drop')) || p.services.length > 0 || p.dscp.length > 0;
}

/** What one host's kernel should hold for one tenant. Pure data, computed from the desired state. */
export interface TenantPlan {
  tenant: string;
  id: number;
  ns: string;
  /**
   * The veth between the host and the tenant's namespace; a tenant with IPv6 (`v6`) has an IPv6 /126 on it
   * too (transit.ts `transit6`): its IPv6 default route, NAT66 out of it, published ports over IPv6 into it.
   */
  uplink: { hostLink: string; tenantLink: string; hostIp: string; tenantIp: string; prefix: number; hostIp6?: string; tenantIp6?: string };
  bridges: BridgePlan[];
  endpoints: EndpointPlan[];
  /**
   * Endpoints of macvlan networks on this host: a child of the parent interface in the container, no
   * bridge port; each container namespace holds the tenant's policy itself (nft.ts renderEndpointTable).
   */
  macvlans: MacvlanPlan[];
  /** Published ports of this tenant's endpoints on this host. */
  ports: PortPlan[];
  /** The tenant's compiled policy, for the groups with endpoints on this host (compile.ts `host`). */
  policy: CompiledPolicy | undefined;
  services: ServicePlan[];
  dscp: DscpPlan[];
  qos: QosPlan[];
  dns: DnsPlan | undefined;
  /** Flow records' limits, or undefined when the host logs none (flows-nft.ts). */
  flows: FlowLimits | undefined;
  /**
   * Whether the tenant has a dual-stack network (on this host or not): its namespace forwards IPv6, its
   * guard admits endpoints' IPv6 and its policy classifies IPv6 addresses. Without one, every IPv6 frame
   * entering a bridge (from a container or the overlay) is dropped.
   */
  v6?: boolean;
  /** Subnets of this tenant's routed networks: never masqueraded, and routed into its uplink from outside. */
  routed: string[];
  /** Those of them without BGP peers (known to no router): masqueraded by the host when they leave it for elsewhere. */
  routedNat: string[];
  /** The same for their IPv6 subnets (dual-stack routed networks). */
  routed6?: string[];
  routedNat6?: string[];
}

export interface BridgePlan {
  name: string;
  network: string;
  vni: number;
  /** Its MAC, the gateway's: fixed per host and network (names.bridgeMac). */
  mac: string;
  /** Its IPv4 gateway with the subnet's prefix length (gateway/len); absent on an IPv6-only network. */
  address?: string;
  /** A network's IPv6 gateway with its prefix length (gateway6/len). */
  address6?: string;
  /** Its services' IPv6 VIPs, held as /128s so the bridge answers neighbour solicitations for them. */
  vips6?: string[];
  /** Service VIPs of this network, held as /32s so the bridge answers ARP for them. */
  vips: string[];
  mtu: number;
  /**
   * The overlay, whenever another host is registered: kept even while no other host holds endpoints of
   * the network, so a packet from a host that just got its first endpoint here is not dropped for want of
   * a device while this host's agent catches up.
   */
  overlay: OverlayPlan | undefined;
  /**
   * encap routed: the bridge holds the gateway as a /32 (the same on every host), answers ARP for the rest
   * of the subnet (proxy ARP: everything not on this host is routed out of the uplink) and routes only
   * the blocks this host's endpoints are in. With a subnet6, the IPv6 gateway as a /128 and the IPv6 blocks
   * paired with those (block6Of): endpoints have no on-link prefix and send everything to the gateway.
   */
  routed?: { subnet: string; blocks: string[]; subnet6?: string; blocks6?: string[] };
}

/** How a network's bridge reaches the other hosts: the same facts for every encapsulation. */
export interface OverlayPlan {
  /** Which implementation builds it (the network's `encap`). */
  encap: OverlayEncap;
  /** The device on the bridge that carries frames to other hosts. */
  name: string;
  vni: number;
  local: string;
  /** Underlay addresses of the other hosts with endpoints here: broadcast and unknown unicast go to each. */
  peers: string[];
  /** Known remote endpoints: static forwarding entries, so unicast to them is never flooded. */
  remotes: Array<{ mac: string; vtep: string; ip?: string; ip6?: string }>;
  /** arpMode proxy: the device answers ARP for remote endpoints from its neighbour table. */
  proxy: boolean;
}

export interface EndpointPlan {
  id: string;
  veth: string;
  bridge: string;
  /** Its IPv4 address; absent on an IPv6-only network. */
  ip?: string;
  /** On a network with a subnet6: its IPv6 address and the link-local address derived from its MAC (EUI-64). */
  ip6?: string;
  ll6?: string;
  /** The container's MAC: its frames carry it, or are dropped (guard-nft.ts). */
  mac: string;
  mtu: number;
  /** The bridge may send frames back out of this port (a backend reaching its own service). */
  hairpin: boolean;
}

export interface MacvlanPlan {
  id: string;
  /** The container's namespace (the endpoint's netns) and its interface there. */
  netns: string;
  ifname: string;
  parent: string;
  /** Its IPv4 address: absent on an IPv6-only network. */
  ip?: string;
  /** On a network with a subnet6: its IPv6 address and the link-local one from its MAC (EUI-64). */
  ip6?: string;
  ll6?: string;
  mac: string;
}

export interface PortPlan extends PortMapping {
  /** The endpoint's IPv4 address: absent on an IPv6-only network (published over IPv6 alone). */
  containerIp?: string;
  /** The endpoint's IPv6 address: the port is published over IPv6 as well. */
  containerIp6?: string;
  endpoint: string;
}

export interface DesiredHostState {
  host: string;
  nsPrefix: string;
  tenants: readonly Tenant[];
  networks: readonly Network[];
  endpoints: readonly Endpoint[];
  groups?: readonly Group[];
  policies?: readonly Policy[];
  /** Registered hosts (their underlay addresses) and this host's own, for the overlay. */
  hosts?: readonly Host[];
  vtep?: string;
  arpMode?: 'proxy' | 'flood';
  services?: readonly Service[];
  netprofiles?: readonly Netprofile[];
  /** Kubernetes NetworkPolicies and namespaces' labels of every tenant (issue 15). */
  networkPolicies?: readonly NetworkPolicyObject[];
  namespaces?: readonly NamespaceObject[];
  adminNetworkPolicies?: ReadonlyArray<AdminPolicyObject<AdminNetworkPolicySpec>>;
  baselineAdminNetworkPolicies?: ReadonlyArray<AdminPolicyObject<BaselineAdminNetworkPolicySpec>>;
  /** The port the agent's DNS server listens on at each tenant's uplink address; no DNS when absent. */
  dnsPort?: number;
  /** Encryption between hosts, the range tunnel addresses come from, and the underlay's MTU (tunnel.ts). */
  encryption?: Encryption;
  tunnelRange?: string;
  underlayMtu?: number;
  /** Flow records: each new connection's verdict logged for the agent, within these limits (flows-nft.ts); none when absent. */
  flowLog?: FlowLimits;
  /** Compiles a tenant's policy; the agent passes a memoizing one so an unchanged policy is not recompiled. */
  compile?: typeof compilePolicy;
  /**
   * Which of this host's endpoints the datapath may act on inside their own namespace (a macvlan
   * endpoint's interface and tables): the agent's own (sealed) ones, never a record someone else wrote
   * that names a namespace. All when absent (tests, simulated hosts).
   */
  wired?: (e: Endpoint) => boolean;
}

/**
 * The endpoints of each tenant, and of each tenant's network, in the view's order: indexed once per
 * endpoint list (a view's, shared by every plan made from it). Each tenant's plan filtered the whole
 * cluster's endpoints several times, and each network's overlay once more: a full pass over 100 tenants,
 * 500 networks and 50,000 endpoints took ~2 s on every host, every resync (docs/decisions.md, session 46).
 */
interface EndpointIndex { byTenant: Map<string, Endpoint[]>; byNetwork: Map<string, Endpoint[]> }
const endpointIndexes = new WeakMap<readonly Endpoint[], EndpointIndex>();

function endpointIndex(d: DesiredHostState): EndpointIndex {
  let ix = endpointIndexes.get(d.endpoints);
  if (!ix) {
    ix = { byTenant: new Map(), byNetwork: new Map() };
    for (const e of d.endpoints) {
      push(ix.byTenant, e.tenant, e);
      push(ix.byNetwork, `${e.tenant}/${e.network}`, e);
    }
    endpointIndexes.set(d.endpoints, ix);
  }
  return ix;
}

function push<K, V>(m: Map<K, V[]>, k: K, v: V): void {
  const list = m.get(k);
  if (list) list.push(v);
  else m.set(k, [v]);
}

export function planTenant(d: DesiredHostState, tenant: Tenant): TenantPlan {
  const t = transit(tenant.id);
  const tunnel = planTunnel(d);
  const others = otherHosts(d);
  const ofTenant = endpointIndex(d).byTenant.get(tenant.name) ?? [];
  // A network of an encapsulation this agent does not know (a newer server's) is left alone, with its
  // endpoints, rather than built as something it is not or failing the whole tenant.
  const nets = d.networks.filter((n) => n.tenant === tenant.name && Object.hasOwn(ENCAPS, n.encap ?? 'vxlan')).sort((x, y) => x.vni - y.vni);
  const byName = new Map(nets.map((n) => [n.name, n]));
  const onHost = ofTenant.filter((e) => e.host === d.host && byName.has(e.network))
    .sort((x, y) => (x.id < y.id ? -1 : 1));
  // Bridged: a veth on the network's bridge in the tenant namespace. A macvlan network's are on its parent.
  const macvlanOf = (e: Endpoint) => byName.get(e.network)?.encap === 'macvlan';
  const blocksOf = (n: Network) => localBlocks(n, onHost);
  const blocks6Of = (n: Network) => localBlocks(n, onHost, true);
  const local = onHost.filter((e) => !macvlanOf(e));
  const bridgedNets = nets.filter((n) => n.encap !== 'macvlan');
  const mine = ofTenant.filter((e) => byName.has(e.network));
  const services = (d.services ?? []).filter((s) => s.tenant === tenant.name && byName.has(s.network));
  // Bridged networks only: a macvlan network's IPv6 never passes the tenant's namespace or the host (its
  // containers' own tables classify it, from the same compiled policy).
  const v6 = bridgedNets.some((n) => n.subnet6 !== undefined);
  const profiles = planProfiles(tenant.name, mine, local, { groups: d.groups ?? [], netprofiles: d.netprofiles ?? [], six: v6 });
  const t6 = v6 ? transit6(tenant.id) : undefined;
  // An endpoint's IPv6 address counts where its network has a subnet6 (a stale record's does not).
  const six = <T>(e: Endpoint, f: (ip6: string) => T): T | object => (e.ip6 !== undefined && byName.get(e.network)?.subnet6 !== undefined ? f(e.ip6) : {});
  // Its IPv4 address where its network has a subnet (an IPv6-only network's endpoints have none).
  const four = (e: Endpoint): { ip?: string } => (e.ip !== undefined && byName.get(e.network)?.subnet !== undefined ? { ip: e.ip } : {});
  return {
    tenant: tenant.name,
    id: tenant.id,
    ns: names.tenantNs(d.nsPrefix, tenant.id),
    uplink: { hostLink: names.uplinkHost(tenant.id), tenantLink: names.uplinkTenant, hostIp: t.host, tenantIp: t.tenant, prefix: t.prefix, ...(t6 ? { hostIp6: t6.host, tenantIp6: t6.tenant } : {}) },
    bridges: bridgedNets.map((n) => ({
      name: names.bridge(n.vni), network: n.name, vni: n.vni, mtu: n.mtu, mac: names.bridgeMac(d.host, n.vni),
      ...(n.subnet !== undefined && n.gateway !== undefined ? { address: `${n.gateway}/${n.encap === 'routed' ? 32 : parseCidr(n.subnet, 'subnet').prefix}` } : {}),
      ...(n.subnet6 !== undefined && n.gateway6 !== undefined ? { address6: `${n.gateway6}/${n.encap === 'routed' ? 128 : parseCidr6(n.subnet6, 'subnet6').prefix}`, vips6: vips6Of(services, n) } : {}),
      vips: vipsOf(services, n),
      overlay: planOverlay(d, tenant, n, tunnel, others),
      ...(n.encap === 'routed' && n.subnet !== undefined ? { routed: { subnet: n.subnet, blocks: blocksOf(n), ...(n.subnet6 !== undefined ? { subnet6: n.subnet6, blocks6: blocks6Of(n) } : {}) } } : {}),
    })),
    endpoints: local.map((e) => ({
      id: e.id, veth: names.endpointVeth(e.id), bridge: names.bridge((byName.get(e.network) as Network).vni), ...four(e), mac: e.mac, mtu: e.mtu,
      ...six(e, (ip6) => ({ ip6, ll6: linkLocalOf(e.mac) })),
      hairpin: services.length > 0,
    })),
    // An endpoint with neither address (a stale record) has nothing to guard.
    macvlans: onHost.filter((e) => macvlanOf(e) && e.netns !== undefined && (four(e).ip !== undefined || six(e, () => true) === true) && (d.wired?.(e) ?? true)).map((e) => ({
      id: e.id, netns: e.netns as string, ifname: e.ifname, parent: byName.get(e.network)?.parent ?? '', ...four(e), mac: e.mac,
      ...six(e, (ip6) => ({ ip6, ll6: linkLocalOf(e.mac) })),
    })),
    ports: local.flatMap((e) => (e.portMappings ?? []).map((p) => ({ ...p, ...(e.ip !== undefined ? { containerIp: e.ip } : {}), ...six(e, (containerIp6) => ({ containerIp6 })), endpoint: e.id }))),
    policy: d.groups && d.policies ? (d.compile ?? compilePolicy)({
      tenant,
      networks: nets,
      groups: d.groups.filter((g) => g.tenant === tenant.name),
      policies: d.policies.filter((p) => p.tenant === tenant.name),
      endpoints: ofTenant,
      host: d.host,
      netpol: {
        policies: (d.networkPolicies ?? []).filter((p) => p.tenant === tenant.name).map((p) => ({ name: p.policyName, namespace: p.namespace, spec: p.spec, revision: p.revision, ...auditOf(p) })),
        namespaces: (d.namespaces ?? []).filter((n) => n.tenant === tenant.name).map((n) => ({ name: n.name, labels: n.labels, revision: n.revision })),
        anps: (d.adminNetworkPolicies ?? []).filter((a) => a.tenant === tenant.name).map((a) => ({ ...adminPolicyOf(a.name, a.spec), revision: a.revision, ...auditOf(a) })),
        banp: banpOf(d, tenant.name),
      },
    }) : undefined,
    // A macvlan endpoint is not behind the tenant's bridges: no VIP reaches it.
    services: planServices(services, mine.filter((e) => !macvlanOf(e))),
    ...profiles,
    dns: d.dnsPort === undefined || bridgedNets.length === 0 ? undefined : {
      gateways: bridgedNets.flatMap((n) => (n.gateway !== undefined ? [n.gateway] : [])), address: t.host, port: d.dnsPort,
      // Over IPv6 as well (an IPv6-only network's containers have no other resolver): to the uplink's IPv6 host end.
      ...(t6 ? { gateways6: bridgedNets.flatMap((n) => (n.gateway6 !== undefined ? [n.gateway6] : [])), address6: t6.host } : {}),
    },
    flows: d.flowLog,
    v6,
    routed: nets.flatMap((n) => (n.encap === 'routed' && n.subnet !== undefined ? [n.subnet] : [])),
    routedNat: nets.flatMap((n) => (n.encap === 'routed' && !n.bgpPeers?.length && n.subnet !== undefined ? [n.subnet] : [])),
    ...(nets.some((n) => n.encap === 'routed' && n.subnet6 !== undefined) ? {
      routed6: nets.flatMap((n) => (n.encap === 'routed' && n.subnet6 !== undefined ? [n.subnet6] : [])),
      routedNat6: nets.flatMap((n) => (n.encap === 'routed' && !n.bgpPeers?.length && n.subnet6 !== undefined ? [n.subnet6] : [])),
    } : {}),
  };
}

/** The blocks of a routed network that `endpoints` (this host's) are in, sorted; `six`: the IPv6 blocks paired with them. */
function localBlocks(n: Network, endpoints: readonly Endpoint[], six = false): string[] {
  const out = new Set<string>();
  for (const e of endpoints) {
    const ip = e.network === n.name && e.ip !== undefined ? parseIp(e.ip) : undefined;
    if (ip === undefined) continue;
    const b = blockOf(n, ip);
    if (!six) out.add(b.cidr);
    else { const b6 = block6Of(n, b.index); if (b6) out.add(b6.cidr); }
  }
  return [...out].sort();
}

function banpOf(d: DesiredHostState, tenant: string) {
  const b = (d.baselineAdminNetworkPolicies ?? []).find((x) => x.tenant === tenant);
  return b && { ...baselinePolicyOf(b.spec), revision: b.revision, ...auditOf(b) };
}

export function planHost(d: DesiredHostState): TenantPlan[] {
  return [...d.tenants].sort((a, b) => a.id - b.id).map((t) => planTenant(d, t));
}

/**
 * planHost, each tenant on its own: a tenant whose plan throws (an object the agent cannot read: a newer
 * server's, a damaged store) is in `failed` instead of failing every tenant's host side.
 */
export function planHostTenants(d: DesiredHostState): { plans: TenantPlan[]; failed: Array<{ tenant: Tenant; error: Error }> } {
  const plans: TenantPlan[] = [];
  const failed: Array<{ tenant: Tenant; error: Error }> = [];
  for (const t of [...d.tenants].sort((a, b) => a.id - b.id)) {
    try {
      plans.push(planTenant(d, t));
    } catch (e) {
      failed.push({ tenant: t, error: e instanceof Error ? e : new Error(String(e)) });
    }
  }
  return { plans, failed };
}

/** What the host namespace should hold: the host table for every tenant's plan, and the tunnel. */
export interface HostPlan {
  tenants: TenantPlan[];
  /** Other hosts' underlay addresses: VXLAN in clear is accepted only from them. */
  peers: string[];
  tunnel: TunnelPlan | undefined;
  /** While the tunnel is up, the VNIs whose frames may still arrive in clear (networks that opted out). */
  clearVnis: number[];
  /** Routed networks: Weft's routes in the host's table, and the BGP daemon's configuration (routed.ts). */
  routes: HostRoute[];
  bgp: BgpPlan | undefined;
}

export function planHostSide(d: DesiredHostState, tenants: TenantPlan[] = planHost(d)): HostPlan {
  const tunnel = planTunnel(d);
  return {
    tenants, peers: peerVteps(d), tunnel,
    clearVnis: tunnel ? d.networks.filter((n) => n.encrypt === false).map((n) => n.vni).sort((a, b) => a - b) : [],
    ...planRouted(d, tenants),
  };
}

/** The other registered hosts' underlay addresses, by host name. */
function otherHosts(d: DesiredHostState): Map<string, string> {
  return new Map((d.hosts ?? []).filter((h) => h.name !== d.host && h.vtepIp !== d.vtep).map((h) => [h.name, h.vtepIp]));
}

/** The other registered hosts' underlay addresses, sorted: the host table keeps tenants off their overlay port. */
export function peerVteps(d: DesiredHostState): string[] {
  return [...new Set(otherHosts(d).values())].sort();
}

/**
 * How a network reaches the other hosts. An encrypted network (while the cluster encrypts) uses tunnel
 * addresses as its ends, so its frames go through WireGuard, and reaches only hosts that are tunnel peers;
 * any other uses the underlay addresses.
 */
function planOverlay(d: DesiredHostState, tenant: Tenant, n: Network, tunnel: TunnelPlan | undefined, others: Map<string, string>): OverlayPlan | undefined {
  if (!d.vtep || !d.hosts || n.encap === 'macvlan' || n.encap === 'routed') return undefined;
  const sealed = tunnel !== undefined && n.encrypt !== false;
  const vtepOf = sealed ? new Map(tunnel.peers.map((p) => [p.host, p.allowedIp])) : others;
  if (others.size === 0) return undefined;
  const local = sealed ? tunnel.address : d.vtep;
  const remote = (endpointIndex(d).byNetwork.get(`${tenant.name}/${n.name}`) ?? []).filter((e) => e.host !== d.host && vtepOf.has(e.host));
  // Broadcast and unknown unicast go only to hosts with endpoints here.
  const peers = [...new Set(remote.map((e) => vtepOf.get(e.host) as string))].sort();
  return {
    encap: (n.encap ?? 'vxlan') as OverlayEncap, name: names.overlay(n.vni), vni: n.vni, local, peers, proxy: (d.arpMode ?? 'proxy') === 'proxy',
    remotes: remote.map((e) => ({ mac: e.mac, vtep: vtepOf.get(e.host) as string, ...(e.ip !== undefined && n.subnet !== undefined ? { ip: e.ip } : {}), ...(e.ip6 !== undefined && n.subnet6 !== undefined ? { ip6: e.ip6 } : {}) })).sort((a, b) => (a.mac < b.mac ? -1 : 1)),
  };
}
