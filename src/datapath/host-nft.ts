import type { TenantPlan } from './plan.js';
import { VXLAN_PORT } from './names.js';
import { RESERVED_SERVICES6, UPLINK_SPACE6, WIREGUARD_PORT } from '../model/index.js';
import { tableText, type NftMap, type NftTable } from './table.js';

export const HOST_TABLE = 'weft';
/** Where the host table lived before it filtered (NAT only, family ip): replaced in the same transaction. */
const LEGACY_HOST_TABLE = { family: 'ip', name: HOST_TABLE };
/** Every tenant uplink's host end is `wu<id>` (names.uplinkHost), and nothing else Weft makes starts so. */
const UPLINKS = '"wu*"';

/**
 * In the host namespace, one table (family inet, so IPv6 is covered too):
 * - NAT: published ports go to the owning tenant's uplink address (the tenant then DNATs to the container,
 *   since tenants may reuse container addresses); traffic leaving the host from a tenant uplink is
 *   masqueraded to the host's address. The uplinks' host addresses are never DNATed.
 * - Filter: what arrives from a tenant uplink may reach on the host only that tenant's own DNS listener
 *   (no other tenant's, no API, etcd, sshd or any other listener on any host address); into a tenant go
 *   only published ports (DNATed here) and replies, so tenants never meet through the host; nothing from a
 *   tenant reaches an overlay port (it would arrive as this host's VXLAN) or a link-local service such as
 *   cloud metadata; and VXLAN is accepted only from registered hosts. Other traffic is left alone.
 */
export function renderHostRuleset(plans: readonly TenantPlan[], peers: readonly string[] = [], tunnel?: HostTunnel): string {
  return tableText(renderHostTable(plans, peers, tunnel));
}

/** While the cluster encrypts: the WireGuard device, and the VNIs still allowed in clear (opted-out networks). */
export interface HostTunnel {
  device: string;
  clearVnis: readonly number[];
}

export function renderHostTable(plans: readonly TenantPlan[], peers: readonly string[] = [], tunnel?: HostTunnel): NftTable {
  const maps = [...hostSets(plans, peers), ...publishedMaps(plans)];
  if (tunnel) maps.push({ name: 'clear_vnis', type: 'typeof @th,96,24', set: true, interval: false, elements: tunnel.clearVnis.map(String) });
  // Every set here is behaviour someone counts on (a peer's VXLAN let in, a VNI allowed in clear, a
  // tenant's DNS listener, a published port), and each is as small as the cluster: all are checked, so an
  // element added or deleted by anyone else is found by the next look and undone (NftMap.checked).
  const checked = maps.map((m) => ({ ...m, checked: true }));
  return { family: 'inet', name: HOST_TABLE, supersedes: [LEGACY_HOST_TABLE], maps: checked, chains: [...natChains(plans), ...filterChains(tunnel?.device)] };
}

/**
 * Published ports, each to its tenant's uplink address (the port stays): one lookup by protocol and port
 * per new connection, however many ports the host publishes (a rule per port was a linear walk, with a
 * FIB lookup each, for every connection arriving at or leaving from the host).
 */
function publishedMaps(plans: readonly TenantPlan[]): NftMap[] {
  const four = firstOfEach(plans.flatMap((p) => p.ports.flatMap((x) => (x.containerIp !== undefined ? [[`${x.protocol} . ${x.hostPort}`, p.uplink.tenantIp] as const] : []))));
  const six = firstOfEach(plans.flatMap((p) => p.ports.flatMap((x) => (x.containerIp6 !== undefined && p.uplink.tenantIp6 !== undefined ? [[`${x.protocol} . ${x.hostPort}`, p.uplink.tenantIp6] as const] : []))));
  return [
    { name: 'published', type: 'inet_proto . inet_service : ipv4_addr', interval: false, elements: four },
    { name: 'published6', type: 'inet_proto . inet_service : ipv6_addr', interval: false, elements: six },
  ];
}

/**
 * Map elements, one per key, the first of each: a key twice with two values is refused by the kernel, and
 * the whole table with it. The API publishes a port once per host (control/host-ports.ts), but records
 * of an older server, or written by hand, may not (with rules per port, the first rule won: so here).
 */
export function firstOfEach(pairs: ReadonlyArray<readonly [string, string]>): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const [key, value] of pairs) {
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(`${key} : ${value}`);
  }
  return out;
}

function natChains(plans: readonly TenantPlan[]): string[] {
  const published = plans.some((p) => p.ports.length > 0);
  const dnat = published ? [
    '\t\tfib daddr type local dnat ip to meta l4proto . th dport map @published comment "published ports"',
    '\t\tfib daddr type local dnat ip6 to meta l4proto . th dport map @published6 comment "published ports"',
  ] : [];
  const uplinks = plans.map((p) => `"${p.uplink.hostLink}"`);
  // The host ends of the uplinks are local addresses too, but a published port there would capture the
  // queries every other tenant sends to its DNS listener (a tenant publishing the DNS port).
  // Loopback stays the host's own (a published 9700 would otherwise answer the local CLI in the server's
  // place), and the overlay port is never anyone's to publish.
  const ports = dnat.length ? [
    '\t\tip daddr @uplinks return comment "uplink addresses serve only DNS"',
    `\t\tip6 daddr ${UPLINK_SPACE6} return comment "uplink addresses serve only DNS"`,
    '\t\tip daddr 127.0.0.0/8 return comment "loopback is never published"',
    '\t\tip6 daddr ::1 return comment "loopback is never published"',
    `\t\tudp dport { ${VXLAN_PORT}, ${WIREGUARD_PORT} } return comment "the overlay ports are never published"`,
    ...dnat,
  ] : [];
  return [
    '\tchain prerouting {',
    '\t\ttype nat hook prerouting priority dstnat; policy accept;',
    ...ports,
    '\t}',
    '\tchain output {',
    // nft 1.0.6 rejects the `dstnat` keyword on the output hook; -100 is its value.
    '\t\ttype nat hook output priority -100; policy accept;',
    ...ports,
    '\t}',
    '\tchain postrouting {',
    '\t\ttype nat hook postrouting priority srcnat; policy accept;',
    ...(uplinks.length ? [`\t\tip saddr 169.254.0.0/16 oifname != { ${uplinks.join(', ')} } masquerade`] : []),
    // NAT66: a tenant's IPv6 leaves its namespace as its uplink address, and the host as the host.
    ...(plans.some((p) => p.uplink.tenantIp6 !== undefined) ? [`\t\tiifname ${UPLINKS} ip6 saddr ${UPLINK_SPACE6} oifname != { ${uplinks.join(', ')} } masquerade`] : []),
    // A routed network without BGP is known to no router: what leaves for elsewhere (not another host's
    // block) goes as this host, or its replies would never find their way back.
    ...(uplinks.length ? [`\t\tip saddr @routed_nat ip daddr != @routed oifname != { ${uplinks.join(', ')} } masquerade comment "routed networks without BGP"`] : []),
    ...(uplinks.length ? [`\t\tip6 saddr @routed_nat6 ip6 daddr != @routed6 oifname != { ${uplinks.join(', ')} } masquerade comment "routed networks without BGP"`] : []),
    '\t}',
  ];
}

/**
 * The same for every host: what differs (uplinks, DNS listeners, peers, VNIs) is in the sets. With a
 * tunnel `device`, an encrypted network's frames are accepted only out of the tunnel (where WireGuard
 * checked the sender's key and address): a forged underlay source cannot inject into it.
 */
const filterChains = (device?: string): string[] => [
  // Overlay packets (VXLAN out and in, WireGuard's UDP, the VXLAN that WireGuard decrypts) skip connection
  // tracking: every rule about them below is stateless, and a packet through the tunnel passes the host
  // stack twice each way. (Measured: no change beyond run-to-run noise, 0.22 vs 0.21 Gbit/s encrypted.)
  '\tchain raw_prerouting {',
  '\t\ttype filter hook prerouting priority raw; policy accept;',
  `\t\tudp dport { ${VXLAN_PORT}, ${WIREGUARD_PORT} } notrack`,
  '\t}',
  '\tchain raw_output {',
  '\t\ttype filter hook output priority raw; policy accept;',
  `\t\tudp dport { ${VXLAN_PORT}, ${WIREGUARD_PORT} } notrack`,
  '\t}',
  '\tchain input {',
  '\t\ttype filter hook input priority filter; policy accept;',
  `\t\tiifname ${UPLINKS} jump from_tenant`,
  ...(device ? [`\t\tiifname "${device}" udp dport ${VXLAN_PORT} accept comment "overlay frames through the tunnel"`] : []),
  // DESIGN 10: VXLAN only from registered hosts; anyone else on the underlay could inject frames into a tenant.
  `\t\tudp dport ${VXLAN_PORT} ip saddr != @peers counter drop comment "overlay frames only from registered hosts"`,
  // VXLAN's VNI: bits 32-55 of its header, after the 8 bytes of UDP's.
  ...(device ? [`\t\tudp dport ${VXLAN_PORT} @th,96,24 != @clear_vnis counter drop comment "encrypted networks only through the tunnel"`] : []),
  // From anywhere else (another machine routing through this host) an uplink address answers nothing.
  '\t\tip daddr @uplinks drop comment "uplink addresses serve only their tenant"',
  `\t\tip6 daddr ${UPLINK_SPACE6} drop comment "uplink addresses serve only their tenant"`,
  `\t\tip6 saddr ${UPLINK_SPACE6} drop comment "uplink addresses only come from their uplink"`,
  '\t}',
  '\tchain from_tenant {',
  '\t\tct state established,related accept',
  // The uplink a packet came in on names its tenant; masquerading in the tenant namespace makes its
  // source that tenant's own uplink address, so a container cannot pose as another tenant either.
  '\t\tiifname . ip daddr . meta l4proto . th dport @dns accept comment "its own tenant\'s DNS"',
  '\t\tiifname . ip6 daddr . meta l4proto . th dport @dns6 accept comment "its own tenant\'s DNS"',
  // Its namespace resolves the uplink's IPv6 neighbour (the host end, its IPv6 default route).
  '\t\ticmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } ip6 hoplimit 255 accept comment "neighbour discovery"',
  '\t\tdrop comment "no other listener of this host"',
  '\t}',
  '\tchain forward {',
  '\t\ttype filter hook forward priority filter; policy accept;',
  '\t\tct state established,related accept',
  // A tenant's own routed subnet on another host: the way there may have been its overlay (an overlay
  // network's endpoint answering a routed one), so this host never saw the connection begin.
  '\t\tiifname . ip daddr @routed_to accept comment "to its own routed network elsewhere"',
  '\t\tiifname . ip6 daddr @routed_to6 accept comment "to its own routed network elsewhere"',
  // Masqueraded to this host's address, it would arrive at the other host as if from outside.
  `\t\tiifname ${UPLINKS} ip daddr @routed drop comment "never into another tenant's routed network"`,
  `\t\tiifname ${UPLINKS} ip6 daddr @routed6 drop comment "never into another tenant's routed network"`,
  `\t\tiifname ${UPLINKS} ct state invalid drop`,
  // Before published ports: a reply to a forged uplink source would go into that tenant's namespace.
  `\t\tiifname != ${UPLINKS} ip6 saddr ${UPLINK_SPACE6} counter drop comment "uplink addresses only come from their uplink"`,
  `\t\toifname ${UPLINKS} ct status dnat accept comment "published ports"`,
  '\t\toifname . ip daddr @routed_to goto to_routed',
  '\t\toifname . ip6 daddr @routed_to6 goto to_routed',
  `\t\toifname ${UPLINKS} drop comment "into a tenant: published ports, replies and its routed networks only"`,
  // IPv6 leaves a tenant only masqueraded to its uplink address (replies passed as established above), or
  // from its own routed networks' addresses.
  `\t\tiifname ${UPLINKS} iifname . ip6 saddr != @uplinks6 iifname . ip6 saddr != @routed_to6 drop comment "IPv6 from a tenant is its own uplink's or its routed networks'"`,
  // Anything else addressed to the uplinks' /64 (an outside machine routing it here, an address no tenant
  // has) goes nowhere: it would otherwise follow the default route back out. Published ports were let
  // into their uplink above.
  `\t\tip6 daddr ${UPLINK_SPACE6} drop comment "uplink addresses serve only their tenant"`,
  `\t\tiifname ${UPLINKS} udp dport { ${VXLAN_PORT}, ${WIREGUARD_PORT} } drop comment "no overlay frames from a tenant"`,
  ...(device ? [`\t\tiifname ${UPLINKS} oifname "${device}" drop comment "tenants never use the tunnel"`] : []),
  // Through the host's own route, 169.254.169.254 (cloud metadata) would hand a container the host's credentials.
  `\t\tiifname ${UPLINKS} ip daddr 169.254.0.0/16 drop comment "no link-local services for tenants"`,
  `\t\tiifname ${UPLINKS} ip6 daddr { ${RESERVED_SERVICES6.join(', ')} } drop comment "no cloud metadata for tenants"`,
  '\t}',
  // A routed network's addresses are reachable from outside (its tenant's policy decides), but never from
  // another tenant: not through this host's uplinks, and not from another tenant's routed addresses that
  // come from other hosts (those are not masqueraded). Its own tenant's come from its own routed subnets.
  '\tchain to_routed {',
  `\t\tiifname ${UPLINKS} drop comment "never from another tenant on this host"`,
  '\t\toifname . ip saddr @routed_to accept comment "its own routed addresses on other hosts"',
  '\t\toifname . ip6 saddr @routed_to6 accept comment "its own routed addresses on other hosts"',
  '\t\tip saddr @routed drop comment "never another tenant\'s routed addresses"',
  '\t\tip6 saddr @routed6 drop comment "never another tenant\'s routed addresses"',
  '\t\taccept comment "from outside: the tenant\'s policy decides"',
  '\t}',
  // Routing alone keeps an encrypted network's frames in the tunnel; should the device be down, they would
  // take the default route in clear. This is the second lock.
  ...(device ? [
    '\tchain out {',
    '\t\ttype filter hook output priority filter; policy accept;',
    `\t\tudp dport ${VXLAN_PORT} oifname != "${device}" @th,96,24 != @clear_vnis counter drop comment "an encrypted network's frames never leave in clear"`,
    '\t}',
  ] : []),
];

function hostSets(plans: readonly TenantPlan[], peers: readonly string[]): NftMap[] {
  const dns = plans.flatMap((p) => (p.dns ? ['tcp', 'udp'].map((proto) => `"${p.uplink.hostLink}" . ${p.dns?.address} . ${proto} . ${p.dns?.port}`) : []));
  const dns6 = plans.flatMap((p) => (p.dns?.address6 !== undefined ? ['tcp', 'udp'].map((proto) => `"${p.uplink.hostLink}" . ${p.dns?.address6} . ${proto} . ${p.dns?.port}`) : []));
  return [
    { name: 'uplinks', type: 'ipv4_addr', set: true, interval: false, elements: plans.map((p) => p.uplink.hostIp) },
    // Each IPv6 uplink with its tenant's address: what its namespace's masquerade makes IPv6 leave as.
    { name: 'uplinks6', type: 'ifname . ipv6_addr', set: true, interval: false, elements: plans.flatMap((p) => (p.uplink.tenantIp6 === undefined ? [] : [`"${p.uplink.hostLink}" . ${p.uplink.tenantIp6}`])) },
    { name: 'dns', type: 'ifname . ipv4_addr . inet_proto . inet_service', set: true, interval: false, elements: dns },
    { name: 'dns6', type: 'ifname . ipv6_addr . inet_proto . inet_service', set: true, interval: false, elements: dns6 },
    { name: 'peers', type: 'ipv4_addr', set: true, interval: false, elements: [...peers] },
    // Routed networks: each tenant's subnets behind its uplink, and all of them.
    { name: 'routed_to', type: 'ifname . ipv4_addr', set: true, interval: true, elements: plans.flatMap((p) => p.routed.map((c) => `"${p.uplink.hostLink}" . ${c}`)) },
    { name: 'routed', type: 'ipv4_addr', set: true, interval: true, elements: plans.flatMap((p) => p.routed) },
    { name: 'routed_nat', type: 'ipv4_addr', set: true, interval: true, elements: plans.flatMap((p) => p.routedNat) },
    { name: 'routed_to6', type: 'ifname . ipv6_addr', set: true, interval: true, elements: plans.flatMap((p) => (p.routed6 ?? []).map((c) => `"${p.uplink.hostLink}" . ${c}`)) },
    { name: 'routed6', type: 'ipv6_addr', set: true, interval: true, elements: plans.flatMap((p) => p.routed6 ?? []) },
    { name: 'routed_nat6', type: 'ipv6_addr', set: true, interval: true, elements: plans.flatMap((p) => p.routedNat6 ?? []) },
  ];
}
