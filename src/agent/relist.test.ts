import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { MemoryDatapath, type HostPlan } from '../datapath/index.js';
import { DesiredState, type Snapshot } from './state.js';
import { Reconciler } from './reconciler.js';

const log = pino({ level: 'silent' });
const meta = { revision: 10, createdAt: '', updatedAt: '' };
const tenant = (name: string, id: unknown) => ({ ...meta, name, id, defaultAction: 'allow' });
const net = (t: string, subnet: string, vni: number) => ({ ...meta, tenant: t, name: 'n', subnet, gateway: subnet.replace(/0\/24$/, '1'), encap: 'vxlan', vni, mtu: 1450 });
const snap = (tenants: unknown[], networks: unknown[], revision = 1000): Snapshot => ({
  tenants, networks, groups: [], policies: [], services: [], netprofiles: [], hosts: [], dockerNetworks: [], endpoints: [], revision, global: { ...meta },
} as never);

function rig(t: { after: (f: () => void) => void }, state: DesiredState) {
  const dir = mkdtempSync(join(tmpdir(), 'weft-review2-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const dp = new MemoryDatapath('u-');
  let last: HostPlan | undefined;
  const r = new Reconciler(state, dp, async (h) => { last = h; }, {
    host: 'node1', nsPrefix: 'u-', cniConfDir: join(dir, 'net.d'), agentSocket: join(dir, 'agent.sock'), resyncMs: 60_000, vtep: '192.0.2.1', dnsPort: 15353,
  }, log);
  const fullPass = async () => {
    const before = r.fullPasses;
    r.mark(undefined);
    for (let i = 0; i < 200 && r.fullPasses === before; i++) await new Promise((res) => setImmediate(res));
    await r.withoutResync(async () => undefined);
  };
  return { dp, r, fullPass, hostPlan: () => last };
}

test('a relist holding a tenant object without a whole-number id keeps that tenant\'s namespace, as a watch put does', async (t) => {
  const state = new DesiredState();
  state.replaceAll(snap([tenant('a', 1), tenant('b', 2)], [net('a', '10.9.0.0/24', 100), net('b', '10.8.0.0/24', 101)]));
  const { dp, r, fullPass } = rig(t, state);
  await fullPass();
  assert.deepEqual([...dp.namespaces.keys()].sort(), ['u-t1', 'u-t2']);
  // The agent reconnects and relists; the server (a newer one, a damaged store) sends a's object without an id.
  state.replaceAll(snap([{ ...meta, name: 'a', defaultAction: 'allow' }, tenant('b', 2)], [net('a', '10.9.0.0/24', 100), net('b', '10.8.0.0/24', 101)], 1001));
  await fullPass();
  await r.stop();
  assert.deepEqual([...dp.namespaces.keys()].sort(), ['u-t1', 'u-t2'], "a's namespace (every container of it) was removed");
});

test('a tenant made again under its name with another id, while unplannable, does not get its old incarnation\'s host side', async (t) => {
  const state = new DesiredState();
  state.replaceAll(snap([tenant('a', 1), tenant('b', 2)], [net('a', '10.9.0.0/24', 100), net('b', '10.8.0.0/24', 101)]));
  const { r, fullPass, hostPlan } = rig(t, state);
  await fullPass();
  // Relist: b was deleted, c took id 2, b was made again (id 3) and its network cannot be planned.
  state.replaceAll(snap([tenant('a', 1), tenant('c', 2), tenant('b', 3)],
    [net('a', '10.9.0.0/24', 100), net('c', '10.7.0.0/24', 102), { ...net('b', '10.8.0.0/24', 101), subnet: 'garbage' }], 1001));
  await fullPass();
  await r.stop();
  const planned = (hostPlan()?.tenants ?? []).map((p) => `${p.tenant}:${p.ns}`);
  assert.deepEqual(planned, ['a:u-t1', 'c:u-t2'], `the deleted b's plan (id 2, c's namespace now) was kept: ${planned.join(' ')}`);
});

test('a relist keeps a tenant\'s last good object only where it holds no valid one of that name', () => {
  const state = new DesiredState();
  state.replaceAll(snap([tenant('a', 1), tenant('b', 2)], []));
  // b made again (id 7), and an unusable object under b's name besides it, after it.
  state.replaceAll(snap([tenant('a', 1), tenant('b', 7), { ...meta, name: 'b', defaultAction: 'allow' }], [], 1001));
  assert.equal(state.tenants.get('b')?.id, 7, 'the valid object, not the deleted incarnation');
  // A listing without b at all drops it.
  state.replaceAll(snap([tenant('a', 1)], [], 1002));
  assert.deepEqual([...state.tenants.keys()], ['a']);
});
