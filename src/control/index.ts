export { Control } from './control.js';
export { Crud } from './crud.js';
export { DEFAULT_TENANT } from './tenants.js';
export { canSeeTenant, requireTenantAccess, requireRole } from './access.js';
export { publicChange, visibleTo, type PublicChange } from './changes.js';
export { macFor } from './endpoints.js';
export { DEFAULT_TOKEN_TTL_MS, type Principal } from './users.js';
export { CredentialRefused } from './tokens.js';
export type { Collection } from './keys.js';
