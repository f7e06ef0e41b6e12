import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { block6Of, blockOf, formatIp6, parseIp, type Endpoint, type Host, type Network, type Tenant } from '../model/index.js';
import { planHost, planHostSide, type DesiredHostState } from './plan.js';
import { renderTenantRuleset } from './nft.js';
import { renderHostRuleset } from './host-nft.js';
import { renderGuardRuleset } from './guard-nft.js';
import { bridgeFiltering } from './linux/tenant.js';
import { renderBirdConfig } from './bird-conf.js';
import { routeCommands } from './linux/routes.js';
import { ProcessRunner } from '../exec/index.js';
import { golden, TESTDATA } from './golden.js';

const meta = { revision: 1, createdAt: '', updatedAt: '' };
const tenant = (name: string, id: number): Tenant => ({ ...meta, name, id, defaultAction: 'allow' });
const host = (name: string, vtepIp: string): Host => ({ ...meta, name, vtepIp, lastSeen: '' } as Host);
const ep = (id: string, t: string, network: string, ip: string, h: string): Endpoint => ({
  ...meta, id, tenant: t, network, ip, prefixLength: 16, gateway: '10.20.0.1', mac: '02:57:00:00:00:01', mtu: 1500, vni: 0, host: h, ifname: 'eth0',
  containerId: id, labels: {}, state: 'created',
});
const routed = (t: string, name: string, subnet: string, gateway: string, vni: number, bgp?: Partial<Network>): Network =>
  ({ ...meta, tenant: t, name, subnet, gateway, encap: 'routed', encrypt: false, vni, mtu: 1500, blockSize: 26, ...bgp });

/** Host node1 of three; tenant red has a routed network with BGP, blue one without, default a VXLAN one. */
const desired: DesiredHostState = {
  host: 'node1', nsPrefix: 'weft-', vtep: '192.0.2.1',
  hosts: [host('node1', '192.0.2.1'), host('node2', '192.0.2.2'), host('node3', '192.0.2.3')],
  tenants: [tenant('default', 1), tenant('red', 2), tenant('blue', 3)],
  networks: [
    { ...meta, tenant: 'default', name: 'vx', subnet: '10.1.2.0/24', gateway: '10.1.2.1', encap: 'vxlan', vni: 100, mtu: 1450 },
    routed('red', 'fabric', '10.20.0.0/16', '10.20.0.1', 101, { bgpPeers: ['192.0.2.254'], bgpPeerAs: 64512, bgpLocalAs: 64513 }),
    routed('blue', 'flat', '10.30.0.0/24', '10.30.0.1', 102),
  ],
  endpoints: [
    ep('a100000000000000', 'red', 'fabric', '10.20.0.2', 'node1'),
    ep('a200000000000000', 'red', 'fabric', '10.20.0.3', 'node1'),
    ep('a300000000000000', 'red', 'fabric', '10.20.0.130', 'node1'),
    ep('a400000000000000', 'red', 'fabric', '10.20.0.66', 'node2'),
    ep('b100000000000000', 'blue', 'flat', '10.30.0.2', 'node1'),
    ep('b200000000000000', 'blue', 'flat', '10.30.0.66', 'node2'),
    ep('b300000000000000', 'blue', 'flat', '10.30.0.130', 'node3'),
  ],
};

test('a routed network: the gateway as a /32 on its bridge, no overlay, the blocks of this host\'s endpoints', () => {
  const [, red, blue] = planHost(desired);
  assert.deepEqual(red?.bridges.map((b) => [b.address, b.overlay, b.routed]), [['10.20.0.1/32', undefined, { subnet: '10.20.0.0/16', blocks: ['10.20.0.0/26', '10.20.0.128/26'] }]]);
  assert.deepEqual(red?.routed, ['10.20.0.0/16']);
  assert.deepEqual(blue?.bridges[0]?.routed?.blocks, ['10.30.0.0/26']);
  assert.deepEqual(planHost(desired)[0]?.routed, [], 'a VXLAN network is not routed');
});

test('the host routes its blocks into the tenant uplink, the rest of each subnet nowhere, and without BGP the others\' blocks to their hosts', () => {
  const h = planHostSide(desired);
  assert.deepEqual(h.routes, [
    { dst: '10.20.0.0/16', unreachable: true },
    { dst: '10.20.0.0/26', via: '169.254.0.10', dev: 'wu2' },
    { dst: '10.20.0.128/26', via: '169.254.0.10', dev: 'wu2' },
    { dst: '10.30.0.0/24', unreachable: true },
    { dst: '10.30.0.0/26', via: '169.254.0.14', dev: 'wu3' },
    { dst: '10.30.0.128/26', via: '192.0.2.3' },
    { dst: '10.30.0.64/26', via: '192.0.2.2' },
  ]);
  assert.deepEqual(h.bgp, {
    routerId: '192.0.2.1', blocks: ['10.20.0.0/26', '10.20.0.128/26'], blocks6: [],
    sessions: [{ name: 'weft_192_0_2_254', peer: '192.0.2.254', peerAs: 64512, localAs: 64513, exports: ['10.20.0.0/26', '10.20.0.128/26'], imports: ['10.20.0.0/16{26,26}'], exports6: [], imports6: [] }],
  }, 'red\'s blocks by BGP; node2\'s red block is learned, not routed by the agent');
  const none = planHostSide({ ...desired, networks: desired.networks.slice(0, 1) });
  assert.deepEqual([none.routes, none.bgp], [[], undefined], 'no routed network: no routes, no BGP daemon');
});

test('two hosts claiming one block (a moment while a block changes hands): routed to one of them, never both', () => {
  const h = planHostSide({ ...desired, endpoints: [...desired.endpoints, ep('b400000000000000', 'blue', 'flat', '10.30.0.70', 'node3')] });
  assert.deepEqual(h.routes.filter((r) => r.dst === '10.30.0.64/26'), [{ dst: '10.30.0.64/26', via: '192.0.2.2' }]);
});

function rendered(): Array<[string, string]> {
  const tenants = planHost(desired);
  const h = planHostSide(desired, tenants);
  return [
    ['tenant-routed.nft', renderTenantRuleset(tenants[1]!)],
    ['host-routed.nft', renderHostRuleset(tenants, h.peers)],
    ['guard-routed.nft', renderGuardRuleset(tenants[1]!)],
  ];
}

test('routed rulesets and the BGP daemon\'s configuration render as golden files', () => {
  for (const [name, text] of rendered()) golden(name, text);
  golden('bird-routed.conf', renderBirdConfig(planHostSide(desired).bgp!));
  const text = renderTenantRuleset(planHost(desired)[1]!);
  assert.match(text, /oifname "up0" ip saddr \{ 10\.20\.0\.0\/16 \} return/, 'routed addresses leave the tenant unmasqueraded');
});

const root = process.getuid?.() === 0;
const has = (bin: string) => ['/usr/sbin', '/usr/bin', '/sbin', '/bin'].some((d) => existsSync(join(d, bin)));

test('the real nft parser accepts the routed rulesets', { skip: !root && 'nft -c needs root' }, async () => {
  const runner = new ProcessRunner();
  for (const [name, text] of rendered()) {
    const r = await runner.run(['nft', '-c', '-f', '-'], { input: text, allowFailure: true });
    assert.equal(r.code, 0, `${name} is rejected by nft: ${r.stderr}`);
  }
});

test('bird accepts the configuration (bird -p)', { skip: !has('bird') && 'bird2 is not installed' }, async () => {
  const runner = new ProcessRunner();
  const file = join(TESTDATA, 'bird-routed.conf');
  for (const conf of [file]) {
    const r = await runner.run(['bird', '-p', '-c', conf], { allowFailure: true });
    assert.equal(r.code, 0, `bird refuses ${conf}: ${r.stderr}`);
  }
  const empty = renderBirdConfig({ routerId: '192.0.2.9', blocks: [], sessions: [{ name: 'weft_x', peer: '192.0.2.254', peerAs: 64512, localAs: 64513, exports: [], imports: ['10.20.0.0/16{26,26}'], exports6: [], imports6: [] }], blocks6: [] });
  const r = await runner.run(['bash', '-c', 'f=$(mktemp) && cat > "$f" && bird -p -c "$f"; rc=$?; rm -f "$f"; exit $rc'], { input: empty, allowFailure: true });
  assert.equal(r.code, 0, `a host without blocks yet: ${r.stderr}`);
});

test('a routed bridge never bridges: the guard drops what would cross it port to port; its bridge-nf flag stays off while the others carry the filtering', () => {
  const [vx, red] = planHost(desired);
  assert.match(renderGuardRuleset(red!), /set routed_ports \{\n\t\ttype ifname\n\t\telements = \{ "wea10000000000",\n\t\t\t"wea20000000000",\n\t\t\t"wea30000000000" \}/);
  assert.match(renderGuardRuleset(red!), /iifname @routed_ports drop/);
  assert.doesNotMatch(renderGuardRuleset(vx!), /routed_only/, 'a tenant without routed networks: no such chain');
  const filtering = { ...red!, bridges: [...red!.bridges, { ...vx!.bridges[0]!, name: 'wb100' }], services: [{ vip: '10.20.0.200' } as never] };
  assert.deepEqual(bridgeFiltering(filtering), { namespace: false, bridges: new Map([['wb101', 0], ['wb100', 1]]) }, 'routed tenant that filters: per bridge');
  assert.deepEqual(bridgeFiltering({ ...vx!, services: [{ vip: '10.1.2.200' } as never] }), { namespace: true, bridges: new Map([['wb100', 0]]) }, 'no routed network: the namespace switch, as before');
});

test('route convergence: adds what is missing, deletes only stale routes of its own protocol, leaves the rest', () => {
  const have = new Map([
    ['unicast 10.20.0.0/26 169.254.0.10', { dst: '10.20.0.0/26', gateway: '169.254.0.10', dev: 'wu2' }],
    ['unicast 10.20.0.64/26 169.254.0.10', { dst: '10.20.0.64/26', gateway: '169.254.0.10', dev: 'wu2' }],
    ['unreachable 10.20.0.0/16 dev ', { type: 'unreachable', dst: '10.20.0.0/16' }],
  ]);
  assert.deepEqual(routeCommands([
    { dst: '10.20.0.0/16', unreachable: true },
    { dst: '10.20.0.0/26', via: '169.254.0.10', dev: 'wu2' },
    { dst: '10.20.0.128/26', via: '192.0.2.2' },
  ], have), [
    'route del 10.20.0.64/26 via 169.254.0.10 table main proto 87',
    'route add 10.20.0.128/26 via 192.0.2.2 table main proto 87',
  ]);
  assert.deepEqual(routeCommands([{ dst: '10.20.0.0/26', dev: 'wb5', src: '10.20.0.1' }], new Map()),
    ['route add 10.20.0.0/26 dev wb5 table main proto 87 scope link src 10.20.0.1']);
  // IPv6: no scope (an IPv6 route has none to give); an unreachable one is listed on lo and compared without it.
  assert.deepEqual(routeCommands([
    { dst: 'fd00:20::/64', unreachable: true },
    { dst: 'fd00:20::/74', dev: 'wb5', src: 'fd00:20::1' },
    { dst: 'fd00:20:0:0:40::/74', via: 'fd99::2' },
  ], new Map([['unreachable fd00:20::/64 dev ', { type: 'unreachable', dst: 'fd00:20::/64', dev: 'lo' }]])), [
    'route add fd00:20::/74 dev wb5 table main proto 87 src fd00:20::1',
    'route add fd00:20:0:0:40::/74 via fd99::2 table main proto 87',
  ]);
});

test('a tenant with overlay and routed networks: its overlay sources are refused from the uplink, except towards its routed networks', () => {
  const withOverlay = { ...desired, networks: [...desired.networks, { ...meta, tenant: 'red', name: 'ov', subnet: '10.21.0.0/24', gateway: '10.21.0.1', encap: 'vxlan' as const, vni: 103, mtu: 1450 }] };
  const red = planHost(withOverlay)[1]!;
  assert.match(renderTenantRuleset(red), /iifname "up0" ip saddr \{ 10\.21\.0\.0\/24 \} ip daddr != \{ 10\.20\.0\.0\/16 \} ct state new counter drop/);
  assert.doesNotMatch(renderTenantRuleset(red), /ip saddr \{[^}]*10\.20\.0\.0\/16[^}]*\} (ip daddr != \{[^}]*\} )?ct state new counter drop/, 'the routed subnet itself comes from the uplink');
});

/**
 * Dual stack (issue 19): red's `fabric` (BGP) and blue's `flat` (no BGP) with a subnet6; node2 has an IPv6
 * underlay address, node3 none. IPv6 blocks pair with the IPv4 ones (block6Of): fabric's /16 in /26s and
 * its /64 in /74s, flat's /24 in /26s and its /64 in /66s.
 */
const six = (e: Endpoint, n: Network): Endpoint => {
  const ip = parseIp(e.ip as string) as number;
  const b4 = blockOf(n, ip);
  const b = block6Of(n, b4.index)!;
  return { ...e, ip6: formatIp6(b.range.first + BigInt(ip - b4.range.first)), prefixLength6: 64, gateway6: n.gateway6 as string };
};
const fabric6 = { ...desired.networks[1]!, subnet6: 'fd00:20::/64', gateway6: 'fd00:20::1' };
const flat6 = { ...desired.networks[2]!, subnet6: 'fd00:30::/64', gateway6: 'fd00:30::1' };
const desired6: DesiredHostState = {
  ...desired,
  hosts: [{ ...host('node1', '192.0.2.1'), vtepIp6: 'fd99::1' }, { ...host('node2', '192.0.2.2'), vtepIp6: 'fd99::2' }, host('node3', '192.0.2.3')],
  networks: [desired.networks[0]!, fabric6, flat6],
  endpoints: desired.endpoints.map((e) => six(e, e.network === 'fabric' ? fabric6 : flat6)),
};

test('a dual-stack routed network: the IPv6 gateway as a /128, the IPv6 blocks paired with this host\'s, routed like the IPv4 ones', () => {
  const [, red, blue] = planHost(desired6);
  assert.deepEqual(red?.bridges.map((b) => [b.address, b.address6, b.routed]), [['10.20.0.1/32', 'fd00:20::1/128', {
    subnet: '10.20.0.0/16', blocks: ['10.20.0.0/26', '10.20.0.128/26'], subnet6: 'fd00:20::/64', blocks6: ['fd00:20:0:0:80::/74', 'fd00:20::/74'],
  }]]);
  assert.deepEqual([red?.routed6, red?.routedNat6, blue?.routed6, blue?.routedNat6], [['fd00:20::/64'], [], ['fd00:30::/64'], ['fd00:30::/64']]);
  const h = planHostSide(desired6);
  assert.deepEqual(h.routes.filter((r) => r.dst.includes(':')), [
    { dst: 'fd00:20::/64', unreachable: true },
    { dst: 'fd00:20:0:0:80::/74', via: red?.uplink.tenantIp6, dev: 'wu2' },
    { dst: 'fd00:20::/74', via: red?.uplink.tenantIp6, dev: 'wu2' },
    { dst: 'fd00:30::/64', unreachable: true },
    { dst: 'fd00:30::/66', via: blue?.uplink.tenantIp6, dev: 'wu3' },
    // node2's block of flat through its IPv6 underlay address; node3 has none: its IPv6 block is not routed.
    { dst: 'fd00:30:0:0:4000::/66', via: 'fd99::2' },
  ]);
  assert.deepEqual(h.bgp?.blocks6, ['fd00:20:0:0:80::/74', 'fd00:20::/74']);
  assert.deepEqual(h.bgp?.sessions.map((s) => [s.exports6, s.imports6]), [[['fd00:20:0:0:80::/74', 'fd00:20::/74'], ['fd00:20::/64{74,74}']]]);
  const conf = renderBirdConfig(h.bgp!);
  assert.match(conf, /protocol kernel weft_kernel6 \{\n\tipv6 \{ import none; export where source = RTS_BGP; \};/);
  assert.match(conf, /\tipv6 \{\n\t\timport filter \{ if net ~ \[ fd00:20:0:0:80::\/74\+, fd00:20::\/74\+ \] then reject; if net ~ \[ fd00:20::\/64\{74,74\} \] then accept; reject; \};/);
  assert.match(conf, /next hop address fd99::1;/, 'its own IPv6 underlay address as next hop');
  assert.doesNotMatch(renderBirdConfig(planHostSide(desired).bgp!), /ipv6/, 'a host without an IPv6 underlay address: no IPv6 in bird');
  // This host without an IPv6 underlay address: its own blocks still go into the uplink, nothing goes to or
  // comes from other hosts over IPv6, and BGP carries no IPv6.
  const alone = planHostSide({ ...desired6, hosts: [host('node1', '192.0.2.1'), ...desired6.hosts!.slice(1)] });
  assert.deepEqual(alone.routes.filter((r) => r.dst.includes(':') && r.via?.startsWith('fd99')), [], 'no route to another host\'s IPv6 underlay');
  assert.ok(alone.routes.some((r) => r.dst === 'fd00:30::/66' && r.dev === 'wu3'));
  assert.deepEqual([alone.bgp?.blocks6, alone.bgp?.nextHop6, alone.bgp?.sessions[0]?.imports6], [[], undefined, []]);
});

test("a host's IPv6 underlay address and a session with nothing of IPv6 to carry yet: the ipv6 channel is there, empty (adding it later would restart the session)", async () => {
  const h = planHostSide({ ...desired, hosts: [{ ...host('node1', '192.0.2.1'), vtepIp6: 'fd99::1' }, ...desired.hosts!.slice(1)] });
  const conf = renderBirdConfig(h.bgp!);
  assert.match(conf, /\tipv6 \{ import none; export none; \};/);
  assert.match(conf, /protocol static weft_blocks6 \{\n\tipv6;\n\}/);
  if (!has('bird')) return;
  const r = await new ProcessRunner().run(['bash', '-c', 'f=$(mktemp) && cat > "$f" && bird -p -c "$f"; rc=$?; rm -f "$f"; exit $rc'], { input: conf, allowFailure: true });
  assert.equal(r.code, 0, `bird refuses it: ${r.stderr}`);
});

function rendered6(): Array<[string, string]> {
  const tenants = planHost(desired6);
  const h = planHostSide(desired6, tenants);
  return [['tenant-routed6.nft', renderTenantRuleset(tenants[1]!)], ['host-routed6.nft', renderHostRuleset(tenants, h.peers)], ['guard-routed6.nft', renderGuardRuleset(tenants[1]!)]];
}

test('dual-stack routed rulesets and bird configuration render as golden files; nft and bird accept them', { skip: !root && 'nft -c needs root' }, async () => {
  for (const [name, text] of rendered6()) golden(name, text);
  golden('bird-routed6.conf', renderBirdConfig(planHostSide(desired6).bgp!));
  const tenant = renderTenantRuleset(planHost(desired6)[1]!);
  assert.match(tenant, /oifname "up0" ip6 saddr \{ fd00:20::\/64 \} return comment "routed networks are not masqueraded"/);
  const runner = new ProcessRunner();
  for (const [name, text] of rendered6()) {
    const r = await runner.run(['nft', '-c', '-f', '-'], { input: text, allowFailure: true });
    assert.equal(r.code, 0, `${name} is rejected by nft: ${r.stderr}`);
  }
  if (has('bird')) {
    const r = await runner.run(['bird', '-p', '-c', join(TESTDATA, 'bird-routed6.conf')], { allowFailure: true });
    assert.equal(r.code, 0, `bird refuses bird-routed6.conf: ${r.stderr}`);
  }
});
