import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { MemoryDatapath } from '../datapath/index.js';
import { DesiredState } from './state.js';
import { Reconciler } from './reconciler.js';

const log = pino({ level: process.env['WEFT_TEST_LOG'] ?? 'silent' });
const tick = () => new Promise((r) => setImmediate(r));

/** A reconciler whose host side blocks until `release()`: a pass as slow as the test wants. */
function slowReconciler(dir: string, resyncMs = 60_000) {
  let open: () => void = () => undefined;
  let gate = new Promise<void>((r) => (open = r));
  let hostSides = 0;
  const hostSide = async () => {
    hostSides++;
    await gate;
  };
  const r = new Reconciler(new DesiredState(), new MemoryDatapath('u-'), hostSide, {
    host: 'node1', nsPrefix: 'u-', cniConfDir: dir, agentSocket: join(dir, 'agent.sock'), resyncMs, vtep: '192.0.2.1', dnsPort: 15353,
  }, log);
  const release = () => {
    open();
    gate = Promise.resolve();
  };
  return { r, release, hostSides: () => hostSides };
}

test('marks during a slow pass fold into one queued pass per lane, not one pass each', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-reconciler-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const { r, release, hostSides } = slowReconciler(dir);
  r.mark(undefined);
  for (let i = 0; i < 20 && hostSides() === 0; i++) await tick();
  assert.equal(hostSides(), 1, 'the first pass is running (blocked in the host side)');
  // Each mark in its own turn of the event loop, as watch lines and resync ticks arrive.
  for (let i = 0; i < 100; i++) {
    r.mark(i % 2 ? undefined : `t${i}`);
    await tick();
  }
  release();
  await r.stop();
  for (let i = 0; i < 5; i++) await tick();
  await r.stop();
  // Two lanes (full passes and change passes), each the running pass and one queued.
  assert.equal(r.fullPasses, 2, `50 full marks during one slow full pass: ${r.fullPasses} full passes (the running one and one queued)`);
  assert.ok(r.passes - r.fullPasses <= 2, `50 tenant marks: ${r.passes - r.fullPasses} change passes (at most one running and one queued)`);
  assert.equal(hostSides(), r.passes);
});

test('a resync interval shorter than a pass does not pile passes up', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-reconciler-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const { r, release, hostSides } = slowReconciler(dir, 5);
  r.start();
  // 400 ms of a pass that does not finish, with a resync every 5 ms (~80 ticks).
  await new Promise((res) => setTimeout(res, 400));
  assert.equal(hostSides(), 1);
  release();
  await r.stop();
  for (let i = 0; i < 5; i++) await tick();
  await r.stop();
  assert.ok(r.passes <= 2, `${r.passes} passes after 400 ms of resync ticks behind one slow pass`);
});

test('a change is converged while a full pass is stuck on another tenant', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-reconciler-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const state = new DesiredState();
  const meta = { revision: 1, createdAt: '', updatedAt: '' };
  state.replaceAll({ tenants: [{ ...meta, name: 'slow', id: 1, defaultAction: 'allow' }, { ...meta, name: 'quick', id: 2, defaultAction: 'allow' }],
    networks: [], groups: [], policies: [], endpoints: [], services: [], netprofiles: [], hosts: [], dockerNetworks: [], revision: 1, global: { ...meta } as never });
  const dp = new MemoryDatapath('u-');
  let open: () => void = () => undefined;
  const gate = new Promise<void>((r) => (open = r));
  const converged: string[] = [];
  const ensure = dp.ensureTenant.bind(dp);
  // The slow tenant's convergence hangs, as a replace of a huge table does.
  dp.ensureTenant = async (p, protect) => {
    if (p.tenant === 'slow') await gate;
    converged.push(p.tenant);
    return ensure(p, protect);
  };
  const r = new Reconciler(state, dp, async () => undefined, {
    host: 'node1', nsPrefix: 'u-', cniConfDir: dir, agentSocket: join(dir, 'agent.sock'), resyncMs: 60_000, vtep: '192.0.2.1', dnsPort: 15353,
  }, log);
  r.mark(undefined);
  for (let i = 0; i < 20 && r.fullPasses === 0; i++) await tick();
  r.mark('quick');
  for (let i = 0; i < 50 && !converged.includes('quick'); i++) await tick();
  assert.deepEqual(converged, ['quick'], 'the change pass converged its tenant while the full pass waits on the slow one');
  open();
  await r.stop();
  for (let i = 0; i < 5; i++) await tick();
  await r.stop();
  assert.ok(converged.includes('slow'), 'and the full pass finished');
});

test('a policy no group holds is not compiled: its change costs no recompile, its CIDRs split no class', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-reconciler-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const meta = { revision: 1, createdAt: '', updatedAt: '' };
  const rule = (id: string, fromCidr: string) => ({ id, priority: 1, direction: 'in' as const, action: 'deny' as const, protocol: 'tcp', ports: '80', fromCidr });
  const snapshot = (unattachedRevision: number) => ({
    tenants: [{ ...meta, name: 't', id: 1, defaultAction: 'allow' as const }],
    networks: [{ ...meta, tenant: 't', name: 'n', subnet: '10.9.0.0/24', gateway: '10.9.0.1', encap: 'vxlan' as const, vni: 100, mtu: 1450 }],
    groups: [{ ...meta, tenant: 't', name: 'db', network: 'n', policies: ['held'], labels: {} }],
    policies: [{ ...meta, tenant: 't', name: 'held', rules: [rule('a', '192.0.2.0/24')] }, { ...meta, revision: unattachedRevision, tenant: 't', name: 'loose', rules: [rule('b', '198.51.100.7/32')] }],
    // An endpoint of the group on this host: a host compiles only the groups it holds endpoints of.
    endpoints: [{ ...meta, id: 'e1', tenant: 't', network: 'n', group: 'db', ip: '10.9.0.2', prefixLength: 24, gateway: '10.9.0.1', mac: '02:00:00:00:00:02', mtu: 1450, vni: 100, host: 'node1', ifname: 'eth0', containerId: 'c1', labels: {}, state: 'created' as const }],
    services: [], netprofiles: [], hosts: [], dockerNetworks: [], revision: unattachedRevision, global: { ...meta } as never,
  });
  const state = new DesiredState();
  state.replaceAll(snapshot(1));
  const r = new Reconciler(state, new MemoryDatapath('u-'), async () => undefined, {
    host: 'node1', nsPrefix: 'u-', cniConfDir: dir, agentSocket: join(dir, 'agent.sock'), resyncMs: 60_000, vtep: '192.0.2.1', dnsPort: 15353,
  }, log);
  const first = r.plan('t')?.policy;
  assert.ok(first && first.ruleCount === 1, 'the held policy is compiled');
  const firsts = first.classification.ranges.map((x) => x.first);
  assert.ok(!firsts.includes((198 << 24 >>> 0) + (51 << 16) + (100 << 8) + 7), 'no class starts at the loose policy\'s address');
  state.replaceAll(snapshot(2));
  assert.equal(r.plan('t')?.policy, first, 'a change to the loose policy reuses the compiled one');
});

test('a change of rules writes only the tables; a change of links converges the tenant in full', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-reconciler-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const meta = { revision: 1, createdAt: '', updatedAt: '' };
  const net = (name: string, vni: number, subnet: string) => ({ ...meta, tenant: 't', name, subnet, gateway: subnet.replace('0/24', '1'), encap: 'vxlan' as const, vni, mtu: 1450 });
  const snapshot = (ports: string, nets = [net('n', 100, '10.9.0.0/24')]) => ({
    tenants: [{ ...meta, name: 't', id: 1, defaultAction: 'allow' as const }], networks: nets,
    groups: [{ ...meta, tenant: 't', name: 'db', network: 'n', policies: ['p'], labels: {} }],
    policies: [{ ...meta, revision: Number(ports), tenant: 't', name: 'p', rules: [{ id: 'a', priority: 1, direction: 'in' as const, action: 'deny' as const, protocol: 'tcp', ports }] }],
    endpoints: [{ ...meta, id: 'e1', tenant: 't', network: 'n', group: 'db', ip: '10.9.0.2', prefixLength: 24, gateway: '10.9.0.1', mac: '02:00:00:00:00:02', mtu: 1450, vni: 100, host: 'node1', ifname: 'eth0', containerId: 'c1', labels: {}, state: 'created' as const }],
    services: [], netprofiles: [], hosts: [], dockerNetworks: [], revision: Number(ports), global: { ...meta } as never,
  });
  const state = new DesiredState();
  state.replaceAll(snapshot('80'));
  const dp = new MemoryDatapath('u-');
  const calls: string[] = [];
  const full = dp.ensureTenant.bind(dp);
  dp.ensureTenant = async (p, protect) => { calls.push('tenant'); return full(p, protect); };
  (dp as { ensureTables?: (p: never) => Promise<'delta'> }).ensureTables = async () => { calls.push('tables'); return 'delta'; };
  const r = new Reconciler(state, dp, async () => undefined, {
    host: 'node1', nsPrefix: 'u-', cniConfDir: dir, agentSocket: join(dir, 'agent.sock'), resyncMs: 60_000, vtep: '192.0.2.1', dnsPort: 15353,
  }, log);
  await r.ensureTenant('t');
  state.replaceAll(snapshot('81'));
  await r.ensureTenant('t', true);
  state.replaceAll(snapshot('82', [net('n', 100, '10.9.0.0/24'), net('m', 101, '10.9.1.0/24')]));
  await r.ensureTenant('t', true);
  await r.ensureTenant('t');
  assert.deepEqual(calls, ['tenant', 'tables', 'tenant', 'tenant'], 'first convergence, a rule (tables only), a new network (in full), a full check');
});

test('a tenant whose policy is past --max-policy-pairs keeps its last tables and is refused without another compile; another tenant converges', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-reconciler-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const meta = { revision: 1, createdAt: '', updatedAt: '' };
  const ip = (i: number) => `10.9.${(i >> 8) + 1}.${i & 255}`;
  const ep = (tenant: string, i: number) => ({ ...meta, id: `${tenant}${i}`, tenant, network: 'n', group: 'db', ip: ip(i), prefixLength: 16, gateway: '10.9.0.1', mac: '02:00:00:00:00:02', mtu: 1450, vni: 100, host: 'node1', ifname: 'eth0', containerId: `${tenant}c${i}`, labels: {}, state: 'created' as const });
  // `big`: n endpoints of db here, each let in by a rule naming its own address on a port of its own and
  // let out to it by another (pairs as n squared); `small`: one endpoint, one rule.
  const snapshot = (n: number, revision: number) => ({
    tenants: [{ ...meta, name: 'big', id: 1, defaultAction: 'deny' as const }, { ...meta, name: 'small', id: 2, defaultAction: 'allow' as const }],
    networks: ['big', 'small'].map((tenant) => ({ ...meta, tenant, name: 'n', subnet: '10.9.0.0/16', gateway: '10.9.0.1', encap: 'vxlan' as const, vni: 100, mtu: 1450 })),
    groups: ['big', 'small'].map((tenant) => ({ ...meta, tenant, name: 'db', network: 'n', policies: ['p'], labels: {} })),
    policies: [
      { ...meta, revision, tenant: 'big', name: 'p', rules: [{ id: 'out', priority: 1, direction: 'out' as const, action: 'allow' as const, protocol: 'any' },
        ...Array.from({ length: n }, (_, i) => ({ id: `r${i}`, priority: 5, direction: 'in' as const, action: 'allow' as const, protocol: 'tcp', ports: String(20000 + i), fromCidr: `${ip(i)}/32` })),
        ...Array.from({ length: n }, (_, i) => ({ id: `o${i}`, priority: 5, direction: 'out' as const, action: 'allow' as const, protocol: 'tcp', ports: String(20000 + i), toCidr: `${ip(i)}/32` }))] },
      { ...meta, revision, tenant: 'small', name: 'p', rules: [{ id: 'a', priority: 5, direction: 'in' as const, action: 'deny' as const, protocol: 'tcp', ports: String(30000 + revision) }] },
    ],
    endpoints: [...Array.from({ length: n }, (_, i) => ep('big', i)), ep('small', 0)],
    services: [], netprofiles: [], hosts: [], dockerNetworks: [], revision, global: { ...meta } as never,
  });
  const lines: string[] = [];
  const logged = pino({ level: 'warn' }, { write: (l: string) => { lines.push(l); } });
  const state = new DesiredState();
  state.replaceAll(snapshot(5, 1));
  const dp = new MemoryDatapath('u-');
  const r = new Reconciler(state, dp, async () => undefined, {
    host: 'node1', nsPrefix: 'u-', cniConfDir: dir, agentSocket: join(dir, 'agent.sock'), resyncMs: 60_000, vtep: '192.0.2.1', dnsPort: 15353, maxPolicyPairs: 200,
  }, logged);
  t.after(() => r.stop());
  await r.ensureTenant('big');
  await r.ensureTenant('small');
  const table = () => dp.namespaces.get('u-t1')?.table ?? '';
  assert.match(table(), /20004|0x00004e24/, 'five rules (45 pairs) are within the budget and enforced');
  // 40 such rules: 1,760 pairs.
  state.replaceAll(snapshot(40, 2));
  await assert.rejects(r.ensureTenant('big'), (e: Error) => {
    assert.match(e.message, /tenant big would make 1,760 pairs of address classes \(84 classes as sources or destinations, 80 of them of enforced groups\), past the limit of 200: .*\(the limit is weft agent --max-policy-pairs, 200 on this host\); its tables here stay as last applied/);
    return true;
  });
  assert.match(table(), /20004|0x00004e24/, 'the last tables stay');
  assert.doesNotMatch(table(), /20039/, 'nothing of the refused policy is written');
  // Asked again (a resync, an ADD) with nothing changed: refused at once, not compiled and logged again;
  // nor when it comes back after another refused state (a failed ADD: an endpoint put, then dropped).
  await assert.rejects(r.ensureTenant('big'), /--max-policy-pairs, 200 on this host/);
  state.replaceAll(snapshot(41, 2));
  await assert.rejects(r.ensureTenant('big'), /1,845 pairs/);
  state.replaceAll(snapshot(40, 2));
  await assert.rejects(r.ensureTenant('big'), /1,760 pairs/);
  assert.equal(lines.filter((l) => l.includes('policy refused')).length, 2, 'one refusal logged for each refused state of the tenant');
  // A restarted agent (no last plan) still gives the refused tenant its host side (published ports, DNS
  // listener, routes), and full passes do not warn of the same refusal at every resync.
  const hosts: string[][] = [];
  const restarted = new Reconciler(state, new MemoryDatapath('u-'), async (h) => { hosts.push(h.tenants.map((p) => p.tenant)); }, {
    host: 'node1', nsPrefix: 'u-', cniConfDir: dir, agentSocket: join(dir, 'agent.sock'), resyncMs: 200, vtep: '192.0.2.1', dnsPort: 15353, maxPolicyPairs: 200,
  }, logged);
  t.after(() => restarted.stop());
  const before = lines.length;
  restarted.start();
  await new Promise((res) => setTimeout(res, 1500));
  await restarted.stop();
  assert.ok(hosts.length >= 3, `${hosts.length} host sides planned in 1.5 s of 200 ms resyncs`);
  for (const h of hosts) assert.deepEqual(h, ['big', 'small'], 'the refused tenant keeps its host side');
  const later = lines.slice(before);
  assert.equal(later.filter((l) => l.includes('reconcile incomplete')).length, 1, `one warning of the same refusal, not one per pass: ${later.length} lines`);
  assert.equal(later.filter((l) => l.includes('cannot be planned')).length, 0);
  // The other tenant converges its own changes meanwhile.
  await r.ensureTenant('small');
  assert.match(dp.namespaces.get('u-t2')?.table ?? '', /30002/);
  // Back within the budget, the tenant is enforced again.
  state.replaceAll(snapshot(6, 3));
  await r.ensureTenant('big');
  assert.match(table(), /20005/);
});
