import { MAC_PATTERN } from '../model/index.js';
import { bridgedThroughNetfilter, type TenantPlan } from './plan.js';
import { renderBridgeFlows } from './flows-nft.js';
import { tableText, type NftTable } from './table.js';

/** The bridge table of a tenant namespace: what may enter a bridge from a container's port. */
export const GUARD_TABLE = 'weft';
/** Frames dropped as spoofed, per tenant namespace: `nft list counter bridge weft spoofed`. */
export const SPOOFED_COUNTER = 'spoofed';

/**
 * Anti-spoofing, before policy sees a packet: a frame from an endpoint's port passes only if it is IPv4
 * or ARP and its source address and MAC are that endpoint's own (one hash lookup of port . address .
 * MAC, whatever the number of endpoints). Anything else from a port is dropped and counted: another
 * address (policy classifies by source address), another MAC, and IPv6, which Weft does not route and
 * whose link-local traffic would otherwise pass policy between containers of one bridge. Frames from the
 * overlay and the bridge itself (the gateway) are not endpoints' and pass.
 */
/** An endpoint without a proper MAC (a damaged record) is left out: its frames are dropped, the table still loads. */
const MAC = new RegExp(MAC_PATTERN);

export function renderGuardTable(p: TenantPlan): NftTable {
  const routedBridges = new Set(p.bridges.filter((b) => b.routed).map((b) => b.name));
  return {
    family: 'bridge', name: GUARD_TABLE,
    maps: [
      { name: 'endpoints', type: 'ifname . ipv4_addr . ether_addr', set: true, interval: false, elements: p.endpoints.filter((e) => MAC.test(e.mac)).map((e) => `"${e.veth}" . ${e.ip} . ${e.mac}`) },
      ...(routedBridges.size > 0 ? [{ name: 'routed_ports', type: 'ifname', set: true, interval: false, elements: p.endpoints.filter((e) => routedBridges.has(e.bridge)).map((e) => `"${e.veth}"`) }] : []),
    ],
    chains: [
      `\tcounter ${SPOOFED_COUNTER} {`,
      '\t}',
      '\tchain prerouting {',
      '\t\ttype filter hook prerouting priority -300; policy accept;',
      '\t\tiifname != "we*" accept',
      '\t\tether type ip iifname . ip saddr . ether saddr @endpoints accept',
      '\t\tether type arp iifname . arp saddr ip . arp saddr ether @endpoints accept',
      `\t\tcounter name "${SPOOFED_COUNTER}" drop`,
      '\t}',
      // A routed network's bridge bridges nothing (its ports are isolated; everything is routed through
      // the policy): should a port ever not be isolated, nothing crosses it port to port either.
      // (By the ports: the bridge's own name, `meta ibrname`, needs a module these kernels lack.)
      ...(routedBridges.size > 0 ? [
        '\tchain routed_only {',
        '\t\ttype filter hook forward priority -1; policy accept;',
        '\t\tiifname @routed_ports drop comment "routed networks are never bridged"',
        '\t}',
      ] : []),
      // Flow records of bridged connections, when bridged traffic skips the inet table (flows-nft.ts).
      ...(p.flows && !bridgedThroughNetfilter(p) ? renderBridgeFlows(p.flows) : []),
    ],
  };
}

export function renderGuardRuleset(p: TenantPlan): string {
  return tableText(renderGuardTable(p));
}
