import type { DnsPlan, DscpPlan, ServicePlan } from './services.js';
import type { NftMap } from './table.js';

/**
 * Each (VIP, protocol, port) owns this many buckets, spread round-robin over its backends; a new connection
 * picks one at random. The rule text never changes as backends come and go (only map elements do, applied
 * as deltas), and with n backends each gets 1/n of the buckets, give or take one.
 */
export const SERVICE_BUCKETS = 64;

export interface ServicesNft {
  maps: NftMap[];
  /** Lines of the nat prerouting chain, before published ports. */
  dnat: string[];
  /** Lines of the nat postrouting chain. */
  snat: string[];
  chains: string[];
}

/** Service VIPs (DNAT to a random bucket's backend), DNS interception, and DSCP marks. */
export function renderServices(services: readonly ServicePlan[], dns: DnsPlan | undefined, dscp: readonly DscpPlan[]): ServicesNft {
  const maps: NftMap[] = [];
  const dnat: string[] = [];
  const snat: string[] = [];
  if (dns && dns.gateways.length) {
    dnat.push(`\t\tip daddr { ${dns.gateways.join(', ')} } meta l4proto { tcp, udp } th dport 53 dnat ip to ${dns.address}:${dns.port} comment "dns"`);
  }
  if (dns?.gateways6?.length && dns.address6 !== undefined) {
    dnat.push(`\t\tip6 daddr { ${dns.gateways6.join(', ')} } meta l4proto { tcp, udp } th dport 53 dnat ip6 to [${dns.address6}]:${dns.port} comment "dns"`);
  }
  if (services.length > 0) {
    const elements: string[] = [];
    for (const s of services) {
      if (s.vip === undefined || s.backends.length === 0) continue;
      for (let b = 0; b < SERVICE_BUCKETS; b++) {
        elements.push(`${s.vip} . ${s.protocol} . ${s.port} . ${b} : ${s.backends[b % s.backends.length]} . ${s.targetPort}`);
      }
    }
    maps.push({ name: 'svc', type: `typeof ip daddr . meta l4proto . th dport . numgen random mod ${SERVICE_BUCKETS} : ip daddr . th dport`, interval: false, elements });
    dnat.push(`\t\tdnat ip to ip daddr . meta l4proto . th dport . numgen random mod ${SERVICE_BUCKETS} map @svc comment "services"`);
    // A backend that reaches its own service may be sent to itself: the bridge reflects the frame to the
    // port it came from (hairpin mode) and the source becomes the gateway, so the reply comes back through
    // the router to be un-DNATed instead of going straight to the caller's own socket.
    const backends = [...new Set(services.flatMap((s) => s.backends))];
    maps.push({ name: 'hairpin', type: 'ipv4_addr . ipv4_addr', set: true, interval: false, elements: backends.map((b) => `${b} . ${b}`) });
    snat.push('\t\tct status dnat ip saddr . ip daddr @hairpin masquerade comment "hairpin"');
    // Dual stack: the same for IPv6 VIPs, to the backends' IPv6 addresses.
    const six = services.filter((s) => s.vip6 !== undefined);
    if (six.length > 0) {
      const elements6: string[] = [];
      for (const s of six) {
        const b6 = s.backends6 ?? [];
        if (b6.length === 0) continue;
        for (let b = 0; b < SERVICE_BUCKETS; b++) elements6.push(`${s.vip6} . ${s.protocol} . ${s.port} . ${b} : ${b6[b % b6.length]} . ${s.targetPort}`);
      }
      maps.push({ name: 'svc6', type: `typeof ip6 daddr . meta l4proto . th dport . numgen random mod ${SERVICE_BUCKETS} : ip6 daddr . th dport`, interval: false, elements: elements6 });
      dnat.push(`\t\tdnat ip6 to ip6 daddr . meta l4proto . th dport . numgen random mod ${SERVICE_BUCKETS} map @svc6 comment "services"`);
      const backends6 = [...new Set(six.flatMap((s) => s.backends6 ?? []))];
      maps.push({ name: 'hairpin6', type: 'ipv6_addr . ipv6_addr', set: true, interval: false, elements: backends6.map((b) => `${b} . ${b}`) });
      snat.push('\t\tct status dnat ip6 saddr . ip6 daddr @hairpin6 masquerade comment "hairpin"');
    }
  }
  const chains: string[] = [];
  if (dscp.length > 0) {
    for (const d of dscp) maps.push({ name: `dscp_${d.dscp}`, type: 'ipv4_addr', set: true, interval: false, elements: d.ips });
    // IPv6 too (the traffic class's DSCP bits), where endpoints have IPv6 addresses.
    for (const d of dscp) if (d.ips6 !== undefined) maps.push({ name: `dscp6_${d.dscp}`, type: 'ipv6_addr', set: true, interval: false, elements: d.ips6 });
    chains.push(
      '\tchain qos {',
      '\t\ttype filter hook forward priority mangle; policy accept;',
      ...dscp.map((d) => `\t\tip saddr @dscp_${d.dscp} ip dscp set ${d.dscp}`),
      ...dscp.flatMap((d) => (d.ips6 !== undefined ? [`\t\tip6 saddr @dscp6_${d.dscp} ip6 dscp set ${d.dscp}`] : [])),
      '\t}',
    );
  }
  return { maps, dnat, snat, chains };
}
