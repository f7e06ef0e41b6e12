import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStore } from '../store/index.js';
import { rejectsWith } from './testing.js';
import { Control } from './control.js';
import { hostFor } from './access.js';

async function fresh(): Promise<Control> {
  const c = new Control(new MemoryStore());
  await c.bootstrap();
  return c;
}

test('bootstrap creates the default tenant and one admin token, once', async () => {
  const store = new MemoryStore();
  const c = new Control(store);
  const first = await c.bootstrap();
  assert.match(first.adminToken ?? '', /^weft_/);
  assert.equal((await c.bootstrap()).adminToken, undefined);
  assert.deepEqual((await c.tenants.list()).items.map((t) => t.name), ['default']);
  assert.equal((await c.users.authenticate(first.adminToken ?? '')).role, 'admin');
});

test("Contiv's tutorial objects: same subnet in two tenants, overlap refused within one", async () => {
  const c = await fresh();
  await c.tenants.create('u', { name: 'blue' });
  const a = await c.networks.create('u', 'default', { name: 'contiv-net', subnet: '10.1.2.0/24', gateway: '10.1.2.1' });
  const b = await c.networks.create('u', 'blue', { name: 'contiv-net', subnet: '10.1.2.0/24', gateway: '10.1.2.1' });
  assert.ok(a.vni >= 10000 && a.vni <= 19999 && b.vni >= 10000 && b.vni <= 19999 && a.vni !== b.vni, `${a.vni} ${b.vni}`);
  assert.equal(a.mtu, 1390, 'underlay 1500 - VXLAN 50 - WireGuard 60: networks are encrypted by default');
  await rejectsWith(c.networks.create('u', 'default', { name: 'other', subnet: '10.1.2.128/25' }), 'WEFT_OVERLAP', /overlaps network default\/contiv-net \(10\.1\.2\.0\/24\)/, 'subnet');
  await c.policies.create('u', 'default', { name: 'db-policy' });
  await c.rules.add('u', 'default', 'db-policy', { id: '1', direction: 'in', protocol: 'tcp', action: 'deny' });
  await c.rules.add('u', 'default', 'db-policy', { id: '2', direction: 'in', protocol: 'tcp', ports: '8888', action: 'allow', priority: 10 });
  const g = await c.groups.create('u', 'default', { name: 'db', network: 'contiv-net', policies: ['db-policy'] });
  assert.deepEqual(g.policies, ['db-policy']);
  const rules = (await c.rules.list('default', 'db-policy')).items;
  assert.deepEqual(rules.map((r) => [r.id, r.priority, r.action, r.ports ?? '']), [['1', 1, 'deny', ''], ['2', 10, 'allow', '8888']]);
});

test('delete guards name the dependants, and nothing changes', async () => {
  const c = await fresh();
  await c.networks.create('u', 'default', { name: 'net', subnet: '10.0.0.0/24' });
  await c.policies.create('u', 'default', { name: 'pol' });
  await c.groups.create('u', 'default', { name: 'web', network: 'net', policies: ['pol'] });
  const rev = await c.store.revision();
  await rejectsWith(c.networks.remove('u', 'default', 'net'), 'WEFT_IN_USE', /network default\/net is in use by group default\/web/);
  await rejectsWith(c.policies.remove('u', 'default', 'pol'), 'WEFT_IN_USE', /group default\/web/);
  await rejectsWith(c.tenants.remove('u', 'default'), 'WEFT_IN_USE', /network default\/net/);
  assert.equal(await c.store.revision(), rev);
  await c.groups.remove('u', 'default', 'web');
  await c.networks.remove('u', 'default', 'net');
  assert.equal((await c.store.list('ipam/')).entries.length, 0, 'the address book goes with its network');
});

test('references must exist: group on a missing network, rule naming a missing group', async () => {
  const c = await fresh();
  await rejectsWith(c.groups.create('u', 'default', { name: 'g', network: 'nope' }), 'WEFT_INVALID_REFERENCE', /network default\/nope/, 'network');
  await c.policies.create('u', 'default', { name: 'p' });
  await rejectsWith(c.rules.add('u', 'default', 'p', { id: '1', fromGroup: 'ghost' }), 'WEFT_INVALID_REFERENCE', /group default\/ghost/, 'fromGroup');
  await rejectsWith(c.policies.create('u', 'default', { name: 'q', rules: [{ id: '1', direction: 'out', fromGroup: 'x' }] }), 'WEFT_INVALID_FIELD', /an 'out' rule names its peer/, 'rules.0.fromGroup');
  await rejectsWith(c.networks.create('u', 'nope', { name: 'n', subnet: '10.9.0.0/24' }), 'WEFT_NOT_FOUND', /tenant nope/);
});

test('a network\'s VNI says nothing of the other tenants\' networks: it is taken at random in the range, not lowest-free', async () => {
  const c = await fresh();
  await c.tenants.create('u', { name: 'other' });
  const vnis: number[] = [];
  for (let i = 0; i < 12; i++) {
    // Another tenant's network comes and goes between each: lowest-free, ours would follow its count.
    await c.networks.create('u', 'other', { name: `o${i}`, subnet: `10.9.${i}.0/24` });
    vnis.push((await c.networks.create('u', 'default', { name: `n${i}`, subnet: `10.8.${i}.0/24` })).vni);
    if (i % 2) await c.networks.remove('u', 'other', `o${i}`);
  }
  assert.ok(vnis.every((v) => v >= 10000 && v <= 19999), vnis.join(' '));
  assert.equal(new Set(vnis).size, 12);
  const sorted = [...vnis].sort((a, b) => a - b);
  // Twelve picks of 10,000 in a row by chance: about once in 10^44.
  assert.ok(sorted[11]! - sorted[0]! > 24, `spread over the range, not the next ones free: ${vnis.join(' ')}`);
});

test('a VNI is uniform among the free ones: the one past a run of used VNIs (networks made lowest-free before) comes up no more often', async () => {
  const c = await fresh();
  await c.global.update('u', { vxlanRange: '10000-10199' });
  await c.tenants.create('u', { name: 'old' });
  // 100 networks at 10000-10099, as lowest-free made them before this change.
  for (let i = 0; i < 100; i++) await c.networks.create('u', 'old', { name: `o${i}`, subnet: `10.${100 + (i >> 4)}.${(i & 15) * 16}.0/24`, vni: 10000 + i });
  let past = 0;
  for (let i = 0; i < 60; i++) {
    const n = await c.networks.create('u', 'default', { name: 'probe', subnet: '10.200.0.0/24' });
    assert.ok(n.vni >= 10100 && n.vni <= 10199, String(n.vni));
    if (n.vni === 10100) past++;
    await c.networks.remove('u', 'default', 'probe');
  }
  // Uniform over 100 free VNIs: 10100 about 0.6 times in 60 (7 or more: ~1e-5). The first free one
  // after a random start took it with probability 101/200: ~30 times, which counted the old networks.
  assert.ok(past <= 6, `10100 came ${past} times in 60`);
});

test('endpoints: lowest free address, pools honoured, released on delete, exhaustion is an error', async () => {
  const c = await fresh();
  const net = await c.networks.create('u', 'default', { name: 'net', subnet: '10.0.0.0/29' });
  await c.groups.create('u', 'default', { name: 'pool', network: 'net', ipPool: '10.0.0.5-10.0.0.6' });
  const req = { tenant: 'default', network: 'net', host: 'h1', ifname: 'eth0' };
  const e1 = await c.endpoints.create('a', { ...req, containerId: 'c1' });
  assert.deepEqual([e1.ip, e1.gateway, e1.prefixLength, e1.mac, e1.mtu, e1.vni], ['10.0.0.2', '10.0.0.1', 29, '02:57:0a:00:00:02', 1390, net.vni]);
  const p1 = await c.endpoints.create('a', { ...req, containerId: 'p1', group: 'pool' });
  assert.equal(p1.ip, '10.0.0.5');
  assert.equal(p1.labels.group, 'pool');
  const ips = [];
  for (const id of ['c2', 'c3']) ips.push((await c.endpoints.create('a', { ...req, containerId: id })).ip);
  assert.deepEqual(ips, ['10.0.0.3', '10.0.0.4']);
  await rejectsWith(c.endpoints.create('a', { ...req, containerId: 'c4' }), 'WEFT_POOL_EXHAUSTED', /network default\/net has no free address/);
  await rejectsWith(c.endpoints.create('a', { ...req, containerId: 'c1' }), 'WEFT_EXISTS', /already exists/);
  await c.endpoints.remove('a', e1.id);
  await c.endpoints.remove('a', e1.id);
  assert.equal((await c.endpoints.create('a', { ...req, containerId: 'c5' })).ip, '10.0.0.2');
  await rejectsWith(c.endpoints.create('a', { ...req, containerId: 'c6', ip: '10.0.0.3' }), 'WEFT_ADDRESS_IN_USE', /already in use/, 'ip');
});

test('endpoints: one may take over the address of a reservation in one step; updates record names and ports', async () => {
  const c = await fresh();
  await c.networks.create('u', 'default', { name: 'net', subnet: '10.0.0.0/29' });
  await c.networks.create('u', 'default', { name: 'other', subnet: '10.0.1.0/29' });
  const req = { tenant: 'default', network: 'net', host: 'h1', ifname: 'eth0' };
  const hold = await c.endpoints.create('a', { ...req, containerId: 'ipam-1' });
  const bad = [
    [{ ...req, containerId: 'x', replaces: 'ffffffffffffffff' }, 'WEFT_INVALID_REFERENCE', /endpoint ffffffffffffffff/, 'replaces'],
    [{ ...req, containerId: 'x', host: 'h2', replaces: hold.id }, 'WEFT_INVALID_VALUE', /at h1, not default\/net at h2/, 'replaces'],
    [{ ...req, network: 'other', containerId: 'x', replaces: hold.id }, 'WEFT_INVALID_VALUE', /not default\/other/, 'replaces'],
    [{ ...req, containerId: 'x', ip: '10.0.0.5', replaces: hold.id }, 'WEFT_INVALID_VALUE', /differs from 10\.0\.0\.2/, 'ip'],
  ] as const;
  for (const [r, code, msg, field] of bad) await rejectsWith(c.endpoints.create('a', r), code, msg, field);
  const real = await c.endpoints.create('a', { ...req, containerId: 'docker-ep', replaces: hold.id });
  assert.equal(real.ip, hold.ip, 'the address passes over');
  await rejectsWith(c.endpoints.get(hold.id), 'WEFT_NOT_FOUND', /endpoint/);
  assert.equal((await c.endpoints.create('a', { ...req, containerId: 'next' })).ip, '10.0.0.3', 'and was never free');

  const named = await c.endpoints.update('a', real.id, { containerName: 'db1', portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }] });
  assert.deepEqual([named.containerName, named.portMappings?.length, named.ip], ['db1', 1, real.ip]);
  const other = await c.endpoints.create('a', { ...req, containerId: 'pub' });
  await rejectsWith(c.endpoints.update('a', other.id, { portMappings: [{ hostPort: 8080, containerPort: 81, protocol: 'tcp' }] }), 'WEFT_ADDRESS_IN_USE', /host port 8080\/tcp on h1/, 'portMappings.0');
  assert.equal((await c.endpoints.update('a', real.id, { portMappings: [] })).portMappings, undefined, 'an empty list unpublishes');
  await rejectsWith(c.endpoints.update('a', 'ffffffffffffffff', { containerName: 'x' }), 'WEFT_NOT_FOUND', /endpoint ffffffffffffffff/);
});

test('optimistic concurrency: a stale If-Match revision is refused', async () => {
  const c = await fresh();
  const n = await c.networks.create('u', 'default', { name: 'net', subnet: '10.0.0.0/24' });
  const m = await c.networks.patch('u', 'default', 'net', { mtu: 1400 }, n.revision);
  assert.equal(m.mtu, 1400);
  await rejectsWith(c.networks.patch('u', 'default', 'net', { mtu: 1300 }, n.revision), 'WEFT_STALE_REVISION', /revision/);
  await rejectsWith(c.networks.patch('u', 'default', 'net', { subnet: '10.0.1.0/24' }), 'WEFT_IMMUTABLE', /subnet/, 'subnet');
});

test('services take their VIP from the network book; global range must keep VNIs in use', async () => {
  const c = await fresh();
  const net = await c.networks.create('u', 'default', { name: 'net', subnet: '10.0.0.0/24' });
  const s = await c.services.create('u', 'default', { name: 'svc', network: 'net', selector: { group: 'db' }, ports: [{ port: 80, targetPort: 8080, protocol: 'TCP' }] });
  assert.equal(s.vip, '10.0.0.2');
  const e = await c.endpoints.create('a', { tenant: 'default', network: 'net', host: 'h', ifname: 'eth0', containerId: 'x' });
  assert.equal(e.ip, '10.0.0.3');
  await c.services.remove('u', 'default', 'svc');
  await rejectsWith(c.global.update('u', { vxlanRange: '20000-20010' }), 'WEFT_IN_USE', new RegExp(`network default/net \\(${net.vni}\\)`), 'vxlanRange');
});

test('a host is up while its agent heartbeats, and down after the timeout', async () => {
  let now = Date.parse('2026-11-23T10:00:00Z');
  const c = new Control(new MemoryStore(), () => new Date(now), { hostTimeoutMs: 30_000 });
  await c.bootstrap();
  await c.hosts.register('agent', { name: 'node1', vtepIp: '192.0.2.1' });
  assert.equal((await c.hosts.get('node1')).state, 'up');
  now += 29_000;
  assert.equal((await c.hosts.list()).items[0]?.state, 'up');
  now += 2_000;
  assert.equal((await c.hosts.get('node1')).state, 'down');
  await c.hosts.register('agent', { name: 'node1', vtepIp: '192.0.2.1' });
  assert.equal((await c.hosts.get('node1')).state, 'up', 'a heartbeat brings it back');
});

test('a host\'s WireGuard key is kept with its registration; another host may not register the same key; tenant users see neither key nor underlay', async () => {
  const c = new Control(new MemoryStore(), () => new Date(), {});
  await c.bootstrap();
  const key = Buffer.alloc(32, 7).toString('base64');
  await c.hosts.register('agent', { name: 'node1', vtepIp: '192.0.2.1', wgPublicKey: key });
  assert.equal((await c.hosts.get('node1')).wgPublicKey, key);
  await c.hosts.register('agent', { name: 'node1', vtepIp: '192.0.2.1', wgPublicKey: key });
  await rejectsWith(c.hosts.register('agent', { name: 'node2', vtepIp: '192.0.2.2', wgPublicKey: key }), 'WEFT_EXISTS', /wgPublicKey: the WireGuard key of host node1/, 'wgPublicKey');
  assert.equal((await c.hosts.list()).items.length, 1, 'nothing registered');
  const seen = hostFor({ user: 'bob', role: 'tenant', tenants: ['default'], credential: 't' }, await c.hosts.get('node1'));
  assert.ok(!('wgPublicKey' in seen) && !('vtepIp' in seen));
});

test('endpoints of a silent host stay while it is down, and are released after the grace period', async () => {
  let now = Date.parse('2026-11-23T10:00:00Z');
  const c = new Control(new MemoryStore(), () => new Date(now), { hostTimeoutMs: 30_000 });
  await c.bootstrap();
  await c.networks.create('u', 'default', { name: 'net', subnet: '10.0.0.0/24' });
  await c.hosts.register('agent', { name: 'node1', vtepIp: '192.0.2.1' });
  await c.hosts.register('agent', { name: 'node2', vtepIp: '192.0.2.2' });
  const e1 = await c.endpoints.create('a', { tenant: 'default', network: 'net', host: 'node1', ifname: 'eth0', containerId: 'c1' });
  await c.endpoints.create('a', { tenant: 'default', network: 'net', host: 'node2', ifname: 'eth0', containerId: 'c2' });
  now += 60_000;
  await c.hosts.register('agent', { name: 'node2', vtepIp: '192.0.2.2' });
  assert.equal((await c.hosts.get('node1')).state, 'down');
  assert.deepEqual(await c.collectSilentHosts(300_000), [], 'down but within the grace period: kept');
  now += 300_000;
  await c.hosts.register('agent', { name: 'node2', vtepIp: '192.0.2.2' });
  assert.deepEqual(await c.collectSilentHosts(300_000), [e1.id], 'past the grace period: released');
  assert.deepEqual((await c.endpoints.list()).items.map((e) => e.containerId), ['c2']);
  const again = await c.endpoints.create('a', { tenant: 'default', network: 'net', host: 'node2', ifname: 'eth0', containerId: 'c3' });
  assert.equal(again.ip, e1.ip, 'its address went back to the network');
});
