export { names, transit } from './names.js';
export { planTenant, planHost, type TenantPlan, type DesiredHostState, type BridgePlan, type EndpointPlan, type PortPlan } from './plan.js';
export { renderTenantRuleset, renderHostRuleset } from './nft.js';
export * from './linux/index.js';
