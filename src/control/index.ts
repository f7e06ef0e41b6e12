export { Control } from './control.js';
export { Crud } from './crud.js';
export { DEFAULT_TENANT } from './tenants.js';
export { canSeeTenant, requireTenantAccess, requireRole } from './access.js';
export { publicChange, visibleTo, type PublicChange } from './changes.js';
export { macFor } from './endpoints.js';
export type { Principal } from './users.js';
export type { Collection } from './keys.js';
export { DEFAULT_QUOTA, QUOTA_FLAG, type QuotaLimits, type QuotaView } from './quota.js';
