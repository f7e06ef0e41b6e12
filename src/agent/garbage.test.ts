import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { MemoryDatapath, type HostPlan } from '../datapath/index.js';
import { DesiredState, type Snapshot } from './state.js';
import { Reconciler } from './reconciler.js';
import { Sealer } from './seal.js';
import { desiredConflists, syncConflists } from './conflists.js';

const log = pino({ level: process.env['WEFT_TEST_LOG'] ?? 'silent' });
const meta = { revision: 10, createdAt: '', updatedAt: '' };
const tmp = (t: { after: (f: () => void) => void }) => {
  const d = mkdtempSync(join(tmpdir(), 'weft-garbage-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
};
const snap = (over: Partial<Snapshot> = {}): Snapshot => ({
  tenants: [{ ...meta, name: 'a', id: 1, defaultAction: 'allow' }, { ...meta, name: 'b', id: 2, defaultAction: 'allow' }] as never,
  networks: [{ ...meta, tenant: 'a', name: 'n', subnet: '10.9.0.0/24', gateway: '10.9.0.1', encap: 'vxlan', vni: 100, mtu: 1450 },
    { ...meta, tenant: 'b', name: 'n', subnet: '10.8.0.0/24', gateway: '10.8.0.1', encap: 'vxlan', vni: 101, mtu: 1450 }] as never,
  groups: [], policies: [], services: [], netprofiles: [], hosts: [], dockerNetworks: [],
  endpoints: [{ ...meta, id: 'e1', tenant: 'a', network: 'n', ip: '10.9.0.2', prefixLength: 24, gateway: '10.9.0.1', mac: '02:00:00:00:00:02', mtu: 1450, vni: 100, host: 'node1', ifname: 'eth0', containerId: 'c1', labels: {}, state: 'created' }] as never,
  revision: 1000, global: { ...meta } as never, ...over,
});

function rig(dir: string, state: DesiredState) {
  const dp = new MemoryDatapath('u-');
  let hostSides = 0;
  let last: HostPlan | undefined;
  const r = new Reconciler(state, dp, async (h) => { hostSides++; last = h; }, {
    host: 'node1', nsPrefix: 'u-', cniConfDir: join(dir, 'net.d'), agentSocket: join(dir, 'agent.sock'), resyncMs: 60_000, vtep: '192.0.2.1', dnsPort: 15353,
  }, log);
  const fullPass = async () => {
    const before = r.fullPasses;
    r.mark(undefined);
    for (let i = 0; i < 200 && r.fullPasses === before; i++) await new Promise((res) => setImmediate(res));
    await r.withoutResync(async () => undefined);
  };
  return { dp, r, fullPass, hostSides: () => hostSides, hostTenants: () => (last?.tenants ?? []).map((x) => x.tenant), hostPlan: () => last };
}

/** The rig over snap()'s state, after a first full pass (both tenants' namespaces made). */
async function converged(t: { after: (f: () => void) => void }) {
  const state = new DesiredState();
  state.replaceAll(snap());
  const out = rig(tmp(t), state);
  await out.fullPass();
  return { state, ...out };
}

/** Two lists alone (relists): tenants and networks, at `revision`. */
const tenant = (name: string, id: unknown) => ({ ...meta, name, id, defaultAction: 'allow' });
const net = (t: string, subnet: string, vni: number) => ({ ...meta, tenant: t, name: 'n', subnet, gateway: subnet.replace(/0\/24$/, '1'), encap: 'vxlan', vni, mtu: 1450 });
const listed = (tenants: unknown[], networks: unknown[], revision = 1000): Snapshot => snap({ tenants: tenants as never, networks: networks as never, endpoints: [], revision });

test('an empty desired state (a server restored or re-initialised) removes no tenant namespace', async (t) => {
  const { state, dp, r, fullPass } = await converged(t);
  assert.deepEqual([...dp.namespaces.keys()].sort(), ['u-t1', 'u-t2']);
  // The relist after the server came back with an empty store: revision 3 < 1000, nothing in it.
  state.replaceAll(snap({ tenants: [], networks: [], endpoints: [], revision: 3 }));
  await fullPass();
  await r.stop();
  assert.deepEqual([...dp.namespaces.keys()].sort(), ['u-t1', 'u-t2'], 'every container on the host would have been cut off');
  // One tenant deleted while others stand is still removed.
  state.replaceAll(snap({ tenants: snap().tenants.slice(1), networks: snap().networks.slice(1), endpoints: [], revision: 4 }));
  const again = rig(tmp(t), state);
  for (const [k, v] of dp.namespaces) again.dp.namespaces.set(k, v);
  await again.fullPass();
  await again.r.stop();
  assert.deepEqual([...again.dp.namespaces.keys()], ['u-t2']);
});

test('a tenant object without a whole-number id (watch put, list) is not taken: the tenant\'s namespace stays', async (t) => {
  const { state, dp, r, fullPass } = await converged(t);
  assert.ok(dp.namespaces.has('u-t1'));
  state.apply({ revision: 1001, op: 'put', kind: 'tenant', key: 'tenants/a', tenant: 'a', object: { name: 'a', defaultAction: 'allow' }, actor: 'x', time: '' });
  await fullPass();
  await r.stop();
  assert.deepEqual([...dp.namespaces.keys()].sort(), ['u-t1', 'u-t2'], 'u-t1 was removed and u-tundefined made');
  assert.equal(state.tenants.get('a')?.id, 1, 'the last good object stays');
  state.apply({ revision: 1002, op: 'put', kind: 'tenant', key: 'tenants/a', tenant: 'a', object: { name: 'b', id: 2, defaultAction: 'allow' }, actor: 'x', time: '' });
  assert.equal(state.tenants.get('a')?.id, 1, 'an object whose name is not its key\'s is refused too');
  state.replaceAll(snap({ tenants: [{ ...meta, name: 'a', id: '1; x' }, ...snap().tenants.slice(1)] as never }));
  assert.deepEqual([...state.tenants.keys()].sort(), ['a', 'b']);
  assert.equal(state.tenants.get('a')?.id, 1, 'a relist keeps the last good object too');
});

test('one network with a malformed subnet does not stop the host side of every other tenant; its tenant keeps its last plan and namespace', async (t) => {
  const { state, dp, r, fullPass, hostSides, hostTenants } = await converged(t);
  const before = hostSides();
  assert.ok(before >= 1);
  state.apply({ revision: 1001, op: 'put', kind: 'network', key: 'networks/b/n', tenant: 'b', object: { ...snap().networks[1], subnet: 'garbage' }, actor: 'x', time: '' });
  await fullPass();
  await fullPass();
  assert.ok(hostSides() > before, 'the host side (every tenant\'s host table, DNS listeners, routes) was not converged again');
  assert.deepEqual(hostTenants(), ['a', 'b'], "b's host side as last planned");
  await r.ensureHostNow();
  assert.deepEqual([...dp.namespaces.keys()].sort(), ['u-t1', 'u-t2'], "b's namespace kept");
  await r.stop();
});

test('a truncated or garbage seal.key is replaced: a seal made with an empty key (anyone can) never verifies', (t) => {
  const dir = tmp(t);
  writeFileSync(join(dir, 'seal.key'), '', { mode: 0o600 });
  const s = Sealer.load(dir);
  const ep = { id: 'e1', tenant: 'a', network: 'n', ifname: 'eth0', netns: '/proc/1/ns/net' };
  const forged = createHmac('sha256', Buffer.alloc(0)).update(JSON.stringify([ep.id, ep.tenant, ep.network, ep.ifname, ep.netns])).digest('hex');
  assert.equal(s.verify({ ...ep, seal: forged }), false);
  assert.match(readFileSync(join(dir, 'seal.key'), 'utf8'), /^[0-9a-f]{64}$/);
  const good = s.seal(ep);
  assert.equal(Sealer.load(dir).verify({ ...ep, seal: good }), true, 'a whole key is kept');
  writeFileSync(join(dir, 'seal.key'), 'not hex at all\n');
  assert.equal(Sealer.load(dir).verify({ ...ep, seal: forged }), false);
});

test('syncConflists never writes through a symlink planted at NAME.conflist.tmp', (t) => {
  const dir = tmp(t);
  const conf = join(dir, 'net.d');
  mkdirSync(conf);
  const victim = join(dir, 'victim');
  writeFileSync(victim, 'precious\n');
  symlinkSync(victim, join(conf, 'weft.a.n.conflist.tmp'));
  syncConflists(conf, desiredConflists(snap().networks.slice(0, 1), [], '/run/weft/agent.sock'));
  assert.equal(readFileSync(victim, 'utf8'), 'precious\n', 'the symlink\'s target was overwritten');
  assert.match(readFileSync(join(conf, 'weft.a.n.conflist'), 'utf8'), /"type": "weft"/);
});

test('a group name with path separators never names a conflist outside the CNI conf dir', (t) => {
  const dir = tmp(t);
  const conf = join(dir, 'a', 'net.d');
  mkdirSync(conf, { recursive: true });
  const groups = [{ ...meta, tenant: 'a', name: 'x/../../../escaped', network: 'n', policies: [], labels: {} }] as never;
  syncConflists(conf, desiredConflists([], groups, '/run/weft/agent.sock'));
  assert.ok(!existsSync(join(dir, 'escaped.conflist')), 'written outside the conf dir');
});

test('a relist holding a tenant object without a whole-number id keeps that tenant\'s namespace, as a watch put does', async (t) => {
  const state = new DesiredState();
  state.replaceAll(listed([tenant('a', 1), tenant('b', 2)], [net('a', '10.9.0.0/24', 100), net('b', '10.8.0.0/24', 101)]));
  const { dp, r, fullPass } = rig(tmp(t), state);
  await fullPass();
  assert.deepEqual([...dp.namespaces.keys()].sort(), ['u-t1', 'u-t2']);
  // The agent reconnects and relists; the server (a newer one, a damaged store) sends a's object without an id.
  state.replaceAll(listed([{ ...meta, name: 'a', defaultAction: 'allow' }, tenant('b', 2)], [net('a', '10.9.0.0/24', 100), net('b', '10.8.0.0/24', 101)], 1001));
  await fullPass();
  await r.stop();
  assert.deepEqual([...dp.namespaces.keys()].sort(), ['u-t1', 'u-t2'], "a's namespace (every container of it) was removed");
});

test('a tenant made again under its name with another id, while unplannable, does not get its old incarnation\'s host side', async (t) => {
  const state = new DesiredState();
  state.replaceAll(listed([tenant('a', 1), tenant('b', 2)], [net('a', '10.9.0.0/24', 100), net('b', '10.8.0.0/24', 101)]));
  const { r, fullPass, hostPlan } = rig(tmp(t), state);
  await fullPass();
  // Relist: b was deleted, c took id 2, b was made again (id 3) and its network cannot be planned.
  state.replaceAll(listed([tenant('a', 1), tenant('c', 2), tenant('b', 3)],
    [net('a', '10.9.0.0/24', 100), net('c', '10.7.0.0/24', 102), { ...net('b', '10.8.0.0/24', 101), subnet: 'garbage' }], 1001));
  await fullPass();
  await r.stop();
  const planned = (hostPlan()?.tenants ?? []).map((p) => `${p.tenant}:${p.ns}`);
  assert.deepEqual(planned, ['a:u-t1', 'c:u-t2'], `the deleted b's plan (id 2, c's namespace now) was kept: ${planned.join(' ')}`);
});

test('a relist keeps a tenant\'s last good object only where it holds no valid one of that name', () => {
  const state = new DesiredState();
  state.replaceAll(listed([tenant('a', 1), tenant('b', 2)], []));
  // b made again (id 7), and an unusable object under b's name besides it, after it.
  state.replaceAll(listed([tenant('a', 1), tenant('b', 7), { ...meta, name: 'b', defaultAction: 'allow' }], [], 1001));
  assert.equal(state.tenants.get('b')?.id, 7, 'the valid object, not the deleted incarnation');
  // A listing without b at all drops it.
  state.replaceAll(listed([tenant('a', 1)], [], 1002));
  assert.deepEqual([...state.tenants.keys()], ['a']);
});

test('a tenant made during a full pass\'s look for stale namespaces, with a deleted tenant\'s id, keeps its namespace', async (t) => {
  const { state, dp, r, fullPass } = await converged(t);
  assert.deepEqual([...dp.namespaces.keys()].sort(), ['u-t1', 'u-t2']);
  // b (id 2) is deleted; c takes its id (ids are lowest-free) and is converged by a change, all while the
  // next full pass, which planned without c, lists the namespaces present.
  state.replaceAll(listed([tenant('a', 1)], [net('a', '10.9.0.0/24', 100)], 1001));
  const present = dp.presentTenants.bind(dp);
  let made: Promise<unknown> | undefined;
  dp.presentTenants = async () => {
    const found = await present();
    if (made === undefined) {
      state.replaceAll(listed([tenant('a', 1), tenant('c', 2)], [net('a', '10.9.0.0/24', 100), net('c', '10.7.0.0/24', 102)], 1002));
      made = r.ensureTenant('c', true);
    }
    return found;
  };
  await fullPass();
  assert.ok(made, 'the pass looked for stale namespaces');
  assert.ok(await made, 'c was converged');
  await r.withoutResync(async () => undefined);
  assert.ok(dp.namespaces.has('u-t2'), `c's namespace (u-t2) is there: ${[...dp.namespaces.keys()].join(', ')}`);
  assert.ok(dp.namespaces.get('u-t2')?.links.has('wb102'), `with c's bridge: ${[...(dp.namespaces.get('u-t2')?.links.keys() ?? [])].join(', ')}`);
});

test('a tenant deleted, its namespace removed, then made again with its name, id and shape: a change converges it into a namespace again', async (t) => {
  const { state, dp, r, fullPass } = await converged(t);
  assert.ok(dp.namespaces.has('u-t2'));
  state.replaceAll(listed([tenant('a', 1)], [net('a', '10.9.0.0/24', 100)], 1001));
  await fullPass();
  assert.ok(!dp.namespaces.has('u-t2'), 'b\'s namespace went with b');
  state.replaceAll(listed([tenant('a', 1), tenant('b', 2)], [net('a', '10.9.0.0/24', 100), net('b', '10.8.0.0/24', 101)], 1002));
  // What an ADD or a change pass does first: the fast path, which skips the kernel when the shape is as last converged.
  await r.ensureTenant('b', true);
  assert.ok(dp.namespaces.get('u-t2')?.links.has('wb101'), `b's namespace and bridge again: ${[...dp.namespaces.keys()].join(', ')}`);
});

test('a deleted tenant\'s admission still being applied does not write its ports over the tenant that took its id', async (t) => {
  const { state, dp, r, fullPass } = await converged(t);
  // b (id 2, namespace u-t2) gets an endpoint: the fast path admits its port, and that admission is held.
  const ep = (id: string, tenantName: string, ip: string, vni: number) => ({ ...meta, id, tenant: tenantName, network: 'n', ip, prefixLength: 24, gateway: ip.replace(/\d+$/, '1'), mac: `02:00:00:00:00:${id.slice(1).padStart(2, '0')}`, mtu: 1450, vni, host: 'node1', ifname: 'eth0', containerId: `c${id}`, labels: {}, state: 'created' });
  state.replaceAll(snap({ endpoints: [ep('e2', 'b', '10.8.0.2', 101)] as never, revision: 1001 }));
  const admit = dp.admit.bind(dp);
  let release: () => void = () => undefined;
  const held = new Promise<void>((res) => (release = res));
  const admitted: string[] = [];
  dp.admit = async (p) => {
    admitted.push(p.tenant);
    if (p.tenant === 'b') await held;
    return admit(p);
  };
  await r.ensureTenant('b', true, { deferAdmit: true });
  assert.deepEqual(admitted, ['b'], 'b\'s new port went to the admissions');
  // b is deleted; c takes its id (lowest free), so its namespace, and is converged in full.
  state.replaceAll(snap({
    tenants: [tenant('a', 1), tenant('c', 2)] as never,
    networks: [net('a', '10.9.0.0/24', 100), net('c', '10.7.0.0/24', 102)] as never,
    endpoints: [ep('e3', 'c', '10.7.0.3', 102)] as never, revision: 1002,
  }));
  const converging = r.ensureTenant('c', true);
  for (let i = 0; i < 20; i++) await new Promise((res) => setImmediate(res));
  release();
  assert.ok(await converging, 'c was converged');
  await r.admitted('b').catch(() => undefined);
  const guard = dp.namespaces.get('u-t2')?.guard ?? '';
  assert.ok(guard.includes('10.7.0.3'), `c's port is admitted in u-t2: ${guard}`);
  assert.ok(!guard.includes('10.8.0.2'), `b's port is not: ${guard}`);
});
