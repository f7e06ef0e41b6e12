import { parseBandwidth, parseIp, type Endpoint, type Group, type Netprofile, type Network, type Service } from '../model/index.js';
import { names } from './names.js';

/** One service port of a VIP and the backends it balances over (address:targetPort of every match). */
export interface ServicePlan {
  service: string;
  /** The IPv4 VIP: absent on an IPv6-only network. */
  vip?: string;
  /** The IPv6 VIP (a network with subnet6) and the backends' IPv6 addresses (sorted). */
  vip6?: string;
  backends6?: string[];
  protocol: 'tcp' | 'udp';
  port: number;
  targetPort: number;
  /** Backend addresses, sorted; empty when no endpoint matches (connections are then refused). */
  backends: string[];
}

/** Shaping of one local endpoint: towards the container on its veth, from it on its IFB. */
export interface QosPlan {
  endpoint: string;
  veth: string;
  ifb: string;
  /** Bits per second. */
  rate: number;
  /** Bytes the bucket holds. */
  burst: number;
}

/** Packets from these addresses get this DSCP. */
export interface DscpPlan {
  dscp: number;
  ips: string[];
  /** The endpoints' IPv6 addresses (dual-stack and IPv6-only networks): their IPv6 traffic is marked too. */
  ips6?: string[];
}

/** Where the tenant's DNS queries (to any of its gateways, port 53) are sent: the agent, on the uplink. */
export interface DnsPlan {
  gateways: string[];
  address: string;
  port: number;
  /** Its networks' IPv6 gateways, whose queries go to the uplink's IPv6 host end (`address6`), same port. */
  gateways6?: string[];
  address6?: string;
}

/** Every label of the selector must be on the endpoint with the same value. */
export function selects(selector: Readonly<Record<string, string>>, labels: Readonly<Record<string, string>>): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

/** Services of a tenant, one entry per port; backends come from every host, as any host may hold a client. */
export function planServices(services: readonly Service[], endpoints: readonly Endpoint[]): ServicePlan[] {
  const out: ServicePlan[] = [];
  for (const s of [...services].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const selected = endpoints.filter((e) => selects(s.selector, e.labels));
    const backends = [...new Set(selected.flatMap((e) => (e.ip !== undefined ? [e.ip] : [])))].sort(byAddress);
    const six = s.vip6 !== undefined ? { vip6: s.vip6, backends6: [...new Set(selected.flatMap((e) => (e.ip6 !== undefined ? [e.ip6] : [])))].sort() } : {};
    for (const p of s.ports) {
      out.push({ service: s.name, ...(s.vip !== undefined ? { vip: s.vip } : {}), ...six, protocol: p.protocol === 'UDP' ? 'udp' : 'tcp', port: p.port, targetPort: p.targetPort, backends });
    }
  }
  return out;
}

/**
 * The services as DNS should name them: a service's IPv6 VIP only while some endpoint it selects has an
 * IPv6 address (else a connection to it is refused, and a client that tries IPv6 first may never fall
 * back to the A record).
 */
export function namedServices(services: readonly Service[], endpoints: readonly Endpoint[]): Service[] {
  return services.map((s) => {
    // Without an IPv4 VIP (an IPv6-only network) there is no A to fall back to: the VIP6 is its only name.
    if (s.vip6 === undefined || s.vip === undefined || endpoints.some((e) => e.ip6 !== undefined && selects(s.selector, e.labels))) return s;
    const { vip6: _none, ...rest } = s;
    return rest;
  });
}

/** VIPs per network: each host's bridge answers ARP for them, so clients send VIP traffic to the tenant router. */
export function vipsOf(services: readonly Service[], network: Network): string[] {
  return services.flatMap((s) => (s.network === network.name && s.vip !== undefined ? [s.vip] : [])).sort(byAddress);
}

/** IPv6 VIPs per dual-stack network: each host's bridge holds them (/128) and answers neighbour solicitations. */
export function vips6Of(services: readonly Service[], network: Network): string[] {
  return network.subnet6 === undefined ? [] : services.filter((s) => s.network === network.name && s.vip6 !== undefined).map((s) => s.vip6 as string).sort();
}

/** The group's netprofile, if it has one, for each endpoint. */
function profileOf(e: Endpoint, groups: ReadonlyMap<string, Group>, profiles: ReadonlyMap<string, Netprofile>): Netprofile | undefined {
  const g = e.group === undefined ? undefined : groups.get(e.group);
  return g?.netprofile === undefined ? undefined : profiles.get(g.netprofile);
}

export interface ProfileInputs {
  groups: readonly Group[];
  netprofiles: readonly Netprofile[];
  /** The tenant has IPv6: each mark has its IPv6 set, empty or not (an endpoint coming or going changes elements, not the chain). */
  six?: boolean;
}

/**
 * DSCP marks for all of a tenant's endpoints (remote ones too: traffic of a remote member may be routed
 * here), and shaping for the endpoints on this host.
 */
export function planProfiles(tenant: string, all: readonly Endpoint[], local: readonly Endpoint[], x: ProfileInputs): { dscp: DscpPlan[]; qos: QosPlan[] } {
  const groups = new Map(x.groups.filter((g) => g.tenant === tenant).map((g) => [g.name, g]));
  const profiles = new Map(x.netprofiles.filter((p) => p.tenant === tenant).map((p) => [p.name, p]));
  const marks = new Map<number, string[]>();
  const marks6 = new Map<number, string[]>();
  const add = (m: Map<number, string[]>, dscp: number, ip: string) => { const list = m.get(dscp) ?? []; list.push(ip); m.set(dscp, list); };
  for (const e of all) {
    const p = profileOf(e, groups, profiles);
    if (!p || p.dscp === 0) continue;
    if (e.ip !== undefined) add(marks, p.dscp, e.ip);
    if (e.ip6 !== undefined) add(marks6, p.dscp, e.ip6);
  }
  const qos: QosPlan[] = [];
  for (const e of local) {
    const p = profileOf(e, groups, profiles);
    if (!p?.bandwidth) continue;
    const rate = parseBandwidth(p.bandwidth);
    qos.push({ endpoint: e.id, veth: names.endpointVeth(e.id), ifb: names.endpointIfb(e.id), rate, burst: burstBytes(rate, p.burst) });
  }
  return {
    dscp: [...new Set([...marks.keys(), ...marks6.keys()])].sort((a, b) => a - b).map((dscp) => {
      const six = marks6.get(dscp) ?? (x.six ? [] : undefined);
      return { dscp, ips: [...new Set(marks.get(dscp) ?? [])].sort(byAddress), ...(six ? { ips6: [...new Set(six)].sort() } : {}) };
    }),
    qos,
  };
}

/**
 * The profile's burst (KB) in bytes, or by default what the rate sends in 10 ms: a token bucket
 * smaller than one timer tick's worth of data cannot reach its rate.
 */
export function burstBytes(rate: number, burstKb: number | undefined): number {
  if (burstKb !== undefined) return burstKb * 1024;
  return Math.max(16 * 1024, Math.ceil(rate / 8 / 100));
}

function byAddress(a: string, b: string): number {
  return (parseIp(a) ?? 0) - (parseIp(b) ?? 0);
}
