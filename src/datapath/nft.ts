import type { TenantPlan } from './plan.js';
import { renderPolicy } from './policy-nft.js';
import { renderServices } from './services-nft.js';
import { tableText, type NftTable } from './table.js';

/**
 * nftables rulesets as text for `nft -f`. Each is a whole table replaced in one transaction
 * (`add table` + `delete table` + the table), so the kernel never holds half a ruleset.
 */
export const TENANT_TABLE = 'weft';
export const HOST_TABLE = 'weft';

/**
 * Inside a tenant namespace: policy, service VIPs, DNS towards the agent, DSCP marks, SNAT out of the
 * uplink, DNAT of published ports arriving on it.
 */
export function renderTenantRuleset(p: TenantPlan): string {
  return tableText(renderTenantTable(p));
}

export function renderTenantTable(p: TenantPlan): NftTable {
  const dnat = p.ports.map((x) => `\t\tiifname "${p.uplink.tenantLink}" ${x.protocol} dport ${x.hostPort} dnat ip to ${x.containerIp}:${x.containerPort} comment "endpoint ${x.endpoint}"`);
  const policy = p.policy ? renderPolicy(p.policy) : { maps: [], chains: [] };
  const svc = renderServices(p.services, p.dns, p.dscp);
  return { family: 'inet', name: TENANT_TABLE, maps: [...policy.maps, ...svc.maps], chains: [
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

/**
 * In the host namespace: published ports go to the owning tenant's uplink address (the tenant then
 * DNATs to the container, since tenants may reuse container addresses), and traffic leaving the host
 * from any tenant uplink is masqueraded to the host's address.
 */
export function renderHostRuleset(plans: readonly TenantPlan[]): string {
  return tableText(renderHostTable(plans));
}

export function renderHostTable(plans: readonly TenantPlan[]): NftTable {
  const dnat = plans.flatMap((p) => p.ports.map((x) => `\t\tfib daddr type local ${x.protocol} dport ${x.hostPort} dnat to ${p.uplink.tenantIp}:${x.hostPort} comment "tenant ${p.tenant}"`));
  const uplinks = plans.map((p) => `"${p.uplink.hostLink}"`);
  return { family: 'ip', name: HOST_TABLE, maps: [], chains: [
    '\tchain prerouting {',
    '\t\ttype nat hook prerouting priority dstnat; policy accept;',
    ...dnat,
    '\t}',
    '\tchain output {',
    // nft 1.0.6 rejects the `dstnat` keyword on the output hook; -100 is its value.
    '\t\ttype nat hook output priority -100; policy accept;',
    ...dnat,
    '\t}',
    '\tchain postrouting {',
    '\t\ttype nat hook postrouting priority srcnat; policy accept;',
    ...(uplinks.length ? [`\t\tip saddr 169.254.0.0/16 oifname != { ${uplinks.join(', ')} } masquerade`] : []),
    '\t}',
  ] };
}
