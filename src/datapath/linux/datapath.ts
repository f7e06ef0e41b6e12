import { existsSync, readdirSync, statfsSync } from 'node:fs';
import type { Runner } from '../../exec/index.js';
import type { Attachment, Datapath, DriftWatch, FlowSink, NftOutcome, NftWrite, OuterAttachment, Protected } from '../datapath.js';
import { HOST_TABLE } from '../host-nft.js';
import { renderGuardTable } from '../guard-nft.js';
import { TENANT_TABLE } from '../nft.js';
import { names } from '../names.js';
import type { HostPlan, TenantPlan } from '../plan.js';
import { tunnelDevice, type TunnelPlan } from '../tunnel.js';
import type { WireguardStatus } from '../../model/index.js';
import { WireguardTunnel } from './wireguard.js';
import type { QosPlan } from '../services.js';
import { attachEndpoint, attachOuterVeth, checkEndpoint, forgetConnections, unwireEndpoint, unwireMacvlan, withNetnsName } from './endpoint.js';
import { ensureHost } from './host.js';
import { BirdDaemon } from './bird.js';
import { ensureRoutes, isRoute6, observeRoutes } from './routes.js';
import { NftTables } from './nft.js';
import { NftSessions } from './nftd.js';
import { observeLinks, type ObservedLink } from './observe.js';
import { NetWatch } from './netwatch.js';
import { NETNS_DIR, TenantDatapath } from './tenant.js';

/**
 * The Datapath on Linux: a namespace per tenant, bridges, veths, VXLAN, tc and nft (see the folder's
 * README). `nsPrefix` separates agents sharing one machine (labs, tests); every name it makes starts with
 * it or is derived from ids (names.ts).
 */
/** statfs(2)'s f_type of a namespace file (linux/magic.h). */
const NSFS_MAGIC = 0x6e736673;

export class LinuxDatapath implements Datapath {
  readonly hostAddresses = true;
  private readonly nft: NftTables;
  private readonly tenants: TenantDatapath;
  /** Names for container namespaces bind-mounted under /run/netns while `ip` works in them. */
  private seq = 0;

  private readonly tunnel: WireguardTunnel;
  private readonly bird: BirdDaemon;
  /** Whether Weft's routes may be in the host's table (a routed network was planned since the agent started, or it never looked). */
  private hostRoutes = true;
  /** The same for IPv6 routes (a second read of the table, made only while there are or were some). */
  private hostRoutes6 = true;

  constructor(private readonly runner: Runner, private readonly nsPrefix: string, stateDir: string, keyFile: string, nftHelper = true) {
    // Without the helper (`weft agent --nft-helper off`) every commit is an `nft -f`.
    this.nft = new NftTables(runner, undefined, nftHelper ? NftSessions.create(runner) : undefined);
    this.tenants = new TenantDatapath(runner, this.nft);
    this.tunnel = new WireguardTunnel(runner, stateDir, keyFile);
    this.bird = new BirdDaemon(runner, stateDir);
  }

  private alias(): string {
    return `${this.nsPrefix}m${process.pid}-${this.seq++}`;
  }

  async ensureTenant(p: TenantPlan, protect: Protected = new Set()): Promise<NftOutcome> {
    this.watcher?.watch(p.ns);
    const out = await this.tenants.ensure(p, protect);
    this.watchContainers(p);
    return out;
  }

  /** Macvlan endpoints' container namespaces whose flow records are read, with the tenant namespace they count for. */
  private readonly containers = new Map<string, string>();

  /** Reads the flow records of the tenant's macvlan containers (their own tables log them) while records are on. */
  private watchContainers(p: TenantPlan): void {
    const want = new Set(p.flows ? p.macvlans.map((m) => m.netns) : []);
    for (const [path, ns] of this.containers) {
      if (ns === p.ns && !want.has(path)) void this.unwatchContainer(path);
    }
    for (const path of want) this.watchContainer(path, p.ns);
  }

  /** Paths whose namespace went: never watched again (the path may name another namespace now). */
  private readonly containersGone = new Set<string>();

  /**
   * One container's records, counted for `tenantNs`. A namespace shared by endpoints of two tenants is
   * not read at all (its records could not be told apart: both tables log to the same group).
   */
  private watchContainer(path: string, tenantNs: string): void {
    const owner = this.containers.get(path);
    if (owner === tenantNs || !this.watcher || this.containersGone.has(path)) return;
    if (owner !== undefined) {
      process.emitWarning(`weft: ${path} holds macvlan endpoints of two tenants (${owner}, ${tenantNs}): its flow records are not read`);
      void this.unwatchContainer(path);
      this.containersGone.add(path);
      return;
    }
    if (this.watcher.watchFlows(path)) this.containers.set(path, tenantNs);
  }

  private async unwatchContainer(path: string): Promise<void> {
    if (!this.containers.delete(path)) return;
    await this.watcher?.unwatch(path);
  }

  private watcher: NetWatch | undefined;
  private flowSink: FlowSink | undefined;

  flowRecords(sink: FlowSink): void {
    this.flowSink = sink;
  }

  /**
   * Drift by netlink (netwatch.ts): a namespace is reported when its links, addresses, forwarding
   * entries or qdiscs changed (our own changes too, once: checking finds nothing and writes nothing), or
   * when its ruleset generation moved past our own commits (those are never reported).
   */
  watch(changed: (ns: string | undefined) => void): DriftWatch | undefined {
    // A new helper holds no container yet: the next pass over each tenant asks for them again.
    this.containers.clear();
    const w = NetWatch.start(this.runner, {
      generation: (ns, gen) => this.nft.observe(ns, gen),
      links: (ns) => changed(ns),
      gone: (ns) => {
        // A container's namespace went (its endpoint is released by the agent's maintenance): let go, and
        // never read whatever its path names later.
        if (ns !== undefined && this.containers.has(ns)) {
          this.containersGone.add(ns);
          void this.unwatchContainer(ns);
          return;
        }
        if (ns !== undefined) this.nft.forget(ns);
        changed(ns);
      },
      ended: () => {
        this.nft.useGenerations(undefined);
        changed(undefined);
      },
      // A macvlan container's records count for its tenant's namespace.
      flow: (ns, r) => this.flowSink?.record(this.containers.get(ns) ?? ns, r),
      flowLost: (ns, n) => this.flowSink?.lost(this.containers.get(ns) ?? ns, n),
      flowHeld: (ns, n) => this.flowSink?.held(this.containers.get(ns) ?? ns, n),
      trafficBegin: (ns) => this.flowSink?.trafficBegin?.(ns),
      traffic: (ns, veth, c) => this.flowSink?.traffic?.(ns, veth, c),
      trafficDone: (ns) => this.flowSink?.trafficDone?.(ns),
    });
    if (!w) return undefined;
    this.watcher = w;
    this.nft.onForeign = changed;
    // What a sweep left is swept by the passes after it: each checks the namespace again (drift.ts).
    this.nft.onUnswept = changed;
    this.nft.useGenerations(w.generations);
    w.watch(undefined);
    return {
      get live() {
        return w.running;
      },
      stop: () => {
        this.nft.useGenerations(undefined);
        w.stop();
      },
    };
  }

  close(): Promise<void> {
    return this.nft.releaseAll();
  }

  async ensureTables(p: TenantPlan): Promise<NftOutcome> {
    const out = await this.tenants.ensureTables(p);
    // A macvlan endpoint touches no link of the tenant namespace: its container is watched from here too.
    this.watchContainers(p);
    return out;
  }

  async admit(p: TenantPlan): Promise<void> {
    await this.nft.ensure(p.ns, renderGuardTable(p), { trustLast: true });
  }

  get lastRefusal(): string {
    return this.nft.lastRefusal;
  }

  lastWrite(ns: string): NftWrite | undefined {
    return this.nft.lastWrites.get(`${ns}/inet/${TENANT_TABLE}`);
  }

  async presentTenants(): Promise<Array<{ ns: string; id: number }>> {
    return names.tenantNamespaces(this.nsPrefix, existsSync(NETNS_DIR) ? readdirSync(NETNS_DIR) : []);
  }

  async removeTenant(ns: string, tenantId: number): Promise<void> {
    // The watcher's sockets would keep the deleted namespace, and every device in it, alive.
    await this.watcher?.unwatch(ns);
    for (const [path, t] of this.containers) if (t === ns) await this.unwatchContainer(path);
    this.portsSeen.delete(ns);
    return this.tenants.remove(ns, names.uplinkHost(tenantId));
  }

  /**
   * The host table, then routed networks' routes (read only while there are or were some: the first pass
   * finds what an earlier run left), then the BGP daemon, which announces blocks the routes already reach.
   */
  async ensureHost(h: HostPlan): Promise<void> {
    // Each part is tried whatever became of the others (a route the kernel refuses must not keep BGP from
    // starting); the first failure is reported once all were tried.
    const failures: unknown[] = [];
    const attempt = async (fn: () => Promise<void>) => fn().catch((e: unknown) => { failures.push(e); });
    await attempt(() => ensureHost(this.nft, h));
    await attempt(async () => {
      const six = h.routes.some(isRoute6);
      if (h.routes.length > 0 || this.hostRoutes) await ensureRoutes(this.runner, undefined, h.routes, six || this.hostRoutes6);
      this.hostRoutes = h.routes.length > 0;
      this.hostRoutes6 = six;
    });
    await attempt(() => this.bird.ensure(h.bgp));
    if (failures.length > 0) throw failures[0];
  }

  ensureTunnel(t: TunnelPlan | undefined): Promise<void> {
    return this.tunnel.ensure(t, tunnelDevice(this.nsPrefix));
  }

  tunnelStatus(): Promise<WireguardStatus | undefined> {
    return this.tunnel.status();
  }

  shape(ns: string, q: QosPlan): Promise<void> {
    return this.tenants.ensureQos(ns, [q], new Set([q.veth]));
  }

  async attach(a: Attachment, ready?: Promise<void>): Promise<void> {
    await attachEndpoint(this.runner, a, this.alias(), ready);
    // A macvlan container's records from its first connection, not from the tenant's next pass: the ADD
    // answers once the helper has bound the container's flow socket (at most a tick, 250 ms; 2 s at worst).
    if (a.macvlan?.flows) {
      this.watchContainer(a.netnsPath, a.tenantNs);
      if (this.containers.get(a.netnsPath) === a.tenantNs) await this.watcher?.flowsOpen(a.netnsPath);
    }
  }

  attachOuter(a: OuterAttachment): Promise<void> {
    return attachOuterVeth(this.runner, a);
  }

  unwire(tenantNs: string, veth: string): Promise<void> {
    return unwireEndpoint(this.runner, tenantNs, veth);
  }

  async unwireMacvlan(netnsPath: string, ifname: string, endpointId: string, mac: string): Promise<void> {
    await this.unwatchContainer(netnsPath);
    this.containersGone.delete(netnsPath);
    return unwireMacvlan(this.runner, { netnsPath, ifname, mac, tenantNs: `${this.nsPrefix}t0` }, endpointId, this.alias());
  }

  forgetConnections(tenantNs: string, ip: string): Promise<void> {
    return forgetConnections(this.runner, tenantNs, ip);
  }

  /** Per watched namespace, its links as last read and the watcher's event count then (see ports). */
  private readonly portsSeen = new Map<string, { epoch: number; links: ReadonlyMap<string, ObservedLink> }>();

  async ports(tenantNs: string, opts: { maxAgeMs?: number } = {}): Promise<Map<string, { bridge: string | undefined }>> {
    return portsOf(await this.links(tenantNs, opts.maxAgeMs));
  }

  /**
   * A namespace's links: read again only if the watcher reported a change since the last read, unless the
   * last convergence's reading is at most `maxAgeMs` old (maintenance, right after the full pass that
   * read them: a change since is reported, checked at the next pass, and seen by the maintenance after
   * it). A reading across which an event arrived is not kept: it may predate the change.
   */
  private async links(ns: string, maxAgeMs: number | undefined): Promise<ReadonlyMap<string, ObservedLink>> {
    const epoch = this.watcher?.epoch(ns);
    const kept = this.portsSeen.get(ns);
    if (epoch !== undefined && kept?.epoch === epoch) return kept.links;
    const seen = this.tenants.observed.get(ns);
    if (seen && maxAgeMs !== undefined && performance.now() - seen.at <= maxAgeMs) return seen.links;
    const links = await observeLinks(this.runner, ns);
    if (epoch !== undefined && this.watcher?.epoch(ns) === epoch) this.portsSeen.set(ns, { epoch, links });
    return links;
  }

  /** A network namespace's file: nsfs (a runtime's bind mount), not any file that happens to be there. */
  containerExists(netnsPath: string): boolean {
    try {
      return statfsSync(netnsPath).type === NSFS_MAGIC;
    } catch {
      return false;
    }
  }

  containerHas(netnsPath: string, ifname: string): Promise<boolean> {
    return withNetnsName(this.runner, netnsPath, this.alias(), async (n) =>
      (await this.runner.run(['ip', '-n', n, 'link', 'show', ifname], { allowFailure: true })).code === 0);
  }

  checkContainer(a: Pick<Attachment, 'netnsPath' | 'ifname' | 'ip' | 'prefixLength' | 'ip6' | 'prefixLength6'>): Promise<string | undefined> {
    return checkEndpoint(this.runner, a, this.alias());
  }

  /** Tenant namespaces (and with them every bridge, veth and table inside), their uplinks, the tunnel, the host table. */
  async uninstall(): Promise<string[]> {
    const done: string[] = [];
    const wg = tunnelDevice(this.nsPrefix);
    if ((await this.runner.run(['ip', 'link', 'show', wg], { allowFailure: true })).code === 0) {
      await this.tunnel.ensure(undefined, wg);
      done.push(`WireGuard device ${wg}`);
    }
    for (const { ns, id } of await this.presentTenants()) {
      await this.nft.release(ns);
      await this.runner.run(['ip', 'link', 'del', names.uplinkHost(id)], { allowFailure: true });
      await this.runner.run(['ip', 'netns', 'del', ns], { allowFailure: true });
      done.push(`namespace ${ns}`);
    }
    if (await this.bird.stop()) done.push('the BGP daemon (bird)');
    if ((await observeRoutes(this.runner, undefined, true)).size > 0) {
      await ensureRoutes(this.runner, undefined, [], true);
      done.push("routed networks' routes");
    }
    // inet: the host table; ip: where it lived before it filtered (an agent of that version never ran since).
    for (const family of ['inet', 'ip']) {
      if ((await this.runner.run(['nft', 'delete', 'table', family, HOST_TABLE], { allowFailure: true })).code === 0) done.push(`nft table ${family} ${HOST_TABLE}`);
    }
    return done;
  }
}

/** The endpoint veths among a namespace's links, with the bridge each is on. */
function portsOf(links: ReadonlyMap<string, ObservedLink>): Map<string, { bridge: string | undefined }> {
  return new Map([...links.values()].filter((l) => l.kind === 'veth' && l.name.startsWith('we')).map((l) => [l.name, { bridge: l.master }]));
}
