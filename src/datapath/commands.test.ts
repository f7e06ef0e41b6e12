import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fdbCommands, linkCommands, neighCommands, type TenantPlan, type OverlayPlan } from './index.js';
import type { ObservedLink } from './linux/index.js';

const vx: OverlayPlan = {
  encap: 'vxlan', name: 'wx100', vni: 100, local: '192.0.2.1', peers: ['192.0.2.2', '192.0.2.3'], proxy: true,
  remotes: [{ mac: '02:57:0a:00:00:05', vtep: '192.0.2.2', ip: '10.0.0.5' }],
};
const plan: TenantPlan = {
  tenant: 't', id: 1, ns: 'weft-t1', ports: [], policy: undefined, services: [], dscp: [], qos: [], dns: undefined, flows: undefined,
  uplink: { hostLink: 'wu1', tenantLink: 'up0', hostIp: '169.254.0.5', tenantIp: '169.254.0.6', prefix: 30 },
  bridges: [{ name: 'wb100', network: 'n', vni: 100, mac: '06:00:00:00:00:64', address: '10.0.0.1/24', vips: [], mtu: 1450, overlay: vx }],
  endpoints: [{ id: 'aaaaaaaaaaaaaaaa', veth: 'weaaaaaaaaaaaa', bridge: 'wb100', ip: '10.0.0.2', mac: '02:57:0a:00:00:02', mtu: 1450, hairpin: false }], macvlans: [], routed: [], routedNat: [],
};
const link = (name: string, kind: string, extra: Partial<ObservedLink> = {}): [string, ObservedLink] =>
  [name, { name, kind, master: undefined, up: true, mtu: 1450, addresses: [], addresses6: [], ...extra }];

test('links: a right kernel needs no command; drift and strangers get exactly the commands to fix them', () => {
  const right = new Map([
    link('wb100', 'bridge', { addresses: ['10.0.0.1/24'], mac: '06:00:00:00:00:64' }),
    link('weaaaaaaaaaaaa', 'veth', { master: 'wb100' }),
    link('wx100', 'vxlan', { master: 'wb100' }),
    link('up0', 'veth'), link('lo', ''),
  ]);
  assert.deepEqual(linkCommands(plan, right), []);
  // A bridge whose MAC is a port's (made before it was fixed, or changed by hand): set back once.
  assert.deepEqual(linkCommands(plan, new Map([...right, link('wb100', 'bridge', { addresses: ['10.0.0.1/24'], mac: '0a:8b:9d:26:49:04' })])), ['link set wb100 address 06:00:00:00:00:64']);
  const drifted = new Map([
    link('weaaaaaaaaaaaa', 'veth'),
    link('wx100', 'vxlan', { master: 'wb100', mtu: 1500 }),
    link('wb999', 'bridge'), link('webbbbbbbbbbbb', 'veth'), link('weprotected000', 'veth'), link('wx999', 'vxlan'),
    link('eth9', 'veth'),
  ]);
  assert.deepEqual(linkCommands(plan, drifted, new Set(['weprotected000'])), [
    'link add wb100 address 06:00:00:00:00:64 type bridge nf_call_iptables 0 nf_call_ip6tables 0', 'link set wb100 mtu 1450', 'addr replace 10.0.0.1/24 dev wb100', 'link set wb100 up',
    'link set weaaaaaaaaaaaa master wb100 up',
    'link set wx100 master wb100 mtu 1450 up',
    'link del wb999', 'link del webbbbbbbbbbbb', 'link del wx999',
  ], 'missing bridge made, detached veth re-attached, wrong MTU fixed, owned strangers removed; in-flight and foreign links untouched');
});

test('fdb: head-end replication to every peer, static entries for remote MACs, stale ones removed', () => {
  assert.deepEqual(fdbCommands(vx, []), [
    'fdb append 00:00:00:00:00:00 dev wx100 dst 192.0.2.2 self permanent',
    'fdb append 00:00:00:00:00:00 dev wx100 dst 192.0.2.3 self permanent',
    'fdb replace 02:57:0a:00:00:05 dev wx100 dst 192.0.2.2 self permanent',
  ]);
  const observed = [
    { mac: '00:00:00:00:00:00', dst: '192.0.2.2', flags: ['self'] },
    { mac: '00:00:00:00:00:00', dst: '192.0.2.9', flags: ['self'] },
    { mac: '02:57:0a:00:00:05', dst: '192.0.2.2', flags: ['self'] },
    { mac: '02:57:0a:00:00:07', flags: [] },
  ];
  assert.deepEqual(fdbCommands(vx, observed), [
    'fdb append 00:00:00:00:00:00 dev wx100 dst 192.0.2.3 self permanent',
    'fdb del 00:00:00:00:00:00 dev wx100 dst 192.0.2.9 self',
  ], 'bridge-learned entries (no dst) are left to the bridge');
});

test('fdb: two remote endpoints with one MAC get one entry, the same every pass (no flip-flop)', () => {
  const twins: OverlayPlan = { ...vx, remotes: [{ mac: '02:00:00:00:00:01', vtep: '192.0.2.3', ip: '10.0.0.8' }, { mac: '02:00:00:00:00:01', vtep: '192.0.2.2', ip: '10.0.0.9' }] };
  const first = fdbCommands(twins, []).filter((l) => !l.startsWith('fdb append'));
  assert.deepEqual(first, ['fdb replace 02:00:00:00:00:01 dev wx100 dst 192.0.2.2 self permanent']);
  const kernel = [
    { mac: '00:00:00:00:00:00', dst: '192.0.2.2', flags: ['self'] },
    { mac: '00:00:00:00:00:00', dst: '192.0.2.3', flags: ['self'] },
    { mac: '02:00:00:00:00:01', dst: '192.0.2.2', flags: ['self'] },
  ];
  assert.deepEqual(fdbCommands(twins, kernel), [], 'what the first pass wrote is what the next wants');
  assert.deepEqual(fdbCommands({ ...twins, remotes: [...twins.remotes].reverse() }, kernel), [], 'whatever the order of the endpoints');
});

test('neighbours: permanent entries for remote endpoints in proxy mode, none in flood mode', () => {
  assert.deepEqual(neighCommands(vx, []), ['neigh replace 10.0.0.5 lladdr 02:57:0a:00:00:05 dev wx100 nud permanent']);
  assert.deepEqual(neighCommands(vx, [{ dst: '10.0.0.5', lladdr: '02:57:0a:00:00:05', state: ['PERMANENT'] }]), []);
  assert.deepEqual(neighCommands({ ...vx, proxy: false }, [{ dst: '10.0.0.5', lladdr: '02:57:0a:00:00:05', state: ['PERMANENT'] }]), ['neigh del 10.0.0.5 dev wx100']);
});

test('shaping: a right kernel needs no command; a new rate replaces both TBFs; a lost profile is removed', async () => {
  const { qosCommands } = await import('./linux/qos.js');
  const q = { endpoint: 'aaaaaaaaaaaaaaaa', veth: 'weaaaaaaaaaaaa', ifb: 'wiaaaaaaaaaaaa', rate: 10e6, burst: 512000 };
  const present = new Set([q.veth, q.ifb, 'webbbbbbbbbbbb']);
  const right = { tbf: new Map([[q.veth, { rate: 1250000, burst: 511999 }], [q.ifb, { rate: 1250000, burst: 512000 }]]), ingress: new Set([q.veth]) };
  assert.deepEqual(qosCommands([q], right, present, [q.veth]), { ip: [], tc: [] });
  const fresh = qosCommands([q], { tbf: new Map(), ingress: new Set() }, new Set([q.veth]), [q.veth]);
  assert.deepEqual(fresh.ip, ['link add wiaaaaaaaaaaaa type ifb', 'link set wiaaaaaaaaaaaa up']);
  assert.deepEqual(fresh.tc, [
    'qdisc replace dev weaaaaaaaaaaaa root tbf rate 10000000bit burst 512000 latency 50ms',
    'qdisc replace dev wiaaaaaaaaaaaa root tbf rate 10000000bit burst 512000 latency 50ms',
    'qdisc add dev weaaaaaaaaaaaa handle ffff: ingress',
    'filter add dev weaaaaaaaaaaaa parent ffff: protocol all prio 1 u32 match u32 0 0 action mirred egress redirect dev wiaaaaaaaaaaaa',
  ]);
  const faster = qosCommands([{ ...q, rate: 100e6 }], right, present, [q.veth]);
  assert.deepEqual(faster.tc.map((l) => l.split(' rate ')[0]), ['qdisc replace dev weaaaaaaaaaaaa root tbf', 'qdisc replace dev wiaaaaaaaaaaaa root tbf']);
  const shapedB = { tbf: new Map([['webbbbbbbbbbbb', { rate: 1, burst: 1 }]]), ingress: new Set(['webbbbbbbbbbbb']) };
  assert.deepEqual(qosCommands([], shapedB, present, ['webbbbbbbbbbbb']).tc, ['qdisc del dev webbbbbbbbbbbb root', 'qdisc del dev webbbbbbbbbbbb ingress']);
  assert.deepEqual(qosCommands([q], { tbf: new Map(), ingress: new Set() }, new Set(), []), { ip: [], tc: [] }, 'no veth yet: nothing');
});

test('links: service VIPs are held as /32s on their bridge and stale ones dropped; ports reflect frames while there are services', () => {
  const withVip: TenantPlan = {
    ...plan, bridges: [{ ...plan.bridges[0]!, vips: ['10.0.0.200'] }],
    endpoints: plan.endpoints.map((e) => ({ ...e, hairpin: true })),
  };
  const kernel = new Map([
    link('wb100', 'bridge', { addresses: ['10.0.0.1/24', '10.0.0.9/32'] }),
    link('weaaaaaaaaaaaa', 'veth', { master: 'wb100', hairpin: false }),
    link('wx100', 'vxlan', { master: 'wb100' }),
    link('wiaaaaaaaaaaaa', 'ifb'), link('wibbbbbbbbbbbb', 'ifb'),
  ]);
  assert.deepEqual(linkCommands(withVip, kernel), [
    'addr replace 10.0.0.200/32 dev wb100', 'addr del 10.0.0.9/32 dev wb100',
    'link set weaaaaaaaaaaaa type bridge_slave hairpin on',
    'link del wiaaaaaaaaaaaa', 'link del wibbbbbbbbbbbb',
  ], 'IFBs of endpoints without shaping go too');
  const settled = new Map([...kernel, link('wb100', 'bridge', { addresses: ['10.0.0.1/24', '10.0.0.200/32'] }), link('weaaaaaaaaaaaa', 'veth', { master: 'wb100', hairpin: true })]);
  settled.delete('wiaaaaaaaaaaaa');
  settled.delete('wibbbbbbbbbbbb');
  assert.deepEqual(linkCommands(withVip, settled), []);
});

test('links: the veth and IFB of an endpoint recorded since the plan stay; a planned endpoint\'s IFB goes with its shaping, protected or not', () => {
  const kernel = new Map([
    link('wb100', 'bridge', { addresses: ['10.0.0.1/24'] }),
    link('weaaaaaaaaaaaa', 'veth', { master: 'wb100' }), link('wiaaaaaaaaaaaa', 'ifb'),
    link('wx100', 'vxlan', { master: 'wb100' }),
    link('wennnnnnnnnnnn', 'veth', { master: 'wb100' }), link('winnnnnnnnnnnn', 'ifb'),
  ]);
  // The agent protects the veths of every endpoint its desired state holds (aaaa… planned, nnnn… new).
  const known = new Set(['weaaaaaaaaaaaa', 'wennnnnnnnnnnn']);
  assert.deepEqual(linkCommands(plan, kernel, known), ['link del wiaaaaaaaaaaaa'], 'shaping removed from a planned endpoint; the new one untouched');
  assert.deepEqual(linkCommands(plan, kernel), ['link del wiaaaaaaaaaaaa', 'link del wennnnnnnnnnnn', 'link del winnnnnnnnnnnn'], 'unknown: strangers');
});

test('dual stack: the bridge gets gateway6 without DAD and loses stray global IPv6 addresses; remote endpoints are neighbours of both families', () => {
  const dual: TenantPlan = { ...plan, v6: true, bridges: [{ ...plan.bridges[0]!, address6: 'fd00::1/64' }] };
  const bridgeOnly = (cmds: string[]) => cmds.filter((c) => c.includes('wb100') && c.startsWith('addr'));
  assert.deepEqual(bridgeOnly(linkCommands(dual, new Map([link('wb100', 'bridge', { addresses: ['10.0.0.1/24'], addresses6: ['fd00::1/64'] })]))), [], 'right: nothing');
  assert.deepEqual(bridgeOnly(linkCommands(dual, new Map([link('wb100', 'bridge', { addresses: ['10.0.0.1/24'], addresses6: ['fd00::9/64'] })]))), [
    'addr replace fd00::1/64 dev wb100 nodad', 'addr del fd00::9/64 dev wb100',
  ]);
  assert.deepEqual(bridgeOnly(linkCommands(plan, new Map([link('wb100', 'bridge', { addresses: ['10.0.0.1/24'], addresses6: ['fd00::1/64'] })]))), ['addr del fd00::1/64 dev wb100'], 'an IPv4-only network\'s bridge holds no global IPv6 address');
  const v6 = { ...vx, remotes: vx.remotes.map((r) => ({ ...r, ip6: 'fd00::5' })) };
  assert.deepEqual(neighCommands(v6, [{ dst: '10.0.0.5', lladdr: '02:57:0a:00:00:05', state: ['PERMANENT'] }, { dst: 'fd00::7', lladdr: '02:57:0a:00:00:07', state: ['PERMANENT'] }]), [
    'neigh replace fd00::5 lladdr 02:57:0a:00:00:05 dev wx100 nud permanent', 'neigh del fd00::7 dev wx100',
  ]);
});
