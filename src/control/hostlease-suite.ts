import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { HostInput, WireguardStatus } from '../model/index.js';
import type { Change, Store, Txn } from '../store/index.js';
import { publicChange } from './changes.js';
import { Control } from './control.js';

/**
 * Heartbeats as leases (leases.ts), against one store: `open` makes an empty keyspace; `peer`, when the
 * store can be shared by several servers (etcd), opens a second store on that keyspace, so a heartbeat can
 * commit in the middle of the host GC's transaction (a real conflict) instead of just before it.
 */
export interface LeaseSuiteStore {
  store: Store;
  peer?: () => Promise<Store>;
  close(): Promise<void>;
}

const GRACE = 300_000;
const T0 = Date.parse('2026-11-29T10:00:00Z');
const KEY = (n: number) => Buffer.alloc(32, n).toString('base64');
const tunnel = (rxBytes: number): WireguardStatus => ({ mode: 'wireguard-go', peers: 2, handshaken: 2, rxBytes, txBytes: rxBytes * 2, oldestHandshakeAt: new Date(T0).toISOString() });

async function cluster(store: Store, at = { now: T0 }) {
  const c = new Control(store, () => new Date(at.now), { hostTimeoutMs: 30_000, hostGraceMs: GRACE });
  await c.bootstrap();
  const beat = (name: string, extra: Partial<HostInput> = {}) => c.hosts.register('agent', { name, vtepIp: '192.0.2.1', wgPublicKey: KEY(1), ...extra });
  return { c, at, beat };
}

/** What the agents' watch would carry from now on (published changes: control/changes.ts). */
function published(store: Store): { events: Array<{ kind: string; key: string; object: unknown }>; stop(): void } {
  const events: Array<{ kind: string; key: string; object: unknown }> = [];
  const stop = store.subscribe((cs: Change[]) => {
    for (const ch of cs) {
      const p = publicChange(ch);
      if (p) events.push({ kind: p.kind, key: p.key, object: p.object });
    }
  });
  return { events, stop };
}

/** Runs `during` once, while the first transaction of `actor` is open (its reads made, its writes not committed). */
function interleave(store: Store, actor: string, during: () => Promise<void>): void {
  const transact = store.transact.bind(store);
  let hook: (() => Promise<void>) | undefined = during;
  store.transact = <T>(who: string, fn: (tx: Txn) => Promise<T>) => transact(who, async (tx) => {
    const value = await fn(tx);
    const h = who === actor ? hook : undefined;
    hook = undefined;
    if (h) await h();
    return value;
  });
}

export function hostLeaseSuite(name: string, open: () => Promise<LeaseSuiteStore>, options: { skip?: string | false } = {}): void {
  const t = (title: string, body: (s: LeaseSuiteStore) => Promise<void>) => test(`${name}: ${title}`, { skip: options.skip ?? false }, async () => {
    const s = await open();
    try { await body(s); } finally { await s.close(); }
  });

  t('heartbeats of a host are no watch event and no history, a change of its key or underlay is', async ({ store }) => {
    const { c, at, beat } = await cluster(store);
    await beat('node1');
    await beat('node2', { vtepIp: '192.0.2.2', wgPublicKey: KEY(2) });
    const record = await store.get('hosts/node1');
    const since = await store.revision();
    const w = published(store);
    for (let i = 1; i <= 20; i++) {
      at.now += 10_000;
      await beat('node1', { wireguard: tunnel(i * 1000) });
    }
    assert.equal(w.events.length, 0, `nothing published for 20 heartbeats: ${JSON.stringify(w.events.map((e) => e.key))}`);
    assert.equal((await store.get('hosts/node1'))?.modRevision, record?.modRevision, 'the record was not rewritten');
    assert.deepEqual((await store.changes(since)).filter((ch) => ch.key.startsWith('hosts/')), [], 'no copy of the record in the history');
    at.now += 10_000;
    await beat('node1', { wgPublicKey: KEY(3) });
    await beat('node1', { wgPublicKey: KEY(3), vtepIp: '192.0.2.3' });
    w.stop();
    assert.deepEqual(w.events.map((e) => [e.kind, e.key, (e.object as { wgPublicKey: string; vtepIp: string }).wgPublicKey, (e.object as { vtepIp: string }).vtepIp]),
      [['host', 'hosts/node1', KEY(3), '192.0.2.1'], ['host', 'hosts/node1', KEY(3), '192.0.2.3']], 'a new key, then a new underlay: one event each');
    assert.equal((await c.hosts.get('node1')).vtepIp, '192.0.2.3');
  });

  t('a read shows the newest heartbeat (lastSeen, tunnel status) and the state derived from it', async ({ store }) => {
    const { c, at, beat } = await cluster(store);
    const first = await beat('node1', { wireguard: tunnel(1) });
    at.now += 25_000;
    const again = await beat('node1', { wireguard: tunnel(7) });
    assert.equal(again.lastSeen, new Date(T0 + 25_000).toISOString(), 'the heartbeat answers its own time');
    assert.equal(again.revision, first.revision, "the record's revision: nothing of it changed");
    for (const h of [await c.hosts.get('node1'), (await c.hosts.list()).items[0]]) {
      assert.equal(h?.lastSeen, new Date(T0 + 25_000).toISOString());
      assert.equal(h?.wireguard?.rxBytes, 7);
      assert.equal(h?.state, 'up');
    }
    at.now += 30_001;
    assert.equal((await c.hosts.get('node1')).state, 'down', 'silent past the host timeout');
    await beat('node1');
    assert.equal((await c.hosts.get('node1')).wireguard, undefined, 'a heartbeat without tunnel status shows none, not an old one');
  });

  t('a record from before leases (lastSeen in it) is read, collected and migrated by its first heartbeat', async ({ store }) => {
    const { c, at, beat } = await cluster(store);
    await c.networks.create('u', 'default', { name: 'net', subnet: '10.0.0.0/24' });
    const legacy = (name: string, ip: string) => ({ name, vtepIp: ip, tunnelIp: `100.64.0.${ip.slice(-1)}`, wireguard: tunnel(5), lastSeen: new Date(T0).toISOString(), createdAt: new Date(T0).toISOString(), updatedAt: new Date(T0).toISOString() });
    await store.transact('old-server', async (tx) => { tx.put('hosts/old', legacy('old', '192.0.2.8')); tx.put('hosts/gone', legacy('gone', '192.0.2.9')); });
    const gone = await c.endpoints.create('a', { tenant: 'default', network: 'net', host: 'gone', ifname: 'eth0', containerId: 'c1' });
    assert.equal((await c.hosts.get('old')).lastSeen, new Date(T0).toISOString());
    assert.equal((await c.hosts.get('old')).wireguard?.rxBytes, 5);
    at.now += 2 * GRACE;
    const w = published(store);
    await beat('old', { vtepIp: '192.0.2.8' });
    await beat('old', { vtepIp: '192.0.2.8' });
    w.stop();
    assert.equal(w.events.length, 1, 'the first heartbeat rewrites the record once, the next one not');
    assert.deepEqual(Object.keys(w.events[0]?.object as object).filter((k) => k === 'lastSeen' || k === 'wireguard'), [], 'the record lost its liveness fields');
    assert.equal((await c.hosts.get('old')).state, 'up');
    assert.deepEqual(await c.collectSilentHosts(GRACE), [gone.id], "the silent legacy host's endpoint is released, by the lastSeen in its record");
  });

  t('the GC keeps a host whose heartbeat lands during the release, and releases it once it stays silent', async (s) => {
    const { c, at, beat } = await cluster(s.store);
    await c.networks.create('u', 'default', { name: 'net', subnet: '10.0.0.0/24' });
    await beat('node1');
    const kept = await c.endpoints.create('a', { tenant: 'default', network: 'net', host: 'node1', ifname: 'eth0', containerId: 'c1' });
    at.now += 2 * GRACE;
    // The agent comes back just as the collector has judged it silent: from another server sharing the
    // store inside the collector's transaction where the store allows it, else just before it.
    const other = s.peer ? await cluster(await s.peer(), at) : undefined;
    const comeBack = async () => { await (other ?? { beat }).beat('node1'); };
    if (s.peer) interleave(s.store, 'gc', comeBack);
    else before(s.store, 'gc', comeBack);
    try {
      assert.deepEqual(await c.collectSilentHosts(GRACE), [], 'nothing released: the host is alive again');
      assert.deepEqual((await c.endpoints.list({ host: 'node1' })).items.map((e) => e.id), [kept.id]);
      at.now += GRACE + 1;
      assert.deepEqual(await c.collectSilentHosts(GRACE), [kept.id], 'silent for a grace since that heartbeat: released');
    } finally {
      await other?.c.store.close();
    }
  });
}

/** Runs `hook` once, just before the first transaction of `actor` (stores that run one transaction at a time). */
function before(store: Store, actor: string, hook: () => Promise<void>): void {
  const transact = store.transact.bind(store);
  let pending: (() => Promise<void>) | undefined = hook;
  store.transact = async <T>(who: string, fn: (tx: Txn) => Promise<T>) => {
    const h = who === actor ? pending : undefined;
    if (h) { pending = undefined; await h(); }
    return transact(who, fn);
  };
}
