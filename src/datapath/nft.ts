import type { MacvlanPlan, TenantPlan } from './plan.js';
import { renderPolicy, type PolicyNft } from './policy-nft.js';
import { renderServices } from './services-nft.js';
import { endpointFlowHooks, renderFlows } from './flows-nft.js';
import { tableText, type NftMap, type NftTable } from './table.js';
import { raw128 } from './guard-nft.js';
import { firstOfEach } from './host-nft.js';
import { formatCidr6, formatIp, parseCidr, parseCidr6 } from '../model/index.js';

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
  // Published ports arriving on the uplink, each to its endpoint's address and port: one lookup by
  // protocol and port per new connection (a rule per port was a linear walk for each).
  // Over IPv4 where the endpoint has an IPv4 address (an IPv6-only network's has none); over IPv6 too when
  // it has an IPv6 address (the host DNATs to the uplink's).
  const four = firstOfEach(p.ports.flatMap((x) => (x.containerIp !== undefined ? [[`${x.protocol} . ${x.hostPort}`, `${x.containerIp} . ${x.containerPort}`] as const] : [])));
  const six = firstOfEach(p.ports.flatMap((x) => (x.containerIp6 !== undefined && p.uplink.tenantIp6 !== undefined ? [[`${x.protocol} . ${x.hostPort}`, `${x.containerIp6} . ${x.containerPort}`] as const] : [])));
  const published: NftMap[] = [
    { name: 'published', type: 'inet_proto . inet_service : ipv4_addr . inet_service', interval: false, elements: four },
    { name: 'published6', type: 'inet_proto . inet_service : ipv6_addr . inet_service', interval: false, elements: six },
  ];
  const dnat = [
    ...(four.length ? [`\t\tiifname "${p.uplink.tenantLink}" dnat ip to meta l4proto . th dport map @published comment "published ports"`] : []),
    ...(six.length ? [`\t\tiifname "${p.uplink.tenantLink}" dnat ip6 to meta l4proto . th dport map @published6 comment "published ports"`] : []),
  ];
  const policy: PolicyNft = p.policy ? renderPolicy(p.policy) : { maps: [], chains: [] };
  const svc = renderServices(p.services, p.dns, p.dscp);
  return { family: 'inet', name: TENANT_TABLE, maps: [...policy.maps, ...svc.maps, ...published], ...(policy.shared ? { shared: policy.shared } : {}), chains: [
    ...uplinkIn(p),
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
    // A routed network's addresses are announced: they leave as they are (issue 17).
    // To its own routed addresses on other hosts too: a reply from an overlay network to a routed endpoint
    // elsewhere goes back through the hosts (the way there was the overlay), and must arrive as itself.
    ...(p.routed.length ? [
      `\t\toifname "${p.uplink.tenantLink}" ip saddr { ${p.routed.join(', ')} } return comment "routed networks are not masqueraded"`,
      `\t\toifname "${p.uplink.tenantLink}" ip daddr { ${p.routed.join(', ')} } return comment "nor is what goes to them"`,
    ] : []),
    ...(p.routed6?.length ? [
      `\t\toifname "${p.uplink.tenantLink}" ip6 saddr { ${p.routed6.join(', ')} } return comment "routed networks are not masqueraded"`,
      `\t\toifname "${p.uplink.tenantLink}" ip6 daddr { ${p.routed6.join(', ')} } return comment "nor is what goes to them"`,
    ] : []),
    `\t\toifname "${p.uplink.tenantLink}" masquerade`,
    '\t}',
  ] };
}

/**
 * No new connection comes in from the uplink (the host: published ports, other hosts' routed traffic)
 * from a source of the tenant's own bridged subnets: the policy classes a connection by its source, and
 * one from outside posing as an endpoint (its ULA reused on the host's LAN) would be decided as that
 * endpoint. Only new ones: an ICMP error from a router whose address happens to lie in a tenant's subnet
 * (a Packet Too Big, a Time Exceeded) is related to a connection and must pass, or path MTU discovery
 * breaks. After conntrack (-200), before the published ports' DNAT (-100). A routed network's addresses
 * do come that way (from other hosts).
 */
function uplinkIn(p: TenantPlan): string[] {
  const four = p.bridges.flatMap((b) => { if (b.routed || b.address === undefined) return []; const c = parseCidr(b.address, 'address', false); return [`${formatIp(c.base)}/${c.prefix}`]; });
  const six = p.bridges.flatMap((b) => (b.routed || b.address6 === undefined ? [] : [formatCidr6(parseCidr6(b.address6, 'address6', false))]));
  if (four.length === 0 && six.length === 0) return [];
  return [
    '\tchain uplink_in {',
    '\t\ttype filter hook prerouting priority -150; policy accept;',
    // Except a reply to one of its routed endpoints on another host: it went there through the overlay
    // and comes back through the hosts as itself.
    ...(four.length ? [`\t\tiifname "${p.uplink.tenantLink}" ip saddr { ${four.join(', ')} }${p.routed.length ? ` ip daddr != { ${p.routed.join(', ')} }` : ''} ct state new counter drop comment "its own addresses never come from outside"`] : []),
    ...(six.length ? [`\t\tiifname "${p.uplink.tenantLink}" ip6 saddr { ${six.join(', ')} }${p.routed6?.length ? ` ip6 daddr != { ${p.routed6.join(', ')} }` : ''} ct state new counter drop comment "its own addresses never come from outside"`] : []),
    '\t}',
  ];
}

/** The table a macvlan endpoint's container namespace holds: `weft-<endpoint id>`, one per such interface. */
export const endpointTableName = (endpointId: string) => `weft-${endpointId}`;

/**
 * A macvlan endpoint's traffic never passes the tenant namespace (its frames go straight out of the
 * parent, or to a sibling inside the macvlan driver), so its own namespace enforces the tenant's policy:
 * the same maps and chains, the forward hook's rules run at input and output, for this interface only
 * (loopback and the container's other interfaces are not this table's business). Conntrack there is the
 * container's: replies pass as established, as in the tenant namespace.
 */
export function renderEndpointTable(p: Pick<TenantPlan, 'policy' | 'flows'>, mv: Pick<MacvlanPlan, 'id' | 'ifname' | 'ip' | 'ip6' | 'll6'>): NftTable {
  const policy: PolicyNft = p.policy ? renderPolicy(p.policy) : { maps: [], chains: [] };
  // Flow records: logged here (its traffic never passes the tenant namespace), read by the agent's
  // watcher in the container's namespace (linux/netwatch.ts watchFlows).
  const chains = [...renderFlows(p.flows, endpointFlowHooks(mv.ifname))];
  const lines = policy.chains;
  const start = lines.indexOf('\tchain forward {');
  const end = start < 0 ? -1 : lines.indexOf('\t}', start);
  const body = start < 0 || end < 0 ? [] : lines.slice(start + 2, end);
  chains.push(...(start < 0 || end < 0 ? lines : [...lines.slice(0, start), ...lines.slice(end + 1)]));
  for (const [hook, dir] of [['input', 'iifname'], ['output', 'oifname']] as const) {
    chains.push(`\tchain ${hook} {`, `\t\ttype filter hook ${hook} priority filter; policy accept;`, `\t\t${dir} != "${mv.ifname}" accept`,
      ...(mv.ip6 !== undefined && mv.ll6 !== undefined ? [
        // Neighbour discovery and multicast listening are the link's own business, never a connection:
        // NS/NA only from the link itself (hop limit 255), MLD only link-local and never routed (hop limit 1).
        '\t\ticmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } ip6 hoplimit 255 accept',
        '\t\ticmpv6 type { mld-listener-query, mld-listener-report, mld2-listener-report } ip6 hoplimit 1 ip6 saddr { ::, fe80::/10 } accept',
        ...(hook === 'output' ? [
          `\t\tip6 saddr != { ${mv.ip6}, ${mv.ll6} } drop`,
          // A mark the process chose (SO_MARK) must not stand for a class: its link-local address has none in the maps.
          '\t\tmeta mark set 0',
        ] : []),
      ] : [
        // An IPv4-only network: on a real segment, IPv6 would pass the policy unseen (the interface has it off too).
        '\t\tmeta nfproto != ipv4 drop',
      ]),
      // An IPv6-only network: IPv4 has no address here to be decided for (and ARP is not this table's: the guard drops it).
      ...(mv.ip === undefined ? ['\t\tmeta nfproto != ipv6 drop'] : []),
      // Only its own address leaves (the egress guard drops the rest later, but the policy and the flow
      // records would have seen it first: a process could have them record connections as another endpoint).
      ...(hook === 'output' && mv.ip !== undefined ? [`\t\tip saddr != ${mv.ip} drop`] : []),
      ...body, '\t}');
  }
  return { family: 'inet', name: endpointTableName(mv.id), maps: policy.maps, ...(policy.shared ? { shared: policy.shared } : {}), chains };
}

/** The macvlan interface's own guard: `weftg-<endpoint id>`, netdev family. */
export const guardTableName = (endpointId: string) => `weftg-${endpointId}`;

/**
 * What a macvlan interface may send onto the segment: IPv4 and ARP as its endpoint only (its MAC, its
 * address; none on an IPv6-only network), IPv6 (a network with a subnet6) from its two addresses only, with no router advertisement,
 * redirect, multicast query or router discovery, neighbour advertisements only for its own addresses; no
 * DHCP server's answer in either family; nothing else. At the device's egress hook, which frames from raw sockets pass too (a process with
 * CAP_NET_RAW, which runtimes grant, would otherwise send as the router, or poison the segment's ARP or
 * neighbour caches); the inet table's hooks never see those.
 */
export function renderMacvlanGuard(mv: Pick<MacvlanPlan, 'id' | 'ifname' | 'ip' | 'ip6' | 'll6' | 'mac'>): NftTable {
  const six = mv.ip6 !== undefined && mv.ll6 !== undefined;
  const own6 = six ? `{ ${mv.ip6}, ${mv.ll6} }` : '';
  return { family: 'netdev', name: guardTableName(mv.id), maps: [], chains: [
    '\tchain egress {',
    `\t\ttype filter hook egress device "${mv.ifname}" priority filter; policy drop;`,
    // The hook parses a frame by the protocol its sender declared (a packet socket chooses it), the address
    // matches by the frame's own type: the two must agree, or a frame parsed as one family passes as the other.
    '\t\tether type ip meta protocol != ip drop',
    '\t\tether type arp meta protocol != arp drop',
    '\t\tether type ip6 meta protocol != ip6 drop',
    '\t\tudp sport { 67, 547 } drop comment "no DHCP server"',
    '\t\tudp dport { 68, 546 } drop comment "no DHCP server"',
    ...(mv.ip !== undefined ? [
      `\t\tether saddr ${mv.mac} ip saddr ${mv.ip} accept`,
      `\t\tether saddr ${mv.mac} arp saddr ether ${mv.mac} arp saddr ip ${mv.ip} accept`,
    ] : []),
    ...(six ? [
      '\t\ticmpv6 type { nd-router-advert, nd-redirect, 138, mld-listener-query, 151, 152, 153 } drop comment "the segment\'s router is not a container"',
      // An advertisement's target (ICMPv6 bytes 8-23; nft 1.0.6 has no name for it) must be its own.
      `\t\tether saddr ${mv.mac} ip6 saddr ${own6} icmpv6 type nd-neighbor-advert @th,64,128 { ${raw128(mv.ip6 as string)}, ${raw128(mv.ll6 as string)} } accept`,
      '\t\ticmpv6 type nd-neighbor-advert drop',
      // Only what the hook could parse to its upper header (a first fragment whose extension headers hide it does not match).
      `\t\tether saddr ${mv.mac} ip6 saddr ${own6} meta l4proto { tcp, udp, ipv6-icmp, sctp, udplite } accept`,
    ] : []),
    '\t}',
  ] };
}

/** Both tables a macvlan endpoint's container holds, as one script (one transaction). */
export function containerTablesText(p: Pick<TenantPlan, 'policy' | 'flows'>, mv: Pick<MacvlanPlan, 'id' | 'ifname' | 'ip' | 'ip6' | 'll6' | 'mac'>): string {
  return containerTablesTexts(p, [mv])[0] as string;
}

// Stand-ins no name or rule holds (ids are hex, interface names [A-Za-z0-9_.-]).
const ID_MARK = '@endpoint-id@';
const IF_MARK = '@ifname@';
// Addresses nft parses, which no endpoint has (the documentation ranges' first addresses are networks').
const IP_MARK = '192.0.2.0';
const IP6_MARK = '2001:db8::';
const LL6_MARK = 'fe80::';

/**
 * The same for many endpoints of one tenant: the policy table's text (its maps are most of it, megabytes
 * at 50,000 rules) is made once per family set, and only its name, interface and own addresses differ per
 * container.
 */
export function containerTablesTexts(p: Pick<TenantPlan, 'policy' | 'flows'>, mvs: ReadonlyArray<Pick<MacvlanPlan, 'id' | 'ifname' | 'ip' | 'ip6' | 'll6' | 'mac'>>): string[] {
  if (mvs.length === 0) return [];
  // One template per family set: IPv4 only, dual stack, IPv6 only.
  const templates = new Map<string, string>();
  const template = (four: boolean, six: boolean) => {
    const key = `${four}/${six}`;
    let t = templates.get(key);
    if (t === undefined) templates.set(key, (t = tableText(renderEndpointTable(p, { id: ID_MARK, ifname: IF_MARK, ...(four ? { ip: IP_MARK } : {}), ...(six ? { ip6: IP6_MARK, ll6: LL6_MARK } : {}) }))));
    return t;
  };
  const own = `ip saddr != ${IP_MARK} drop`;
  const own6 = `ip6 saddr != { ${IP6_MARK}, ${LL6_MARK} } drop`;
  return mvs.map((mv) => {
    const six = mv.ip6 !== undefined && mv.ll6 !== undefined;
    let text = template(mv.ip !== undefined, six).replaceAll(ID_MARK, mv.id).replaceAll(IF_MARK, mv.ifname);
    if (mv.ip !== undefined) text = text.replace(own, `ip saddr != ${mv.ip} drop`);
    if (six) text = text.replace(own6, `ip6 saddr != { ${mv.ip6}, ${mv.ll6} } drop`);
    return `${tableText(renderMacvlanGuard(mv))}${text}`;
  });
}
