export { Control } from './control.js';
export { Crud } from './crud.js';
export { DEFAULT_TENANT } from './tenants.js';
export { canSeeTenant, requireTenantAccess, requireRole, hostFor } from './access.js';
export { publicChange, visibleTo, type PublicChange } from './changes.js';
export { macFor } from './endpoints.js';
export { conflistNotice } from './conflists.js';
export type { Principal } from './users.js';
export type { Collection } from './keys.js';
