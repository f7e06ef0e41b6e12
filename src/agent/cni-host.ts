import type { Logger } from 'pino';
import { ApiError, type Client } from '../client/index.js';
import { attachmentOf, names, type Datapath, type TenantPlan } from '../datapath/index.js';
import { dnsDomain } from '../dns/index.js';
import { CNI_NETWORK_MAX, WeftError, endpointId, type Endpoint } from '../model/index.js';
import { CniError, addressMismatch, type AddRequest, type AddResultInput, type CniHost, type Scope } from '../plugins/cni/index.js';
import type { Endpoints } from './endpoints.js';
import type { Reconciler } from './reconciler.js';
import type { Sealer } from './seal.js';
import type { DesiredState } from './state.js';

export interface CniDeps {
  host: string;
  state: DesiredState;
  client: Client;
  datapath: Datapath;
  reconciler: Reconciler;
  endpoints: Endpoints;
  sealer: Sealer;
  /** Whether the agent has loaded the desired state (STATUS). */
  synced: () => boolean;
  log: Logger;
}

/**
 * The plugin's verbs on this host (the `CniHost` of plugins/cni). ADD, top to bottom: allocate on the
 * server, converge the tenant with the new endpoint's policy in place (fail closed), wire the container,
 * shape it, publish its ports, answer; a failure anywhere releases what was made.
 */
export class CniEndpoints implements CniHost {
  constructor(private readonly d: CniDeps) {}

  add(req: AddRequest): Promise<AddResultInput> {
    const id = endpointId(req.containerId, req.ifname);
    // Counted as work from start to answer: no idle collection in the middle of an ADD's wiring.
    return this.d.reconciler.working(() => this.d.endpoints.inFlight(id, async () => {
      let ep: Endpoint | undefined;
      const took = stopwatch();
      try {
        ep = await this.allocate(req, id);
        this.d.state.putEndpoint(ep);
        took('allocated');
        // The new port's admission (anti-spoofing) runs beside the wiring; the container's interface comes
        // up only when it is done.
        const plan = await this.d.reconciler.ensureTenant(ep.tenant, true, { deferAdmit: true });
        if (!plan) throw new CniError(7, `tenant ${ep.tenant} is not known to this agent yet; try again`);
        took('tenant');
        await this.wire(ep, plan, req);
        took('wired');
        const qos = plan.qos.find((q) => q.endpoint === ep?.id);
        if (qos) await this.d.datapath.shape(plan.ns, qos);
        if (ep.portMappings?.length) await this.d.reconciler.ensureHostNow();
        this.d.log.debug({ endpoint: id, ms: took('ports') }, 'ADD done');
        return resultOf(ep, plan, req);
      } catch (e) {
        if (ep) await this.d.endpoints.release(ep).catch((x: Error) => this.d.log.warn({ err: x.message, endpoint: id }, 'cleanup after a failed ADD failed'));
        throw e;
      }
    }));
  }

  /**
   * The server allocates; a leftover endpoint with the same id on this host (an ADD cut short, a missed DEL)
   * is released and made anew. One on another host is that host's container: refused, nothing released.
   */
  private async allocate(req: AddRequest, id: string): Promise<Endpoint> {
    const body = {
      tenant: req.tenant, network: req.network, ...(req.group ? { group: req.group } : {}), containerId: req.containerId,
      host: this.d.host, ifname: req.ifname, netns: req.netns, labels: cniLabels(req.labels),
      seal: this.d.sealer.seal({ id, tenant: req.tenant, network: req.network, ifname: req.ifname, netns: req.netns }),
      ...(req.containerName ? { containerName: req.containerName } : {}), ...(req.cniNetwork && req.cniNetwork.length <= CNI_NETWORK_MAX ? { cniNetwork: req.cniNetwork } : {}), ...(req.ip ? { ip: req.ip } : {}), ...(req.ip6 ? { ip6: req.ip6 } : {}), ...(req.mac ? { mac: req.mac } : {}),
      ...(req.portMappings.length ? { portMappings: req.portMappings } : {}),
      ...(req.attached ? { attached: req.attached } : {}),
    };
    try {
      return await this.post(body);
    } catch (e) {
      if (!(e instanceof ApiError && e.code === 'WEFT_EXISTS')) throw e;
      const old = await this.d.client.request<Endpoint>('GET', `/api/v1/endpoints/${id}`);
      if (old.host !== this.d.host) {
        throw new CniError(7, `endpoint ${id} (container ${req.containerId}, interface ${req.ifname}) already exists on host ${old.host}, not on this host ${this.d.host}; nothing was released`);
      }
      // A runtime's interface and one `weft attach` made are never taken over by the other (a runtime's
      // eth1 over an attached one, or an attach over a runtime's endpoint whose veth is being repaired).
      if ((old.attached !== undefined) !== (req.attached !== undefined)) {
        const whose = old.attached ? 'was made by weft attach (weft detach removes it)' : "is the container runtime's";
        throw new WeftError('WEFT_EXISTS', `ifname: interface ${req.ifname} of container ${req.containerId} ${whose}; nothing was released`, { field: 'ifname' });
      }
      await this.d.endpoints.release(old);
      return this.post(body);
    }
  }

  /**
   * A server older than the agent (servers and agents upgraded one by one) does not know `cniNetwork`
   * and refuses the field: the endpoint is made without it (left out of GC, as one made before it was).
   */
  private async post(body: { cniNetwork?: string }): Promise<Endpoint> {
    try {
      return await this.d.client.request<Endpoint>('POST', '/api/v1/endpoints', body);
    } catch (e) {
      if (!(e instanceof ApiError && e.code === 'WEFT_UNKNOWN_FIELD' && e.field === 'cniNetwork' && body.cniNetwork !== undefined)) throw e;
      const { cniNetwork: _, ...older } = body;
      return this.d.client.request<Endpoint>('POST', '/api/v1/endpoints', older);
    }
  }

  /**
   * The fast path trusted the tenant's last convergence; if it drifted since (a deleted bridge) and the
   * container is still bare, the tenant is converged in full and the wiring tried once more.
   */
  private async wire(ep: Endpoint, plan: TenantPlan, req: AddRequest): Promise<void> {
    const a = attachmentOf(ep, plan, req.netns);
    try {
      await this.d.datapath.attach(a, this.d.reconciler.admitted(ep.tenant));
    } catch (first) {
      if (await this.d.datapath.containerHas(req.netns, req.ifname)) throw first;
      await this.d.reconciler.ensureTenant(ep.tenant);
      await this.d.datapath.attach(a);
    }
  }

  del(containerId: string, ifname: string): Promise<void> {
    const id = endpointId(containerId, ifname);
    return this.d.endpoints.inFlight(id, async () => {
      const ep = this.d.state.endpoints.get(id) ?? await this.fetch(id);
      if (ep?.host === this.d.host) return this.d.endpoints.release(ep);
      // Another host's endpoint is its container's, not ours to release: DEL succeeds for what this host
      // holds (a runtime retries a failed DEL for ever). Unknown to the server, or another host's: still
      // remove a veth of that name from any tenant namespace we hold.
      if (ep) this.d.log.warn({ endpoint: id, endpointHost: ep.host }, 'DEL of an endpoint on another host: only this host\'s leftovers are removed');
      for (const t of this.d.state.tenants.values()) await this.d.datapath.unwire(this.d.endpoints.tenantNs(t.name) as string, names.endpointVeth(id));
    });
  }

  private async fetch(id: string): Promise<Endpoint | undefined> {
    try {
      return await this.d.client.request<Endpoint>('GET', `/api/v1/endpoints/${id}`);
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) return undefined;
      throw e;
    }
  }

  async check(containerId: string, ifname: string, netns: string, expected: readonly string[]): Promise<string | undefined> {
    const id = endpointId(containerId, ifname);
    const ep = await this.fetch(id);
    if (!ep) return `endpoint ${id} is unknown to the weft server`;
    const moved = addressMismatch(expected, ep);
    if (moved) return `endpoint ${id}: ${moved}`;
    const ns = this.d.endpoints.tenantNs(ep.tenant);
    if (!ns) return `tenant ${ep.tenant} is not set up on this host`;
    if (!this.d.endpoints.macvlan(ep)) {
      const port = (await this.d.datapath.ports(ns)).get(names.endpointVeth(id));
      if (port?.bridge !== names.bridge(ep.vni)) return `host side ${names.endpointVeth(id)} is not on bridge ${names.bridge(ep.vni)}`;
    }
    return this.d.datapath.checkContainer({ netnsPath: netns, ifname, ...(ep.ip !== undefined && ep.prefixLength !== undefined ? { ip: ep.ip, prefixLength: ep.prefixLength } : {}), ...(ep.ip6 !== undefined && ep.prefixLength6 !== undefined ? { ip6: ep.ip6, prefixLength6: ep.prefixLength6 } : {}) });
  }

  /**
   * Releases this host's endpoints of the scope that the runtime no longer lists; never one in flight, nor
   * one `weft attach` made (no runtime lists those: they go with detach or their namespace).
   */
  async gc(scope: Scope, valid: ReadonlyArray<{ containerID: string; ifname: string }>): Promise<void> {
    const keep = new Set(valid.map((v) => endpointId(v.containerID, v.ifname)));
    for (const ep of [...this.d.state.endpoints.values()]) {
      // An endpoint made before its CNI network was recorded is left to DEL and to maintenance (which
      // releases it once its namespace is gone): its runtime may list it under the other conflist's GC.
      const inScope = ep.netns !== undefined && ep.attached === undefined && ep.host === this.d.host && ep.tenant === scope.tenant && ep.network === scope.network
        && (ep.group ?? '') === (scope.group ?? '') && ep.cniNetwork === scope.cniNetwork;
      if (!inScope || keep.has(ep.id) || this.d.endpoints.inflight.has(ep.id)) continue;
      await this.d.endpoints.with(ep.id, async () => {
        if (this.d.state.endpoints.has(ep.id)) await this.d.endpoints.release(ep);
      });
    }
  }

  async status(): Promise<string | undefined> {
    try {
      await this.d.client.request('GET', '/healthz');
    } catch (e) {
      return `the weft server cannot be reached: ${(e as Error).message}`;
    }
    return this.d.synced() ? undefined : 'the agent has not loaded the desired state yet';
  }
}

/** Milliseconds since it was made, recorded per step: where an ADD's time goes (debug log, docs/benchmarks.md). */
function stopwatch(): (step: string) => Record<string, number> {
  const t0 = performance.now();
  const steps: Record<string, number> = {};
  return (step) => {
    steps[step] = Math.round((performance.now() - t0) * 10) / 10;
    return steps;
  };
}

function resultOf(ep: Endpoint, plan: TenantPlan, req: AddRequest): AddResultInput {
  return {
    hostVeth: names.endpointVeth(ep.id), ifname: req.ifname, mac: ep.mac, mtu: ep.mtu, netns: req.netns,
    ...(ep.ip !== undefined && ep.prefixLength !== undefined && ep.gateway !== undefined ? { ip: ep.ip, prefixLength: ep.prefixLength, gateway: ep.gateway } : {}),
    ...(ep.ip6 !== undefined && ep.prefixLength6 !== undefined && ep.gateway6 !== undefined ? { ip6: ep.ip6, prefixLength6: ep.prefixLength6, gateway6: ep.gateway6 } : {}),
    // A macvlan endpoint's gateway is the segment's router, not the agent: its names would leak there.
    ...(plan.dns && !plan.macvlans.some((m) => m.id === ep.id) ? { dns: { nameservers: [ep.gateway, ep.gateway6].filter((g) => g !== undefined).slice(0, 1), search: [dnsDomain(ep.tenant)] } } : {}),
  };
}

/**
 * A CNI container's labels, without `runtime`: this agent collects endpoints labelled `runtime=docker`
 * when Docker no longer knows them (docker/collector.ts), which a CNI container must never be.
 */
export function cniLabels(labels: Record<string, string>): Record<string, string> {
  const { runtime: _, ...rest } = labels;
  return rest;
}

