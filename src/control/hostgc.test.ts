import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStore, type Txn } from '../store/index.js';
import { Control } from './control.js';

const GRACE = 300_000;
const T0 = Date.parse('2026-11-23T10:00:00Z');

/** A store that runs `before` once, just before the first transaction by `actor`: another writer's commit landing in between. */
class Interleaved extends MemoryStore {
  before: (() => Promise<void>) | undefined;
  constructor(private readonly actor: string) { super(); }
  override async transact<T>(actor: string, fn: (tx: Txn) => Promise<T>): Promise<{ value: T; revision: number }> {
    const hook = actor === this.actor ? this.before : undefined;
    if (hook) { this.before = undefined; await hook(); }
    return super.transact(actor, fn);
  }
}

async function cluster(store = new MemoryStore(), at = { now: T0 }) {
  const c = new Control(store, () => new Date(at.now), { hostTimeoutMs: 30_000 });
  await c.bootstrap();
  await c.networks.create('u', 'default', { name: 'net', subnet: '10.0.0.0/24' });
  const beat = (name: string, ip: string) => c.hosts.register('agent', { name, vtepIp: ip });
  const ep = (host: string, id: string) => c.endpoints.create('a', { tenant: 'default', network: 'net', host, ifname: 'eth0', containerId: id });
  return { c, at, beat, ep };
}

test('a host that heartbeats between the GC listing and the release keeps its endpoints', async () => {
  const store = new Interleaved('gc');
  const { c, at, beat, ep } = await cluster(store);
  await beat('node1', '192.0.2.1');
  const e1 = await ep('node1', 'c1');
  await ep('node1', 'c2');
  at.now += 2 * GRACE;
  // The agent comes back after a long partition just as the collector has listed its host as silent.
  store.before = async () => { await beat('node1', '192.0.2.1'); };
  assert.deepEqual(await c.collectSilentHosts(GRACE), [], 'nothing released: the host is alive again');
  assert.deepEqual((await c.endpoints.list({ host: 'node1' })).items.map((e) => e.containerId).sort(), ['c1', 'c2']);
  const next = await ep('node1', 'c3');
  assert.notEqual(next.ip, e1.ip, 'its addresses were never handed out again');
});

test('a freshly started server releases nothing for a grace period, then collects hosts still silent', async () => {
  const first = await cluster();
  await first.beat('node1', '192.0.2.1');
  await first.beat('node2', '192.0.2.2');
  const e1 = await first.ep('node1', 'c1');
  await first.ep('node2', 'c2');
  // The server (or its store) was down for three grace periods: every host looks silent when it restarts.
  const at = { now: T0 + 3 * GRACE };
  const restarted = new Control(first.c.store, () => new Date(at.now), { hostTimeoutMs: 30_000 });
  assert.deepEqual(await restarted.collectSilentHosts(GRACE), [], 'just restarted: nothing released');
  at.now += GRACE / 2;
  await restarted.hosts.register('agent', { name: 'node2', vtepIp: '192.0.2.2' });
  assert.deepEqual(await restarted.collectSilentHosts(GRACE), [], 'half a grace period later: still nothing');
  at.now += GRACE / 2 + 1;
  await restarted.hosts.register('agent', { name: 'node2', vtepIp: '192.0.2.2' });
  assert.deepEqual(await restarted.collectSilentHosts(GRACE), [e1.id], 'a full grace period later: only the host that never came back');
  assert.deepEqual((await restarted.endpoints.list()).items.map((e) => e.containerId), ['c2']);
});

test('an endpoint made after its host fell silent (an ADD answered as a partition heals) is not collected before its heartbeat', async () => {
  const { c, at, beat, ep } = await cluster();
  await beat('node1', '192.0.2.1');
  await ep('node1', 'old');
  at.now += 2 * GRACE;
  // The partition heals; an ADD the agent held through it reaches the server before the next heartbeat.
  const fresh = await ep('node1', 'fresh');
  assert.deepEqual((await c.collectSilentHosts(GRACE)).length, 1, 'only the endpoint older than the grace');
  assert.deepEqual((await c.endpoints.list({ host: 'node1' })).items.map((e) => e.containerId), ['fresh']);
  const other = await ep('node2', 'other');
  assert.notEqual(other.ip, fresh.ip, 'the fresh address is not handed out again');
  at.now += GRACE + 1;
  assert.deepEqual(await c.collectSilentHosts(GRACE), [fresh.id], 'still silent a grace period after the ADD: collected');
});
