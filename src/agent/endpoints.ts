import type { Logger } from 'pino';
import type { Client } from '../client/index.js';
import { names, type Datapath, type Protected } from '../datapath/index.js';
import type { Endpoint } from '../model/index.js';
import { Mutex } from '../store/index.js';
import type { Reconciler } from './reconciler.js';
import type { Sealer } from './seal.js';
import type { DesiredState } from './state.js';

/**
 * What the CNI host, the Docker driver and maintenance share about this host's endpoints: one lock per
 * endpoint (ADD, DEL and repair of one never overlap), the set being wired right now (never removed as
 * stale, never collected), and the one way an endpoint is released.
 */
export class Endpoints {
  private readonly locks = new Map<string, { m: Mutex; users: number }>();
  /** Endpoints an ADD or DEL is working on now. */
  readonly inflight = new Set<string>();

  constructor(private readonly d: { state: DesiredState; client: Client; datapath: Datapath; reconciler: Reconciler; nsPrefix: string; log: Logger; sealer?: Pick<Sealer, 'verify'> }) {}

  async with<T>(id: string, fn: () => Promise<T>): Promise<T> {
    let l = this.locks.get(id);
    if (!l) this.locks.set(id, (l = { m: new Mutex(), users: 0 }));
    l.users++;
    try {
      return await l.m.run(fn);
    } finally {
      if (--l.users === 0) this.locks.delete(id);
    }
  }

  /** Under the endpoint's lock, marked in flight: the reconciler leaves its veth alone meanwhile. */
  inFlight<T>(id: string, fn: () => Promise<T>): Promise<T> {
    return this.with(id, async () => {
      this.inflight.add(id);
      try {
        return await fn();
      } finally {
        this.inflight.delete(id);
      }
    });
  }

  /**
   * The veths a convergence must not delete as stale: those of endpoints in flight, and of every endpoint
   * the desired state holds when it asks. A pass plans from the state it read, then lists the links: an
   * ADD that recorded its endpoint and wired its veth in between (no longer in flight) would otherwise see
   * its veth deleted (5 of 50 concurrent ADDs in reliability.e2e, twice under load). Built when first
   * asked, which is only for a veth the plan does not want.
   */
  protectedVeths(): Protected {
    let known: Set<string> | undefined;
    const build = () => new Set([...this.inflight, ...this.d.state.endpoints.keys()].map(names.endpointVeth));
    return { has: (veth: string) => (known ??= build()).has(veth) };
  }

  /** Whether the endpoint is on a macvlan network: a child of the parent in its container, no veth. */
  macvlan(ep: Pick<Endpoint, 'tenant' | 'network'>): boolean {
    return this.d.state.networks.get(`${ep.tenant}/${ep.network}`)?.encap === 'macvlan';
  }

  tenantNs(tenant: string): string | undefined {
    const t = this.d.state.tenants.get(tenant);
    return t && names.tenantNs(this.d.nsPrefix, t.id);
  }

  /**
   * Unwires and forgets an endpoint; the server releases its address. Idempotent. `unwireLater`: the veth
   * pair goes after the answer (the kernel takes ~20 ms to delete one). Only for endpoints whose id is
   * never used again (Docker's): a CNI DEL may be followed at once by an ADD of the same container and
   * interface, whose veth has the same name.
   */
  async release(ep: Endpoint, unwireLater = false): Promise<void> {
    const ns = this.tenantNs(ep.tenant);
    const veth = names.endpointVeth(ep.id);
    const dp = this.d.datapath;
    // A macvlan endpoint's interface is in its container: touched only if this agent made the record (its
    // seal), so a record naming some other namespace never gets an interface of that name deleted there.
    const macvlan = this.macvlan(ep);
    if (macvlan && ep.netns && (this.d.sealer?.verify(ep) ?? true)) await dp.unwireMacvlan(ep.netns, ep.ifname, ep.id, ep.mac);
    if (!macvlan && ns && !unwireLater) await dp.unwire(ns, veth);
    if (ns && ep.ip !== undefined) await dp.forgetConnections(ns, ep.ip);
    if (ns && ep.ip6 !== undefined) await dp.forgetConnections(ns, ep.ip6);
    await this.d.client.request('DELETE', `/api/v1/endpoints/${ep.id}`);
    this.d.state.dropEndpoint(ep.id);
    // Policy classes, service backends and DSCP sets may name the address; the watch echo of this delete
    // will not (the state no longer has the endpoint).
    this.d.reconciler.mark(ep.tenant);
    if (!macvlan && ns && unwireLater) void dp.unwire(ns, veth).catch((e: Error) => this.d.log.warn({ err: e.message, endpoint: ep.id }, 'removing a veth failed; the next resync removes it'));
    if (ep.portMappings?.length) {
      await this.d.reconciler.ensureTenant(ep.tenant);
      await this.d.reconciler.ensureHostNow();
    }
  }
}
