import { randomBytes } from 'node:crypto';
import { formatIp, parseCidr, type Endpoint, type Network } from '../../model/index.js';
import { BadRequest, type ReleaseAddress, type RequestAddress, type RequestPool } from '../../plugins/docker/index.js';
import { ANY, IFNAME, namesIn, type DockerDeps, type DockerMappings } from './mappings.js';

const GATEWAY_REQUEST = 'com.docker.network.gateway';

/**
 * Docker's IPAM driver. Docker asks IPAM for a pool before it tells the network driver which Weft
 * network the Docker network is (`-o tenant=… -o network=…`), so a pool is held as pending until
 * CreateNetwork claims it (`claimPool`). An address is reserved at RequestAddress as a placeholder
 * endpoint, which the network driver turns into the real endpoint at CreateEndpoint.
 */
export class DockerIpam {
  /** Pools handed out but not yet claimed by a network, oldest first. */
  private readonly pending = new Map<string, { pool: string; tenant?: string; network?: string }>();

  constructor(private readonly d: DockerDeps, private readonly m: DockerMappings) {}

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

  /** The pending pool Docker asked for this network: one named for it, else the oldest with the same CIDR. */
  claimPool(cidr: string, tenant: string, network: string): string | undefined {
    let pick: string | undefined;
    for (const [id, p] of this.pending) {
      if (p.network !== undefined && p.tenant === tenant && p.network === network) { pick = id; break; }
      if (pick === undefined && p.network === undefined && p.pool === cidr) pick = id;
    }
    if (pick) this.pending.delete(pick);
    return pick;
  }

  async requestAddress(r: RequestAddress): Promise<{ Address: string; Data: Record<string, string> }> {
    const bound = this.m.byPool(r.PoolID);
    if (r.Options?.['RequestAddressType'] === GATEWAY_REQUEST) {
      if (bound) {
        const net = this.m.network(bound);
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
    const bound = this.m.byPool(r.PoolID);
    if (!bound) return;
    const placeholder = this.m.placeholder(bound, r.Address);
    if (placeholder) await this.d.endpoints.release(placeholder);
  }
}

const prefixOf = (cidr: string) => parseCidr(cidr, 'Pool', false).prefix;

function firstHost(cidr: string): string {
  const c = parseCidr(cidr, 'Pool', false);
  return `${formatIp(c.base + 1)}/${c.prefix}`;
}
