import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { Etcd3 } from 'etcd3';
import { WeftError } from '../model/index.js';
import { EtcdStore } from './etcd.js';
import { readHistory } from './etcd-history.js';
import type { Change } from './port.js';
import { startEtcd, type EtcdProcess } from '../testkit/etcd.js';

const available = (() => { try { execFileSync('etcd', ['--version'], { stdio: 'ignore' }); return true; } catch { return false; } })();
const skip = !available && 'etcd is not installed';
let etcd: EtcdProcess | undefined;
before(async () => { if (available) etcd = await startEtcd(); });
after(async () => etcd?.stop());

/** A TCP relay to etcd that the test can cut (every connection dropped, new ones refused) and restore: a partition. */
async function relay(target: string): Promise<{ endpoint: string; cut(): void; restore(): void; close(): Promise<void> }> {
  const { hostname, port } = new URL(target);
  const open = new Set<Socket>();
  let down = false;
  const server: Server = createServer((c) => {
    if (down) { c.destroy(); return; }
    const up = connect(Number(port), hostname);
    open.add(c).add(up);
    const drop = () => { c.destroy(); up.destroy(); open.delete(c); open.delete(up); };
    c.on('error', drop).on('close', drop);
    up.on('error', drop).on('close', drop);
    c.pipe(up).pipe(c);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address() as { port: number };
  return {
    endpoint: `http://127.0.0.1:${addr.port}`,
    cut() { down = true; for (const s of open) s.destroy(); open.clear(); },
    restore() { down = false; },
    close: () => new Promise((r) => { for (const s of open) s.destroy(); server.close(() => r()); }),
  };
}

async function until(what: string, ok: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const isCode = (code: string) => (e: unknown) => e instanceof WeftError && e.code === code;

test('etcd: a watch etcd cancels because its revision was compacted is re-established, and subscribers are told to re-list', { skip, timeout: 60_000 }, async () => {
  const link = await relay(etcd!.endpoint);
  const direct = new Etcd3({ hosts: [etcd!.endpoint] });
  const s = await EtcdStore.open([link.endpoint], '/watch-gap/');
  try {
    const seen: Change[] = [];
    let lost = 0;
    s.subscribe((c) => seen.push(...c), () => lost++);
    await s.transact('t', async (tx) => tx.put('k', 1));
    await until('the first change', () => seen.length === 1);
    // Partitioned from etcd, this server misses writes of another one, and etcd compacts past them.
    link.cut();
    for (let i = 0; i < 3; i++) await direct.put('/watch-gap/d/other').value(JSON.stringify({ v: i })).exec();
    const top = await direct.put('/watch-gap/m/last').value(JSON.stringify({ a: 'other', t: '' })).exec();
    await direct.kv.compact({ revision: top.header.revision, physical: true });
    link.restore();
    // Without an 'error' listener, etcd's cancel of the resumed watch was an uncaught exception here.
    await until('subscribers told to re-list', () => lost === 1);
    const t0 = Date.now();
    await s.transact('t', async (tx) => tx.put('k', 2));
    assert.ok(Date.now() - t0 < 3000, 'a commit returns at once: the new watch delivers it');
    await until('the change after the gap', () => seen.some((c) => c.key === 'k' && c.value === 2));
    assert.ok(!seen.some((c) => c.key === 'other'), 'the compacted writes were never delivered: hence the re-list');
    await assert.rejects(s.changes(1), isCode('WEFT_HISTORY_COMPACTED'), 'a watcher resuming from before the gap gets 410');
  } finally {
    await s.close();
    direct.close();
    await link.close();
  }
});

test('etcd: an unreachable etcd is WEFT_STORE_UNAVAILABLE (503, CNI 11), for reads and transactions alike', { skip, timeout: 60_000 }, async () => {
  const link = await relay(etcd!.endpoint);
  const s = await EtcdStore.open([link.endpoint], '/outage/');
  try {
    await s.transact('t', async (tx) => tx.put('tenants/default', {}));
    link.cut();
    await assert.rejects(s.get('tenants/default'), isCode('WEFT_STORE_UNAVAILABLE'));
    await assert.rejects(s.transact('t', async (tx) => { await tx.get('tenants/default'); tx.put('x', 1); }), isCode('WEFT_STORE_UNAVAILABLE'));
    await assert.rejects(s.transact('t', async () => { throw new WeftError('WEFT_NOT_FOUND', 'mine'); }), isCode('WEFT_NOT_FOUND'), "the transaction's own errors pass as they are");
  } finally {
    link.restore();
    await s.close();
    await link.close();
  }
});

test('etcd: a history read that does not finish in time is WEFT_STORE_UNAVAILABLE, not a conflict', { skip, timeout: 30_000 }, async () => {
  const client = new Etcd3({ hosts: [etcd!.endpoint] });
  try {
    const r = await client.put('/slow/d/k').value(JSON.stringify({ v: 1 })).exec();
    const now = Number(r.header.revision);
    // Waits for a revision nobody writes: only the deadline ends it.
    const read = readHistory(client, { prefix: '/slow/', from: now, to: now + 1000, limit: 10, decode: () => [], timeoutMs: 500 });
    await assert.rejects(read, (e: unknown) => isCode('WEFT_STORE_UNAVAILABLE')(e) && /took longer than 0.5 s/.test((e as Error).message));
  } finally {
    client.close();
  }
});
