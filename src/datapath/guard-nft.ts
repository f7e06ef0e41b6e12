import { MAC_PATTERN, parseIp6 } from '../model/index.js';
import { bridgedThroughNetfilter, type TenantPlan } from './plan.js';
import { renderBridgeFlows } from './flows-nft.js';
import { tableText, type NftTable } from './table.js';

/** The bridge table of a tenant namespace: what may enter a bridge from a container's port. */
export const GUARD_TABLE = 'weft';
/** Frames dropped as spoofed, per tenant namespace: `nft list counter bridge weft spoofed`. */
export const SPOOFED_COUNTER = 'spoofed';

/**
 * Anti-spoofing, before policy sees a packet: a frame from an endpoint's port passes only if it is IPv4,
 * ARP or (on a dual-stack network) IPv6, and its source address and MAC are that endpoint's own (one hash
 * lookup of port . address . MAC, whatever the number of endpoints). Anything else from a port is dropped
 * and counted: another address (policy classifies by source address), another MAC. IPv6 also:
 * - in a tenant without a dual-stack network, every IPv6 frame entering a bridge, from a port or from the
 *   overlay (a forged VXLAN frame would otherwise carry IPv6 past a policy that classifies IPv4 only);
 * - in one with, router advertisements, redirects and router renumbering from any port, the overlay's
 *   too (the gateway is the only router, and it sends none), DHCPv6 answers from containers, and a
 *   neighbour advertisement for an address that is not the sender's own (IPv6's ARP spoofing).
 * Other frames from the overlay and the bridge itself (the gateway) are not endpoints' and pass.
 */
/** An endpoint without a proper MAC (a damaged record) is left out: its frames are dropped, the table still loads. */
const MAC = new RegExp(MAC_PATTERN);

/** An IPv6 address as the 128-bit integer a raw payload match (`@th,64,128`) compares with. */
export const raw128 = (ip6: string): string => `0x${(parseIp6(ip6) ?? 0n).toString(16).padStart(32, '0')}`;

export function renderGuardTable(p: TenantPlan): NftTable {
  const routedBridges = new Set(p.bridges.filter((b) => b.routed).map((b) => b.name));
  const six = p.endpoints.filter((e) => MAC.test(e.mac) && e.ip6 !== undefined && e.ll6 !== undefined && parseIp6(e.ip6) !== undefined);
  // The overlays of a dual-stack tenant's IPv4-only networks: IPv6 from them is forged (their ports' is refused by guard6).
  const v4Overlays = p.bridges.filter((b) => b.address6 === undefined && b.overlay !== undefined).map((b) => (b.overlay as { name: string }).name);
  // And of IPv6-only networks: IPv4 and ARP from them are forged (their ports' are refused: no entry in @endpoints).
  const v6Overlays = p.bridges.filter((b) => b.address === undefined && b.overlay !== undefined).map((b) => (b.overlay as { name: string }).name);
  return {
    family: 'bridge', name: GUARD_TABLE,
    maps: [
      { name: 'endpoints', type: 'ifname . ipv4_addr . ether_addr', set: true, interval: false, elements: p.endpoints.filter((e) => MAC.test(e.mac) && e.ip !== undefined).map((e) => `"${e.veth}" . ${e.ip} . ${e.mac}`) },
      ...(p.v6 ? [
        { name: 'endpoints6', type: 'ifname . ipv6_addr . ether_addr', set: true, interval: false, elements: six.flatMap((e) => [`"${e.veth}" . ${e.ip6} . ${e.mac}`, `"${e.veth}" . ${e.ll6} . ${e.mac}`]) },
        // An NA's target (ICMPv6 bytes 8-23; nft 1.0.6 has no name for it) must be one of the sender's own.
        { name: 'nd_targets', type: 'typeof iifname . @th,64,128', set: true, interval: false, elements: six.flatMap((e) => [`"${e.veth}" . ${raw128(e.ip6 as string)}`, `"${e.veth}" . ${raw128(e.ll6 as string)}`]) },
      ] : []),
      ...(routedBridges.size > 0 ? [{ name: 'routed_ports', type: 'ifname', set: true, interval: false, elements: p.endpoints.filter((e) => routedBridges.has(e.bridge)).map((e) => `"${e.veth}"`) }] : []),
    ],
    chains: [
      `\tcounter ${SPOOFED_COUNTER} {`,
      '\t}',
      '\tchain prerouting {',
      '\t\ttype filter hook prerouting priority -300; policy accept;',
      // Tagged frames: IP netfilter never sees them (bridge-nf-filter-vlan-tagged is off), so from the
      // overlay they would reach containers past every check. Weft tags nothing.
      `\t\tether type { 8021q, 8021ad } counter name "${SPOOFED_COUNTER}" drop comment "no VLAN tags"`,
      ...(p.v6 ? [
        `\t\ticmpv6 type { nd-router-advert, nd-redirect, 138 } counter name "${SPOOFED_COUNTER}" drop comment "the gateway is the only router"`,
        ...(v4Overlays.length > 0 ? [`\t\tiifname { ${v4Overlays.map((o) => `"${o}"`).join(', ')} } ether type ip6 counter name "${SPOOFED_COUNTER}" drop comment "IPv4-only networks"`] : []),
        ...(v6Overlays.length > 0 ? [`\t\tiifname { ${v6Overlays.map((o) => `"${o}"`).join(', ')} } ether type { ip, arp } counter name "${SPOOFED_COUNTER}" drop comment "IPv6-only networks"`] : []),
      ] : [`\t\tether type ip6 counter name "${SPOOFED_COUNTER}" drop comment "no dual-stack network"`]),
      '\t\tiifname != "we*" accept',
      '\t\tether type ip iifname . ip saddr . ether saddr @endpoints accept',
      '\t\tether type arp iifname . arp saddr ip . arp saddr ether @endpoints accept',
      ...(p.v6 ? ['\t\tether type ip6 jump guard6'] : []),
      `\t\tcounter name "${SPOOFED_COUNTER}" drop`,
      '\t}',
      ...(p.v6 ? [
        // Returns to prerouting's drop; accepts what an endpoint may send. Each check fails closed: a rule
        // whose load fails (a fragment without the bytes) does not match, so an advertisement is accepted
        // only when its target could be read and is the sender's own.
        '\tchain guard6 {',
        '\t\tiifname . ip6 saddr . ether saddr != @endpoints6 return',
        '\t\tudp sport 547 return comment "no DHCPv6 server"',
        '\t\ticmpv6 type mld-listener-query return comment "no multicast querier"',
        '\t\ticmpv6 type nd-neighbor-advert iifname . @th,64,128 @nd_targets accept',
        '\t\ticmpv6 type nd-neighbor-advert return',
        '\t\taccept',
        '\t}',
      ] : []),
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
      ...(p.flows && !bridgedThroughNetfilter(p) ? renderBridgeFlows(p.flows, p.v6 === true) : []),
    ],
  };
}

export function renderGuardRuleset(p: TenantPlan): string {
  return tableText(renderGuardTable(p));
}
