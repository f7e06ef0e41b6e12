import type { Logger } from 'pino';
import type { Client } from '../../client/index.js';
import type { Datapath } from '../../datapath/index.js';
import { NAME_PATTERN, RESERVATION_PREFIX, formatIp6, parseCidr6, type DockerNetwork, type Endpoint, type Network } from '../../model/index.js';
import { BadRequest } from '../../plugins/docker/index.js';
import type { Endpoints } from '../endpoints.js';
import type { Reconciler } from '../reconciler.js';
import type { DesiredState } from '../state.js';

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

export const ANY = '0.0.0.0/0';
export const OPTIONS = ['tenant', 'network', 'group'];
/** Docker's endpoints are Weft endpoints keyed by Docker's endpoint ID and this interface name. */
export const IFNAME = 'eth0';

/**
 * What the IPAM driver, the network driver and the collector share: this host's Docker networks as the
 * server stores them (`docker-networks` objects), looked up by Docker's network ID or IPAM pool ID.
 */
export class DockerMappings {
  constructor(private readonly d: Pick<DockerDeps, 'state' | 'host'>) {}

  mine(): DockerNetwork[] {
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

  /** The mapping of a Docker network ID, if there is one. */
  ofNetwork(networkId: string): DockerNetwork | undefined {
    return this.mapping((x) => x.name === networkId.slice(0, 63), `Docker network ${networkId.slice(0, 12)}`);
  }

  byId(networkId: string): DockerNetwork {
    const n = this.ofNetwork(networkId);
    if (!n) throw new Error(`Docker network ${networkId.slice(0, 12)} is not a Weft network on this host`);
    return n;
  }

  /** The mapping whose IPv4 or IPv6 pool this is (`pool6` says which). */
  byPool(poolId: string): DockerNetwork | undefined {
    return this.mapping((n) => n.pool === poolId || n.pool6 === poolId, `pool ${poolId}`);
  }

  network(n: { tenant: string; network: string }): Network {
    const net = this.d.state.networks.get(`${n.tenant}/${n.network}`);
    if (!net) throw new Error(`network ${n.tenant}/${n.network} is not known to this agent yet; try again`);
    return net;
  }

  /** The address reservation RequestAddress made for `ip` on this network, before CreateEndpoint claimed it. */
  placeholder(n: DockerNetwork, ip: string): Endpoint | undefined {
    return this.placeholders(n).find((e) => e.ip === ip);
  }

  private placeholders(n: DockerNetwork): Endpoint[] {
    return [...this.d.state.endpoints.values()].filter((e) => e.host === this.d.host && e.tenant === n.tenant && e.network === n.network && e.containerId.startsWith(RESERVATION_PREFIX));
  }
}

const NAME = new RegExp(NAME_PATTERN);

/** tenant=, network=, group= must be Weft names (they go into API paths); other keys pass as they are. */
export function namesIn(opts: Record<string, string>, flag: string): Record<string, string> {
  for (const k of OPTIONS) {
    const v = opts[k];
    if (v !== undefined && !NAME.test(v)) throw new BadRequest(`${flag} ${k}: '${v}' is not a Weft name (lower-case letters, digits and inner dashes, at most 63)`);
  }
  return opts;
}

/** An IPv6 CIDR in RFC 5952's text (Docker and users spell IPv6 pools many ways). */
export function canonical6(cidr: string, field = 'Pool'): string {
  const c = parseCidr6(cidr, field, false);
  return `${formatIp6(c.base)}/${c.prefix}`;
}
