export { names } from './names.js';
export { transit, transitSlot, RESERVED_LINK_LOCAL } from './transit.js';
export type { QosPlan, ServicePlan, DscpPlan, DnsPlan } from './services.js';
export { planTenant, planHost, type TenantPlan, type DesiredHostState, type BridgePlan, type EndpointPlan, type PortPlan, type VxlanPlan } from './plan.js';
export { fdbCommands, neighCommands } from './linux/overlay.js';
export { renderTenantRuleset, renderHostRuleset, renderTenantTable, renderHostTable, HOST_TABLE, TENANT_TABLE } from './nft.js';
export { diffTables, tableText, type NftTable, type NftMap } from './table.js';
export * from './linux/index.js';
