export { Control } from './control.js';
export { Crud } from './crud.js';
export { DEFAULT_TENANT } from './tenants.js';
export { canSeeTenant, requireTenantAccess, requireRole } from './access.js';
export { publicChange, visibleTo, type PublicChange } from './changes.js';
export { macFor } from './endpoints.js';
export type { Principal } from './users.js';
export { HostIdentities, StoreCa, DEFAULT_JOIN_TTL_MS, DEFAULT_HOST_CERT_TTL_MS, type CaSource, type StoredIdentity, type HostIdentityView } from './identities.js';
export type { Collection } from './keys.js';
