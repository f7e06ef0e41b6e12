import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { ApiError, type Client } from '../client/index.js';
import { NAME_PATTERN, endpointId, formatIp, parseCidr, type DockerNetwork, type Endpoint, type Group, type Network } from '../model/index.js';
import { containerOfEndpoint, endpointsOfNetwork, DockerApiError } from './docker-api.js';
import { outerAttachmentOf, type Datapath } from '../datapath/index.js';
import type { Endpoints } from './endpoints.js';
import { genericOptions, portMapOf, BadRequest, type CreateEndpoint, type CreateNetwork, type DockerHost, type Join, type JoinResult, type ReleaseAddress, type RequestAddress, type RequestPool } from '../plugins/docker/index.js';
import type { DesiredState } from './state.js';
import type { Reconciler } from './reconciler.js';

export interface DockerDeps {
  /** Docker's API socket, to learn container names; none: endpoints show Docker's endpoint ID only. */
  dockerApi?: string;
  state: DesiredState;
  client: Client;
  /**
   * A client with a user's token (`--docker-token-file`) that may create Weft networks for `docker network
   * create --subnet`; a host certificate may not. Absent: such networks must exist first.
   */
  creator?: Client;
  reconciler: Reconciler;
  datapath: Datapath;
  /** Locks and release, shared with the CNI host (Docker's ids are never reused: veths go after the answer). */
  endpoints: Endpoints;
  host: string;
  log: Logger;
}

const ANY = '0.0.0.0/0';
const GATEWAY_REQUEST = 'com.docker.network.gateway';
const OPTIONS = ['tenant', 'network', 'group'];
/** Docker's endpoints are Weft endpoints keyed by Docker's endpoint ID and this interface name. */
const IFNAME = 'eth0';

/**
 * The agent as Docker's network and IPAM driver. Docker asks IPAM for a pool before it tells the network
 * driver which Weft network the Docker network is (`-o tenant=… -o network=…`), so a pool is held as
 * pending until CreateNetwork claims it; the claim is stored on the server (a `docker-networks` object),
 * so both survive restarts of Docker and of the agent. An address is reserved at RequestAddress as a
 * placeholder endpoint and becomes the real endpoint, keyed by Docker's endpoint ID, at CreateEndpoint.
 */
export class DockerBackend implements DockerHost {
  /** Pools handed out but not yet claimed by a network, oldest first. */
  private readonly pending = new Map<string, { pool: string; tenant?: string; network?: string }>();

  constructor(private readonly d: DockerDeps) {}

  private mine(): DockerNetwork[] {
    return [...this.d.state.dockerNetworks.values()].filter((n) => n.host === this.d.host);
  }

  /**
   * This host's mapping with Docker's network ID (or IPAM pool ID). The server keeps both unique across
   * tenants; should two exist anyway (written before it did), the container would land in whichever came
   * first, so neither is used.
   */
  private mapping(match: (n: DockerNetwork) => boolean, what: string): DockerNetwork | undefined {
    const found = this.mine().filter(match);
    if (found.length > 1) throw new Error(`${what} is mapped to ${found.length} Weft tenants; refusing to pick one (remove the wrong docker-networks object)`);
    return found[0];
  }

  private byId(networkId: string): DockerNetwork {
    const n = this.mapping((x) => x.name === networkId.slice(0, 63), `Docker network ${networkId.slice(0, 12)}`);
    if (!n) throw new Error(`Docker network ${networkId.slice(0, 12)} is not a Weft network on this host`);
    return n;
  }

  private byPool(poolId: string): DockerNetwork | undefined {
    return this.mapping((n) => n.pool === poolId, `pool ${poolId}`);
  }

  private network(n: { tenant: string; network: string }): Network {
    const net = this.d.state.networks.get(`${n.tenant}/${n.network}`);
    if (!net) throw new Error(`network ${n.tenant}/${n.network} is not known to this agent yet; try again`);
    return net;
  }

  async requestPool(r: RequestPool): Promise<{ PoolID: string; Pool: string; Data: Record<string, string> }> {
    if (r.V6) throw new Error('IPv6 pools are not supported');
    if (r.SubPool && !r.Pool) throw new BadRequest('SubPool: needs a Pool');
    const o = namesIn(r.Options ?? {}, '--ipam-opt');
    let pool = r.Pool;
    // With --ipam-opt tenant=… network=… the pool is known now; otherwise CreateNetwork says which it is.
    if (o['network']) {
      const net = await this.d.client.request<Network>('GET', `/api/v1/tenants/${o['tenant'] ?? 'default'}/networks/${o['network']}`);
      if (pool && pool !== net.subnet) throw new Error(`--subnet ${pool} conflicts with network ${net.tenant}/${net.name} (${net.subnet})`);
      pool = net.subnet;
    }
    const id = `weft-${randomBytes(8).toString('hex')}`;
    this.pending.set(id, { pool: pool || ANY, ...(o['network'] ? { tenant: o['tenant'] ?? 'default', network: o['network'] } : {}) });
    return { PoolID: id, Pool: pool || ANY, Data: {} };
  }

  async releasePool(poolId: string): Promise<void> {
    this.pending.delete(poolId);
  }

  async requestAddress(r: RequestAddress): Promise<{ Address: string; Data: Record<string, string> }> {
    const bound = this.byPool(r.PoolID);
    const gateway = r.Options?.['RequestAddressType'] === GATEWAY_REQUEST;
    if (gateway) {
      if (bound) {
        const net = this.network(bound);
        return { Address: `${net.gateway}/${prefixOf(net.subnet)}`, Data: {} };
      }
      const p = this.pending.get(r.PoolID);
      if (!p) throw new Error(`pool ${r.PoolID} is unknown to weft`);
      // Informational only: the container's gateway comes from Join.
      if (r.Address) return { Address: `${r.Address}/${prefixOf(p.pool)}`, Data: {} };
      return { Address: p.pool === ANY ? ANY : firstHost(p.pool), Data: {} };
    }
    if (!bound) throw new Error(`pool ${r.PoolID} belongs to no Weft network on this host (use --ipam-driver weft with -d weft)`);
    const ep = await this.d.client.request<Endpoint>('POST', '/api/v1/endpoints', {
      tenant: bound.tenant, network: bound.network, ...(bound.group ? { group: bound.group } : {}),
      containerId: `ipam-${randomBytes(8).toString('hex')}`, host: this.d.host, ifname: IFNAME, ...(r.Address ? { ip: r.Address } : {}),
      labels: { runtime: 'docker' },
    });
    this.d.state.putEndpoint(ep);
    return { Address: `${ep.ip}/${ep.prefixLength}`, Data: {} };
  }

  async releaseAddress(r: ReleaseAddress): Promise<void> {
    const bound = this.byPool(r.PoolID);
    if (!bound) return;
    const placeholder = this.placeholder(bound, r.Address);
    if (placeholder) await this.d.endpoints.release(placeholder);
  }

  private placeholder(n: DockerNetwork, ip: string): Endpoint | undefined {
    return [...this.d.state.endpoints.values()].find((e) => e.host === this.d.host && e.tenant === n.tenant && e.network === n.network && e.ip === ip && e.containerId.startsWith('ipam-'));
  }

  async createNetwork(r: CreateNetwork): Promise<void> {
    const opts = namesIn(genericOptions(r.Options), '-o');
    const unknown = Object.keys(opts).filter((k) => !OPTIONS.includes(k));
    if (unknown.length) throw new Error(`unknown option ${unknown.map((k) => `-o ${k}`).join(', ')} (weft takes -o tenant=, -o network=, -o group=)`);
    if ((r.IPv6Data ?? []).length > 0) throw new Error('IPv6 is not supported');
    const tenant = opts['tenant'] ?? 'default';
    await this.d.client.request('GET', `/api/v1/tenants/${tenant}`);
    let networkName = opts['network'];
    let group: Group | undefined;
    if (opts['group']) {
      group = await this.d.client.request<Group>('GET', `/api/v1/tenants/${tenant}/groups/${opts['group']}`);
      if (networkName && group.network !== networkName) throw new Error(`group ${tenant}/${group.name} is on network ${group.network}, not ${networkName}`);
      networkName ??= group.network;
    }
    if (!networkName) throw new Error('-o network=NAME (or -o group=NAME) is required');
    const v4 = r.IPv4Data?.[0];
    const subnet = v4 && v4.Pool !== ANY ? v4.Pool : undefined;
    let net: Network;
    try {
      net = await this.d.client.request<Network>('GET', `/api/v1/tenants/${tenant}/networks/${networkName}`);
      if (subnet && subnet !== net.subnet) throw new Error(`--subnet ${subnet} conflicts with network ${tenant}/${networkName} (${net.subnet})`);
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 404)) throw e;
      if (!subnet) throw new Error(`network ${tenant}/${networkName} does not exist; give --subnet to create it`);
      if (!this.d.creator) {
        throw new Error(`network ${tenant}/${networkName} does not exist: create it with \`weft net create -t ${tenant} -s ${subnet} ${networkName}\`, or give the agent --docker-token-file (a user's token) so Docker may create Weft networks; a host certificate may not`);
      }
      const gateway = v4?.Gateway && v4.Gateway !== ANY ? v4.Gateway.split('/')[0] : undefined;
      net = await this.d.creator.request<Network>('POST', `/api/v1/tenants/${tenant}/networks`, { name: networkName, subnet, ...(gateway ? { gateway } : {}) });
      this.d.log.info({ tenant, network: networkName, subnet }, 'created a network for Docker');
    }
    const pool = this.claimPool(v4?.Pool ?? ANY, tenant, net.name);
    const made = await this.d.client.request<DockerNetwork>('POST', `/api/v1/tenants/${tenant}/docker-networks`, {
      name: r.NetworkID.slice(0, 63), network: net.name, ...(group ? { group: group.name } : {}), host: this.d.host, ...(pool ? { pool } : {}),
    });
    this.d.state.putDockerNetwork(made);
  }

  /** The pending pool Docker asked for this network: one named for it, else the oldest with the same CIDR. */
  private claimPool(cidr: string, tenant: string, network: string): string | undefined {
    let pick: string | undefined;
    for (const [id, p] of this.pending) {
      if (p.network !== undefined && p.tenant === tenant && p.network === network) { pick = id; break; }
      if (pick === undefined && p.network === undefined && p.pool === cidr) pick = id;
    }
    if (pick) this.pending.delete(pick);
    return pick;
  }

  async deleteNetwork(networkId: string): Promise<void> {
    const n = this.mapping((x) => x.name === networkId.slice(0, 63), `Docker network ${networkId.slice(0, 12)}`);
    if (!n) return;
    try {
      await this.d.client.request('DELETE', `/api/v1/tenants/${n.tenant}/docker-networks/${n.name}`);
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 404)) throw e;
    }
    this.d.state.dropDockerNetwork(n.tenant, n.name);
  }

  async createEndpoint(r: CreateEndpoint): Promise<{ Interface?: { MacAddress: string } }> {
    const n = this.byId(r.NetworkID);
    const address = r.Interface?.Address ?? '';
    if (!address) throw new BadRequest('Interface.Address: missing (create the network with --ipam-driver weft)');
    const ip = address.split('/')[0] as string;
    const id = endpointId(r.EndpointID, IFNAME);
    return this.d.endpoints.with(id, async () => {
      // The address reserved at RequestAddress passes to the endpoint in one step: it is never free between.
      const placeholder = this.placeholder(n, ip);
      const mac = r.Interface?.MacAddress || undefined;
      const ep = await this.d.client.request<Endpoint>('POST', '/api/v1/endpoints', {
        tenant: n.tenant, network: n.network, ...(n.group ? { group: n.group } : {}), containerId: r.EndpointID, host: this.d.host,
        ifname: IFNAME, ip, ...(mac ? { mac: mac.toLowerCase() } : {}), labels: { runtime: 'docker' }, ...(placeholder ? { replaces: placeholder.id } : {}),
      });
      if (placeholder) this.d.state.dropEndpoint(placeholder.id);
      this.d.state.putEndpoint(ep);
      // Policy for the new address is in place before Docker can use it (fail closed).
      await this.d.reconciler.ensureTenant(n.tenant, true);
      return mac ? {} : { Interface: { MacAddress: ep.mac } };
    });
  }

  async join(r: Join): Promise<JoinResult> {
    const n = this.byId(r.NetworkID);
    const id = endpointId(r.EndpointID, IFNAME);
    return this.d.endpoints.with(id, async () => {
      const ep = this.d.state.endpoints.get(id) ?? await this.d.client.request<Endpoint>('GET', `/api/v1/endpoints/${id}`);
      // Endpoint ids are global: never wire one of another tenant or network into this network's bridge.
      if (ep.tenant !== n.tenant || ep.network !== n.network) throw new Error(`endpoint ${id} is not on network ${n.tenant}/${n.network}`);
      const plan = await this.d.reconciler.ensureTenant(n.tenant, true);
      if (!plan) throw new Error(`tenant ${n.tenant} is not known to this agent yet; try again`);
      const outer = `wd${r.EndpointID.slice(0, 12)}`;
      await this.d.datapath.attachOuter(outerAttachmentOf(ep, plan, outer));
      const qos = plan.qos.find((q) => q.endpoint === id);
      if (qos) await this.d.datapath.shape(plan.ns, qos);
      void this.nameEndpoint(r.NetworkID, r.EndpointID, id);
      return { InterfaceName: { SrcName: outer, DstPrefix: 'eth' }, Gateway: ep.gateway, StaticRoutes: [], DisableGatewayService: true };
    });
  }

  /**
   * Docker lists the container on the network only once it has started, after Join returns: ask a few
   * times, in the background, and record its name on the endpoint (for `weft endpoint ls` and DNS).
   */
  private async nameEndpoint(networkId: string, dockerEndpoint: string, id: string): Promise<void> {
    if (!this.d.dockerApi) return;
    for (let i = 0; i < 20; i++) {
      await new Promise((r) => setTimeout(r, 100 + i * 100));
      if (!this.d.state.endpoints.has(id)) return;
      try {
        const c = await containerOfEndpoint(this.d.dockerApi, networkId, dockerEndpoint);
        if (!c) continue;
        const ep = await this.d.client.request<Endpoint>('PATCH', `/api/v1/endpoints/${id}`, { containerName: c.name.replace(/^\//, '') });
        this.d.state.putEndpoint(ep);
        return;
      } catch (e) {
        if (e instanceof ApiError && e.status === 404) return;
        this.d.log.debug({ err: (e as Error).message, endpoint: id }, 'cannot name a Docker endpoint yet');
      }
    }
    this.d.log.warn({ endpoint: id, network: networkId.slice(0, 12) }, 'Docker never listed the container of this endpoint');
  }

  /** Published ports (`docker run -p`): recorded on the endpoint, then DNATed like a CNI runtime's. */
  async programExternalConnectivity(r: { NetworkID: string; EndpointID: string; Options: Record<string, unknown> | null }): Promise<void> {
    const ports = portMapOf(r.Options);
    if (ports.length === 0) return;
    const id = endpointId(r.EndpointID, IFNAME);
    await this.d.endpoints.with(id, async () => {
      const ep = await this.d.client.request<Endpoint>('PATCH', `/api/v1/endpoints/${id}`, { portMappings: ports });
      this.d.state.putEndpoint(ep);
      await this.d.reconciler.ensureTenant(ep.tenant);
      await this.d.reconciler.ensureHostNow();
    });
  }

  async revokeExternalConnectivity(r: { NetworkID: string; EndpointID: string }): Promise<void> {
    const id = endpointId(r.EndpointID, IFNAME);
    const ep = this.d.state.endpoints.get(id);
    if (!ep?.portMappings?.length) return;
    await this.d.endpoints.with(id, async () => {
      const next = await this.d.client.request<Endpoint>('PATCH', `/api/v1/endpoints/${id}`, { portMappings: [] });
      this.d.state.putEndpoint(next);
      await this.d.reconciler.ensureTenant(next.tenant);
      await this.d.reconciler.ensureHostNow();
    });
  }

  /**
   * Nothing to do: Docker takes the interface out of the container itself, DeleteEndpoint (which follows
   * at once) removes the veth pair with the endpoint, and a Join of the same endpoint replaces a pair left
   * over. Deleting it here too would cost a `docker rm` one more exec.
   */
  async leave(): Promise<void> {
    return undefined;
  }

  /**
   * Answers at once and releases in the background: flushing the address's conntrack entries costs two
   * execs (~10 ms each) before the address may go back to the server, and Docker waits on this call to
   * remove a container. Docker never uses an endpoint ID again, and if the agent dies before the release
   * is done, `collect` finds the endpoint gone from Docker and releases it.
   */
  async deleteEndpoint(_networkId: string, endpointIdDocker: string): Promise<void> {
    const id = endpointId(endpointIdDocker, IFNAME);
    void this.d.endpoints.with(id, async () => {
      let ep = this.d.state.endpoints.get(id);
      if (!ep) {
        try {
          ep = await this.d.client.request<Endpoint>('GET', `/api/v1/endpoints/${id}`);
        } catch (e) {
          if (!(e instanceof ApiError && e.status === 404)) throw e;
        }
      }
      if (ep) await this.d.endpoints.release(ep, true);
    }).catch((e: Error) => this.d.log.warn({ err: e.message, endpoint: id }, 'releasing a Docker endpoint failed; the collector will retry'));
  }

  /**
   * Releases this host's Docker endpoints that Docker no longer has (an agent down during `docker rm`, a
   * release cut short) and address reservations never claimed by CreateEndpoint, once older than `graceMs`.
   * Needs Docker's API; without it nothing is collected.
   */
  async collect(graceMs: number): Promise<string[]> {
    if (!this.d.dockerApi) return [];
    const live = new Set<string>();
    for (const n of this.mine()) {
      try {
        for (const e of await endpointsOfNetwork(this.d.dockerApi, n.name)) live.add(e);
      } catch (e) {
        if (!(e instanceof DockerApiError && e.status === 404)) return [];
      }
    }
    const released: string[] = [];
    const now = Date.now();
    for (const ep of [...this.d.state.endpoints.values()]) {
      if (ep.host !== this.d.host || ep.labels['runtime'] !== 'docker' || now - Date.parse(ep.createdAt) < graceMs) continue;
      if (!ep.containerId.startsWith('ipam-') && live.has(ep.containerId)) continue;
      await this.d.endpoints.with(ep.id, async () => {
        if (!this.d.state.endpoints.has(ep.id)) return;
        await this.d.endpoints.release(ep, true);
        released.push(ep.id);
      });
    }
    if (released.length) this.d.log.info({ endpoints: released }, 'released Docker endpoints that Docker no longer has');
    return released;
  }
}

const NAME = new RegExp(NAME_PATTERN);

/** tenant=, network=, group= must be Weft names (they go into API paths); other keys pass as they are. */
function namesIn(opts: Record<string, string>, flag: string): Record<string, string> {
  for (const k of OPTIONS) {
    const v = opts[k];
    if (v !== undefined && !NAME.test(v)) throw new BadRequest(`${flag} ${k}: '${v}' is not a Weft name (lower-case letters, digits and inner dashes, at most 63)`);
  }
  return opts;
}

const prefixOf = (cidr: string) => parseCidr(cidr, 'Pool', false).prefix;

function firstHost(cidr: string): string {
  const c = parseCidr(cidr, 'Pool', false);
  return `${formatIp(c.base + 1)}/${c.prefix}`;
}
