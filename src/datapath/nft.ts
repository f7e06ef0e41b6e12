import type { TenantPlan } from './plan.js';
import { renderPolicy, type PolicyNft } from './policy-nft.js';
import { renderServices } from './services-nft.js';
import { renderFlows } from './flows-nft.js';
import { tableText, type NftTable } from './table.js';

/**
 * nftables rulesets as text for `nft -f`. Each is a whole table replaced in one transaction
 * (`add table` + `delete table` + the table), so the kernel never holds half a ruleset.
 */
export const TENANT_TABLE = 'weft';

/**
 * Inside a tenant namespace: policy, service VIPs, DNS towards the agent, DSCP marks, SNAT out of the
 * uplink, DNAT of published ports arriving on it.
 */
export function renderTenantRuleset(p: TenantPlan): string {
  return tableText(renderTenantTable(p));
}

export function renderTenantTable(p: TenantPlan): NftTable {
  const dnat = p.ports.map((x) => `\t\tiifname "${p.uplink.tenantLink}" ${x.protocol} dport ${x.hostPort} dnat ip to ${x.containerIp}:${x.containerPort} comment "endpoint ${x.endpoint}"`);
  const policy: PolicyNft = p.policy ? renderPolicy(p.policy) : { maps: [], chains: [] };
  const svc = renderServices(p.services, p.dns, p.dscp);
  return { family: 'inet', name: TENANT_TABLE, maps: [...policy.maps, ...svc.maps], ...(policy.shared ? { shared: policy.shared } : {}), chains: [
    ...renderFlows(p.flows),
    ...policy.chains,
    ...svc.chains,
    '\tchain prerouting {',
    '\t\ttype nat hook prerouting priority dstnat; policy accept;',
    ...svc.dnat,
    ...dnat,
    '\t}',
    '\tchain postrouting {',
    '\t\ttype nat hook postrouting priority srcnat; policy accept;',
    ...svc.snat,
    `\t\toifname "${p.uplink.tenantLink}" masquerade`,
    '\t}',
  ] };
}
