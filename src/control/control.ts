import { notFound } from '../model/index.js';
import type { GroupInput, NetworkInput, NetprofileInput, PolicyInput, ServiceInput, AppProfileInput, DockerNetworkInput, Network, Group, Policy, Netprofile, Service, AppProfile, DockerNetwork, NamespaceInput, NamespaceObject, NetworkPolicyInput, NetworkPolicyObject,
  AdminNetworkPolicyInput, AdminNetworkPolicySpec, AdminPolicyObject, BaselineAdminNetworkPolicyInput, BaselineAdminNetworkPolicySpec } from '../model/index.js';
import type { Store } from '../store/index.js';
import { Crud } from './crud.js';
import { networkKind } from './kinds/network.js';
import { groupKind } from './kinds/group.js';
import { policyKind } from './kinds/policy.js';
import { netprofileKind, appProfileKind } from './kinds/profiles.js';
import { dockerNetworkKind } from './kinds/docker.js';
import { serviceKind } from './kinds/service.js';
import { adminNetworkPolicyKind, baselineAdminNetworkPolicyKind, namespaceKind, networkPolicyKind } from './kinds/netpol.js';
import { Tenants } from './tenants.js';
import { Endpoints } from './endpoints.js';
import { Hosts } from './hosts.js';
import { GlobalSettings } from './global.js';
import { Users } from './users.js';
import { Rules } from './rules.js';
import { migratePolicies } from './policy-store.js';
import { reconcileGroupPools } from './group-pools.js';
import { reconcileHostPorts } from './host-ports.js';
import { HostIdentities, StoreCa, type CaSource } from './identities.js';
import { Quota, type QuotaLimits } from './quota.js';
import { StoreWatch } from './writable.js';
import { Verifier } from './verify.js';
import { applyDocuments, type ApplyDoc, type ApplyOptions, type ApplyOutcome } from './apply.js';

export interface ControlOptions {
  hostTimeoutMs?: number;
  /** A host's agent silent this long loses its endpoints, and another agent instance may take over its name. */
  hostGraceMs?: number;
  /** Lifetime of login tokens; null: they never expire. */
  tokenTtlMs?: number | null;
  /** Weft's own CA in the store by default; a CA brought with --tls-ca otherwise. */
  ca?: CaSource;
  hostCertTtlMs?: number;
  quota?: QuotaLimits;
}

/** The control plane's domain logic over one store; the HTTP server is a thin layer over this. */
export class Control {
  readonly tenants: Tenants;
  readonly networks: Crud<NetworkInput, Network>;
  readonly groups: Crud<GroupInput, Group>;
  readonly policies: Crud<PolicyInput, Policy>;
  readonly rules: Rules;
  readonly netprofiles: Crud<NetprofileInput, Netprofile>;
  readonly services: Crud<ServiceInput, Service>;
  readonly appProfiles: Crud<AppProfileInput, AppProfile>;
  readonly dockerNetworks: Crud<DockerNetworkInput, DockerNetwork>;
  readonly namespaces: Crud<NamespaceInput, NamespaceObject>;
  readonly networkPolicies: Crud<NetworkPolicyInput, NetworkPolicyObject>;
  readonly adminNetworkPolicies: Crud<AdminNetworkPolicyInput, AdminPolicyObject<AdminNetworkPolicySpec>>;
  readonly baselineAdminNetworkPolicies: Crud<BaselineAdminNetworkPolicyInput, AdminPolicyObject<BaselineAdminNetworkPolicySpec>>;
  readonly endpoints: Endpoints;
  readonly hosts: Hosts;
  readonly global: GlobalSettings;
  readonly users: Users;
  readonly identities: HostIdentities;
  readonly ca: CaSource;
  readonly quota: Quota;
  readonly verifier: Verifier;

  /** Since when the store has been writable without a break (from this control plane's start at the earliest). */
  readonly writable: StoreWatch;

  constructor(readonly store: Store, private readonly clock: () => Date = () => new Date(), options: ControlOptions = {}) {
    this.writable = new StoreWatch(store, () => clock().getTime());
    const now = () => clock().toISOString();
    const quota = new Quota(options.quota);
    this.quota = quota;
    this.tenants = new Tenants(store, now, quota);
    this.networks = new Crud(store, networkKind, now, quota);
    this.groups = new Crud(store, groupKind, now, quota);
    this.policies = new Crud(store, policyKind, now, quota);
    this.rules = new Rules(store, this.policies, now, quota);
    this.netprofiles = new Crud(store, netprofileKind, now, quota);
    this.services = new Crud(store, serviceKind, now, quota);
    this.appProfiles = new Crud(store, appProfileKind, now, quota);
    this.dockerNetworks = new Crud(store, dockerNetworkKind, now, quota);
    this.namespaces = new Crud(store, namespaceKind, now, quota);
    this.networkPolicies = new Crud(store, networkPolicyKind, now, quota);
    this.adminNetworkPolicies = new Crud(store, adminNetworkPolicyKind, now, quota);
    this.baselineAdminNetworkPolicies = new Crud(store, baselineAdminNetworkPolicyKind, now, quota);
    this.endpoints = new Endpoints(store, now);
    this.hosts = new Hosts(store, now, options.hostTimeoutMs, options.hostGraceMs);
    this.global = new GlobalSettings(store, now);
    this.users = new Users(store, clock, options.tokenTtlMs === undefined ? {} : { tokenTtlMs: options.tokenTtlMs });
    this.ca = options.ca ?? new StoreCa(store);
    this.identities = new HostIdentities(store, clock, this.ca, options.hostCertTtlMs);
    this.verifier = new Verifier(store, clock);
  }

  /** `weft apply -f` / `weft delete -f`: many documents, one transaction (apply.ts). */
  apply(actor: string, docs: readonly ApplyDoc[], opts: ApplyOptions): Promise<ApplyOutcome> {
    return applyDocuments({ store: this.store, tenants: this.tenants, kinds: this.byKind }, actor, docs, opts);
  }

  /** The tenant-scoped kinds `weft apply` and `weft get` take, by document kind. */
  get byKind() {
    return {
      Namespace: this.namespaces, Netprofile: this.netprofiles, Network: this.networks, Policy: this.policies, Group: this.groups,
      Service: this.services, AppProfile: this.appProfiles, NetworkPolicy: this.networkPolicies,
      AdminNetworkPolicy: this.adminNetworkPolicies, BaselineAdminNetworkPolicy: this.baselineAdminNetworkPolicies,
    };
  }

  /**
   * Releases the endpoints of hosts silent for longer than the grace period (see Hosts.collectSilent).
   * Nothing until the store has been writable, without a break, for a full grace period (StoreWatch): a
   * server just started, or a store that refused writes (full, unreachable), has recorded no heartbeat for
   * that time, and every host would look silent until its agent has had the time to heartbeat again.
   */
  async collectSilentHosts(graceMs: number): Promise<string[]> {
    if ((await this.writable.writableFor()) <= graceMs) return [];
    return this.hosts.collectSilent(graceMs, (id, stillSilent) => this.endpoints.remove('gc', id, stillSilent));
  }

  /**
   * Removes a host from the cluster: its identity first (every certificate of it is refused from this
   * moment), then its endpoints (their addresses go back), then its registration (other hosts drop it
   * from the overlay).
   */
  async forgetHost(actor: string, name: string): Promise<{ endpoints: number }> {
    const hadIdentity = await this.identities.revoke(actor, name);
    const registered = await this.store.get(`hosts/${name}`);
    if (!hadIdentity && !registered) throw notFound(`host ${name}`);
    const eps = (await this.endpoints.list({ host: name })).items;
    for (const e of eps) await this.endpoints.remove(actor, e.id);
    if (registered) await this.hosts.remove(actor, name);
    return { endpoints: eps.length };
  }

  /**
   * Makes a store usable: policies of the old layout migrated (every start; a no-op once done), each
   * network's group pool index checked against its groups (group-pools.ts), every published host port
   * claimed (host-ports.ts: a data dir from before the claims, an older server's endpoints), every token
   * in its user's index (tokens.ts), the
   * `default` tenant, and on first start an admin whose token is returned once.
   */
  async bootstrap(): Promise<{ adminToken: string | undefined; warnings: string[] }> {
    await migratePolicies(this.store);
    await reconcileGroupPools(this.store);
    const ports = await reconcileHostPorts(this.store);
    await this.users.tokens.reindex();
    await this.tenants.ensureDefault();
    const warnings = ports.doubles.map((d) => `published twice (a server of an older version let it happen; remove one): ${d}`);
    return { adminToken: await this.users.bootstrapAdmin(), warnings };
  }
}
