import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WeftError } from '../model/index.js';
import { MemoryStore, type Txn, type WriteHealth } from '../store/index.js';
import { Control } from './control.js';

const GRACE = 300_000;
const TICK = GRACE / 10;
const T0 = Date.parse('2026-11-23T10:00:00Z');

/** A store whose disk can fill up: while `full`, a transaction that writes is refused and writes nothing; reads go on. */
class Fillable extends MemoryStore {
  full = false;
  private failures = 0;
  private refuse(): WeftError {
    this.failures++;
    return new WeftError('WEFT_STORE_FULL', "the store's disk is full");
  }
  override async transact<T>(actor: string, fn: (tx: Txn) => Promise<T>): Promise<{ value: T; revision: number }> {
    return super.transact(actor, async (tx) => {
      let writes = false;
      const value = await fn({ get: (k) => tx.get(k), getShared: (k) => tx.getShared(k), list: (p) => tx.list(p), ceiling: (p, k) => tx.ceiling(p, k), put: (k, v) => { writes = true; tx.put(k, v); },
        delete: (k) => { writes = true; tx.delete(k); }, deletePrefix: (p) => { writes = true; tx.deletePrefix(p); } });
      if (writes && this.full) throw this.refuse();
      return value;
    });
  }
  override writeHealth(): WriteHealth {
    return { writable: !this.full, failures: this.failures };
  }
  override async probe(): Promise<WriteHealth> {
    if (this.full) this.refuse();
    return this.writeHealth();
  }
}

async function cluster() {
  const store = new Fillable();
  const at = { now: T0 };
  const c = new Control(store, () => new Date(at.now), { hostTimeoutMs: 30_000 });
  await c.bootstrap();
  await c.networks.create('u', 'default', { name: 'net', subnet: '10.0.0.0/24' });
  const beat = (name: string) => c.hosts.register('agent', { name, vtepIp: name === 'node1' ? '192.0.2.1' : '192.0.2.2' }).then(() => true, () => false);
  const ep = (host: string, id: string) => c.endpoints.create('a', { tenant: 'default', network: 'net', host, ifname: 'eth0', containerId: id });
  return { c, store, at, beat, ep, left: async () => (await c.endpoints.list()).items.map((e) => e.containerId).sort() };
}

test('a store full for longer than the grace: no host is judged until it has been writable for a whole grace again', async () => {
  const { c, store, at, beat, ep, left } = await cluster();
  await beat('node1');
  await beat('node2');
  await ep('node1', 'c1');
  await ep('node2', 'c2');
  // GC passes a tenth of a grace apart; node1's agent beats every pass (its beat lands after the pass),
  // node2's agent dies while the disk is full and never comes back.
  const pass = async (alive: string[]) => {
    at.now += TICK;
    // As the server's GC loop does: a failed pass is logged, and the next one tries again.
    const released = await c.collectSilentHosts(GRACE).catch(() => [] as string[]);
    for (const h of alive) await beat(h);
    return released;
  };
  for (let i = 0; i < 20; i++) assert.deepEqual(await pass(['node1', 'node2']), [], 'both alive');
  store.full = true;
  for (let i = 0; i < 25; i++) assert.deepEqual(await pass(['node1']), [], 'full: nothing can be written, nothing released');
  assert.equal(await beat('node1'), false, 'heartbeats were refused meanwhile');
  store.full = false;
  // The first pass after the disk is freed comes before node1's next heartbeat: every host looks silent
  // for 2.5 graces. Released here before the fix (both endpoints: c1's address handed out while in use).
  assert.deepEqual(await pass(['node1']), [], 'freed: the first pass judges nobody');
  for (let i = 0; i < 9; i++) assert.deepEqual(await pass(['node1']), [], 'nor for a grace period after the store came back');
  assert.deepEqual(await left(), ['c1', 'c2']);
  const later = [...await pass(['node1']), ...await pass(['node1'])];
  assert.equal(later.length, 1, 'a grace after the recovery, the host that stayed silent is collected');
  assert.deepEqual(await left(), ['c1'], 'and only that one');
});

test('a refusal seen between two passes (a heartbeat refused, the disk freed before the next probe) restarts the span', async () => {
  const { c, store, at, beat, ep, left } = await cluster();
  await beat('node1');
  await ep('node1', 'c1');
  at.now += 2 * GRACE;
  assert.equal(await beat('node1'), true);
  assert.deepEqual(await c.collectSilentHosts(GRACE), [], 'node1 just beat');
  store.full = true;
  assert.equal(await beat('node1'), false, 'one heartbeat refused');
  store.full = false;
  at.now += GRACE + 1;
  assert.deepEqual(await c.collectSilentHosts(GRACE), [], 'the refusal restarted the writable span: no judgement yet');
  at.now += GRACE + 1;
  assert.equal((await c.collectSilentHosts(GRACE)).length, 1, 'a grace of writable store later, a host that is really silent is collected');
  assert.deepEqual(await left(), []);
});
