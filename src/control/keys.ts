import type { Entry } from '../store/index.js';

/** Store key layout. Tenant-scoped objects live at `<collection>/<tenant>/<name>`. */
export type Collection = 'networks' | 'groups' | 'policies' | 'netprofiles' | 'services' | 'app-profiles' | 'docker-networks' | 'namespaces' | 'networkpolicies' | 'adminnetworkpolicies' | 'baselineadminnetworkpolicies';
export const COLLECTIONS: readonly Collection[] = ['networks', 'groups', 'policies', 'netprofiles', 'services', 'app-profiles', 'docker-networks', 'namespaces', 'networkpolicies', 'adminnetworkpolicies', 'baselineadminnetworkpolicies'];

export const keys = {
  tenant: (t: string) => `tenants/${t}`,
  tenants: () => 'tenants/',
  scoped: (c: Collection, t: string, n: string) => `${c}/${t}/${n}`,
  scopedPrefix: (c: Collection, t: string) => `${c}/${t}/`,
  addressBook: (t: string, n: string) => `ipam/${t}/${n}`,
  endpoint: (id: string) => `endpoints/${id}`,
  endpoints: () => 'endpoints/',
  host: (h: string) => `hosts/${h}`,
  hosts: () => 'hosts/',
  /** A host's liveness (its heartbeats), apart from its record: internal, never published (leases.ts). */
  hostLease: (h: string) => `leases/${h}`,
  hostLeases: () => 'leases/',
  global: () => 'global',
  user: (u: string) => `users/${u}`,
  users: () => 'users/',
  token: (hash: string) => `tokens/${hash}`,
  /** A user's tokens, by hash (the count a new one is held to; its revocations): internal, never published. */
  userToken: (u: string, hash: string) => `usertokens/${u}/${hash}`,
  userTokens: (u: string) => `usertokens/${u}/`,
  allUserTokens: () => 'usertokens/',
  hostId: (h: string) => `hostids/${h}`,
  hostIds: () => 'hostids/',
  ca: () => 'pki/ca',
  /** A policy's rule segments: all generations, one generation, every policy of a tenant (see segments.ts). */
  ruleSegments: (t: string, p: string) => `rules/${t}/${p}/`,
  ruleGen: (t: string, p: string, gen: number) => `rules/${t}/${p}/${gen}/`,
  tenantRules: (t: string) => `rules/${t}/`,
  /** A user's quota usage and override: internal, never published. */
  quota: (u: string) => `quota/${u}`,
};

/** Human names for messages: `network blue/web`. */
export const KIND_OF: Record<Collection, string> = {
  networks: 'network',
  groups: 'group',
  policies: 'policy',
  netprofiles: 'netprofile',
  services: 'service',
  'app-profiles': 'app-profile',
  'docker-networks': 'docker-network',
  namespaces: 'namespace',
  networkpolicies: 'networkpolicy',
  adminnetworkpolicies: 'adminnetworkpolicy',
  baselineadminnetworkpolicies: 'baselineadminnetworkpolicy',
};

/** A stored value with its revision attached, as the API shows it. */
export function withRevision<T>(e: Entry): T {
  return { ...(e.value as object), revision: e.modRevision } as T;
}

/** The stored form: everything but the revision, which the store owns. */
export type Stored<T> = Omit<T, 'revision'>;
