import { GLOBAL_DEFAULTS, type Meta } from '../model/index.js';
import type { AdminNetworkPolicySpec, AdminPolicyObject, BaselineAdminNetworkPolicySpec, ChangeEvent, DockerNetwork, Endpoint, Global, Group, Host, NamespaceObject, Netprofile, Network, NetworkPolicyObject, Policy, Service, Tenant } from '../model/index.js';
import type { DesiredHostState } from '../datapath/index.js';
import { PolicyBook } from './policy-book.js';

/** What a change touches: one tenant, every tenant, or nothing the datapath depends on. */
export type Affected = { tenant: string } | 'all' | 'nothing';

export interface Snapshot {
  revision: number;
  tenants: Tenant[];
  networks: Network[];
  groups: Group[];
  policies: Policy[];
  services: Service[];
  netprofiles: Netprofile[];
  /** Absent from snapshots made before NetworkPolicy (tests, an older server). */
  networkPolicies?: NetworkPolicyObject[];
  namespaces?: NamespaceObject[];
  adminNetworkPolicies?: AdminPolicyObject<AdminNetworkPolicySpec>[];
  baselineAdminNetworkPolicies?: AdminPolicyObject<BaselineAdminNetworkPolicySpec>[];
  dockerNetworks: DockerNetwork[];
  endpoints: Endpoint[];
  hosts: Host[];
  global: Global;
}

/**
 * The agent's copy of the desired state, rebuilt from the server at every (re)list and kept current by
 * the watch. Changes older than what an object already holds are ignored, so replaying a change twice,
 * or out of order after a relist, is harmless.
 */
export class DesiredState {
  readonly tenants = new Map<string, Tenant>();
  readonly networks = new Map<string, Network>();
  readonly groups = new Map<string, Group>();
  /** Policies by tenant/name, kept a rule segment at a time from the watch. */
  readonly policies = new PolicyBook();
  readonly services = new Map<string, Service>();
  readonly netprofiles = new Map<string, Netprofile>();
  /** Kubernetes NetworkPolicies and namespaces' labels, keyed tenant/name. */
  readonly networkPolicies = new Map<string, NetworkPolicyObject>();
  readonly namespaces = new Map<string, NamespaceObject>();
  readonly adminNetworkPolicies = new Map<string, AdminPolicyObject<AdminNetworkPolicySpec>>();
  readonly baselineAdminNetworkPolicies = new Map<string, AdminPolicyObject<BaselineAdminNetworkPolicySpec>>();
  /** Docker networks of every host (keyed tenant/name); the agent's Docker plugin uses its own host's. */
  readonly dockerNetworks = new Map<string, DockerNetwork>();
  readonly hosts = new Map<string, Host>();
  /** The cluster's settings (defaults filled in for fields an older server does not send). */
  global: Omit<Global, keyof Meta> = { ...GLOBAL_DEFAULTS };
  readonly endpoints = new Map<string, Endpoint>();
  revision = 0;

  /** Bumped by every change, including the agent's own writes: caches derived from the state key on it. */
  version = 0;

  replaceAll(s: Snapshot): void {
    const before = new Map(this.tenants);
    this.tenants.clear();
    this.networks.clear();
    this.groups.clear();
    this.policies.clear();
    this.services.clear();
    this.netprofiles.clear();
    this.networkPolicies.clear();
    this.namespaces.clear();
    this.adminNetworkPolicies.clear();
    this.baselineAdminNetworkPolicies.clear();
    this.dockerNetworks.clear();
    this.endpoints.clear();
    this.hosts.clear();
    // As a watch put: a tenant whose object is unusable keeps its last good one (dropping it would have
    // the next full pass remove its namespace).
    for (const t of s.tenants) if (validTenant(t)) this.tenants.set(t.name, t);
    // Only where the listing has no usable object of that name (a valid one, in any place, wins).
    for (const t of s.tenants) {
      const name = (t as Partial<Tenant> | null)?.name;
      const last = typeof name === 'string' && !this.tenants.has(name) ? before.get(name) : undefined;
      if (!validTenant(t) && last) this.tenants.set(last.name, last);
    }
    for (const n of s.networks) this.networks.set(`${n.tenant}/${n.name}`, n);
    for (const g of s.groups) this.groups.set(`${g.tenant}/${g.name}`, g);
    for (const p of s.policies) this.policies.set(p);
    for (const x of s.services) this.services.set(`${x.tenant}/${x.name}`, x);
    for (const x of s.netprofiles) this.netprofiles.set(`${x.tenant}/${x.name}`, x);
    for (const x of s.networkPolicies ?? []) this.networkPolicies.set(`${x.tenant}/${x.name}`, x);
    for (const x of s.namespaces ?? []) this.namespaces.set(`${x.tenant}/${x.name}`, x);
    for (const x of s.adminNetworkPolicies ?? []) this.adminNetworkPolicies.set(`${x.tenant}/${x.name}`, x);
    for (const x of s.baselineAdminNetworkPolicies ?? []) this.baselineAdminNetworkPolicies.set(`${x.tenant}/${x.name}`, x);
    for (const x of s.dockerNetworks) this.dockerNetworks.set(`${x.tenant}/${x.name}`, x);
    for (const e of s.endpoints) this.endpoints.set(e.id, e);
    for (const h of s.hosts) this.hosts.set(h.name, h);
    this.global = { ...GLOBAL_DEFAULTS, ...s.global };
    this.revision = s.revision;
    this.version++;
  }

  /** Applies one watched change and says what it touches. */
  apply(c: ChangeEvent): Affected {
    const scoped = (): Affected => (c.tenant === undefined ? 'all' : { tenant: c.tenant });
    if (c.revision > this.revision) this.revision = c.revision;
    this.version++;
    const name = c.key.slice(c.key.indexOf('/') + 1);
    switch (c.kind) {
      // A tenant object without a usable id would plan a namespace of another name, and the next full
      // pass would remove the tenant's real one (every container of it cut off): the last good one stays.
      case 'tenant': if (c.op === 'put' && !validTenant(c.object, name)) return 'nothing'; upsert(this.tenants, name, c); return scoped();
      case 'network': upsert(this.networks, name, c); return scoped();
      case 'group': upsert(this.groups, name, c); return scoped();
      case 'policy': this.policies.head(c); return scoped();
      // Held until the policy's head, which comes last in the same transaction.
      case 'policy-rules': this.policies.segment(c); return 'nothing';
      case 'service': upsert(this.services, name, c); return scoped();
      case 'netprofile': upsert(this.netprofiles, name, c); return scoped();
      case 'networkpolicy': upsert(this.networkPolicies, name, c); return scoped();
      case 'namespace': upsert(this.namespaces, name, c); return scoped();
      case 'adminnetworkpolicy': upsert(this.adminNetworkPolicies, name, c); return scoped();
      case 'baselineadminnetworkpolicy': upsert(this.baselineAdminNetworkPolicies, name, c); return scoped();
      case 'docker-network': upsert(this.dockerNetworks, name, c); return 'nothing';
      case 'endpoint': {
        // A container's name arriving after its endpoint (Docker) changes DNS answers, not the datapath.
        const before = this.endpoints.get(name);
        // The echo of the agent's own write (it converged the datapath when it wrote it), or of its own
        // release of an endpoint (which marks the tenant itself).
        if (c.op === 'put' && before && before.revision === c.revision) return 'nothing';
        if (c.op === 'delete' && !before) return 'nothing';
        upsert(this.endpoints, name, c);
        const after = this.endpoints.get(name);
        return before && after && datapathOf(before) === datapathOf(after) ? 'nothing' : scoped();
      }
      case 'global': this.global = { ...GLOBAL_DEFAULTS, ...(c.object as Global | undefined) }; return 'all';
      case 'host': {
        // A host's addresses and key matter to every tenant's overlay and to the tunnel, but a heartbeat
        // changes nothing there.
        const before = this.hosts.get(name);
        upsert(this.hosts, name, c);
        const after = this.hosts.get(name);
        return c.op === 'put' && before && after && tunnelOf(before) === tunnelOf(after) ? 'nothing' : 'all';
      }
      default: return 'nothing';
    }
  }

  /** Records an object the agent itself just wrote, before the watch delivers it. */
  putEndpoint(e: Endpoint): void {
    this.endpoints.set(e.id, e);
    this.version++;
  }

  putDockerNetwork(d: DockerNetwork): void {
    this.dockerNetworks.set(`${d.tenant}/${d.name}`, d);
  }

  dropDockerNetwork(tenant: string, name: string): void {
    this.dockerNetworks.delete(`${tenant}/${name}`);
  }

  dropEndpoint(id: string): void {
    this.endpoints.delete(id);
    this.version++;
  }

  private lastView: { key: string; version: number; view: DesiredHostState } | undefined;

  /**
   * The state as the planner takes it. The same object (the same arrays) until the state changes: a full
   * pass plans each tenant from a view, and copying every map for each of them was O(tenants × state);
   * the planner also indexes a view's endpoints once (plan.ts). Shared: read it, never change it.
   */
  hostView(host: string, nsPrefix: string, vtep?: string): DesiredHostState {
    const key = JSON.stringify([host, nsPrefix, vtep ?? null]);
    if (this.lastView?.version === this.version && this.lastView.key === key) return this.lastView.view;
    const view = this.makeView(host, nsPrefix, vtep);
    this.lastView = { key, version: this.version, view };
    return view;
  }

  private makeView(host: string, nsPrefix: string, vtep?: string): DesiredHostState {
    return {
      hosts: [...this.hosts.values()], ...(vtep ? { vtep } : {}), arpMode: this.global.arpMode,
      encryption: this.global.encryption, tunnelRange: this.global.tunnelRange, underlayMtu: this.global.mtu,
      host, nsPrefix, tenants: [...this.tenants.values()], networks: [...this.networks.values()], endpoints: [...this.endpoints.values()],
      groups: [...this.groups.values()], policies: this.policies.values(),
      services: [...this.services.values()], netprofiles: [...this.netprofiles.values()],
      networkPolicies: [...this.networkPolicies.values()], namespaces: [...this.namespaces.values()],
      adminNetworkPolicies: [...this.adminNetworkPolicies.values()], baselineAdminNetworkPolicies: [...this.baselineAdminNetworkPolicies.values()],
    };
  }
}

function upsert<T extends { revision: number }>(map: Map<string, T>, key: string, c: ChangeEvent): void {
  const cur = map.get(key);
  if (cur && cur.revision > c.revision) return;
  if (c.op === 'delete') map.delete(key);
  else map.set(key, { ...(c.object as T), revision: c.revision });
}

/** A tenant object the planner can name a namespace from: a name (the key's, when given) and a whole-number id. */
function validTenant(o: unknown, key?: string): o is Tenant {
  const t = o as Partial<Tenant> | null | undefined;
  return typeof t === 'object' && t !== null && typeof t.name === 'string' && (key === undefined || t.name === key) && Number.isSafeInteger(t.id) && (t.id as number) >= 0;
}

/** A host's fields that overlays, routes and the tunnel depend on (a rotation request: the agent rotates its key). */
function tunnelOf(h: Host): string {
  return JSON.stringify([h.vtepIp, h.vtepIp6, h.wgPublicKey, h.tunnelIp, h.rotateKey]);
}

/** An endpoint's fields that the datapath (and policy, services, shaping) depends on. */
function datapathOf(e: Endpoint): string {
  const { revision: _r, updatedAt: _u, containerName: _n, ...rest } = e;
  return JSON.stringify(rest);
}
