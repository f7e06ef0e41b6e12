export { names } from './names.js';
export { transit, transitSlot, RESERVED_LINK_LOCAL } from './transit.js';
export type { QosPlan, ServicePlan, DscpPlan, DnsPlan } from './services.js';
export { planTenant, planHost, peerVteps, type TenantPlan, type DesiredHostState, type BridgePlan, type EndpointPlan, type PortPlan, type VxlanPlan } from './plan.js';
export { fdbCommands, neighCommands } from './linux/overlay.js';
export { renderTenantRuleset, renderTenantTable, TENANT_TABLE } from './nft.js';
export { renderHostRuleset, renderHostTable, HOST_TABLE } from './host-nft.js';
export { diffTables, tableText, type NftTable, type NftMap } from './table.js';
export * from './linux/index.js';
