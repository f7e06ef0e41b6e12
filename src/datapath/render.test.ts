import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Endpoint, Network, Rule, Tenant } from '../model/index.js';
import { bridgedThroughNetfilter, peerVteps, planHost, planTenant, type DesiredHostState } from './plan.js';
import { containerTablesText, containerTablesTexts, renderEndpointTable, renderTenantRuleset, renderTenantTable } from './nft.js';
import { attachmentOf } from './datapath.js';
import { FLOW_LIMITS_DEFAULT } from './flows-nft.js';
import { renderHostRuleset, renderHostTable } from './host-nft.js';
import { renderGuardRuleset } from './guard-nft.js';
import { names } from './names.js';
import { transit } from './transit.js';
import { diffTables } from './table-delta.js';
import { ProcessRunner } from '../exec/index.js';
import { golden, TESTDATA } from './golden.js';
import { lookupVerdict } from '../policy/index.js';

const meta = { revision: 1, createdAt: '', updatedAt: '' };
const tenant = (name: string, id: number): Tenant => ({ ...meta, name, id, defaultAction: 'allow' });
const net = (t: string, name: string, subnet: string, gateway: string, vni: number): Network =>
  ({ ...meta, tenant: t, name, subnet, gateway, encap: 'vxlan', vni, mtu: 1450 });
const ep = (id: string, t: string, network: string, ip: string, host: string, ports?: Endpoint['portMappings']): Endpoint => ({
  ...meta, id, tenant: t, network, ip, prefixLength: 24, gateway: '', mac: `02:57:${ip.split('.').map((o) => Number(o).toString(16).padStart(2, '0')).join(':')}`, mtu: 1450, vni: 0, host, ifname: 'eth0',
  containerId: id, labels: {}, state: 'created', ...(ports ? { portMappings: ports } : {}),
});

const desired: DesiredHostState = {
  host: 'node1',
  nsPrefix: 'weft-',
  tenants: [tenant('default', 1), tenant('blue', 2)],
  networks: [
    net('default', 'contiv-net', '10.1.2.0/24', '10.1.2.1', 10000),
    net('default', 'app-net', '10.1.3.0/24', '10.1.3.1', 10002),
    net('blue', 'contiv-net', '10.1.2.0/24', '10.1.2.1', 10001),
  ],
  endpoints: [
    ep('aaaaaaaaaaaaaaaa', 'default', 'contiv-net', '10.1.2.2', 'node1', [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }]),
    ep('bbbbbbbbbbbbbbbb', 'blue', 'contiv-net', '10.1.2.2', 'node1', [{ hostPort: 5353, containerPort: 53, protocol: 'udp' }]),
    ep('cccccccccccccccc', 'default', 'contiv-net', '10.1.2.3', 'node2'),
  ],
};

/** A delta as the tests compare it: its script and whether it is structural. */
const brief = (d: ReturnType<typeof diffTables>) => d && { structural: d.structural, script: d.script };

test('names fit Linux limits and transit /30s never overlap', () => {
  assert.ok(names.bridge(16777215).length <= 15);
  assert.ok(names.endpointVeth('0123456789abcdef').length <= 15);
  assert.ok(names.uplinkHost(16000).length <= 15);
  assert.deepEqual(transit(1), { host: '169.254.0.5', tenant: '169.254.0.6', prefix: 30 });
  assert.deepEqual(transit(16000), { host: '169.254.250.1', tenant: '169.254.250.2', prefix: 30 });
});

test('a tenant plan holds its bridges and only this host\'s endpoints', () => {
  const p = planTenant(desired, tenant('default', 1));
  assert.equal(p.ns, 'weft-t1');
  assert.deepEqual(p.bridges.map((b) => [b.name, b.address]), [['wb10000', '10.1.2.1/24'], ['wb10002', '10.1.3.1/24']]);
  assert.deepEqual(p.endpoints.map((e) => [e.veth, e.bridge, e.ip]), [['weaaaaaaaaaaaa', 'wb10000', '10.1.2.2']]);
  assert.deepEqual(p.ports, [{ hostPort: 8080, containerPort: 80, protocol: 'tcp', containerIp: '10.1.2.2', endpoint: 'aaaaaaaaaaaaaaaa' }]);
});

test("a network's overlay reaches only its own tenant's endpoints elsewhere: another tenant's network of the same name is another network", () => {
  const host = (name: string, vtepIp: string) => ({ ...meta, name, vtepIp }) as NonNullable<DesiredHostState['hosts']>[number];
  const d: DesiredHostState = {
    ...desired, vtep: '192.0.2.1', hosts: [host('node1', '192.0.2.1'), host('node2', '192.0.2.2'), host('node3', '192.0.2.3')],
    endpoints: [...desired.endpoints, ep('dddddddddddddddd', 'blue', 'contiv-net', '10.1.2.9', 'node3'), ep('eeeeeeeeeeeeeeee', 'default', 'app-net', '10.1.3.7', 'node3')],
  };
  const overlay = (t: Tenant, network: string) => {
    const o = planTenant(d, t).bridges.find((b) => b.network === network)?.overlay;
    return o && { peers: o.peers, remotes: o.remotes.map((r) => [r.ip, r.vtep]) };
  };
  assert.deepEqual(overlay(tenant('default', 1), 'contiv-net'), { peers: ['192.0.2.2'], remotes: [['10.1.2.3', '192.0.2.2']] });
  assert.deepEqual(overlay(tenant('default', 1), 'app-net'), { peers: ['192.0.2.3'], remotes: [['10.1.3.7', '192.0.2.3']] });
  assert.deepEqual(overlay(tenant('blue', 2), 'contiv-net'), { peers: ['192.0.2.3'], remotes: [['10.1.2.9', '192.0.2.3']] });
  assert.deepEqual(planTenant(d, tenant('blue', 2)).endpoints.map((e) => e.ip), ['10.1.2.2'], "this host's endpoints of the tenant, none of the other's");
});

const root = process.getuid?.() === 0;

/** The fixture with a macvlan network `lan` (parent eth1) and a db endpoint on it on node1, under db-policy. */
function macvlanDesired(): DesiredHostState {
  const lan: Network = { ...net('default', 'lan', '192.168.50.0/24', '192.168.50.1', 10005), encap: 'macvlan', parent: 'eth1', mtu: 1500 };
  return {
    ...desired,
    networks: [...desired.networks, lan],
    groups: [{ ...meta, tenant: 'default', name: 'db', network: 'lan', policies: ['db-policy'], labels: {} }],
    policies: [{ ...meta, tenant: 'default', name: 'db-policy', rules: [
      { id: '1', priority: 1, direction: 'in', action: 'deny', protocol: 'tcp' },
      { id: '2', priority: 10, direction: 'in', action: 'allow', protocol: 'tcp', ports: '8888', fromCidr: '192.168.50.1/32' },
    ] }],
    endpoints: [...desired.endpoints, { ...ep('dddddddddddddddd', 'default', 'lan', '192.168.50.10', 'node1'), group: 'db', netns: '/run/netns/c-lan', ifname: 'eth1' }],
  };
}

test("a network of an encapsulation this agent does not know is left alone; a service's backends are never macvlan endpoints", () => {
  const d = macvlanDesired();
  const future = { ...net('default', 'later', '10.9.0.0/24', '10.9.0.1', 10009), encap: 'ipvlan' as never };
  const p = planTenant({ ...d, networks: [...d.networks, future], endpoints: [...d.endpoints, ep('eeeeeeeeeeeeeeee', 'default', 'later', '10.9.0.5', 'node1')] }, tenant('default', 1));
  assert.ok(!p.bridges.some((b) => b.network === 'later') && !p.endpoints.some((e) => e.id.startsWith('e')), 'no bridge, no veth for it');
  const withSvc = planTenant({ ...d, services: [{ ...meta, tenant: 'default', name: 's', network: 'contiv-net', vip: '10.1.2.200', selector: { group: 'db' }, ports: [{ port: 80, targetPort: 8888, protocol: 'TCP' }] }],
    endpoints: d.endpoints.map((e) => ({ ...e, labels: { group: 'db' } })) }, tenant('default', 1));
  const backends = JSON.stringify(withSvc.services);
  assert.match(backends, /10\.1\.2\.2/, 'a bridged endpoint of the selector is a backend');
  assert.doesNotMatch(backends, /192\.168\.50\.10/, 'the macvlan one is not: no VIP reaches it');
});

test('a macvlan network has no bridge or overlay; its endpoints are planned apart, with their parent and namespace', () => {
  const p = planTenant({ ...macvlanDesired(), vtep: '192.0.2.1', hosts: [{ ...meta, name: 'node2', vtepIp: '192.0.2.2', lastSeen: '' }] }, tenant('default', 1));
  assert.deepEqual(p.bridges.map((b) => b.network), ['contiv-net', 'app-net'], 'no bridge for lan');
  assert.ok(!p.endpoints.some((e) => e.id.startsWith('d')), 'no veth for the macvlan endpoint');
  assert.deepEqual(p.macvlans, [{ id: 'dddddddddddddddd', netns: '/run/netns/c-lan', ifname: 'eth1', parent: 'eth1', ip: '192.168.50.10', mac: '02:57:c0:a8:32:0a' }]);
  assert.ok(!p.dns?.gateways.includes('192.168.50.1'), 'the physical router is not intercepted for DNS');
  const t = renderEndpointTable(p, p.macvlans[0]!);
  assert.equal(t.name, 'weft-dddddddddddddddd');
  const text = t.chains.join('\n');
  assert.match(text, /chain input \{\n\t\ttype filter hook input priority filter; policy accept;\n\t\tiifname != "eth1" accept\n\t\tmeta nfproto != ipv4 drop\n\t\tct state established,related accept/);
  assert.match(text, /chain output \{\n\t\ttype filter hook output priority filter; policy accept;\n\t\toifname != "eth1" accept/);
  assert.doesNotMatch(text, /hook forward/, 'nothing is forwarded in a container');
  const a = attachmentOf({ id: 'dddddddddddddddd', vni: 10005, ifname: 'eth1', mac: '02:57:c0:a8:32:0a', ip: '192.168.50.10', prefixLength: 24, gateway: '192.168.50.1', mtu: 1500 }, p, '/run/netns/c-lan');
  assert.equal(a.macvlan?.parent, 'eth1');
  assert.equal(a.macvlan?.table, containerTablesText(p, p.macvlans[0]!), 'the attachment carries the tables its container loads before the interface comes up');
  const guard = containerTablesText(p, p.macvlans[0]!).split('table inet')[0] ?? '';
  assert.match(guard, /table netdev weftg-dddddddddddddddd \{\n\tchain egress \{\n\t\ttype filter hook egress device "eth1" priority filter; policy drop;\n\t\tether type ip meta protocol != ip drop\n\t\tether type arp meta protocol != arp drop\n\t\tether type ip6 meta protocol != ip6 drop\n\t\tudp sport \{ 67, 547 \} drop comment "no DHCP server"\n\t\tudp dport \{ 68, 546 \} drop comment "no DHCP server"\n\t\tether saddr 02:57:c0:a8:32:0a ip saddr 192\.168\.50\.10 accept\n\t\tether saddr 02:57:c0:a8:32:0a arp saddr ether 02:57:c0:a8:32:0a arp saddr ip 192\.168\.50\.10 accept\n\t\}/, 'the interface sends only as its endpoint, IPv4 and ARP, no DHCP answer, no frame declared as another family');
});

/** The macvlan fixture, dual stack: lan with subnet6 fd00:50::/64 (gateway the segment's router), its endpoint with fd00:50::10. */
function macvlanDualDesired(): DesiredHostState {
  const d = macvlanDesired();
  return {
    ...d,
    networks: d.networks.map((n) => (n.name === 'lan' ? { ...n, subnet6: 'fd00:50::/64', gateway6: 'fd00:50::1' } : n)),
    endpoints: d.endpoints.map((e) => (e.network === 'lan' ? { ...e, ip6: 'fd00:50::10', prefixLength6: 64, gateway6: 'fd00:50::1' } : e)),
  };
}

test('a dual-stack macvlan endpoint: IPv6 through its own tables from its two addresses only, neighbour discovery for its own addresses, no router advertisements', () => {
  const p = planTenant(macvlanDualDesired(), tenant('default', 1));
  assert.deepEqual(p.macvlans, [{ id: 'dddddddddddddddd', netns: '/run/netns/c-lan', ifname: 'eth1', parent: 'eth1', ip: '192.168.50.10', ip6: 'fd00:50::10', ll6: 'fe80::57:c0ff:fea8:320a', mac: '02:57:c0:a8:32:0a' }]);
  assert.notEqual(p.v6, true, 'no IPv6 through the tenant namespace or the host for it');
  assert.match(containerTablesText(p, p.macvlans[0]!), /map cls6_/, 'but the container classifies IPv6');
  const text = containerTablesText(p, p.macvlans[0]!);
  assert.doesNotMatch(text, /meta nfproto != ipv4 drop/, 'IPv6 is not dropped wholesale');
  assert.match(text, /\t\toifname != "eth1" accept\n\t\ticmpv6 type \{ nd-neighbor-solicit, nd-neighbor-advert \} ip6 hoplimit 255 accept\n\t\ticmpv6 type \{ mld-listener-query, mld-listener-report, mld2-listener-report \} ip6 hoplimit 1 ip6 saddr \{ ::, fe80::\/10 \} accept\n\t\tip6 saddr != \{ fd00:50::10, fe80::57:c0ff:fea8:320a \} drop\n\t\tmeta mark set 0\n\t\tip saddr != 192\.168\.50\.10 drop/);
  assert.match(text, /icmpv6 type \{ nd-router-advert, nd-redirect, 138, mld-listener-query, 151, 152, 153 \} drop/);
  assert.ok(text.includes('ether saddr 02:57:c0:a8:32:0a ip6 saddr { fd00:50::10, fe80::57:c0ff:fea8:320a } meta l4proto { tcp, udp, ipv6-icmp, sctp, udplite } accept'), 'only IPv6 the hook could parse to its upper header');
  assert.ok(text.includes('ether saddr 02:57:c0:a8:32:0a ip6 saddr { fd00:50::10, fe80::57:c0ff:fea8:320a } icmpv6 type nd-neighbor-advert @th,64,128 { 0xfd000050000000000000000000000010, 0xfe800000000000000057c0fffea8320a } accept'), 'an advertisement only for its own addresses');
  // Two endpoints of one tenant share the policy text; their own addresses differ.
  const other = { ...p.macvlans[0]!, id: 'eeeeeeeeeeeeeeee', ip: '192.168.50.11', ip6: 'fd00:50::11', ll6: 'fe80::1', mac: '02:57:c0:a8:32:0b' };
  const [t1, t2] = containerTablesTexts(p, [p.macvlans[0]!, other]);
  assert.equal(t1, text);
  assert.match(t2!, /ip6 saddr != \{ fd00:50::11, fe80::1 \} drop/);
  assert.doesNotMatch(t2!, /saddr (!= )?\{ fd00:50::10/, "nor the other's own addresses");
  // An IPv4-only macvlan endpoint in the same (IPv6) tenant drops IPv6 in its tables.
  const v4 = { ...other };
  delete (v4 as { ip6?: string }).ip6;
  delete (v4 as { ll6?: string }).ll6;
  assert.match(containerTablesTexts(p, [v4])[0]!, /meta nfproto != ipv4 drop/);
});

/** The macvlan network lan made IPv6-only: its endpoint dddd has fd00:50::10 and a MAC from its offset. */
function macvlanV6Desired(): DesiredHostState {
  const d = macvlanDualDesired();
  return {
    ...d,
    networks: d.networks.map((n) => {
      if (n.name !== 'lan') return n;
      const { subnet: _s, gateway: _g, ...rest } = n;
      return rest;
    }),
    policies: (d.policies ?? []).map((p) => ({ ...p, rules: p.rules.map((r) => (r.fromCidr ? { ...r, fromCidr: 'fd00:50::1/128' } : r)) })),
    endpoints: d.endpoints.map((e) => {
      if (e.network !== 'lan') return e;
      const { ip: _i, prefixLength: _p, gateway: _g, ...rest } = e;
      return { ...rest, mac: '02:58:00:00:00:10' };
    }),
  };
}

test('an IPv6-only macvlan endpoint: no IPv4 or ARP onto the segment, none through its tables, IPv6 as on a dual-stack one', () => {
  const p = planTenant(macvlanV6Desired(), tenant('default', 1));
  assert.deepEqual(p.macvlans, [{ id: 'dddddddddddddddd', netns: '/run/netns/c-lan', ifname: 'eth1', parent: 'eth1', ip6: 'fd00:50::10', ll6: 'fe80::58:ff:fe00:10', mac: '02:58:00:00:00:10' }]);
  const text = containerTablesText(p, p.macvlans[0]!);
  assert.doesNotMatch(text, /ip saddr != |ether saddr \S+ ip saddr|arp saddr/, 'no IPv4 or ARP address of its own to let out');
  assert.match(text, /\t\tmeta nfproto != ipv6 drop\n/, 'IPv4 is dropped in its tables');
  assert.doesNotMatch(text, /meta nfproto != ipv4 drop/);
  assert.match(text, /ip6 saddr != \{ fd00:50::10, fe80::58:ff:fe00:10 \} drop/);
  assert.ok(text.includes('ether saddr 02:58:00:00:00:10 ip6 saddr { fd00:50::10, fe80::58:ff:fe00:10 } meta l4proto { tcp, udp, ipv6-icmp, sctp, udplite } accept'));
  assert.match(text, /map cls6_/, 'it is classified by its IPv6 address');
  assert.match(text, /fd00:50::1/, "the rule's IPv6 source is in its tables");
  // One tenant, three kinds of macvlan endpoint: each gets its own families, the policy text is shared.
  const v4 = { ...p.macvlans[0]!, id: 'eeeeeeeeeeeeeeee', ip: '192.168.50.11', mac: '02:57:c0:a8:32:0b' };
  delete (v4 as { ip6?: string }).ip6;
  delete (v4 as { ll6?: string }).ll6;
  const [t6, t4] = containerTablesTexts(p, [p.macvlans[0]!, v4]);
  assert.equal(t6, text);
  assert.match(t4!, /meta nfproto != ipv4 drop/);
  assert.match(t4!, /ip saddr != 192\.168\.50\.11 drop/);
});

/**
 * Dual stack: contiv-net of tenant default with subnet6 fd00:1:2::/64, its endpoints with IPv6 addresses
 * (aaaa on node1 in group db, cccc on node2 in group far), db denying tcp but 8888 from far.
 */
function dualDesired(defaultAction: 'allow' | 'deny' = 'allow'): { d: DesiredHostState; t: Tenant } {
  const six: Record<string, string> = { '10.1.2.2': 'fd00:1:2::2', '10.1.2.3': 'fd00:1:2::3' };
  return {
    t: { ...tenant('default', 1), defaultAction },
    d: {
      ...desired,
      vtep: '192.0.2.1', hosts: [{ ...meta, name: 'node2', vtepIp: '192.0.2.2', lastSeen: '' }],
      networks: desired.networks.map((n) => (n.tenant === 'default' && n.name === 'contiv-net' ? { ...n, subnet6: 'fd00:1:2::/64', gateway6: 'fd00:1:2::1' } : n)),
      groups: [{ ...meta, tenant: 'default', name: 'db', network: 'contiv-net', policies: ['db-policy'], labels: {} },
        { ...meta, tenant: 'default', name: 'far', network: 'contiv-net', policies: [], labels: {} }],
      policies: [{ ...meta, tenant: 'default', name: 'db-policy', rules: [
        { id: '1', priority: 1, direction: 'in', action: 'deny', protocol: 'tcp' },
        { id: '2', priority: 10, direction: 'in', action: 'allow', protocol: 'tcp', ports: '8888', fromGroup: 'far' },
      ] }],
      endpoints: desired.endpoints.map((e) => (e.tenant !== 'default' ? e
        : { ...e, ip6: six[e.ip as string] as string, prefixLength6: 64, gateway6: 'fd00:1:2::1', group: e.id.startsWith('a') ? 'db' : 'far' })),
    },
  };
}

test('dual stack: the plan carries the IPv6 gateway, addresses with their link-local, and remote neighbours of both families', () => {
  const { d, t } = dualDesired();
  const p = planTenant(d, t);
  assert.equal(p.v6, true);
  assert.deepEqual(p.bridges.map((b) => [b.name, b.address6]), [['wb10000', 'fd00:1:2::1/64'], ['wb10002', undefined]]);
  assert.deepEqual(p.endpoints.map((e) => [e.ip6, e.ll6]), [['fd00:1:2::2', 'fe80::57:aff:fe01:202']]);
  assert.deepEqual(p.bridges[0]?.overlay?.remotes, [{ mac: '02:57:0a:01:02:03', vtep: '192.0.2.2', ip: '10.1.2.3', ip6: 'fd00:1:2::3' }]);
  assert.equal(planTenant(d, tenant('blue', 2)).v6, false, 'another tenant stays IPv4 only');
  const a = attachmentOf(d.endpoints[0]!, p, '/run/netns/c');
  assert.deepEqual([a.ip6, a.prefixLength6, a.gateway6], ['fd00:1:2::2', 64, 'fd00:1:2::1']);
  // The endpoint's IPv6 address is classified as its IPv4 address: one endpoint, one verdict.
  const pol = p.policy!;
  assert.deepEqual(pol.v6.map((x) => [x.addr, x.cls === pol.classification.byIp('10.1.2.2').id || x.cls === pol.classification.byIp('10.1.2.3').id]), [['fd00:1:2::2', true], ['fd00:1:2::3', true]]);
  assert.notEqual(pol.v6[0]!.cls, pol.v6[1]!.cls);
});

/**
 * IPv6-only: the same tenant with contiv-net holding subnet6 alone (no IPv4 subnet, its endpoints no IPv4
 * address), with DNS on (queries over IPv6 to the uplink's IPv6 host end).
 */
function sixOnlyDesired(): { d: DesiredHostState; t: Tenant } {
  const { d, t } = dualDesired('deny');
  return {
    t,
    d: {
      ...d, dnsPort: 15353,
      networks: d.networks.map((n) => { if (n.tenant !== 'default' || n.name !== 'contiv-net') return n; const { subnet: _s, gateway: _g, ...rest } = n; return rest; }),
      endpoints: d.endpoints.map((e) => { if (e.tenant !== 'default') return e; const { ip: _i, prefixLength: _p, gateway: _g, ...rest } = e; return { ...rest, mac: e.id.startsWith('a') ? '02:58:00:00:00:02' : '02:58:00:00:00:03' }; }),
    },
  };
}

test('IPv6-only: the bridge holds gateway6 alone, endpoints and remotes only their IPv6 addresses, the policy classes them by identity', () => {
  const { d, t } = sixOnlyDesired();
  const p = planTenant(d, t);
  assert.equal(p.v6, true);
  assert.deepEqual(p.bridges.map((b) => [b.name, b.address, b.address6]), [['wb10000', undefined, 'fd00:1:2::1/64'], ['wb10002', '10.1.3.1/24', undefined]]);
  assert.deepEqual(p.endpoints.map((e) => [e.ip, e.ip6]), [[undefined, 'fd00:1:2::2']]);
  assert.deepEqual(p.bridges[0]?.overlay?.remotes, [{ mac: '02:58:00:00:00:03', vtep: '192.0.2.2', ip6: 'fd00:1:2::3' }]);
  assert.deepEqual(p.dns, { gateways: ['10.1.3.1'], address: p.uplink.hostIp, port: 15353, gateways6: ['fd00:1:2::1'], address6: p.uplink.hostIp6 });
  assert.deepEqual(p.ports.map((x) => [x.hostPort, x.containerIp, x.containerIp6]), [[8080, undefined, 'fd00:1:2::2']], 'published over IPv6 alone');
  const a = attachmentOf(d.endpoints[0]!, p, '/run/netns/c');
  assert.deepEqual([a.ip, a.gateway, a.ip6, a.gateway6], [undefined, undefined, 'fd00:1:2::2', 'fd00:1:2::1']);
  // No IPv4 range holds them: each has a class of its own making (db denies tcp but 8888 from far).
  const pol = p.policy!;
  assert.deepEqual(pol.classification.ranges.filter((r) => r.first >= 0x0a010200 && r.last <= 0x0a0102ff), [], 'nothing of the IPv4 subnet it no longer has');
  const [db, far] = ['fd00:1:2::2', 'fd00:1:2::3'].map((x) => pol.classification.byIp(x));
  assert.deepEqual([db?.group, far?.group, db?.endpoint], ['db', 'far', true]);
  assert.deepEqual(pol.v6.map((x) => [x.addr, x.cls]), [['fd00:1:2::2', db?.id], ['fd00:1:2::3', far?.id]]);
  assert.equal(lookupVerdict(pol, far!.id, db!.id, 6, 8888), 'accept');
  assert.equal(lookupVerdict(pol, far!.id, db!.id, 6, 22), 'drop');
});

/** Every ruleset the renderers produce for the fixture above, by golden file name. */
function renderedRulesets(): Array<[string, string]> {
  const plans = planHost(desired);
  const dual = dualDesired();
  const dualDeny = dualDesired('deny');
  const sixOnly = sixOnlyDesired();
  const withPolicy = planTenant({
    ...desired,
    groups: [{ ...meta, tenant: 'default', name: 'db', network: 'contiv-net', policies: ['db-policy'], labels: {} }],
    policies: [{ ...meta, tenant: 'default', name: 'db-policy', rules: [
      { id: '1', priority: 1, direction: 'in', action: 'deny', protocol: 'tcp' },
      { id: '2', priority: 10, direction: 'in', action: 'allow', protocol: 'tcp', ports: '8888' },
    ] }],
    endpoints: desired.endpoints.map((e) => (e.id.startsWith('a') ? { ...e, group: 'db' } : e)),
  }, tenant('default', 1));
  const withServices = planTenant({
    ...desired,
    dnsPort: 15353,
    groups: [{ ...meta, tenant: 'default', name: 'db', network: 'contiv-net', policies: [], labels: {}, netprofile: 'gold' }],
    netprofiles: [{ ...meta, tenant: 'default', name: 'gold', bandwidth: '10mbps', burst: 500, dscp: 10 }],
    services: [{ ...meta, tenant: 'default', name: 'dbsvc', network: 'contiv-net', vip: '10.1.2.200', selector: { group: 'db' },
      ports: [{ port: 80, targetPort: 8888, protocol: 'TCP' }, { port: 53, targetPort: 5353, protocol: 'UDP' }] }],
    endpoints: desired.endpoints.map((e) => (e.tenant === 'default' ? { ...e, group: 'db', labels: { group: 'db' } } : e)),
  }, tenant('default', 1));
  const host = (name: string, vtepIp: string) => ({ ...meta, name, vtepIp, lastSeen: '' });
  const withPeers = { ...desired, vtep: '192.0.2.1', hosts: [host('node3', '192.0.2.3'), host('node1', '192.0.2.1'), host('node2', '192.0.2.2')] };
  const denyTenant = planTenant({ ...desired, groups: [], policies: [] }, { ...tenant('blue', 2), defaultAction: 'deny' });
  // A default-deny tenant with rules: every enforced end has a side mark, which the forward chain's last
  // rule before the default accepts (policy-nft.ts).
  const denyWithPolicy = planTenant({
    ...desired,
    groups: [{ ...meta, tenant: 'default', name: 'db', network: 'contiv-net', policies: ['db-policy'], labels: {} }],
    policies: [{ ...meta, tenant: 'default', name: 'db-policy', rules: [
      { id: '1', priority: 10, direction: 'in', action: 'allow', protocol: 'tcp', ports: '8888' },
      { id: '2', priority: 10, direction: 'in', action: 'allow', protocol: 'udp', ports: '53', fromCidr: '10.1.2.0/24' },
      { id: '3', priority: 10, direction: 'out', action: 'allow', protocol: 'any' },
    ] }],
    endpoints: desired.endpoints.map((e) => (e.id.startsWith('a') ? { ...e, group: 'db' } : e)),
  }, { ...tenant('default', 1), defaultAction: 'deny' });
  // A macvlan endpoint (lan, on the hosts' eth1) in group db: its container holds the policy itself.
  const withMacvlan = planTenant(macvlanDesired(), tenant('default', 1));
  const withMacvlan6 = planTenant(macvlanDualDesired(), tenant('default', 1));
  const withMacvlanV6 = planTenant(macvlanV6Desired(), tenant('default', 1));
  return [
    ...ruleKinds(),
    ['endpoint-macvlan.nft', containerTablesText(withMacvlan, withMacvlan.macvlans[0]!)],
    ['endpoint-macvlan-dual.nft', containerTablesText(withMacvlan6, withMacvlan6.macvlans[0]!)],
    ['endpoint-macvlan-v6only.nft', containerTablesText(withMacvlanV6, withMacvlanV6.macvlans[0]!)],
    ['tenant-default-policy.nft', renderTenantRuleset(withPolicy)],
    ['tenant-deny-policy.nft', renderTenantRuleset(denyWithPolicy)],
    // Flow records on: the deny chain logs, a second forward chain logs what was allowed (flows-nft.ts).
    ['tenant-flows.nft', renderTenantRuleset({ ...withPolicy, flows: FLOW_LIMITS_DEFAULT })],
    ['tenant-deny-no-rules.nft', renderTenantRuleset(denyTenant)],
    ['tenant-services.nft', renderTenantRuleset(withServices)],
    ['tenant-default.nft', renderTenantRuleset(plans[0]!)],
    ['tenant-blue.nft', renderTenantRuleset(plans[1]!)],
    ['host.nft', renderHostRuleset(planHost({ ...desired, dnsPort: 15353 }), peerVteps(withPeers))],
    ['host-empty.nft', renderHostRuleset([])],
    // A dual-stack tenant (id 1, a published port): NAT66 out of its IPv6 uplink, the port over IPv6 too.
    ['host-dual.nft', renderHostRuleset([planTenant(dual.d, dual.t)], peerVteps(withPeers))],
    ['host-tunnel.nft', renderHostRuleset(planHost({ ...desired, dnsPort: 15353 }), peerVteps(withPeers), { device: 'weft-wg', clearVnis: [10002, 10007] })],
    ['host-tunnel-all-sealed.nft', renderHostRuleset([], peerVteps(withPeers), { device: 'weft-wg', clearVnis: [] })],
    ['guard-default.nft', renderGuardRuleset(plans[0]!)],
    ['guard-empty.nft', renderGuardRuleset({ ...plans[0]!, endpoints: [] })],
    // Flow records in a tenant whose bridged traffic skips IP netfilter: the guard table logs it (flows-nft.ts).
    ['guard-flows.nft', renderGuardRuleset({ ...plans[0]!, flows: FLOW_LIMITS_DEFAULT })],
    // Dual stack: the guard admits each endpoint's IPv6 and link-local address, and the policy classifies
    // an IPv6 address as its endpoint's IPv4 one (allow and deny defaults: the side maps' IPv6 twins).
    ['guard-dual.nft', renderGuardRuleset(planTenant(dual.d, dual.t))],
    // IPv6-only (contiv-net with subnet6 alone): IPv4 and ARP from its overlay are forged; DNS over IPv6.
    ['guard-v6only.nft', renderGuardRuleset(planTenant(sixOnly.d, sixOnly.t))],
    // Flow records in a tenant with IPv6 that filters nothing: its bridge table records IPv6 too.
    ['guard-dual-flows.nft', renderGuardRuleset(planTenant({ ...dual.d, policies: [], flowLog: FLOW_LIMITS_DEFAULT }, dual.t))],
    ['tenant-v6only.nft', renderTenantRuleset(planTenant(sixOnly.d, sixOnly.t))],
    ['host-v6only.nft', renderHostRuleset([planTenant(sixOnly.d, sixOnly.t)], peerVteps(sixOnly.d))],
    // A service there (an IPv6 VIP alone) and a netprofile's DSCP mark on IPv6.
    ['tenant-v6only-services.nft', renderTenantRuleset(planTenant({ ...sixOnly.d, policies: [],
      groups: (sixOnly.d.groups ?? []).map((g) => (g.name === 'db' ? { ...g, netprofile: 'gold' } : g)),
      netprofiles: [{ ...meta, tenant: 'default', name: 'gold', dscp: 10 }],
      services: [{ ...meta, tenant: 'default', name: 'dbsvc', network: 'contiv-net', vip6: 'fd00:1:2::100', selector: { app: 'db' }, ports: [{ port: 80, targetPort: 8888, protocol: 'TCP' }] }],
      endpoints: sixOnly.d.endpoints.map((e) => ({ ...e, labels: { app: 'db' } })) }, sixOnly.t))],
    ['tenant-dual-policy.nft', renderTenantRuleset(planTenant(dual.d, dual.t))],
    ['tenant-dual-deny-policy.nft', renderTenantRuleset(planTenant(dualDeny.d, dualDeny.t))],
    // IPv6 CIDRs beyond the endpoints (NAT66): outside prefixes nested, and the subnet6 around db: the
    // addresses they cover that are no endpoint's get classes (cls6r, before the endpoints' cls6).
    ['tenant-dual-cidr6.nft', renderTenantRuleset(planTenant({ ...dualDeny.d, policies: [{ ...meta, tenant: 'default', name: 'db-policy', rules: [
      { id: '1', priority: 1, direction: 'in', action: 'deny', protocol: 'tcp' },
      { id: 'out', priority: 5, direction: 'out', action: 'allow', protocol: 'tcp', ports: '443', toCidr: '2001:db8::/32' },
      { id: 'bad', priority: 4, direction: 'out', action: 'deny', protocol: 'any', toCidr: '2001:db8:bad::/48' },
      { id: 'in', priority: 10, direction: 'in', action: 'allow', protocol: 'tcp', ports: '8888', fromCidr: 'fd00:1:2::/64' },
    ] }] }, dualDeny.t))],
    // A service on the dual-stack network: an IPv6 VIP balancing to the backends' IPv6 addresses.
    ['tenant-dual-services.nft', renderTenantRuleset(planTenant({ ...dual.d, dnsPort: 15353, policies: [], groups: [],
      services: [{ ...meta, tenant: 'default', name: 'dbsvc', network: 'contiv-net', vip: '10.1.2.200', vip6: 'fd00:1:2::200', selector: { app: 'db' },
        ports: [{ port: 80, targetPort: 8888, protocol: 'TCP' }] }],
      endpoints: dual.d.endpoints.map((e) => ({ ...e, labels: { app: 'db' } })) }, dual.t))],
  ];
}

/**
 * One golden per kind of rule, on db (10.1.2.2, node1) under a deny of tcp: what each compiles to.
 * `cccc` (10.1.2.3) is on node2 in group `far`, whose own rules must leave nothing on node1.
 */
function ruleKinds(): Array<[string, string]> {
  const kinds: Record<string, Array<Partial<Rule>>> = {
    'cidr-ports': [1, 2, 3].map((i) => ({ fromCidr: `192.0.2.${i}/32`, protocol: 'tcp', ports: String(8000 + i) })),
    'nested-ranges': [
      { fromCidr: '10.0.0.0/8', protocol: 'tcp', ports: '1000-2000', priority: 2 },
      { fromCidr: '10.1.0.0/16', protocol: 'tcp', ports: '1500-1600', action: 'deny', priority: 3 },
      { fromCidr: '10.1.2.0/24', protocol: 'udp', ports: '53', priority: 4 },
    ],
    // More ranges than a chain holds as rules (INLINE_RANGES): an interval map of decisions, and a rule per decision.
    'long-pattern': [{ fromCidr: '10.9.0.0/16', protocol: 'tcp', ports: '1000-3000' },
      ...Array.from({ length: 20 }, (_, i) => ({ fromCidr: '10.9.0.0/16', protocol: 'tcp', ports: `${1050 + i * 90}-${1060 + i * 90}`, action: 'deny' as const, priority: 11 }))],
    // The same for protocols other than TCP and UDP (`meta l4proto`): twenty protocol numbers kept out.
    'long-protocols': Array.from({ length: 20 }, (_, i) => ({ fromCidr: '10.9.0.0/16', protocol: String(100 + 2 * i), action: 'deny' as const })),
    'both-directions': [
      { fromCidr: '192.0.2.1/32', protocol: 'tcp', ports: '80' },
      { direction: 'out', toCidr: '198.51.100.0/24', protocol: 'tcp', ports: '443', action: 'deny' },
    ],
    'groups-protocols': [
      { fromGroup: 'far', protocol: 'tcp', ports: '5432' },
      { fromGroup: 'far', protocol: 'icmp', action: 'deny', priority: 5 },
      { direction: 'out', toGroup: 'far', protocol: '47', action: 'deny' },
    ],
  };
  return Object.entries(kinds).map(([kind, rules]) => [`policy-${kind}.nft`, renderTenantRuleset(planTenant({
    ...desired,
    groups: [{ ...meta, tenant: 'default', name: 'db', network: 'contiv-net', policies: ['kind'], labels: {} },
      { ...meta, tenant: 'default', name: 'far', network: 'contiv-net', policies: ['far'], labels: {} }],
    policies: [
      { ...meta, tenant: 'default', name: 'kind', rules: [{ id: 'base', priority: 1, direction: 'in', action: 'deny', protocol: 'tcp' },
        ...rules.map((r, i): Rule => ({ id: String(i), priority: 10, direction: 'in', action: 'allow', protocol: 'any', ...r }))] },
      { ...meta, tenant: 'default', name: 'far', rules: [{ id: 'x', priority: 9, direction: 'in', action: 'deny', protocol: 'tcp', ports: '22', fromCidr: '203.0.113.0/24' }] },
    ],
    endpoints: desired.endpoints.map((e) => (e.id.startsWith('a') ? { ...e, group: 'db' } : e.id.startsWith('c') ? { ...e, group: 'far' } : e)),
  }, tenant('default', 1)))]);
}

test('rulesets render as golden files', () => {
  for (const [name, text] of renderedRulesets()) golden(name, text);
});

// `nft -c` parses and checks against the kernel without changing anything, but it opens a netlink socket
// that needs CAP_NET_ADMIN: as another user it fails for that reason alone, so it is skipped, not failed.
test('the real nft parser accepts every rendered ruleset', { skip: !root && 'nft -c needs root' }, async () => {
  const runner = new ProcessRunner();
  for (const [name, text] of renderedRulesets()) {
    const r = await runner.run(['nft', '-c', '-f', '-'], { input: text, allowFailure: true });
    assert.equal(r.code, 0, `${name} is rejected by nft: ${r.stderr}`);
  }
});

test('a change of map elements rewrites that map only; a changed hook needs a replace', () => {
  const base = { family: 'inet', name: 'weft', chains: ['\tchain forward {', '\t}'], maps: [{ name: 'cls', type: 'ipv4_addr : mark', interval: true, elements: ['10.0.0.1 : 1', '10.0.0.2-10.0.0.255 : 2'] }] };
  const next = { ...base, maps: [{ ...base.maps[0]!, elements: ['10.0.0.1 : 1', '10.0.0.2 : 3', '10.0.0.3-10.0.0.255 : 2'] }] };
  assert.deepEqual(brief(diffTables(base, next)), { structural: false, script: 'flush map inet weft cls\nadd map inet weft cls {\n\t\ttype ipv4_addr : mark\n\t\tflags interval\n\t\telements = { 10.0.0.1 : 1,\n\t\t\t10.0.0.2 : 3,\n\t\t\t10.0.0.3-10.0.0.255 : 2 }\n}\n' });
  assert.deepEqual(brief(diffTables(base, base)), { structural: false, script: '' });
  const hooked = (policy: string) => ({ ...base, chains: ['\tchain forward {', `\t\ttype filter hook forward priority filter; policy ${policy};`, '\t}'] });
  assert.equal(diffTables(hooked('accept'), hooked('drop')), undefined);
});

test('the overlay device stays while another host is registered, flooding only to hosts with endpoints', () => {
  const host = (name: string, vtepIp: string) => ({ ...meta, name, vtepIp, lastSeen: '' });
  const withHosts = { ...desired, vtep: '192.0.2.1', hosts: [host('node1', '192.0.2.1'), host('node2', '192.0.2.2')] };
  const p = planTenant(withHosts, tenant('default', 1));
  assert.deepEqual(p.bridges.map((b) => [b.name, b.overlay?.peers, b.overlay?.remotes.map((r) => r.ip)]), [
    ['wb10000', ['192.0.2.2'], ['10.1.2.3']],
    ['wb10002', [], []],
  ], 'app-net has no endpoint elsewhere: its device exists, with no flood entry');
  assert.equal(planTenant({ ...withHosts, hosts: [host('node1', '192.0.2.1')] }, tenant('default', 1)).bridges[0]?.overlay, undefined, 'alone: no overlay');
});

test('with flow records on, a policy change is a delta that keeps the flow chains; turning records on or off, or changing their limits, replaces the table', () => {
  const plan = (port: string, flows: typeof FLOW_LIMITS_DEFAULT | null = FLOW_LIMITS_DEFAULT) => planTenant({
    ...desired,
    ...(flows ? { flowLog: flows } : {}),
    groups: [{ ...meta, tenant: 'default', name: 'db', network: 'contiv-net', policies: ['db-policy'], labels: {} }],
    policies: [{ ...meta, tenant: 'default', name: 'db-policy', rules: [
      { id: '1', priority: 1, direction: 'in', action: 'deny', protocol: 'tcp' },
      { id: '2', priority: 10, direction: 'in', action: 'allow', protocol: 'tcp', ports: port },
    ] }],
    endpoints: desired.endpoints.map((e) => (e.id.startsWith('a') ? { ...e, group: 'db' } : e)),
  }, tenant('default', 1));
  const before = renderTenantTable(plan('8888'));
  const delta = diffTables(before, renderTenantTable(plan('8889')));
  assert.ok(delta && delta.script.length > 0, 'a delta');
  assert.doesNotMatch(delta.script, /flowsrc|flowtotal|chain inet weft (flows|deny)\b/, `the flow chains, set and limit are untouched: ${delta.script}`);
  assert.equal(diffTables(before, renderTenantTable(plan('8888', null))), undefined, 'records off: a replace');
  assert.equal(diffTables(renderTenantTable(plan('8888', null)), before), undefined, 'records on: a replace');
  assert.equal(diffTables(before, renderTenantTable(plan('8888', { perSource: 5, total: 100 }))), undefined, 'other limits: a replace');
});

test('bridged connections are logged by the guard table only while bridged traffic skips IP netfilter, so never twice and never without conntrack where the policy needs it', () => {
  const withRules = (rules: Rule[], defaultAction: Tenant['defaultAction'] = 'allow') => planTenant({
    ...desired,
    flowLog: FLOW_LIMITS_DEFAULT,
    groups: [{ ...meta, tenant: 'default', name: 'db', network: 'contiv-net', policies: rules.length ? ['p'] : [], labels: {} }],
    policies: rules.length ? [{ ...meta, tenant: 'default', name: 'p', rules }] : [],
    endpoints: desired.endpoints.map((e) => (e.id.startsWith('a') ? { ...e, group: 'db' } : e)),
  }, { ...tenant('default', 1), defaultAction });
  const bridgeLogs = (p: ReturnType<typeof withRules>) => /chain flows \{[^}]*hook forward/.test(renderGuardRuleset(p));
  const inetLogs = (p: ReturnType<typeof withRules>) => /chain flows \{[^}]*hook forward/.test(renderTenantRuleset(p));
  const plain = withRules([]);
  assert.equal(bridgedThroughNetfilter(plain), false, 'no policy: bridged traffic skips conntrack');
  assert.ok(bridgeLogs(plain) && inetLogs(plain), 'the guard logs bridged connections, the inet table routed ones');
  const filtering = withRules([{ id: '1', priority: 1, direction: 'in', action: 'deny', protocol: 'tcp', ports: '22' }]);
  assert.equal(bridgedThroughNetfilter(filtering), true);
  assert.ok(!bridgeLogs(filtering) && inetLogs(filtering), 'a policy that filters: the inet table logs everything, with its verdicts');
  const denyAll = withRules([], 'deny');
  assert.equal(bridgedThroughNetfilter(denyAll), true, 'a default of drop filters');
  assert.ok(!bridgeLogs(denyAll));
  assert.ok(!bridgeLogs({ ...plain, flows: undefined }), 'records off: no chain');
  assert.ok(!bridgeLogs({ ...plain, dscp: [{ dscp: 10, ips: ['10.1.2.2'] }] }), 'DSCP marks need bridged traffic in netfilter');
});

test('a host port published twice (records of an older server, or written by hand) renders once, the first: the kernel would refuse the map, and the table with it', () => {
  const d: DesiredHostState = {
    ...desired,
    endpoints: [
      ep('aaaaaaaaaaaaaaaa', 'default', 'contiv-net', '10.1.2.2', 'node1', [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }, { hostPort: 8080, containerPort: 81, protocol: 'tcp' }, { hostPort: 8080, containerPort: 82, protocol: 'udp' }]),
      ep('bbbbbbbbbbbbbbbb', 'blue', 'contiv-net', '10.1.2.2', 'node1', [{ hostPort: 8080, containerPort: 53, protocol: 'tcp' }]),
    ],
  };
  const plans = [planTenant(d, tenant('default', 1)), planTenant(d, tenant('blue', 2))];
  const map = (t: { maps: Array<{ name: string; elements: string[] }> }, name: string) => t.maps.find((m) => m.name === name)?.elements;
  assert.deepEqual(map(renderTenantTable(plans[0]!), 'published'), ['tcp . 8080 : 10.1.2.2 . 80', 'udp . 8080 : 10.1.2.2 . 82']);
  assert.deepEqual(map(renderHostTable(plans), 'published'), ['tcp . 8080 : 169.254.0.6', 'udp . 8080 : 169.254.0.6']);
});
