import { randomBytes } from 'node:crypto';
import { RESERVATION_PREFIX, WeftError, checkSubnetSpace, formatIp, formatIp6, parseCidr, parseCidr6, parseIp, parseIp6, type DockerNetwork, type Endpoint, type Network } from '../../model/index.js';
import { BadRequest, type ReleaseAddress, type RequestAddress, type RequestPool } from '../../plugins/docker/index.js';
import { ANY, IFNAME, canonical6, namesIn, type DockerDeps, type DockerMappings } from './mappings.js';

const GATEWAY_REQUEST = 'com.docker.network.gateway';
/** How long a reservation waits for its IPv6 request before the network's next IPv4 request goes ahead. */
export const PAIR_MS = 5000;

/**
 * Docker's IPAM driver. Docker asks IPAM for a pool before it tells the network driver which Weft
 * network the Docker network is (`-o tenant=… -o network=…`), so a pool is held as pending until
 * CreateNetwork claims it (`claimPool`). An address is reserved at RequestAddress as a placeholder
 * endpoint, which the network driver turns into the real endpoint at CreateEndpoint.
 *
 * IPv6 (`docker network create --ipv6` on a dual-stack network): the server hands out an endpoint's two
 * addresses together, so the IPv4 request reserves both, and the IPv6 request answers the reservation's
 * IPv6 address. Docker asks for an endpoint's IPv4 address and then its IPv6 one, one endpoint at a
 * time per network (dockerd holds the network's lock across both); the agent keeps that order itself too
 * (for any other client): on a dual-stack network an IPv4 request waits until the last reservation's IPv6
 * address was asked for (or PAIR_MS passed, or it was given back), so the IPv6 request that comes is the
 * awaited reservation's. A pair gone wrong anyway is refused at CreateEndpoint (the server checks it). Pairing by a MAC Docker would generate
 * (`RequiresMACAddress`) was rejected: Docker would then give every container a random MAC instead of the
 * one Weft derives from its address, and a reused address would come with a new MAC.
 */
export class DockerIpam {
  /** Pools handed out but not yet claimed by a network, oldest first. */
  private readonly pending = new Map<string, { pool: string; v6: boolean; tenant?: string; network?: string }>();
  /** Per dual-stack Docker network: the reservation whose IPv6 request is awaited, and how to let the next go. */
  private readonly awaiting = new Map<string, { ph: Endpoint; release: () => void }>();
  /** Per dual-stack Docker network: the end of its queue of IPv4 requests. */
  private readonly queues = new Map<string, Promise<void>>();

  constructor(private readonly d: DockerDeps, private readonly m: DockerMappings) {}

  async requestPool(r: RequestPool): Promise<{ PoolID: string; Pool: string; Data: Record<string, string> }> {
    if (r.SubPool && !r.Pool) throw new BadRequest('SubPool: needs a Pool');
    if (r.V6 && r.SubPool) throw new Error(`--ip-range ${r.SubPool}: an IPv6 range is set on the Weft network (ipRange6), not by Docker`);
    // Docker's --ip-range would be left out silently: the Weft network's own range decides.
    if (r.SubPool) throw new BadRequest(`SubPool: weft does not take --ip-range from Docker (${r.SubPool.slice(0, 64)}); set the Weft network's range (weft net create --ip-range FIRST-LAST)`);
    if (r.Pool) checkPool(r.Pool, r.V6);
    const unknown = Object.keys(r.Options ?? {}).filter((k) => k !== 'tenant' && k !== 'network' && !k.startsWith('com.docker.'));
    if (unknown.length) throw new BadRequest(`Options.${unknown[0]}: unknown (weft takes --ipam-opt tenant= and --ipam-opt network=)`);
    const o = namesIn(r.Options ?? {}, '--ipam-opt');
    // IPv6 text has many spellings: the pool is kept (and answered) in one, RFC 5952's, which Docker's
    // CreateNetwork then repeats.
    let pool = r.V6 && r.Pool ? canonical6(r.Pool) : r.Pool;
    // With --ipam-opt tenant=… network=… the pool is known now; otherwise CreateNetwork says which it is.
    if (o['network']) {
      const net = await this.d.client.request<Network>('GET', `/api/v1/tenants/${o['tenant'] ?? 'default'}/networks/${o['network']}`);
      const own = r.V6 ? net.subnet6 : net.subnet;
      if (own === undefined && r.V6) throw new Error(`--ipv6: network ${net.tenant}/${net.name} has no IPv6 subnet (subnet6); create the Docker network without --ipv6`);
      // Docker asks for an IPv4 pool for every network (IPv6-only Docker networks are not taken yet).
      if (own === undefined) throw new Error(`network ${net.tenant}/${net.name} is IPv6-only (no subnet): Docker networks need an IPv4 subnet on the Weft network; use podman or another CNI runtime for it`);
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
    const known = bound !== undefined || this.pending.has(r.PoolID);
    if (known && r.Address && (v6 ? parseIp6(r.Address) === undefined : parseIp(r.Address) === undefined)) {
      throw new BadRequest(`Address: '${r.Address.slice(0, 64)}' is not an IPv${v6 ? 6 : 4} address`);
    }
    if (r.Options?.['RequestAddressType'] === GATEWAY_REQUEST) {
      if (bound) {
        const net = this.m.network(bound);
        return { Address: v6 ? `${net.gateway6}/${prefixOf(net.subnet6 as string, true)}` : `${net.gateway}/${prefixOf(net.subnet ?? '')}`, Data: {} };
      }
      const p = this.pending.get(r.PoolID);
      if (!p) throw new Error(`pool ${r.PoolID} is unknown to weft`);
      // Informational only: the container's gateway comes from Join.
      if (r.Address) return { Address: `${r.Address}/${prefixOf(p.pool, v6)}`, Data: {} };
      return { Address: p.pool === ANY ? ANY : firstHost(p.pool, v6), Data: {} };
    }
    // Docker asks for --aux-address before the network exists, on the pool it was just given.
    if (!bound && this.pending.has(r.PoolID) && r.Address) {
      throw new BadRequest(`Address: ${r.Address.slice(0, 64)}: weft does not take --aux-address; keep the address out of the Weft network's range instead (weft net create --ip-range FIRST-LAST)`);
    }
    if (!bound) throw new Error(`pool ${r.PoolID} belongs to no Weft network on this host (use --ipam-driver weft with -d weft)`);
    if (v6) return this.requestAddress6(bound, r);
    if (bound.pool6 === undefined) return addressOf(await this.reserve(bound, r));
    // A dual-stack network: one reservation at a time awaits its IPv6 request.
    const release = await this.turn(bound.name);
    try {
      const ph = await this.reserve(bound, r);
      // Past PAIR_MS the next IPv4 request may go, but the reservation stays the awaited one until that
      // request takes its place: a late IPv6 request (the agent's event loop held up) still finds it.
      const timer = setTimeout(release, PAIR_MS);
      this.awaiting.set(bound.name, { ph, release: () => { clearTimeout(timer); release(); } });
      return addressOf(ph);
    } catch (e) {
      release();
      throw e;
    }
  }

  /** Reserves an address (both families on a dual-stack network) as a placeholder endpoint. */
  private async reserve(bound: DockerNetwork, r: RequestAddress): Promise<Endpoint> {
    const ep = await this.d.client.request<Endpoint>('POST', '/api/v1/endpoints', {
      tenant: bound.tenant, network: bound.network, ...(bound.group ? { group: bound.group } : {}),
      containerId: `${RESERVATION_PREFIX}${randomBytes(8).toString('hex')}`, host: this.d.host, ifname: IFNAME, ...(r.Address ? { ip: r.Address } : {}),
      labels: { runtime: 'docker' },
    });
    this.d.state.putEndpoint(ep);
    return ep;
  }

  /** Waits for this network's turn: resolves with the function that ends it (once). */
  private turn(key: string): Promise<() => void> {
    const before = this.queues.get(key) ?? Promise.resolve();
    let end!: () => void;
    const mine = new Promise<void>((r) => (end = r));
    const tail = before.then(() => mine);
    this.queues.set(key, tail);
    let done = false;
    return before.then(() => () => {
      if (done) return;
      done = true;
      end();
      if (this.queues.get(key) === tail) this.queues.delete(key);
    });
  }

  /** The awaited reservation `ph` is paired, given back or timed out: the next IPv4 request may go. */
  private letGo(key: string, ph: Endpoint): void {
    const w = this.awaiting.get(key);
    if (!w || w.ph.id !== ph.id) return;
    this.awaiting.delete(key);
    w.release();
  }

  /** The IPv6 address the endpoint's IPv4 request reserved with it: the reservation awaiting its IPv6 request. */
  private async requestAddress6(bound: DockerNetwork, r: RequestAddress): Promise<{ Address: string; Data: Record<string, string> }> {
    const w = this.awaiting.get(bound.name);
    if (w !== undefined) this.letGo(bound.name, w.ph);
    if (w === undefined || w.ph.ip6 === undefined) throw new Error(`no reservation on ${bound.tenant}/${bound.network} awaits its IPv6 address (Docker asks for an endpoint's IPv4 address, then its IPv6 one: was the agent restarted between them?)`);
    let ph = w.ph;
    if (r.Address && parseIp6(r.Address) !== parseIp6(ph.ip6 as string)) {
      // --ip6: the reservation's IPv6 address moves to the one asked for (one transaction on the server).
      try {
        ph = await this.d.client.request<Endpoint>('PATCH', `/api/v1/endpoints/${ph.id}`, { ip6: r.Address });
        this.d.state.putEndpoint(ph);
      } catch (e) {
        // Docker gives back no address of an endpoint whose IPv6 request failed: the reservation goes here
        // (should that fail too, the collector takes it later; the --ip6 refusal is what the user sees).
        await this.d.endpoints.release(w.ph).catch((x: Error) => this.d.log.warn({ err: x.message, endpoint: w.ph.id }, 'giving back a reservation failed; the collector takes it'));
        throw new Error(`--ip6 ${r.Address}: ${(e as Error).message}`);
      }
    }
    return { Address: `${ph.ip6}/${ph.prefixLength6}`, Data: {} };
  }

  async releaseAddress(r: ReleaseAddress): Promise<void> {
    const bound = this.m.byPool(r.PoolID);
    // An IPv6 address goes with its reservation, which the IPv4 release (or DeleteEndpoint) gives back.
    if (!bound || bound.pool6 === r.PoolID) return;
    const placeholder = this.m.placeholder(bound, r.Address);
    if (!placeholder) return;
    this.letGo(bound.name, placeholder);
    await this.d.endpoints.release(placeholder);
  }
}

const addressOf = (ep: Endpoint) => ({ Address: `${ep.ip}/${ep.prefixLength}`, Data: {} });

const prefixOf = (cidr: string, v6 = false) => (v6 ? parseCidr6(cidr, 'Pool', false) : parseCidr(cidr, 'Pool', false)).prefix;

/** Two pools of one family name the same addresses (IPv6 text has many spellings). */
const samePool = (a: string, b: string, v6: boolean): boolean => (v6 ? canonical6(a) === canonical6(b) : a === b);

/** What this driver answers a gateway request with on a pool no network has bound yet: its first address. */
export function firstHost(cidr: string, v6 = false): string {
  if (v6) {
    const c = parseCidr6(cidr, 'Pool', false);
    return `${formatIp6(c.base + 1n)}/${c.prefix}`;
  }
  const c = parseCidr(cidr, 'Pool', false);
  return `${formatIp(c.base + 1)}/${c.prefix}`;
}

/**
 * A pool Docker asks for (`--subnet`): a CIDR of the family, and for IPv4 with host bits clear and not in
 * one of the ranges no Weft network may take; refused here, naming Pool, rather than kept until
 * CreateNetwork. An IPv6 pool's host bits are masked (canonical6), as before.
 */
function checkPool(pool: string, v6: boolean): void {
  try {
    if (v6) parseCidr6(pool, 'Pool', false);
    else checkSubnetSpace(parseCidr(pool, 'Pool'), 'Pool');
  } catch (e) {
    if (e instanceof WeftError) throw new BadRequest(e.message);
    throw e;
  }
}
