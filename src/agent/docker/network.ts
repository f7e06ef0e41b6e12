import { ApiError } from '../../client/index.js';
import { outerAttachmentOf } from '../../datapath/index.js';
import { FIXED_LABELS, LABEL_KEY_PATTERN, LABEL_VALUE_PATTERN, MAC_PATTERN, NAME_PATTERN, dualStackRefusal, endpointId, parseIp, parseIp6, type DockerNetwork, type Endpoint, type Group, type Network } from '../../model/index.js';
import { genericOptions, portMapOf, BadRequest, type CreateEndpoint, type CreateNetwork, type Join, type JoinResult } from '../../plugins/docker/index.js';
import { containerOfEndpoint, labelsOfContainer } from './api.js';
import { ANY, IFNAME, OPTIONS, canonical6, namesIn, type DockerDeps, type DockerMappings } from './mappings.js';
import { firstHost } from './ipam.js';

/** Claims the pending IPAM pool Docker asked for a network (see DockerIpam.claimPool). */
export type ClaimPool = (cidr: string, tenant: string, network: string, v6?: boolean) => string | undefined;

type IpamData = NonNullable<CreateNetwork['IPv4Data']>[number];

/**
 * Docker's network driver. CreateNetwork maps a Docker network onto a Weft network (and group); the claim
 * is stored on the server (a `docker-networks` object), so it survives restarts of Docker and of the
 * agent. CreateEndpoint turns the address IPAM reserved into the endpoint keyed by Docker's endpoint ID;
 * Join wires it; DeleteEndpoint releases it.
 */
export class DockerNetworkDriver {
  constructor(private readonly d: DockerDeps, private readonly m: DockerMappings, private readonly claimPool: ClaimPool) {}

  async createNetwork(r: CreateNetwork): Promise<void> {
    const opts = namesIn(genericOptions(r.Options), '-o');
    const unknown = Object.keys(opts).filter((k) => !OPTIONS.includes(k));
    if (unknown.length) throw new Error(`unknown option ${unknown.map((k) => `-o ${k}`).join(', ')} (weft takes -o tenant=, -o network=, -o group=)`);
    const { tenant, networkName, group } = await this.target(opts);
    // One pool per family, as Docker sends for one --subnet: a second would be silently left out.
    if ((r.IPv4Data?.length ?? 0) > 1) throw new BadRequest('IPv4Data.1: weft networks have one IPv4 subnet (give --subnet once)');
    if ((r.IPv6Data?.length ?? 0) > 1) throw new BadRequest('IPv6Data.1: weft networks have one IPv6 subnet (give one IPv6 --subnet)');
    const v4 = r.IPv4Data?.[0];
    const v6 = r.IPv6Data?.[0];
    const gw4 = v4?.Gateway && v4.Gateway !== ANY ? dockerAddress(v4.Gateway, 'IPv4Data.0.Gateway', false) : undefined;
    if (v6?.Gateway) dockerAddress(v6.Gateway, 'IPv6Data.0.Gateway', true);
    const net = await this.weftNetwork(tenant, networkName, v4, v6);
    // Docker configures the addresses it was given: without --ipv6 it would leave the IPv6 address the
    // server hands every endpoint of a dual-stack network unconfigured.
    if (net.subnet6 !== undefined && !v6) throw new Error(dualStackRefusal(tenant, net.name, net.subnet6));
    if (v6 && net.subnet6 === undefined) throw new Error(`--ipv6: network ${tenant}/${net.name} has no IPv6 subnet (subnet6); create the Docker network without --ipv6`);
    if (!v4) throw new BadRequest('IPv4Data: empty; every Weft network has an IPv4 subnet (Docker\'s --ipv4=false is not supported)');
    // The IPAM driver answers a pool's gateway request with its first address when the network is not yet
    // known (Docker only records it: a container's gateway comes from Join); any other is a --gateway given.
    const first = net.subnet === undefined ? undefined : parseIp(dockerAddress(firstHost(net.subnet), 'subnet', false));
    if (gw4 !== undefined && net.gateway !== undefined && parseIp(gw4) !== parseIp(net.gateway) && parseIp(gw4) !== first) {
      throw new Error(`--gateway ${gw4} conflicts with network ${tenant}/${net.name} (gateway ${net.gateway})`);
    }
    const gw6 = v6?.Gateway ? v6.Gateway.split('/')[0] as string : undefined;
    const first6 = net.subnet6 === undefined ? undefined : parseIp6(dockerAddress(firstHost(net.subnet6, true), 'subnet6', true));
    if (gw6 !== undefined && net.gateway6 !== undefined && parseIp6(gw6) !== parseIp6(net.gateway6) && parseIp6(gw6) !== first6) {
      throw new Error(`--gateway ${gw6} conflicts with network ${tenant}/${net.name} (gateway6 ${net.gateway6})`);
    }
    // Docker moves a veth into the container itself; a macvlan child it cannot be given that way.
    if (net.encap === 'macvlan') throw new Error(`network ${tenant}/${net.name} is a macvlan network: Docker containers join it with \`weft attach CONTAINER --network ${net.name}\` (or Docker's own macvlan driver), not through this plugin`);
    const pool6 = v6 ? this.claimPool(v6.Pool, tenant, net.name, true) : undefined;
    // Without its pool the network would be made, but no container could get an IPv6 address on it.
    if (v6 && !pool6) throw new Error(`the IPv6 pool Docker asked weft for (${v6.Pool}) is not pending here (was the agent restarted meanwhile?): create the Docker network again`);
    const pool = this.claimPool(v4.Pool, tenant, net.name);
    const made = await this.d.client.request<DockerNetwork>('POST', `/api/v1/tenants/${tenant}/docker-networks`, {
      name: r.NetworkID.slice(0, 63), network: net.name, ...(group ? { group: group.name } : {}), host: this.d.host, ...(pool ? { pool } : {}),
      ...(pool6 ? { pool6 } : {}),
    });
    this.d.state.putDockerNetwork(made);
  }

  /** The tenant, network name and group that `-o tenant= -o network= -o group=` name. */
  private async target(opts: Record<string, string>): Promise<{ tenant: string; networkName: string; group: Group | undefined }> {
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
    return { tenant, networkName, group };
  }

  /** The Weft network, created with `--subnet` (both, with `--ipv6`) when it does not exist and the agent may create networks. */
  private async weftNetwork(tenant: string, networkName: string, v4: IpamData | undefined, v6: IpamData | undefined): Promise<Network> {
    const subnet = v4 && v4.Pool !== ANY ? v4.Pool : undefined;
    try {
      const net = await this.d.client.request<Network>('GET', `/api/v1/tenants/${tenant}/networks/${networkName}`);
      if (net.subnet === undefined) throw new Error(`network ${tenant}/${networkName} is IPv6-only (no subnet): Docker networks need an IPv4 subnet on the Weft network; ${net.encap === 'macvlan' ? `Docker containers join it with \`weft attach CONTAINER${tenant === 'default' ? '' : ` --tenant ${tenant}`} --network ${networkName}\`` : 'use podman or another CNI runtime for it'}`);
      if (subnet && subnet !== net.subnet) throw new Error(`--subnet ${subnet} conflicts with network ${tenant}/${networkName} (${net.subnet})`);
      if (v6 && net.subnet6 !== undefined && canonical6(v6.Pool, 'IPv6Data.0.Pool') !== canonical6(net.subnet6)) throw new Error(`--subnet ${v6.Pool} conflicts with network ${tenant}/${networkName} (subnet6 ${net.subnet6})`);
      return net;
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 404)) throw e;
      if (!subnet) throw new Error(`network ${tenant}/${networkName} does not exist; give --subnet to create it`);
      if (!this.d.creator) {
        throw new Error(`network ${tenant}/${networkName} does not exist: create it with \`weft net create -t ${tenant} -s ${subnet} ${networkName}\`, or give the agent --docker-token-file (a user's token) so Docker may create Weft networks; a host certificate may not`);
      }
      const gateway = v4?.Gateway && v4.Gateway !== ANY ? v4.Gateway.split('/')[0] : undefined;
      const gateway6 = v6?.Gateway ? v6.Gateway.split('/')[0] : undefined;
      const net = await this.d.creator.request<Network>('POST', `/api/v1/tenants/${tenant}/networks`, {
        name: networkName, subnet, ...(gateway ? { gateway } : {}), ...(v6 ? { subnet6: v6.Pool, ...(gateway6 ? { gateway6 } : {}) } : {}),
      });
      this.d.log.info({ tenant, network: networkName, subnet, ...(v6 ? { subnet6: v6.Pool } : {}) }, 'created a network for Docker');
      return net;
    }
  }

  async deleteNetwork(networkId: string): Promise<void> {
    const n = this.m.ofNetwork(networkId);
    if (!n) return;
    try {
      await this.d.client.request('DELETE', `/api/v1/tenants/${n.tenant}/docker-networks/${n.name}`);
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 404)) throw e;
    }
    this.d.state.dropDockerNetwork(n.tenant, n.name);
  }

  async createEndpoint(r: CreateEndpoint): Promise<{ Interface?: { MacAddress: string } }> {
    const n = this.m.byId(r.NetworkID);
    const address = r.Interface?.Address ?? '';
    if (!address) throw new BadRequest('Interface.Address: missing (create the network with --ipam-driver weft)');
    const ip = dockerAddress(address, 'Interface.Address', false);
    const ip6 = r.Interface?.AddressIPv6 ? dockerAddress(r.Interface.AddressIPv6, 'Interface.AddressIPv6', true) : undefined;
    const id = endpointId(r.EndpointID, IFNAME);
    // Counted as work from start to answer, as a CNI ADD is: no idle collection in the middle of it.
    return this.d.reconciler.working(() => this.d.endpoints.with(id, async () => {
      // The addresses reserved at RequestAddress pass to the endpoint in one step: never free between
      // (the server checks that an IPv6 address given is the reservation's).
      const placeholder = this.m.placeholder(n, ip);
      if (ip6 === undefined && (this.d.state.networks.get(`${n.tenant}/${n.network}`)?.subnet6 ?? placeholder?.ip6) !== undefined) throw new BadRequest('Interface.AddressIPv6: missing on a dual-stack network (created without --ipv6, or IPv6 disabled for this endpoint: weft would leave its IPv6 address unconfigured)');
      const mac = r.Interface?.MacAddress || undefined;
      if (mac !== undefined && !MAC.test(mac.toLowerCase())) throw new BadRequest(`Interface.MacAddress: '${mac.slice(0, 64)}' is not a MAC address (aa:bb:cc:dd:ee:ff)`);
      const ep = await this.d.client.request<Endpoint>('POST', '/api/v1/endpoints', {
        tenant: n.tenant, network: n.network, ...(n.group ? { group: n.group } : {}), containerId: r.EndpointID, host: this.d.host,
        ifname: IFNAME, ip, ...(ip6 !== undefined ? { ip6 } : {}), ...(mac ? { mac: mac.toLowerCase() } : {}), labels: { runtime: 'docker' }, ...(placeholder ? { replaces: placeholder.id } : {}),
      });
      if (placeholder) this.d.state.dropEndpoint(placeholder.id);
      this.d.state.putEndpoint(ep);
      // Policy for the new address is in place before Docker can use it (fail closed).
      await this.d.reconciler.ensureTenant(n.tenant, true);
      return mac ? {} : { Interface: { MacAddress: ep.mac } };
    }));
  }

  async join(r: Join): Promise<JoinResult> {
    const n = this.m.byId(r.NetworkID);
    const id = endpointId(r.EndpointID, IFNAME);
    return this.d.reconciler.working(() => this.d.endpoints.with(id, async () => {
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
      // Docker networks are bound to Weft networks with an IPv4 subnet (weftNetwork): the endpoint has a gateway.
      return { InterfaceName: { SrcName: outer, DstPrefix: 'eth' }, Gateway: ep.gateway ?? '', ...(ep.gateway6 !== undefined ? { GatewayIPv6: ep.gateway6 } : {}), StaticRoutes: [], DisableGatewayService: true };
    }));
  }

  /**
   * Docker lists the container on the network only once it has started, after Join returns: ask a few
   * times, in the background, and record its name on the endpoint (for `weft endpoint ls` and DNS) and
   * its labels (`docker run --label`: what NetworkPolicy and service selectors match; `namespace` too).
   */
  private async nameEndpoint(networkId: string, dockerEndpoint: string, id: string): Promise<void> {
    if (!this.d.dockerApi) return;
    for (let i = 0; i < 20; i++) {
      await new Promise((r) => setTimeout(r, 100 + i * 100));
      if (!this.d.state.endpoints.has(id)) return;
      try {
        const c = await containerOfEndpoint(this.d.dockerApi, networkId, dockerEndpoint);
        if (!c) continue;
        const labels = podLabels(await labelsOfContainer(this.d.dockerApi, c.id));
        const ep = await this.d.client.request<Endpoint>('PATCH', `/api/v1/endpoints/${id}`, { containerName: c.name.replace(/^\//, ''), ...(Object.keys(labels).length ? { labels } : {}) });
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
    const bindings = portMapOf(r.Options);
    if (bindings.length === 0) return;
    const id = endpointId(r.EndpointID, IFNAME);
    await this.d.endpoints.with(id, async () => {
      // A port bound in one family (-p 0.0.0.0:… or -p [::]:…) of an endpoint that has the other too would
      // be published in both: refused, not widened.
      const known = this.d.state.endpoints.get(id) ?? await this.d.client.request<Endpoint>('GET', `/api/v1/endpoints/${id}`);
      for (const b of bindings) {
        const other = b.family === 4 ? known.ip6 : b.family === 6 ? known.ip : undefined;
        if (other === undefined) continue;
        throw new BadRequest(`Options.com.docker.network.portmap: ${b.family === 4 ? '0.0.0.0' : '[::]'}:${b.hostPort} asks for IPv${b.family} only, but weft publishes a port on every address family of the endpoint (it has ${other} too); leave the address out (-p ${b.hostPort}:${b.containerPort})`);
      }
      const ports = bindings.map(({ family: _family, ...port }) => port);
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
   * is done, the collector finds the endpoint gone from Docker and releases it.
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
}

const LABEL_KEY = new RegExp(LABEL_KEY_PATTERN);
const LABEL_VALUE = new RegExp(LABEL_VALUE_PATTERN);
const NAMESPACE = new RegExp(NAME_PATTERN);

/**
 * The labels of a Docker container that an endpoint can carry: Docker allows any text (`com.example.vendor=
 * ACME Inc`), an endpoint only label keys and values (those that are not are left out, not refused: the
 * container is running), none of the fixed ones but the namespace (FIXED_LABELS: the agent's and the
 * server's word), a `namespace` only when it is a namespace name, at most 64.
 */
export function podLabels(labels: Record<string, string>): Record<string, string> {
  const fit = Object.entries(labels).filter(([k, v]) => LABEL_KEY.test(k) && LABEL_VALUE.test(v) && (k === 'namespace' ? NAMESPACE.test(v) : !FIXED_LABELS.includes(k)));
  return Object.fromEntries(fit.sort(([a], [b]) => (a < b ? -1 : 1)).slice(0, 64));
}

const MAC = new RegExp(MAC_PATTERN);

/** Docker's `ADDRESS/PREFIX` (or a bare address), checked: the address alone, or a 400 naming the field. */
export function dockerAddress(text: string, field: string, v6: boolean): string {
  const m = /^([^/]+)(?:\/([0-9]{1,3}))?$/.exec(text);
  const addr = m?.[1] ?? '';
  const valid = m !== null && (v6 ? parseIp6(addr) !== undefined : parseIp(addr) !== undefined) && (m[2] === undefined || Number(m[2]) <= (v6 ? 128 : 32));
  if (!valid) throw new BadRequest(`${field}: '${text.slice(0, 64)}' is not an IPv${v6 ? 6 : 4} address (ADDRESS/PREFIX)`);
  return addr;
}
