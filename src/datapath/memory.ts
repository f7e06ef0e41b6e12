import { WeftError, type WireguardStatus } from '../model/index.js';
import type { Attachment, Datapath, NftOutcome, OuterAttachment, Protected } from './datapath.js';
import { renderHostTable } from './host-nft.js';
import { names } from './names.js';
import { renderTenantTable } from './nft.js';
import { renderGuardTable } from './guard-nft.js';
import type { HostPlan, TenantPlan } from './plan.js';
import type { TunnelPlan } from './tunnel.js';
import type { QosPlan } from './services.js';
import { tableText } from './table.js';

/** A link in a simulated namespace; a veth remembers the container end it was made with. */
export interface MemoryLink {
  kind: 'bridge' | 'veth' | 'overlay' | 'uplink';
  bridge?: string;
  /** A bridge port that may reflect frames (`bridge_slave hairpin on`), as Linux sets it for tenants with services. */
  hairpin?: boolean;
  peer?: { netnsPath: string; ifname: string };
}

export interface MemoryNamespace {
  links: Map<string, MemoryLink>;
  /** The tenant's nft table as `nft -f` would read it. */
  table: string;
  /** Its bridge table (anti-spoofing), likewise. */
  guard: string;
  shaped: Set<string>;
  forgotten: string[];
}

export interface MemoryInterface {
  /** Absent on an IPv6-only network. */
  ip?: string;
  prefixLength?: number;
  /** Dual stack: its IPv6 address with the prefix length. */
  ip6?: string;
  /** The gateway of the container's default route through this interface; undefined: its subnet only. */
  gateway: string | undefined;
  /** A macvlan child of this parent interface (not a veth). */
  parent?: string;
  mac: string;
}

/** The paths a real kernel would resolve to the host's own network namespace. */
const HOST_NAMESPACES = ['/proc/1/ns/net', '/proc/self/ns/net'];

/**
 * A Datapath that keeps the kernel in maps: tenant namespaces with their links and nft table text
 * (rendered by the same code as on Linux), and the containers a test (or a simulation) declares. It
 * enforces what the agent relies on the kernel for: a container must exist to be wired, may not already
 * have the interface, must not be the host or a tenant router; deleting a veth removes the container's
 * end. `fail(op)` makes the next call of an operation throw, for failure paths; `journal` records every
 * call in order. Runs without root, for the agent's tests and for hosts simulated at scale.
 */
export class MemoryDatapath implements Datapath {
  /** Nothing listens for simulated tenants: their uplink addresses exist nowhere. */
  readonly hostAddresses = false;
  readonly namespaces = new Map<string, MemoryNamespace>();
  readonly containers = new Map<string, Map<string, MemoryInterface>>();
  host = { table: '', peers: [] as readonly string[] };
  readonly journal: string[] = [];
  /** Called as an attach begins, with the tenant as it is then (what a packet would meet). */
  onAttach: ((a: Attachment, ns: MemoryNamespace | undefined) => void) | undefined;
  lastRefusal = '';
  private readonly failures = new Map<string, Error>();

  constructor(private readonly nsPrefix = 'w') {}

  /** A container's network namespace, as a runtime would create it. */
  addContainer(netnsPath: string): void {
    if (!this.containers.has(netnsPath)) this.containers.set(netnsPath, new Map());
  }

  /** The container is gone (its namespace with it): its veths go too, as the kernel removes a pair. */
  removeContainer(netnsPath: string): void {
    this.containers.delete(netnsPath);
    for (const ns of this.namespaces.values()) {
      for (const [name, l] of ns.links) if (l.peer?.netnsPath === netnsPath) ns.links.delete(name);
    }
  }

  /** A link deleted by hand (`ip link del`): a veth takes the container's end with it. */
  deleteLink(ns: string, name: string): void {
    const n = this.namespaces.get(ns);
    if (n) this.dropLink(n, name);
  }

  /** The next call of `op` throws `error`. */
  fail(op: keyof Datapath, error: Error): void {
    this.failures.set(op, error);
  }

  private enter(op: keyof Datapath, detail: string): void {
    this.journal.push(`${op} ${detail}`);
    const e = this.failures.get(op);
    if (e) {
      this.failures.delete(op);
      throw e;
    }
  }

  async ensureTenant(p: TenantPlan, protect: Protected = new Set()): Promise<NftOutcome> {
    this.enter('ensureTenant', p.ns);
    let ns = this.namespaces.get(p.ns);
    if (!ns) this.namespaces.set(p.ns, (ns = { links: new Map([[p.uplink.tenantLink, { kind: 'uplink' }]]), table: '', guard: '', shaped: new Set(), forgotten: [] }));
    const wanted = new Map(p.endpoints.map((e) => [e.veth, e]));
    for (const b of p.bridges) {
      ns.links.set(b.name, { kind: 'bridge' });
      if (b.overlay) ns.links.set(b.overlay.name, { kind: 'overlay', bridge: b.name });
    }
    for (const [name, l] of ns.links) {
      const stale = (l.kind === 'bridge' && !p.bridges.some((b) => b.name === name))
        || (l.kind === 'overlay' && !p.bridges.some((b) => b.overlay?.name === name))
        || (l.kind === 'veth' && !wanted.has(name) && !protect.has(name));
      const e = l.kind === 'veth' ? wanted.get(name) : undefined;
      if (stale) this.dropLink(ns, name);
      else if (e) Object.assign(l, { bridge: e.bridge, hairpin: e.hairpin });
    }
    ns.shaped = new Set(p.qos.map((q) => q.veth).filter((v) => ns.links.has(v)));
    ns.guard = tableText(renderGuardTable(p));
    const table = tableText(renderTenantTable(p));
    if (table === ns.table) return 'unchanged';
    ns.table = table;
    return 'replace';
  }

  async admit(p: TenantPlan): Promise<void> {
    this.enter('admit', p.ns);
    const ns = this.namespaces.get(p.ns);
    if (ns) ns.guard = tableText(renderGuardTable(p));
  }

  private dropLink(ns: MemoryNamespace, name: string): void {
    const l = ns.links.get(name);
    ns.links.delete(name);
    if (l?.peer) this.containers.get(l.peer.netnsPath)?.delete(l.peer.ifname);
  }

  async presentTenants(): Promise<Array<{ ns: string; id: number }>> {
    return names.tenantNamespaces(this.nsPrefix, this.namespaces.keys());
  }

  async removeTenant(ns: string, tenantId: number): Promise<void> {
    this.enter('removeTenant', `${ns} ${names.uplinkHost(tenantId)}`);
    for (const name of [...(this.namespaces.get(ns)?.links.keys() ?? [])]) this.dropLink(this.namespaces.get(ns) as MemoryNamespace, name);
    this.namespaces.delete(ns);
  }

  async ensureHost(h: HostPlan): Promise<void> {
    this.enter('ensureHost', `${h.tenants.length} tenants`);
    this.host = { table: tableText(renderHostTable(h.tenants, h.peers, h.tunnel && { device: h.tunnel.device, clearVnis: h.clearVnis })), peers: h.peers };
  }

  /** The tunnel as last planned (undefined: none). */
  tunnel: TunnelPlan | undefined;

  async ensureTunnel(t: TunnelPlan | undefined): Promise<void> {
    if (t === undefined && this.tunnel === undefined) return;
    this.enter('ensureTunnel', t ? `${t.address} ${t.peers.map((p) => p.host).join(',')}` : 'down');
    this.tunnel = t;
  }

  async tunnelStatus(): Promise<WireguardStatus | undefined> {
    return this.tunnel && { mode: 'kernel', peers: this.tunnel.peers.length, handshaken: 0, rxBytes: 0, txBytes: 0 };
  }

  async shape(ns: string, q: QosPlan): Promise<void> {
    this.enter('shape', `${ns} ${q.veth}`);
    if (this.namespaces.get(ns)?.links.has(q.veth)) this.namespaces.get(ns)?.shaped.add(q.veth);
  }

  async attach(a: Attachment, ready?: Promise<void>): Promise<void> {
    this.enter('attach', `${a.tenantNs} ${a.veth} ${a.netnsPath} ${a.ifname}`);
    await ready;
    if (HOST_NAMESPACES.includes(a.netnsPath) || [...this.namespaces.keys()].some((n) => a.netnsPath === `/run/netns/${n}`)) {
      throw new WeftError('WEFT_INVALID_VALUE', `netns: ${a.netnsPath} is the network namespace of this host or a tenant router, not a container's; refusing to wire it`, { field: 'netns' });
    }
    const container = this.containers.get(a.netnsPath);
    if (!container) throw new WeftError('WEFT_INVALID_VALUE', `netns: ${a.netnsPath} cannot be identified as a network namespace; refusing to wire it`, { field: 'netns' });
    const ns = this.namespaces.get(a.tenantNs);
    this.onAttach?.(a, ns);
    if (a.macvlan) {
      // A child of the parent, straight into the container: no bridge, no veth in the tenant namespace.
      if (container.has(a.ifname)) throw new Error(`simulated: the container already has ${a.ifname} (RTNETLINK answers: File exists)`);
      container.set(a.ifname, { ...(a.ip !== undefined && a.prefixLength !== undefined ? { ip: a.ip, prefixLength: a.prefixLength } : {}), ...(a.ip6 !== undefined ? { ip6: `${a.ip6}/${a.prefixLength6}` } : {}), gateway: a.defaultRoute ? a.gateway : undefined, mac: a.mac, parent: a.macvlan.parent });
      return;
    }
    if (!ns || !ns.links.has(a.bridge)) throw new Error(`simulated: bridge ${a.bridge} is missing in ${a.tenantNs}`);
    if (container.has(a.ifname)) throw new Error(`simulated: the container already has ${a.ifname} (RTNETLINK answers: File exists)`);
    if (ns.links.has(a.veth)) throw new Error(`simulated: ${a.veth} exists in ${a.tenantNs}`);
    ns.links.set(a.veth, { kind: 'veth', bridge: a.bridge, hairpin: a.hairpin, peer: { netnsPath: a.netnsPath, ifname: a.ifname } });
    container.set(a.ifname, { ...(a.ip !== undefined && a.prefixLength !== undefined ? { ip: a.ip, prefixLength: a.prefixLength } : {}), ...(a.ip6 !== undefined ? { ip6: `${a.ip6}/${a.prefixLength6}` } : {}), gateway: a.defaultRoute ? a.gateway : undefined, mac: a.mac });
  }

  async attachOuter(a: OuterAttachment): Promise<void> {
    this.enter('attachOuter', `${a.tenantNs} ${a.veth} ${a.outer}`);
    const ns = this.namespaces.get(a.tenantNs);
    if (!ns || !ns.links.has(a.bridge)) throw new Error(`simulated: bridge ${a.bridge} is missing in ${a.tenantNs}`);
    ns.links.set(a.veth, { kind: 'veth', bridge: a.bridge, hairpin: a.hairpin });
  }

  async unwireMacvlan(netnsPath: string, ifname: string, endpointId: string, mac: string): Promise<void> {
    this.enter('unwireMacvlan', `${netnsPath} ${ifname} ${endpointId}`);
    const c = this.containers.get(netnsPath);
    if (c?.get(ifname)?.mac === mac && c.get(ifname)?.parent !== undefined) c.delete(ifname);
  }

  async unwire(tenantNs: string, veth: string): Promise<void> {
    this.enter('unwire', `${tenantNs} ${veth}`);
    const ns = this.namespaces.get(tenantNs);
    if (ns) this.dropLink(ns, veth);
  }

  async forgetConnections(tenantNs: string, ip: string): Promise<void> {
    this.enter('forgetConnections', `${tenantNs} ${ip}`);
    this.namespaces.get(tenantNs)?.forgotten.push(ip);
  }

  async ports(tenantNs: string): Promise<Map<string, { bridge: string | undefined }>> {
    const links = this.namespaces.get(tenantNs)?.links ?? new Map<string, MemoryLink>();
    return new Map([...links].filter(([, l]) => l.kind === 'veth').map(([n, l]) => [n, { bridge: l.bridge }]));
  }

  containerExists(netnsPath: string): boolean {
    return this.containers.has(netnsPath);
  }

  async containerHas(netnsPath: string, ifname: string): Promise<boolean> {
    return this.containers.get(netnsPath)?.has(ifname) ?? false;
  }

  async checkContainer(a: Pick<Attachment, 'netnsPath' | 'ifname' | 'ip' | 'prefixLength' | 'ip6' | 'prefixLength6'>): Promise<string | undefined> {
    const c = this.containers.get(a.netnsPath);
    if (!c) return `network namespace ${a.netnsPath} does not exist`;
    const i = c.get(a.ifname);
    if (!i) return `interface ${a.ifname} is missing in the container`;
    if (a.ip !== undefined && (i.ip !== a.ip || i.prefixLength !== a.prefixLength)) return `interface ${a.ifname} lacks ${a.ip}/${a.prefixLength}`;
    if (a.ip6 !== undefined && i.ip6 !== `${a.ip6}/${a.prefixLength6}`) return `interface ${a.ifname} lacks ${a.ip6}/${a.prefixLength6}`;
    return undefined;
  }

  async uninstall(): Promise<string[]> {
    const present = await this.presentTenants();
    for (const t of present) await this.removeTenant(t.ns, t.id);
    this.host = { table: '', peers: [] };
    return present.map((t) => `namespace ${t.ns}`);
  }
}
