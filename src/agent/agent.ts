import { join } from 'node:path';
import type { Logger } from 'pino';
import { ApiError, Client, type TlsConfig } from '../client/index.js';
import { DATAPATHS, names as nsNames, type Datapath, type FlowLimits, type HostPlan } from '../datapath/index.js';
import { DnsServer, type Upstream } from '../dns/index.js';
import { instanceDigest } from '../model/index.js';
import type { Runner } from '../exec/index.js';
import { handleCni, serveCniSocket, type CniSocketServer } from '../plugins/cni/index.js';
import { serveDockerPlugin, type DockerPluginServer } from '../plugins/docker/index.js';
import { Attacher, VERB_ENV, handleVerb } from './attach.js';
import { CniEndpoints } from './cni-host.js';
import { TenantNames } from './dns-names.js';
import { DockerBackend } from './docker/index.js';
import { Endpoints } from './endpoints.js';
import { keepRenewing, type HostCredentials } from './identity.js';
import { agentInstance } from './instance.js';
import { keyDue, rotateWireguardKey, wireguardKey, wireguardKeyPath } from './wgkey.js';
import { installPlugin } from './installer.js';
import { Maintenance } from './maintenance.js';
import { IdleGc } from './idle-gc.js';
import { Reconciler } from './reconciler.js';
import { Sealer } from './seal.js';
import { DesiredState } from './state.js';
import { answerVerify } from './verify.js';
import { FlowReporter } from './flows.js';
import { Syncer } from './sync.js';

export interface AgentOptions {
  servers: string[];
  /** false: no full collections while idle (idle-gc.ts sets V8's --expose-gc for the whole process). */
  idleGc?: boolean;
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
  /** Its IPv6 underlay address, if it has one (routed networks' IPv6 blocks are routed to it). */
  vtepIp6?: string;
  /** vtepIp6 was found on the host, not given: if the server refuses it, the host registers without one. */
  vtepIp6Detected?: boolean;
  resyncMs: number;
  /** An endpoint whose veth is missing is re-wired only after this long, so an ADD in flight is never raced. */
  repairGraceMs: number;
  /** The most pairs of address classes a tenant's policy may decide here (ReconcilerOptions); no limit when absent. */
  maxPolicyPairs?: number;
  /** The containers' DNS server listens on this port of each tenant's uplink address. */
  dnsPort: number;
  /** Flow records (issue 16): each tenant table logs new connections within these limits, sent to the server; none when absent. */
  flowLog?: FlowLimits;
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
  /** The kernel side; the Linux one when absent (tests and simulated hosts pass another). */
  datapath?: Datapath;
  version: string;
}

const HEARTBEAT_MS = 10_000;

/**
 * One per host, and only its lifecycle: wires the desired state (list + watch), the reconciler, the CNI
 * host, the Docker driver and maintenance to one datapath, then starts and stops them. It keeps no state
 * of its own: everything is rebuilt from the server and the kernel. Stopping it leaves the datapath in
 * place, so containers keep their connections across restarts.
 */
export class Agent {
  readonly state = new DesiredState();
  readonly client: Client;
  readonly reconciler: Reconciler;
  readonly datapath: Datapath;
  readonly cni: CniEndpoints;
  private readonly endpoints: Endpoints;
  private readonly syncer: Syncer;
  private readonly sealer: Sealer;
  /** This host's WireGuard public key, published with its registration (issue 12: the encrypted overlay). */
  wgPublicKey: string;
  private readonly dns: DnsServer;
  private readonly maintenance: Maintenance;
  /** Docker's client for creating Weft networks, on a user's token (--docker-token-file). */
  private readonly creator: Client | undefined;
  private docker: DockerBackend | undefined;
  private socket: CniSocketServer | undefined;
  private dockerServer: DockerPluginServer | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  /** The IPv6 underlay address this host registers (dropped if it was found, not given, and refused). */
  private vtep6: string | undefined;
  /** Sent with every registration: the server tells this agent from another one given the same host name. */
  private readonly instance: string;
  private stopRenewing: (() => void) | undefined;
  /** Sends the kernel's flow records to the server; none when flow records are off. */
  readonly flows: FlowReporter | undefined;

  constructor(private readonly o: AgentOptions) {
    this.client = new Client({ servers: o.servers, token: o.token, ...(o.tls ? { tls: o.tls } : {}) });
    this.vtep6 = o.vtepIp6;
    this.sealer = Sealer.load(o.stateDir);
    this.instance = agentInstance(o.stateDir);
    this.wgPublicKey = wireguardKey(o.stateDir).publicKey;
    if (o.dockerToken !== undefined) this.creator = new Client({ servers: o.servers, token: o.dockerToken, ...(o.tls ? { tls: { ca: o.tls.ca } } : {}) });
    this.datapath = o.datapath ?? DATAPATHS.linux({ runner: o.runner, nsPrefix: o.nsPrefix, stateDir: o.stateDir, keyFile: wireguardKeyPath(o.stateDir) });
    const names = new TenantNames(this.state);
    this.dns = new DnsServer({ port: o.dnsPort, upstreams: o.dnsUpstreams, upstreamTimeoutMs: 2000, ttl: 5, names: (t) => names.of(t), log: o.log });
    const hostSide = async (h: HostPlan) => {
      // The DNS listeners follow the plan even when the kernel refused part of it (a route, bird).
      let failed: { e: unknown } | undefined;
      await this.datapath.ensureHost(h).catch((e: unknown) => { failed = { e }; });
      if (this.datapath.hostAddresses) await this.dns.sync(new Map(h.tenants.filter((p) => p.dns).flatMap((p) => [
        [p.uplink.hostIp, { tenant: p.tenant, peer: p.uplink.tenantIp }] as const,
        // Over IPv6 too, where the tenant has it: the queries of its IPv6-only containers.
        ...(p.dns?.address6 !== undefined && p.uplink.tenantIp6 !== undefined ? [[p.dns.address6, { tenant: p.tenant, peer: p.uplink.tenantIp6 }] as const] : []),
      ])));
      if (failed) throw failed.e;
    };
    // Only the instance the server records speaks for the host: the endpoints another one cannot find are
    // not its own. Read from the desired state, so an agent back from a partition knows before it heartbeats.
    const maintenance = async () => (this.speaksForHost() ? this.maintenance.run() : undefined);
    this.reconciler = new Reconciler(this.state, this.datapath, hostSide, {
      host: o.host, nsPrefix: o.nsPrefix, cniConfDir: o.cniConfDir, agentSocket: this.socketPath, resyncMs: o.resyncMs, vtep: o.vtepIp, dnsPort: o.dnsPort,
      ...(o.flowLog ? { flowLog: o.flowLog } : {}), ...(o.maxPolicyPairs !== undefined ? { maxPolicyPairs: o.maxPolicyPairs } : {}),
      wired: (e) => this.sealer.verify(e),
      ...(o.idleGc === false ? {} : { idleGc: IdleGc.create(o.log) }),
    }, o.log, () => this.endpoints.protectedVeths(), maintenance);
    const shared = { state: this.state, client: this.client, datapath: this.datapath, reconciler: this.reconciler, log: o.log };
    this.endpoints = new Endpoints({ ...shared, nsPrefix: o.nsPrefix, sealer: this.sealer });
    this.syncer = new Syncer(this.client, this.state, (t) => {
      this.reconciler.mark(t);
      if (t === undefined) {
        void this.rotateIfDue();
        void this.reconciler.tunnelNow().catch((e: Error) => this.o.log.warn({ err: e.message }, 'tunnel not updated; the next pass retries'));
      }
    }, o.log);
    this.syncer.onVerify = (r) => void answerVerify({ state: this.state, client: this.client, runner: o.runner, host: o.host, log: o.log }, r as Parameters<typeof answerVerify>[1])
      .catch((e: Error) => o.log.warn({ err: e.message }, 'verification failed'));
    this.cni = new CniEndpoints({ ...shared, host: o.host, endpoints: this.endpoints, sealer: this.sealer, synced: () => this.syncer.synced });
    if (o.dockerSocket) {
      this.docker = new DockerBackend({
        ...shared, host: o.host, endpoints: this.endpoints, ...(this.creator ? { creator: this.creator } : {}), ...(o.dockerApi ? { dockerApi: o.dockerApi } : {}),
      });
    }
    if (o.flowLog) {
      // Namespace → tenant, made again when the desired state moved since.
      let byNs = new Map<string, string>();
      let made = -1;
      const tenantOf = (ns: string) => {
        if (made !== this.state.revision) {
          byNs = new Map([...this.state.tenants.values()].map((t) => [nsNames.tenantNs(o.nsPrefix, t.id), t.name]));
          made = this.state.revision;
        }
        return byNs.get(ns);
      };
      // Endpoint veth → endpoint, made again likewise (names.endpointVeth: `we` and the id's first 12).
      let byVeth = new Map<string, { group?: string }>();
      let vethsMade = -1;
      const endpointOf = (veth: string) => {
        if (vethsMade !== this.state.revision) {
          byVeth = new Map([...this.state.endpoints.values()].filter((e) => e.host === o.host).map((e) => [nsNames.endpointVeth(e.id), e]));
          vethsMade = this.state.revision;
        }
        return byVeth.get(veth);
      };
      this.flows = new FlowReporter({
        tenantOf, endpointOf, log: o.log,
        send: (report) => this.client.request('POST', `/api/v1/hosts/${encodeURIComponent(o.host)}/flows`, report),
      });
      this.datapath.flowRecords?.(this.flows);
    }
    this.maintenance = new Maintenance({
      ...shared, host: o.host, endpoints: this.endpoints, sealer: this.sealer, repairGraceMs: o.repairGraceMs,
      collectors: this.docker ? [(grace) => (this.docker as DockerBackend).collect(grace)] : [],
    });
  }

  get socketPath(): string {
    return join(this.o.runDir, 'agent.sock');
  }

  async start(): Promise<void> {
    // Refused (another live instance holds the name) or unreachable: nothing of this agent stays open.
    await this.register().catch(async (e: unknown) => {
      await this.stop();
      throw e;
    });
    await this.syncer.start();
    installPlugin(this.o.cniBinDirs);
    this.reconciler.start();
    this.flows?.start();
    // The socket serves the CNI relay and the agent's own verbs (`weft attach`, `weft detach`): both only to root.
    const attacher = new Attacher({ host: this.o.host, state: this.state, datapath: this.datapath, cni: this.cni, endpoints: this.endpoints });
    this.socket = await serveCniSocket(this.socketPath, (env, stdin) => {
      const verb = env[VERB_ENV];
      return verb === undefined ? handleCni(this.cni, env, stdin) : handleVerb(attacher, verb, stdin);
    });
    if (this.o.dockerSocket && this.docker) this.dockerServer = await serveDockerPlugin(this.o.dockerSocket, this.docker);
    if (this.o.identity) {
      const { dir, creds } = this.o.identity;
      this.stopRenewing = keepRenewing(this.client, dir, creds, (c) => this.client.setTls(c), this.o.log);
    }
    this.heartbeat = setInterval(() => {
      void this.rotateIfDue();
      void this.register().catch((e: Error) => this.o.log.warn({ err: e.message }, 'heartbeat failed'));
    }, HEARTBEAT_MS);
    this.o.log.info({ socket: this.socketPath, cniConfDir: this.o.cniConfDir }, 'agent started');
  }

  async stop(): Promise<void> {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.stopRenewing?.();
    await this.socket?.close();
    await this.dockerServer?.close();
    this.syncer.stop();
    this.flows?.stop();
    await this.reconciler.stop();
    await this.dns.stop();
    this.client.close();
    this.creator?.close();
  }

  /**
   * Registers this host (and, as the heartbeat, refreshes it with its tunnel's status). The server refuses
   * it while another agent instance holds the name: at start that ends the start; later (another instance
   * took over while this one was silent past the grace period) the heartbeat fails, loudly.
   */
  private async register(): Promise<void> {
    const wireguard = await this.datapath.tunnelStatus().catch(() => undefined);
    const body = (vtepIp6: string | undefined) => ({
      name: this.o.host, vtepIp: this.o.vtepIp, ...(vtepIp6 !== undefined ? { vtepIp6 } : {}), agentVersion: this.o.version, wgPublicKey: this.wgPublicKey, instance: this.instance, ...(wireguard ? { wireguard } : {}),
    });
    try {
      await this.client.request('PUT', `/api/v1/hosts/${this.o.host}`, body(this.vtep6));
    } catch (e) {
      // An IPv6 underlay address the agent only found (not one it was given) that the server refuses (another
      // host's, inside a routed subnet6) must not cost the host its registration: it goes on without one.
      if (!(this.o.vtepIp6Detected && this.vtep6 !== undefined && e instanceof ApiError && e.field === 'vtepIp6')) throw e;
      this.o.log.warn({ vtepIp6: this.vtep6, err: e.message }, 'the IPv6 underlay address found on this host was refused: registering without one (routed networks\' IPv6 will not reach this host; give one with --vtep-ip6)');
      this.vtep6 = undefined;
      await this.client.request('PUT', `/api/v1/hosts/${this.o.host}`, body(undefined));
    }
  }

  /** Whether the server records this agent's instance for the host (or none): only then may it release the host's endpoints. */
  private speaksForHost(): boolean {
    const recorded = this.state.hosts.get(this.o.host)?.instance;
    return recorded === undefined || recorded === instanceDigest(this.instance);
  }

  private rotating = false;

  /**
   * A new WireGuard key pair when asked (`weft host rotate-key`) or when the key reached the cluster's
   * rotation age: published at once, and set on the tunnel by the next pass. Until the peers have the new
   * public key (one watch round trip), their handshakes with this host fail and traffic waits.
   */
  private async rotateIfDue(): Promise<void> {
    const requested = this.state.hosts.get(this.o.host)?.rotateKey ?? 0;
    if (this.rotating || !keyDue(this.o.stateDir, requested, this.state.global.keyRotationDays)) return;
    this.rotating = true;
    try {
      this.wgPublicKey = rotateWireguardKey(this.o.stateDir, requested).publicKey;
      this.o.log.info({ publicKey: this.wgPublicKey }, 'WireGuard key rotated');
      this.reconciler.mark(undefined);
      // The device takes the new key now (not after the queued pass), and peers learn it from the registration.
      await Promise.all([this.register(), this.reconciler.tunnelNow()]);
    } catch (e) {
      this.o.log.warn({ err: (e as Error).message }, 'WireGuard key rotation not published; retrying with the heartbeat');
    } finally {
      this.rotating = false;
    }
  }
}
