import type { AdminNetworkPolicySpec, AdminPolicyObject, BaselineAdminNetworkPolicySpec, Endpoint, Group, NamespaceObject, Network, NetworkPolicyObject, Policy, Tenant } from '../model/index.js';
import type { Txn } from '../store/index.js';
import { listIn } from './crud.js';
import { keys, withRevision } from './keys.js';
import { readPolicy } from './policy-store.js';
import { endpointsWhere } from './shared.js';

/** Everything a tenant's policy is decided from, as stored (explain, verify, and a dry run's verdict changes). */
export interface TenantPolicyObjects {
  tenant: Tenant;
  networks: Network[];
  groups: Group[];
  policies: Policy[];
  endpoints: Endpoint[];
  networkPolicies: NetworkPolicyObject[];
  namespaces: NamespaceObject[];
  adminNetworkPolicies: Array<AdminPolicyObject<AdminNetworkPolicySpec>>;
  baselineAdminNetworkPolicies: Array<AdminPolicyObject<BaselineAdminNetworkPolicySpec>>;
}

/** Reads them in `tx` (a dry run's transaction sees its own writes); undefined when the tenant does not exist. */
export async function tenantPolicyIn(tx: Txn, tenant: string): Promise<TenantPolicyObjects | undefined> {
  const t = await tx.get(keys.tenant(tenant));
  if (!t) return undefined;
  const policies: Policy[] = [];
  for (const head of await tx.list(keys.scopedPrefix('policies', tenant))) policies.push(await readPolicy(tx, head));
  return {
    tenant: withRevision<Tenant>(t), networks: await listIn(tx, 'networks', tenant), groups: await listIn(tx, 'groups', tenant), policies,
    endpoints: await endpointsWhere(tx, (e) => e.tenant === tenant),
    networkPolicies: await listIn(tx, 'networkpolicies', tenant), namespaces: await listIn(tx, 'namespaces', tenant),
    adminNetworkPolicies: await listIn(tx, 'adminnetworkpolicies', tenant), baselineAdminNetworkPolicies: await listIn(tx, 'baselineadminnetworkpolicies', tenant),
  };
}
