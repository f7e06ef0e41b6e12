import type { Endpoint } from '../model/index.js';
import { names } from './names.js';
import { containerTablesText } from './nft.js';
import type { WireguardStatus } from '../model/index.js';
import type { HostPlan, TenantPlan } from './plan.js';
import type { TunnelPlan } from './tunnel.js';
import type { QosPlan } from './services.js';

/** How a tenant's nft table got to its plan: nothing to do, element deltas, or a whole-table replace (and why). */
export type NftOutcome = 'unchanged' | 'delta' | 'replace' | 'replace-after-refused-delta';

/** One endpoint wired into its tenant: a veth whose host end is on the network's bridge. */
/** The veths a convergence must leave alone: only asked whether it holds one. */
export type Protected = Pick<ReadonlySet<string>, 'has'>;

export interface Attachment {
  tenantNs: string;
  bridge: string;
  veth: string;
  /** The container's network namespace as a path (CNI_NETNS). */
  netnsPath: string;
  ifname: string;
  mac: string;
  /** Its IPv4 address, prefix length and gateway: absent on an IPv6-only network. */
  ip?: string;
  prefixLength?: number;
  gateway?: string;
  /** On a network with a subnet6: its IPv6 address, prefix length and gateway. */
  ip6?: string;
  prefixLength6?: number;
  gateway6?: string;
  mtu: number;
  /** The tenant has services: the port may reflect frames (see EndpointPlan.hairpin). */
  hairpin: boolean;
  /** The container's default route goes through this interface (false: its subnet only; `weft attach`). */
  defaultRoute: boolean;
  /**
   * A routed network's port: isolated from the bridge's other ports, so even traffic between two of its
   * endpoints on this host is routed (through the policy) rather than bridged.
   */
  isolated?: boolean;
  /**
   * A macvlan network's endpoint: a child of `parent` (in the agent's namespace) instead of a veth on
   * `bridge`, and the policy table its namespace holds (nft text, applied before the interface comes up).
   */
  macvlan?: { parent: string; table: string; flows?: boolean };
}

/** For Docker: the veth's other end (`outer`) is left in the agent's namespace for Docker to move. */
export type OuterAttachment = Omit<Attachment, 'netnsPath' | 'ifname' | 'ip' | 'prefixLength' | 'gateway' | 'ip6' | 'prefixLength6' | 'gateway6' | 'defaultRoute'> & { outer: string };

/**
 * A new connection as the kernel decided it (flow records, flows-nft.ts): seen in a tenant's namespace,
 * with its verdict (`audit`: allowed, but an audit-mode policy would have denied it). Ports are 0 for
 * protocols without them.
 */
export interface FlowRecord {
  /** When the agent read it (ms since the epoch). */
  at: number;
  verdict: 'allow' | 'deny' | 'audit';
  /** The IP protocol number. */
  proto: number;
  src: string;
  sport: number;
  dst: string;
  dport: number;
}

/**
 * Where a datapath hands flow records: the tenant namespace they were seen in, and the record; how many
 * were lost on the way; how many connections the table's rate limits kept from being logged.
 */
export interface FlowSink {
  record(ns: string, r: FlowRecord): void;
  lost(ns: string, count: number): void;
  held(ns: string, count: number): void;
  /**
   * An endpoint veth's counters (its tenant-namespace end), read every 10 s: received is what its container
   * sent, transmitted what it received. A reading of a namespace begins, lists its veths, and is done only
   * when it completed uninterrupted (a veth not in it is gone).
   */
  trafficBegin?(ns: string): void;
  traffic?(ns: string, veth: string, c: VethCounters): void;
  trafficDone?(ns: string): void;
}

/** A veth's counters as the kernel keeps them (they start at zero when it is made), and its ifindex (another when made again). */
export interface VethCounters {
  ifindex: number;
  rxBytes: number;
  rxPackets: number;
  txBytes: number;
  txPackets: number;
}

/** A running watch for drift (Datapath.watch). */
export interface DriftWatch {
  /** False once the watch ended (its helper died): from then on only a full check finds drift. */
  readonly live: boolean;
  stop(): void;
}

/** What writing a table cost: the delta or whole table's size, working the delta out, the commit. */
export interface NftWrite {
  how: 'delta' | 'replace';
  /** The script's length (nft scripts are ASCII: bytes). */
  bytes: number;
  diffMs: number;
  commitMs: number;
}

/**
 * Everything the agent asks of a host's kernel, named for what it asks. The Linux implementation
 * (`linux/`) does it with ip, tc and nft; the in-memory one (`memory/`) keeps it in maps, for tests of
 * the agent without root and for hosts simulated at scale. Plans are computed before (plan.ts): a
 * datapath decides nothing about policy, it only makes the kernel hold the plan.
 */
export interface Datapath {
  /** Whether tenants' uplink addresses exist in the agent's own namespace (so its DNS server can listen on them). */
  readonly hostAddresses: boolean;
  /**
   * Converges a tenant's namespace to its plan. `protect`: veths never removed as stale (being wired right
   * now, or of an endpoint recorded since the plan was made); asked only of veths the plan does not want.
   */
  ensureTenant(p: TenantPlan, protect?: Protected): Promise<NftOutcome>;
  /**
   * Only the tenant's tables (policy, services, ports, anti-spoofing), trusting the last convergence for
   * its links and for what the kernel holds: a change that touched nothing else. Drift is the next full
   * check's to find. Optional: a datapath without it converges the tenant in full.
   */
  ensureTables?(p: TenantPlan): Promise<NftOutcome>;
  /**
   * Only which endpoints may send from their ports (anti-spoofing), trusting the last convergence for
   * everything else: an ADD's fast path, so a new endpoint's first frames are not dropped.
   */
  admit(p: TenantPlan): Promise<void>;
  /**
   * Starts telling `changed` which tenant namespace (undefined: the host's) may have been changed by
   * someone else since the agent last converged it; our own writes are not reported as such, or only
   * once. Undefined when this datapath cannot watch: then every resync checks every tenant. While
   * `live`, a namespace that was not reported need not be checked. Optional (the memory datapath).
   */
  watch?(changed: (ns: string | undefined) => void): DriftWatch | undefined;
  /**
   * Where flow records go from now on (the tenants' tables log them when their plan's `flows` is set).
   * Records come only while the drift watch runs (its helper reads them). Optional: a datapath without it
   * yields none.
   */
  flowRecords?(sink: FlowSink): void;
  /** Lets go of the helpers it runs (the agent stops): none may keep a namespace alive after. Optional. */
  close?(): Promise<void>;
  /** Why the kernel last refused an nft delta (for the log). */
  readonly lastRefusal: string;
  /** The last write of a tenant's table, if its last ensure changed it (for the agent's debug log). Optional. */
  lastWrite?(ns: string): NftWrite | undefined;
  /** Tenant namespaces present on this host with this agent's prefix (a deleted tenant's are removed). */
  presentTenants(): Promise<Array<{ ns: string; id: number }>>;
  removeTenant(ns: string, tenantId: number): Promise<void>;
  /** The host side: forwarding, and the host table for every tenant's plan, the other hosts and the tunnel. */
  ensureHost(h: HostPlan): Promise<void>;
  /**
   * The WireGuard tunnel to the other hosts, as planned; removed when `t` is undefined. The agent brings it
   * up before tenants' overlays use it and takes it down after they stopped.
   */
  ensureTunnel(t: TunnelPlan | undefined): Promise<void>;
  /** The tunnel as it runs (implementation, error, peers' handshakes and bytes), for the heartbeat. */
  tunnelStatus(): Promise<WireguardStatus | undefined>;
  /** Shapes one endpoint now (its veth exists), without waiting for the tenant's next convergence. */
  shape(ns: string, q: QosPlan): Promise<void>;
  /**
   * Wires an endpoint into a container; refuses the host's or a tenant router's namespace; fails if the
   * container has `ifname`. The container's interface comes up only once `ready` resolves (the port's
   * admission, made beside the wiring); if it rejects, nothing is left.
   */
  attach(a: Attachment, ready?: Promise<void>): Promise<void>;
  attachOuter(a: OuterAttachment): Promise<void>;
  /** Removes the endpoint's veth (and IFB); works when the container is already gone. */
  unwire(tenantNs: string, veth: string): Promise<void>;
  /**
   * A macvlan endpoint: its interface (only a macvlan link with the endpoint's MAC: never a stranger's of
   * that name) and its tables (`endpointTableName`) in the container, if still there.
   */
  unwireMacvlan(netnsPath: string, ifname: string, endpointId: string, mac: string): Promise<void>;
  /** Forgets the address's connections, so a later endpoint with the same address inherits no NAT or policy state. */
  forgetConnections(tenantNs: string, ip: string): Promise<void>;
  /**
   * The bridge ports (endpoint veths) of a tenant namespace, with the bridge each is on. `maxAgeMs`: what
   * the last convergence saw will do if it is this recent (maintenance, right after a full pass).
   */
  ports(tenantNs: string, opts?: { maxAgeMs?: number }): Promise<Map<string, { bridge: string | undefined }>>;
  /** Whether a container's namespace still exists. */
  containerExists(netnsPath: string): boolean;
  /** Whether the container already has an interface of this name. */
  containerHas(netnsPath: string, ifname: string): Promise<boolean>;
  /** For CNI CHECK: what is wrong with the container's end, or undefined. */
  checkContainer(a: Pick<Attachment, 'netnsPath' | 'ifname' | 'ip' | 'prefixLength' | 'ip6' | 'prefixLength6'>): Promise<string | undefined>;
  /** Removes everything this agent built on the host (`weft agent uninstall`); says what it removed. */
  uninstall(): Promise<string[]>;
}

/**
 * An endpoint's attachment in its tenant, the one way it is built: ADD, Docker's Join and the repair of a
 * vanished veth wire the same thing (the repair once left out `hairpin`).
 */
export function attachmentOf(ep: Pick<Endpoint, 'id' | 'vni' | 'ifname' | 'mac' | 'ip' | 'prefixLength' | 'gateway' | 'ip6' | 'prefixLength6' | 'gateway6' | 'mtu' | 'attached'>, tenant: Pick<TenantPlan, 'ns' | 'services'> & Partial<Pick<TenantPlan, 'macvlans' | 'policy' | 'flows' | 'bridges'>>, netnsPath: string): Attachment {
  const mv = tenant.macvlans?.find((m) => m.id === ep.id);
  return {
    tenantNs: tenant.ns, bridge: names.bridge(ep.vni), veth: names.endpointVeth(ep.id), netnsPath, ifname: ep.ifname,
    mac: ep.mac, ...(ep.ip !== undefined && ep.prefixLength !== undefined && ep.gateway !== undefined ? { ip: ep.ip, prefixLength: ep.prefixLength, gateway: ep.gateway } : {}), mtu: ep.mtu, hairpin: tenant.services.length > 0,
    ...(ep.ip6 !== undefined && ep.prefixLength6 !== undefined && ep.gateway6 !== undefined ? { ip6: ep.ip6, prefixLength6: ep.prefixLength6, gateway6: ep.gateway6 } : {}),
    defaultRoute: ep.attached?.defaultRoute ?? true,
    ...(tenant.bridges?.some((b) => b.vni === ep.vni && b.routed) ? { isolated: true } : {}),
    ...(mv ? { macvlan: { parent: mv.parent, table: containerTablesText({ policy: tenant.policy, flows: tenant.flows }, mv), ...(tenant.flows ? { flows: true } : {}) } } : {}),
  };
}

/** Docker's attachment: the same veth and bridge port as attachmentOf, its other end named `outer`. */
export function outerAttachmentOf(ep: Pick<Endpoint, 'id' | 'vni' | 'mac' | 'mtu'>, tenant: Pick<TenantPlan, 'ns' | 'services'> & Partial<Pick<TenantPlan, 'bridges'>>, outer: string): OuterAttachment {
  return {
    tenantNs: tenant.ns, bridge: names.bridge(ep.vni), veth: names.endpointVeth(ep.id), mac: ep.mac, mtu: ep.mtu, hairpin: tenant.services.length > 0, outer,
    ...(tenant.bridges?.some((b) => b.vni === ep.vni && b.routed) ? { isolated: true } : {}),
  };
}
