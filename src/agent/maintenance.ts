import type { Logger } from 'pino';
import { attachmentOf, names, type Datapath } from '../datapath/index.js';
import type { Endpoint } from '../model/index.js';
import type { Endpoints } from './endpoints.js';
import type { Reconciler } from './reconciler.js';
import type { Sealer } from './seal.js';
import type { DesiredState } from './state.js';

export interface MaintenanceDeps {
  host: string;
  state: DesiredState;
  datapath: Datapath;
  reconciler: Reconciler;
  endpoints: Endpoints;
  sealer: Sealer;
  /** An endpoint younger than this is left alone: an ADD may still be wiring it. */
  repairGraceMs: number;
  /** Other collectors run first (Docker's: endpoints Docker no longer has). */
  collectors: Array<(graceMs: number) => Promise<unknown>>;
  log: Logger;
}

/**
 * After each full resync: this host's endpoints whose container is gone are released; those whose veth
 * vanished while the container lives are wired again, the same way ADD wires them, and only if this
 * agent sealed them (an endpoint record written by anyone else is never wired into a container).
 */
export class Maintenance {
  /** Endpoints already reported as not sealed by this agent (said once, not every resync). */
  private readonly unsealedSeen = new Set<string>();

  constructor(private readonly d: MaintenanceDeps) {}

  async run(): Promise<void> {
    for (const collect of this.d.collectors) await collect(this.d.repairGraceMs).catch((e: Error) => this.d.log.warn({ err: e.message }, 'collecting endpoints failed'));
    const now = Date.now();
    const ports = new Map<string, Set<string>>();
    for (const candidate of [...this.d.state.endpoints.values()]) {
      if (candidate.host !== this.d.host || this.d.endpoints.inflight.has(candidate.id) || !candidate.netns) continue;
      if (now - Date.parse(candidate.createdAt) < this.d.repairGraceMs) continue;
      await this.d.endpoints.with(candidate.id, async () => {
        // Re-read under the lock: a DEL may have released it while we waited.
        const ep = this.d.state.endpoints.get(candidate.id);
        if (ep?.netns) await this.keep(ep, ep.netns, ports);
      });
    }
  }

  /**
   * An interface `weft attach` made is not wired again once gone: its namespace's path may name another
   * namespace by now (deleted and made again under the same name), which never asked for it. It is released.
   */
  private async releaseAttached(ep: Endpoint, netns: string): Promise<void> {
    this.d.log.info({ endpoint: ep.id, netns }, 'attached interface gone: releasing its endpoint');
    await this.d.endpoints.release(ep).catch((e: Error) => this.d.log.warn({ err: e.message }, 'release failed'));
  }

  /** A macvlan endpoint's interface is in its container, not the tenant namespace: looked for there. */
  private async keepMacvlan(ep: Endpoint, netns: string): Promise<void> {
    if (await this.d.datapath.containerHas(netns, ep.ifname)) return;
    if (ep.attached !== undefined) return this.releaseAttached(ep, netns);
    const plan = await this.d.reconciler.ensureTenant(ep.tenant, true);
    if (!plan) return;
    this.d.log.info({ endpoint: ep.id }, 'macvlan interface missing: wiring the endpoint again');
    await this.d.datapath.attach(attachmentOf(ep, plan, netns)).catch((e: Error) => this.d.log.warn({ err: e.message }, 'repair failed'));
  }

  private async keep(ep: Endpoint, netns: string, portsByNs: Map<string, Set<string>>): Promise<void> {
    if (!this.d.datapath.containerExists(netns)) {
      this.d.log.info({ endpoint: ep.id, netns }, 'container gone: releasing its endpoint');
      await this.d.endpoints.release(ep).catch((e: Error) => this.d.log.warn({ err: e.message }, 'release failed'));
      return;
    }
    if (!this.d.sealer.verify(ep)) {
      if (!this.unsealedSeen.has(ep.id)) this.d.log.warn({ endpoint: ep.id, netns }, 'endpoint not sealed by this agent (written by someone else): never re-wired');
      this.unsealedSeen.add(ep.id);
      return;
    }
    const ns = this.d.endpoints.tenantNs(ep.tenant);
    if (!ns) return;
    if (this.d.endpoints.macvlan(ep)) return this.keepMacvlan(ep, netns);
    let ports = portsByNs.get(ns);
    // Run right after a full pass, which has just read these links: an exec per tenant saved per resync.
    if (!ports) portsByNs.set(ns, (ports = new Set((await this.d.datapath.ports(ns, { maxAgeMs: 2000 })).keys())));
    if (ports.has(names.endpointVeth(ep.id))) return;
    if (ep.attached !== undefined && !(await this.d.datapath.ports(ns, { maxAgeMs: 0 })).has(names.endpointVeth(ep.id))) return this.releaseAttached(ep, netns);
    // That listing may be up to 2 s old: an ADD that wired this endpoint since (it held this lock until
    // then) would be re-wired over, and its container cut off for a moment (reliability.e2e, "File
    // exists" from the repair). Asked again, fresh, before anything is touched.
    if ((await this.d.datapath.ports(ns, { maxAgeMs: 0 })).has(names.endpointVeth(ep.id))) return;
    const plan = await this.d.reconciler.ensureTenant(ep.tenant, true);
    if (!plan) return;
    this.d.log.info({ endpoint: ep.id }, 'veth missing: wiring the endpoint again');
    await this.d.datapath.attach(attachmentOf(ep, plan, netns)).catch((e: Error) => this.d.log.warn({ err: e.message }, 'repair failed'));
  }
}
