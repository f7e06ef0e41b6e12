import { copyFileSync, existsSync, mkdirSync, renameSync, writeFileSync, chmodSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { ApiError, Client, type TlsConfig } from '../client/index.js';
import { keepRenewing, type HostCredentials } from './identity.js';
import { Sealer } from './seal.js';
import { endpointId, type Endpoint } from '../model/index.js';
import type { Runner } from '../exec/index.js';
import { NftTables, TenantDatapath, type TenantPlan, attachEndpoint, attachmentOf, checkEndpoint, detachEndpoint, ensureHost, forgetConnections, unwireEndpoint, names, observeLinks, withNetnsName } from '../datapath/index.js';
import { CniError, handleCni, serveCniSocket, type AddRequest, type CniHost, type CniSocketServer, type Scope } from '../plugins/cni/index.js';
import type { AddResultInput } from '../plugins/cni/index.js';
import { Mutex } from '../store/index.js';
import { DnsServer, dnsDomain, nameTable, type NameTable, type Upstream } from '../dns/index.js';
import { DesiredState } from './state.js';
import { DockerBackend } from './docker.js';
import { serveDockerPlugin, type DockerPluginServer } from '../plugins/docker/index.js';
import { Syncer } from './sync.js';
import { Reconciler } from './reconciler.js';

export interface AgentOptions {
  servers: string[];
  /** A bearer token instead of a host certificate (a user's: the server applies that user's role). */
  token?: string;
  /** The server's CA, and this host's certificate and key (mTLS). */
  tls?: TlsConfig;
  /** Where the host's credentials live, to renew them; absent when the agent runs on a token. */
  identity?: { dir: string; creds: HostCredentials };
  /** The agent's own state (its seal key; its credentials when joined). */
  stateDir: string;
  host: string;
  runDir: string;
  cniConfDir: string;
  cniBinDirs: string[];
  nsPrefix: string;
  vtepIp: string;
  resyncMs: number;
  /** An endpoint whose veth is missing is re-wired only after this long, so an ADD in flight is never raced. */
  repairGraceMs: number;
  /** The containers' DNS server listens on this port of each tenant's uplink address. */
  dnsPort: number;
  /** Where names outside `.weft` are forwarded; empty: they are refused. */
  dnsUpstreams: Upstream[];
  /** The Docker plugin socket (dockerd finds driver `weft` at /run/docker/plugins/weft.sock); none: no Docker. */
  dockerSocket?: string;
  /** Docker's API socket, to learn the container names of Docker endpoints. */
  dockerApi?: string;
  /** A user's token with which Docker may create Weft networks (`docker network create --subnet`). */
  dockerToken?: string;
  log: Logger;
  runner: Runner;
  version: string;
}

const HEARTBEAT_MS = 10_000;

/**
 * One per host: keeps a copy of the desired state (list + watch), converges the kernel to it, and serves
 * the CNI relay socket. It keeps no state of its own: everything is rebuilt from the server and the kernel.
 * Stopping it leaves the datapath in place, so containers keep their connections across restarts.
 */
export class Agent implements CniHost {
  readonly state = new DesiredState();
  readonly client: Client;
  readonly reconciler: Reconciler;
  private readonly syncer: Syncer;
  private readonly nft: NftTables;
  private readonly inflight = new Set<string>();
  /** ADD, DEL and repair of one endpoint never overlap. */
  private readonly epLocks = new Map<string, { m: Mutex; users: number }>();
  private socket: CniSocketServer | undefined;
  private dockerServer: DockerPluginServer | undefined;
  private docker: DockerBackend | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private stopRenewing: (() => void) | undefined;
  /** Docker's client for creating Weft networks, on a user's token (--docker-token-file). */
  private readonly creator: Client | undefined;
  private readonly sealer: Sealer;
  /** Endpoints already reported as not sealed by this agent (said once, not every resync). */
  private readonly unsealedSeen = new Set<string>();
  private readonly dns: DnsServer;
  private readonly dp: TenantDatapath;

  constructor(private readonly o: AgentOptions) {
    this.client = new Client({ servers: o.servers, token: o.token, ...(o.tls ? { tls: o.tls } : {}) });
    this.sealer = Sealer.load(o.stateDir);
    if (o.dockerToken !== undefined) this.creator = new Client({ servers: o.servers, token: o.dockerToken, ...(o.tls ? { tls: { ca: o.tls.ca } } : {}) });
    this.nft = new NftTables(o.runner);
    this.dp = new TenantDatapath(o.runner, this.nft);
    this.dns = new DnsServer({ port: o.dnsPort, upstreams: o.dnsUpstreams, upstreamTimeoutMs: 2000, ttl: 5, names: (t) => this.names(t), log: o.log });
    const hostSide = async (plans: TenantPlan[], peers: string[]) => {
      await ensureHost(this.nft, plans, peers);
      await this.dns.sync(new Map(plans.filter((p) => p.dns).map((p) => [p.uplink.hostIp, { tenant: p.tenant, peer: p.uplink.tenantIp }])));
    };
    this.reconciler = new Reconciler(this.state, this.dp, hostSide, {
      host: o.host, nsPrefix: o.nsPrefix, cniConfDir: o.cniConfDir, agentSocket: this.socketPath, resyncMs: o.resyncMs, vtep: o.vtepIp, dnsPort: o.dnsPort,
    }, o.log, () => new Set([...this.inflight].map(names.endpointVeth)), () => this.maintainEndpoints());
    this.syncer = new Syncer(this.client, this.state, (t) => this.reconciler.mark(t), o.log);
  }

  /** A tenant's DNS names, rebuilt only after the desired state changed. */
  private nameCache = { version: -1, tables: new Map<string, NameTable>() };
  private names(tenant: string): NameTable {
    if (this.nameCache.version !== this.state.version) this.nameCache = { version: this.state.version, tables: new Map() };
    let t = this.nameCache.tables.get(tenant);
    if (!t) {
      t = nameTable([...this.state.services.values()].filter((s) => s.tenant === tenant), [...this.state.endpoints.values()].filter((e) => e.tenant === tenant));
      this.nameCache.tables.set(tenant, t);
    }
    return t;
  }

  get socketPath(): string {
    return join(this.o.runDir, 'agent.sock');
  }

  async start(): Promise<void> {
    await this.register();
    await this.syncer.start();
    this.installPlugin();
    this.reconciler.start();
    this.socket = await serveCniSocket(this.socketPath, (env, stdin) => handleCni(this, env, stdin));
    if (this.o.dockerSocket) {
      this.docker = new DockerBackend({
        state: this.state, client: this.client, reconciler: this.reconciler, runner: this.o.runner, host: this.o.host,
        ...(this.creator ? { creator: this.creator } : {}),
        log: this.o.log, release: (ep, later) => this.release(ep, later), withEndpoint: (id, fn) => this.withEndpoint(id, fn),
        ensureQos: (ns, q) => this.dp.ensureQos(ns, [q], new Set([q.veth])), ...(this.o.dockerApi ? { dockerApi: this.o.dockerApi } : {}),
      });
      this.dockerServer = await serveDockerPlugin(this.o.dockerSocket, this.docker);
    }
    if (this.o.identity) {
      const { dir, creds } = this.o.identity;
      this.stopRenewing = keepRenewing(this.client, dir, creds, (c) => this.client.setTls(c), this.o.log);
    }
    this.heartbeat = setInterval(() => void this.register().catch((e: Error) => this.o.log.warn({ err: e.message }, 'heartbeat failed')), HEARTBEAT_MS);
    this.o.log.info({ socket: this.socketPath, cniConfDir: this.o.cniConfDir }, 'agent started');
  }

  async stop(): Promise<void> {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.stopRenewing?.();
    await this.socket?.close();
    await this.dockerServer?.close();
    this.syncer.stop();
    await this.reconciler.stop();
    await this.dns.stop();
    this.client.close();
    this.creator?.close();
  }

  private async register(): Promise<void> {
    await this.client.request('PUT', `/api/v1/hosts/${this.o.host}`, { name: this.o.host, vtepIp: this.o.vtepIp, agentVersion: this.o.version });
  }

  /** Puts the relay where runtimes look for plugin `weft` (the C relay if it was built, else the Node one). */
  private installPlugin(): void {
    const dist = join(dirname(fileURLToPath(import.meta.url)), '..');
    const native = join(dist, 'weft-cni');
    for (const dir of this.o.cniBinDirs) {
      mkdirSync(dir, { recursive: true });
      const target = join(dir, 'weft');
      const tmp = `${target}.tmp-${process.pid}`;
      if (existsSync(native)) copyFileSync(native, tmp);
      else writeFileSync(tmp, `#!/bin/sh\nexec ${process.execPath} ${join(dist, 'bin', 'weft-cni.js')}\n`);
      chmodSync(tmp, 0o755);
      renameSync(tmp, target);
    }
  }

  private tenantNs(tenant: string): string | undefined {
    const t = this.state.tenants.get(tenant);
    return t && names.tenantNs(this.o.nsPrefix, t.id);
  }

  private async withEndpoint<T>(id: string, fn: () => Promise<T>): Promise<T> {
    let l = this.epLocks.get(id);
    if (!l) this.epLocks.set(id, (l = { m: new Mutex(), users: 0 }));
    l.users++;
    try {
      return await l.m.run(fn);
    } finally {
      if (--l.users === 0) this.epLocks.delete(id);
    }
  }

  add(req: AddRequest): Promise<AddResultInput> {
    const id = endpointId(req.containerId, req.ifname);
    return this.withEndpoint(id, () => this.addLocked(req, id));
  }

  private async addLocked(req: AddRequest, id: string): Promise<AddResultInput> {
    this.inflight.add(id);
    let ep: Endpoint | undefined;
    const t0 = performance.now();
    const steps: Record<string, number> = {};
    const mark = (step: string) => (steps[step] = Math.round((performance.now() - t0) * 10) / 10);
    try {
      const made = await this.createEndpoint(req, id);
      ep = made;
      mark('allocated');
      this.state.putEndpoint(made);
      const plan = await this.reconciler.ensureTenant(made.tenant, true);
      mark('tenant');
      if (!plan) throw new CniError(7, `tenant ${made.tenant} is not known to this agent yet; try again`);
      const veth = names.endpointVeth(made.id);
      const wire = () => attachEndpoint(this.o.runner, attachmentOf(made, plan, req.netns), `${this.o.nsPrefix}c${id.slice(0, 10)}`);
      try {
        await wire();
      } catch (first) {
        // The fast path trusted the last convergence; if the tenant drifted since (a deleted bridge), repair and retry once.
        if (await this.containerHas(req.netns, req.ifname)) throw first;
        await this.reconciler.ensureTenant(made.tenant);
        await wire();
      }
      mark('wired');
      const qos = plan.qos.find((q) => q.endpoint === made.id);
      if (qos) await this.dp.ensureQos(plan.ns, [qos], new Set([qos.veth]));
      if (made.portMappings?.length) await this.reconciler.ensureHostNow();
      mark('ports');
      this.o.log.debug({ endpoint: id, ms: steps }, 'ADD done');
      return {
        hostVeth: veth, ifname: req.ifname, mac: made.mac, mtu: made.mtu, netns: req.netns, ip: made.ip, prefixLength: made.prefixLength, gateway: made.gateway,
        ...(plan.dns ? { dns: { nameservers: [made.gateway], search: [dnsDomain(made.tenant)] } } : {}),
      };
    } catch (e) {
      if (ep) await this.release(ep).catch((x: Error) => this.o.log.warn({ err: x.message, endpoint: id }, 'cleanup after a failed ADD failed'));
      throw e;
    } finally {
      this.inflight.delete(id);
    }
  }

  private async containerHas(netns: string, ifname: string): Promise<boolean> {
    return withNetnsName(this.o.runner, netns, `${this.o.nsPrefix}q${Date.now() % 1e9}`, async (n) =>
      (await this.o.runner.run(['ip', '-n', n, 'link', 'show', ifname], { allowFailure: true })).code === 0);
  }

  /** A leftover endpoint with the same id (an ADD cut short, a missed DEL) is released and made anew. */
  private async createEndpoint(req: AddRequest, id: string): Promise<Endpoint> {
    const body = {
      tenant: req.tenant, network: req.network, ...(req.group ? { group: req.group } : {}), containerId: req.containerId,
      host: this.o.host, ifname: req.ifname, netns: req.netns, labels: req.labels,
      seal: this.sealer.seal({ id, tenant: req.tenant, network: req.network, ifname: req.ifname, netns: req.netns }),
      ...(req.containerName ? { containerName: req.containerName } : {}), ...(req.ip ? { ip: req.ip } : {}), ...(req.mac ? { mac: req.mac } : {}),
      ...(req.portMappings.length ? { portMappings: req.portMappings } : {}),
    };
    try {
      return await this.client.request<Endpoint>('POST', '/api/v1/endpoints', body);
    } catch (e) {
      if (!(e instanceof ApiError && e.code === 'WEFT_EXISTS')) throw e;
      const old = await this.client.request<Endpoint>('GET', `/api/v1/endpoints/${id}`);
      await this.release(old);
      return this.client.request<Endpoint>('POST', '/api/v1/endpoints', body);
    }
  }

  /**
   * Unwires and forgets an endpoint; the server releases its address. Idempotent. `unwireLater`: the veth pair goes after the answer (the kernel takes ~20 ms to delete one). Only for
   * endpoints whose id is never used again (Docker's): a CNI DEL may be followed at once by an ADD of the
   * same container and interface, whose veth has the same name.
   */
  private async release(ep: Endpoint, unwireLater = false): Promise<void> {
    const ns = this.tenantNs(ep.tenant);
    const veth = names.endpointVeth(ep.id);
    if (ns && !unwireLater) await detachEndpoint(this.o.runner, ns, veth, ep.ip);
    if (ns && unwireLater) await forgetConnections(this.o.runner, ns, ep.ip);
    await this.client.request('DELETE', `/api/v1/endpoints/${ep.id}`);
    this.state.dropEndpoint(ep.id);
    // Policy classes, service backends and DSCP sets may name the address; the watch echo of this delete
    // will not (the state no longer has the endpoint).
    this.reconciler.mark(ep.tenant);
    if (ns && unwireLater) void unwireEndpoint(this.o.runner, ns, veth).catch((e: Error) => this.o.log.warn({ err: e.message, endpoint: ep.id }, 'removing a veth failed; the next resync removes it'));
    if (ep.portMappings?.length) {
      await this.reconciler.ensureTenant(ep.tenant);
      await this.reconciler.ensureHostNow();
    }
  }

  del(containerId: string, ifname: string): Promise<void> {
    const id = endpointId(containerId, ifname);
    return this.withEndpoint(id, async () => {
      this.inflight.add(id);
      try {
        await this.delLocked(id);
      } finally {
        this.inflight.delete(id);
      }
    });
  }

  private async delLocked(id: string): Promise<void> {
    let ep = this.state.endpoints.get(id);
    if (!ep) {
      try {
        ep = await this.client.request<Endpoint>('GET', `/api/v1/endpoints/${id}`);
      } catch (e) {
        if (!(e instanceof ApiError && e.status === 404)) throw e;
      }
    }
    if (ep) return this.release(ep);
    // Unknown to the server: still remove a veth of that name from any tenant namespace we hold.
    for (const t of this.state.tenants.values()) await detachEndpoint(this.o.runner, names.tenantNs(this.o.nsPrefix, t.id), names.endpointVeth(id));
  }

  async check(containerId: string, ifname: string, netns: string): Promise<string | undefined> {
    const id = endpointId(containerId, ifname);
    let ep: Endpoint;
    try {
      ep = await this.client.request<Endpoint>('GET', `/api/v1/endpoints/${id}`);
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) return `endpoint ${id} is unknown to the weft server`;
      throw e;
    }
    const ns = this.tenantNs(ep.tenant);
    if (!ns) return `tenant ${ep.tenant} is not set up on this host`;
    const veth = (await observeLinks(this.o.runner, ns)).get(names.endpointVeth(id));
    if (!veth || veth.master !== names.bridge(ep.vni)) return `host side ${names.endpointVeth(id)} is not on bridge ${names.bridge(ep.vni)}`;
    return checkEndpoint(this.o.runner, { netnsPath: netns, ifname, ip: ep.ip, prefixLength: ep.prefixLength }, `${this.o.nsPrefix}k${id.slice(0, 10)}`);
  }

  async gc(scope: Scope, valid: ReadonlyArray<{ containerID: string; ifname: string }>): Promise<void> {
    const keep = new Set(valid.map((v) => endpointId(v.containerID, v.ifname)));
    for (const ep of [...this.state.endpoints.values()]) {
      const inScope = ep.netns !== undefined && ep.host === this.o.host && ep.tenant === scope.tenant && ep.network === scope.network && (ep.group ?? '') === (scope.group ?? '');
      if (inScope && !keep.has(ep.id) && !this.inflight.has(ep.id)) await this.withEndpoint(ep.id, () => this.release(ep));
    }
  }

  async status(): Promise<string | undefined> {
    try {
      await this.client.request('GET', '/healthz');
    } catch (e) {
      return `the weft server cannot be reached: ${(e as Error).message}`;
    }
    return this.syncer.synced ? undefined : 'the agent has not loaded the desired state yet';
  }

  /**
   * Endpoints of this host whose container is gone (its netns path vanished) are released; those whose
   * veth vanished while the container lives are wired again. Runs after each full resync.
   */
  private async maintainEndpoints(): Promise<void> {
    await this.docker?.collect(this.o.repairGraceMs).catch((e: Error) => this.o.log.warn({ err: e.message }, 'collecting Docker endpoints failed'));
    const now = Date.now();
    const linksByNs = new Map<string, Set<string>>();
    for (const candidate of [...this.state.endpoints.values()]) {
      if (candidate.host !== this.o.host || this.inflight.has(candidate.id) || !candidate.netns) continue;
      if (now - Date.parse(candidate.createdAt) < this.o.repairGraceMs) continue;
      await this.withEndpoint(candidate.id, async () => {
        // Re-read under the lock: a DEL may have released it while we waited.
        const ep = this.state.endpoints.get(candidate.id);
        if (!ep?.netns) return;
        if (!existsSync(ep.netns)) {
          this.o.log.info({ endpoint: ep.id, netns: ep.netns }, 'container gone: releasing its endpoint');
          await this.release(ep).catch((e: Error) => this.o.log.warn({ err: e.message }, 'release failed'));
          return;
        }
        if (!this.sealer.verify(ep)) {
          if (!this.unsealedSeen.has(ep.id)) this.o.log.warn({ endpoint: ep.id, netns: ep.netns }, 'endpoint not sealed by this agent (written by someone else): never re-wired');
          this.unsealedSeen.add(ep.id);
          return;
        }
        const ns = this.tenantNs(ep.tenant);
        if (!ns) return;
        let links = linksByNs.get(ns);
        if (!links) linksByNs.set(ns, (links = new Set((await observeLinks(this.o.runner, ns)).keys())));
        if (links.has(names.endpointVeth(ep.id))) return;
        const plan = await this.reconciler.ensureTenant(ep.tenant, true);
        if (!plan) return;
        this.o.log.info({ endpoint: ep.id }, 'veth missing: wiring the endpoint again');
        await attachEndpoint(this.o.runner, attachmentOf(ep, plan, ep.netns), `${this.o.nsPrefix}r${ep.id.slice(0, 10)}`)
          .catch((e: Error) => this.o.log.warn({ err: e.message }, 'repair failed'));
      });
    }
  }
}
