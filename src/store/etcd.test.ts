import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { Etcd3 } from 'etcd3';
import { WeftError } from '../model/index.js';
import { EtcdStore } from './etcd.js';
import { storeContract } from './contract.js';
import { startEtcd, type EtcdProcess } from '../testkit/etcd.js';

const available = (() => { try { execFileSync('etcd', ['--version'], { stdio: 'ignore' }); return true; } catch { return false; } })();
const skip = available ? false : 'etcd is not installed';
let etcd: EtcdProcess | undefined;
let n = 0;
// Registered whether or not etcd is here: without it every test below reports as skipped, never as absent.
before(async () => { if (available) etcd = await startEtcd(); });
after(async () => etcd?.stop());
// Each test gets its own keyspace on the one etcd, run one after another (the suite is sequential).
storeContract('etcd', (options) => EtcdStore.open([etcd!.endpoint], `/contract-${n++}/`, options), { keepsOwnHistory: false, ...(skip ? { skip } : {}) });

test('etcd: a small history limit never compacts etcd, so other users of a shared etcd keep their history', { skip }, async () => {
  const other = new Etcd3({ hosts: [etcd!.endpoint] });
  const s = await EtcdStore.open([etcd!.endpoint], '/weft-shared/', { historyLimit: 10 });
  try {
    const first = await other.put('/someone-else/x').value('old').exec();
    await other.put('/someone-else/x').value('new').exec();
    // The old store compacted etcd every 1,000 of its revisions; go past that.
    for (let i = 0; i < 1010; i++) await s.transact('t', async (tx) => tx.put('k', i));
    const old = await other.get('/someone-else/x').revision(first.header.revision).exec();
    assert.equal(old.kvs[0]?.value.toString(), 'old', "the other user's old revision is still readable");
    // Revisions on etcd count every write to etcd after the keyspace began, the other user's two included.
    const floor = (await s.revision()) - 10;
    assert.equal(await s.compactedRevision(), floor, 'Weft applies its own limit as a logical floor');
    await assert.rejects(s.changes(floor - 1), (e: unknown) => e instanceof WeftError && e.code === 'WEFT_HISTORY_COMPACTED');
    assert.deepEqual((await s.changes(floor)).map((c) => c.value), [1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007, 1008, 1009]);
  } finally {
    await s.close();
    other.close();
  }
});

test('etcd: a transaction past etcd\'s bounds (operations, bytes) is refused before it is sent, as 413, and writes nothing', { skip }, async () => {
  const s = await EtcdStore.open([etcd!.endpoint], '/weft-bounds/');
  try {
    const tooLarge = (e: unknown) => e instanceof WeftError && e.code === 'WEFT_TOO_LARGE';
    await assert.rejects(s.transact('t', async (tx) => { for (let i = 0; i < 130; i++) tx.put(`k/${i}`, i); }), tooLarge);
    await assert.rejects(s.transact('t', async (tx) => { for (let i = 0; i < 4; i++) tx.put(`big/${i}`, 'x'.repeat(500_000)); }), tooLarge);
    assert.equal(await s.revision(), 0);
    await s.transact('t', async (tx) => { for (let i = 0; i < 100; i++) tx.put(`k/${i}`, i); });
    assert.equal((await s.list('k/')).entries.length, 100, 'the store still works: nothing tripped the client');
  } finally {
    await s.close();
  }
});

test('etcd: a prefix whose values pass gRPC\'s default 4 MiB message is still listed (50,000 endpoints are ~28 MB)', { skip }, async () => {
  const s = await EtcdStore.open([etcd!.endpoint], '/weft-wide/');
  try {
    // 60 values of 100 kB: 6 MB in one range answer, each put well under etcd's 1.5 MiB request limit.
    const big = 'x'.repeat(100_000);
    for (let i = 0; i < 60; i++) await s.transact('agent', async (tx) => tx.put(`endpoints/e${String(i).padStart(2, '0')}`, { big }));
    const l = await s.list('endpoints/');
    assert.equal(l.entries.length, 60);
    assert.equal(await s.transact('read', async (tx) => (await tx.list('endpoints/')).length).then((r) => r.value), 60, 'inside a transaction too');
  } finally {
    await s.close();
  }
});

test('etcd: one transaction holds at most --max-txn-ops operations: refused before it is sent at the default, taken when the etcd and the store are told more', { skip, timeout: 60_000 }, async () => {
  const many = (tx: { put(k: string, v: unknown): void }) => { for (let i = 0; i < 200; i++) tx.put(`k/${i}`, i); };
  const s = await EtcdStore.open([etcd!.endpoint], '/weft-txn-default/');
  try {
    await assert.rejects(s.transact('t', async (tx) => many(tx)), (e: unknown) => e instanceof WeftError && e.code === 'WEFT_TOO_LARGE' && /--max-txn-ops 128 operations \(its default; if etcd runs with more, tell the server: --etcd-max-txn-ops\)/.test(e.message));
    assert.equal((await s.list('k/')).entries.length, 0);
  } finally {
    await s.close();
  }
  const big = await startEtcd({ args: ['--max-txn-ops', '1024'] });
  const t = await EtcdStore.open([big.endpoint], '/weft-txn-big/', { maxTxnOps: 1024 });
  try {
    await t.transact('t', async (tx) => many(tx));
    assert.equal((await t.list('k/')).entries.length, 200);
    await assert.rejects(t.transact('t', async (tx) => { for (let i = 0; i < 1100; i++) tx.put(`m/${i}`, i); }), (e: unknown) => e instanceof WeftError && /--max-txn-ops 1024 operations \(--etcd-max-txn-ops\)/.test(e.message));
  } finally {
    await t.close();
    await big.stop();
  }
});

test('etcd: what a transaction first read is what its commit insists on: read again after another server wrote, it retries', { skip }, async () => {
  const prefix = '/weft-reread/';
  const [s, other] = [await EtcdStore.open([etcd!.endpoint], prefix), await EtcdStore.open([etcd!.endpoint], prefix)];
  try {
    // A key: read (absent), the other server writes it, this one writes it and reads it back (which reads
    // the stored key again, for its create revision). The first attempt decided on "absent": it must not commit.
    let runs = 0;
    await s.transact('a', async (tx) => {
      runs++;
      const seen = await tx.get('k');
      if (runs === 1) await other.transact('b', async (t) => t.put('k', 'theirs'));
      tx.put('k', seen ? `after ${String(seen.value)}` : 'over nothing');
      await tx.get('k');
    });
    assert.equal(runs, 2, 'the first attempt was refused');
    assert.equal((await s.get('k'))?.value, 'after theirs');

    // A prefix listed twice, with the other server's insertion between the listings.
    runs = 0;
    await s.transact('a', async (tx) => {
      runs++;
      const first = (await tx.list('p/')).length;
      if (runs === 1) await other.transact('b', async (t) => t.put('p/x', 1));
      await tx.list('p/');
      tx.put('count', first);
    });
    assert.equal(runs, 2, 'the first attempt was refused');
    assert.equal((await s.get('count'))?.value, 1);
  } finally {
    await s.close();
    await other.close();
  }
});
