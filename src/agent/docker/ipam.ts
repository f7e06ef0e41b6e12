import { randomBytes } from 'node:crypto';
import { formatIp, formatIp6, parseCidr, parseCidr6, parseIp6, type DockerNetwork, type Endpoint, type Network } from '../../model/index.js';
import { BadRequest, type ReleaseAddress, type RequestAddress, type RequestPool } from '../../plugins/docker/index.js';
import { ANY, IFNAME, namesIn, type DockerDeps, type DockerMappings } from './mappings.js';

const GATEWAY_REQUEST = 'com.docker.network.gateway';
/** Where Docker puts the endpoint's MAC in RequestAddress's options (the plugin says `RequiresMACAddress`). */
export const MAC_OPTION = 'com.docker.network.endpoint.macaddress';

/**
 * Docker's IPAM driver. Docker asks IPAM for a pool before it tells the network driver which Weft
 * network the Docker network is (`-o tenant=… -o network=…`), so a pool is held as pending until
 * CreateNetwork claims it (`claimPool`). An address is reserved at RequestAddress as a placeholder
 * endpoint, which the network driver turns into the real endpoint at CreateEndpoint.
 *
 * IPv6 (`docker network create --ipv6` on a dual-stack network): the server hands out an endpoint's two
 * addresses together, so the IPv4 request reserves both, and the IPv6 request that follows answers the
 * IPv6 address of the reservation with the same MAC (Docker generates the MAC before asking IPAM and
 * passes it to both requests): pairs are exact however many containers start at once.
 */
export class DockerIpam {
  /** Pools handed out but not yet claimed by a network, oldest first. */
  private readonly pending = new Map<string, { pool: string; v6: boolean; tenant?: string; network?: string }>();

  constructor(private readonly d: DockerDeps, private readonly m: DockerMappings) {}

  async requestPool(r: RequestPool): Promise<{ PoolID: string; Pool: string; Data: Record<string, string> }> {
    if (r.SubPool && !r.Pool) throw new BadRequest('SubPool: needs a Pool');
    if (r.V6 && r.SubPool) throw new Error(`--ip-range ${r.SubPool}: an IPv6 range is set on the Weft network (ipRange6), not by Docker`);
    const o = namesIn(r.Options ?? {}, '--ipam-opt');
    // IPv6 text has many spellings: the pool is kept (and answered) in one, RFC 5952's, which Docker's
    // CreateNetwork then repeats.
    let pool = r.V6 && r.Pool ? canonical6(r.Pool) : r.Pool;
    // With --ipam-opt tenant=… network=… the pool is known now; otherwise CreateNetwork says which it is.
    if (o['network']) {
      const net = await this.d.client.request<Network>('GET', `/api/v1/tenants/${o['tenant'] ?? 'default'}/networks/${o['network']}`);
      const own = r.V6 ? net.subnet6 : net.subnet;
      if (own === undefined) throw new Error(`--ipv6: network ${net.tenant}/${net.name} has no IPv6 subnet (subnet6); create the Docker network without --ipv6`);
      if (pool && !samePool(pool, own, r.V6)) throw new Error(`--subnet ${r.Pool} conflicts with network ${net.tenant}/${net.name} (${own})`);
      pool = r.V6 ? canonical6(own) : own;
    }
    if (r.V6 && !pool) throw new Error('--ipv6: give the Weft network\'s IPv6 subnet as a second --subnet, or name the network with --ipam-opt network=NAME (weft does not pick an IPv6 subnet)');
    const id = `weft${r.V6 ? '6' : ''}-${randomBytes(8).toString('hex')}`;
    this.pending.set(id, { pool: pool || ANY, v6: r.V6, ...(o['network'] ? { tenant: o['tenant'] ?? 'default', network: o['network'] } : {}) });
    return { PoolID: id, Pool: pool || ANY, Data: {} };
  }

  async releasePool(poolId: string): Promise<void> {
    this.pending.delete(poolId);
  }

  /** The pending pool (of a family) Docker asked for this network: one named for it, else the oldest with the same CIDR. */
  claimPool(cidr: string, tenant: string, network: string, v6 = false): string | undefined {
    let pick: string | undefined;
    const want = v6 ? canonical6(cidr) : cidr;
    for (const [id, p] of this.pending) {
      if (p.v6 !== v6) continue;
      if (p.network !== undefined && p.tenant === tenant && p.network === network) { pick = id; break; }
      if (pick === undefined && p.network === undefined && p.pool === want) pick = id;
    }
    if (pick) this.pending.delete(pick);
    return pick;
  }

  async requestAddress(r: RequestAddress): Promise<{ Address: string; Data: Record<string, string> }> {
    const bound = this.m.byPool(r.PoolID);
    const v6 = bound ? bound.pool6 === r.PoolID : this.pending.get(r.PoolID)?.v6 === true;
    if (r.Options?.['RequestAddressType'] === GATEWAY_REQUEST) {
      if (bound) {
        const net = this.m.network(bound);
        return { Address: v6 ? `${net.gateway6}/${prefixOf(net.subnet6 as string, true)}` : `${net.gateway}/${prefixOf(net.subnet)}`, Data: {} };
      }
      const p = this.pending.get(r.PoolID);
      if (!p) throw new Error(`pool ${r.PoolID} is unknown to weft`);
      // Informational only: the container's gateway comes from Join.
      if (r.Address) return { Address: `${r.Address}/${prefixOf(p.pool, v6)}`, Data: {} };
      return { Address: p.pool === ANY ? ANY : firstHost(p.pool, v6), Data: {} };
    }
    if (!bound) throw new Error(`pool ${r.PoolID} belongs to no Weft network on this host (use --ipam-driver weft with -d weft)`);
    const mac = r.Options?.[MAC_OPTION]?.toLowerCase();
    if (v6) return this.requestAddress6(bound, r, mac);
    // One reservation per MAC on a network: the IPv6 request finds its reservation by it.
    const twin = mac === undefined ? undefined : this.m.placeholderOfMac(bound, mac);
    if (twin) throw new Error(`MAC ${mac} already has an address reserved on ${bound.tenant}/${bound.network} (${twin.ip}): two containers starting with the same --mac-address?`);
    const ep = await this.d.client.request<Endpoint>('POST', '/api/v1/endpoints', {
      tenant: bound.tenant, network: bound.network, ...(bound.group ? { group: bound.group } : {}),
      containerId: `ipam-${randomBytes(8).toString('hex')}`, host: this.d.host, ifname: IFNAME, ...(r.Address ? { ip: r.Address } : {}),
      ...(mac ? { mac } : {}), labels: { runtime: 'docker' },
    });
    this.d.state.putEndpoint(ep);
    return { Address: `${ep.ip}/${ep.prefixLength}`, Data: {} };
  }

  /** The IPv6 address the endpoint's IPv4 request reserved with it (found by the endpoint's MAC). */
  private async requestAddress6(bound: DockerNetwork, r: RequestAddress, mac: string | undefined): Promise<{ Address: string; Data: Record<string, string> }> {
    if (!mac) throw new BadRequest(`Options.${MAC_OPTION}: missing; weft pairs an endpoint's IPv6 request with its IPv4 one by the MAC address Docker generates (restart dockerd if it activated this plugin before it asked for MACs)`);
    const ph = this.m.placeholderOfMac(bound, mac);
    if (ph?.ip6 === undefined) throw new Error(`no reservation with MAC ${mac} on ${bound.tenant}/${bound.network}: Docker asks for the IPv4 address first, and the network must be dual-stack`);
    if (r.Address && parseIp6(r.Address) !== parseIp6(ph.ip6)) {
      // Docker gives back no address of an endpoint whose IPv6 request failed: the reservation goes here.
      await this.d.endpoints.release(ph);
      throw new Error(`--ip6 ${r.Address}: weft chooses an endpoint's IPv6 address with its IPv4 one (${ph.ip6}); --ip6 is not supported through the plugin`);
    }
    return { Address: `${ph.ip6}/${ph.prefixLength6}`, Data: {} };
  }

  async releaseAddress(r: ReleaseAddress): Promise<void> {
    const bound = this.m.byPool(r.PoolID);
    // An IPv6 address goes with its reservation, which the IPv4 release (or DeleteEndpoint) gives back.
    if (!bound || bound.pool6 === r.PoolID) return;
    const placeholder = this.m.placeholder(bound, r.Address);
    if (placeholder) await this.d.endpoints.release(placeholder);
  }
}

const prefixOf = (cidr: string, v6 = false) => (v6 ? parseCidr6(cidr, 'Pool', false) : parseCidr(cidr, 'Pool', false)).prefix;

/** Two pools of one family name the same addresses (IPv6 text has many spellings). */
function samePool(a: string, b: string, v6: boolean): boolean {
  if (!v6) return a === b;
  const x = parseCidr6(a, 'Pool', false);
  const y = parseCidr6(b, 'Pool', false);
  return x.base === y.base && x.prefix === y.prefix;
}

/** An IPv6 CIDR in RFC 5952's text. */
function canonical6(cidr: string): string {
  const c = parseCidr6(cidr, 'Pool', false);
  return `${formatIp6(c.base)}/${c.prefix}`;
}

function firstHost(cidr: string, v6 = false): string {
  if (v6) {
    const c = parseCidr6(cidr, 'Pool', false);
    return `${formatIp6(c.base + 1n)}/${c.prefix}`;
  }
  const c = parseCidr(cidr, 'Pool', false);
  return `${formatIp(c.base + 1)}/${c.prefix}`;
}
