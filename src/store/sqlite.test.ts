import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { Worker } from 'node:worker_threads';
import { spawnSync } from 'node:child_process';
import { SqliteStore } from './sqlite.js';
import { CHECKPOINT_PAGES, migrateKeyTable } from './sqlite-write.js';
import { storeContract } from './contract.js';
import { WeftError } from '../model/index.js';

const dir = mkdtempSync(join(tmpdir(), 'weft-sqlite-'));
let n = 0;
storeContract('sqlite', async (options) => new SqliteStore(join(dir, `contract-${n++}.db`), options));

test('sqlite: data and revisions survive a reopen', async () => {
  const file = join(dir, 'reopen.db');
  const a = new SqliteStore(file);
  await a.transact('t', async (tx) => tx.put('k', { v: 1 }));
  await a.transact('t', async (tx) => tx.put('k', { v: 2 }));
  await a.close();
  assert.equal(statSync(file).mode & 0o777, 0o600, 'the store file is private to its owner');
  const b = new SqliteStore(file);
  assert.equal(await b.revision(), 2);
  assert.deepEqual((await b.get('k'))?.value, { v: 2 });
  assert.equal((await b.changes(0)).length, 2);
  await b.close();
});

test('sqlite: a second store on the same file is refused while the first holds it', async () => {
  const file = join(dir, 'exclusive.db');
  const a = new SqliteStore(file);
  assert.throws(() => new SqliteStore(file), (e: unknown) => e instanceof WeftError && e.code === 'WEFT_IN_USE' && /in use by another weft server/.test(e.message));
  await a.close();
  const b = new SqliteStore(file);
  await b.close();
});

test('sqlite: a file from before the byte bound counts its existing history, and the bound holds across a reopen', async () => {
  const file = join(dir, 'bytes.db');
  const a = new SqliteStore(file);
  for (let i = 0; i < 10; i++) await a.transact('t', async (tx) => tx.put('k', 'x'.repeat(200)));
  await a.close();
  const raw = new Database(file);
  raw.prepare("DELETE FROM meta WHERE name = 'log_bytes'").run();
  raw.close();
  const b = new SqliteStore(file, { historyBytes: 1000 });
  await b.transact('t', async (tx) => tx.put('k', 'x'.repeat(200)));
  assert.equal(await b.compactedRevision(), 7, 'the 2,030 bytes already logged were counted: 4 revisions of 203 bytes remain');
  await b.close();
  const c = new SqliteStore(file, { historyBytes: 1000 });
  await c.transact('t', async (tx) => tx.put('k', 'x'.repeat(200)));
  assert.equal(await c.compactedRevision(), 8);
  assert.deepEqual((await c.changes(8)).map((x) => x.revision), [9, 10, 11, 12]);
  await c.close();
});

/** The key table as the code before session 44 made it. */
const OLD_KV = (name: string) => `CREATE TABLE ${name} (key TEXT PRIMARY KEY, value TEXT NOT NULL, mod_rev INTEGER NOT NULL, create_rev INTEGER NOT NULL) WITHOUT ROWID`;

test('sqlite: a data dir whose key table is keyed by the key (before session 44) is moved to the table in write order on start, every row, revision and change kept', async () => {
  const file = join(dir, 'old-layout.db');
  const a = new SqliteStore(file);
  await a.transact('t', async (tx) => { tx.put('endpoints/b', { ip: '10.0.0.3' }); tx.put('endpoints/a', { ip: '10.0.0.2' }); });
  await a.transact('t', async (tx) => tx.put('endpoints/a', { ip: '10.0.0.9' }));
  await a.close();
  // The file as the code before session 44 left it.
  const raw = new Database(file);
  raw.exec(`${OLD_KV('kv_old')};
    INSERT INTO kv_old SELECT key, value, mod_rev, create_rev FROM kv; DROP TABLE kv; ALTER TABLE kv_old RENAME TO kv;`);
  const layout = () => raw.prepare<[], string>("SELECT sql FROM sqlite_master WHERE name = 'kv'").pluck().get() ?? '';
  const indexed = () => raw.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'kv_key'").get() !== undefined;
  assert.match(layout(), /WITHOUT ROWID/);
  assert.equal(indexed(), false);
  raw.close();

  const b = new SqliteStore(file);
  try {
    const check = new Database(file, { readonly: true });
    try {
      assert.doesNotMatch(check.prepare<[], string>("SELECT sql FROM sqlite_master WHERE name = 'kv'").pluck().get() ?? '', /WITHOUT ROWID/, 'moved on start');
      assert.ok(check.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'kv_key'").get(), 'found by key through its index');
    } finally {
      check.close();
    }
    assert.equal(await b.revision(), 2);
    const a2 = await b.get('endpoints/a');
    assert.deepEqual([a2?.value, a2?.modRevision, a2?.createRevision], [{ ip: '10.0.0.9' }, 2, 1]);
    assert.deepEqual((await b.list('endpoints/')).entries.map((e) => [e.key, e.modRevision]), [['endpoints/a', 2], ['endpoints/b', 1]]);
    assert.deepEqual((await b.changes(0)).map((c) => `${c.revision}:${c.key}`), ['1:endpoints/b', '1:endpoints/a', '2:endpoints/a']);
    // An existing key is updated in place, a deleted one goes, a new one is added: rows now lie in the
    // order they were written (endpoints/0 last), and listings are still in key order.
    await b.transact('t', async (tx) => { tx.put('endpoints/b', { ip: '10.0.0.4' }); tx.delete('endpoints/a'); tx.put('endpoints/c', { ip: '10.0.0.5' }); });
    await b.transact('t', async (tx) => tx.put('endpoints/0', { ip: '10.0.0.6' }));
    assert.deepEqual((await b.list('endpoints/')).entries.map((e) => [e.key, e.value, e.createRevision]), [['endpoints/0', { ip: '10.0.0.6' }, 4], ['endpoints/b', { ip: '10.0.0.4' }, 1], ['endpoints/c', { ip: '10.0.0.5' }, 3]]);
  } finally {
    await b.close();
  }
  const again = new Database(file);
  try {
    assert.equal(migrateKeyTable(again), false, 'a moved table is not moved again');
    assert.equal(again.prepare('SELECT count(*) FROM kv').pluck().get(), 3);
  } finally {
    again.close();
  }
});

test('sqlite: the move of an old key table makes the key index itself, in the same transaction', () => {
  const raw = new Database(join(dir, 'move-alone.db'));
  try {
    raw.exec(`${OLD_KV('kv')};
      INSERT INTO kv VALUES ('k/2', '2', 2, 2), ('k/1', '1', 1, 1);`);
    assert.equal(migrateKeyTable(raw), true);
    assert.ok(raw.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'kv_key'").get(), 'no key index until SCHEMA runs: a crash between the two would leave the upsert without its conflict target');
    assert.throws(() => raw.prepare("INSERT INTO kv (key, value, mod_rev, create_rev) VALUES ('k/1', 'x', 3, 3)").run(), /UNIQUE/);
    assert.deepEqual(raw.prepare('SELECT key FROM kv ORDER BY id').pluck().all(), ['k/1', 'k/2'], 'moved in key order');
  } finally {
    raw.close();
  }
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

test('sqlite: every commit is synced to disk before it is acknowledged (synchronous=FULL)', async () => {
  const s = new SqliteStore(join(dir, 'durable.db'));
  try {
    const w = await s.writerSettings();
    assert.equal(w.synchronous, 2, 'FULL (2); NORMAL (1) can lose acknowledged commits on power loss');
    assert.equal(w.journalMode, 'wal');
  } finally {
    await s.close();
  }
});

test('sqlite: the store, its WAL, its shared memory and its lock file are private to their owner', async () => {
  const file = join(dir, 'modes.db');
  const s = new SqliteStore(file);
  try {
    await s.transact('t', async (tx) => tx.put('k', 1));
    for (const f of [file, `${file}-wal`, `${file}-shm`, `${file}.lock`]) assert.equal(statSync(f).mode & 0o777, 0o600, f);
  } finally {
    await s.close();
  }
});

test('sqlite: a writer thread that dies mid-commit fails that batch as unavailable (written or not), and the next transaction commits on a new thread', async () => {
  const file = join(dir, 'writer-dies.db');
  const s = new SqliteStore(file);
  try {
    await s.transact('t', async (tx) => tx.put('before', 1));
    const thread = (s as unknown as { writer: { worker: Worker | undefined; waiting: Map<number, unknown> } }).writer;
    // A commit large enough to still be running when the thread is stopped.
    const big = s.transact('t', async (tx) => { for (let i = 0; i < 20_000; i++) tx.put(`big/${i}`, { i, pad: 'x'.repeat(200) }); });
    while (thread.waiting.size === 0) await new Promise((r) => setImmediate(r));
    await thread.worker?.terminate();
    await assert.rejects(big, (e: unknown) => e instanceof WeftError && e.code === 'WEFT_STORE_UNAVAILABLE' && /writer thread stopped/.test(e.message));
    assert.equal(s.writeHealth().writable, false, 'the failure is reported to /healthz');
    const after = await s.transact('t', async (tx) => { tx.put('after', (await tx.get('before'))?.value); return (await tx.list('big/')).length; });
    assert.equal(after.value, 0, 'the stopped commit left nothing behind');
    assert.equal(after.revision, 2, 'the revision is read again from the file');
    assert.deepEqual((await s.get('after'))?.value, 1);
    assert.equal(s.writeHealth().writable, true);
  } finally {
    await s.close();
  }
});

/** The WAL file's size (0 when there is none). */
function walBytes(file: string): number {
  try {
    return statSync(`${file}-wal`).size;
  } catch {
    return 0;
  }
}

test('sqlite: the writer checkpoints as it goes: commits past ~1 MB of WAL are in the database file when they are acknowledged, and the WAL starts over', async () => {
  const file = join(dir, 'checkpoints.db');
  const s = new SqliteStore(file);
  const walSize = () => walBytes(file);
  try {
    const before = statSync(file).size;
    // 30 commits of 25 values of 4,000 bytes (each spills into overflow pages: ~240 KB of WAL a commit):
    // the bound (256 pages, ~1 MB) is crossed every four or five.
    let largest = 0;
    for (let i = 0; i < 30; i++) {
      await s.transact('t', async (tx) => { for (let j = 0; j < 25; j++) tx.put(`k/${i}/${j}`, 'x'.repeat(4000)); });
      largest = Math.max(largest, walSize());
    }
    assert.ok(statSync(file).size >= before + 1_500_000, `the database file holds most commits without waiting (${statSync(file).size} bytes)`);
    assert.ok(largest < 2_000_000, `the WAL stayed within its bound (${CHECKPOINT_PAGES} pages) and one commit: its largest was ${largest} bytes`);
    assert.equal((await s.list('k/')).entries.length, 750);
  } finally {
    await s.close();
  }
});

test('sqlite: each commit reports its duration to onCommitTime listeners (one per batch), until they unsubscribe; a listener that throws fails nothing', async () => {
  const file = join(dir, 'commit-times.db');
  const s = new SqliteStore(file);
  try {
    const times: number[] = [];
    const stop = s.onCommitTime((seconds) => times.push(seconds));
    const stopBad = s.onCommitTime(() => { throw new Error('a buggy listener'); });
    const heard: string[] = [];
    s.subscribe((cs) => heard.push(...cs.map((c) => c.key)));
    const commits0 = s.commits;
    // Queued in one turn of the event loop: one batch, one commit.
    const t0 = performance.now();
    const done = await Promise.all(Array.from({ length: 20 }, (_, i) => s.transact('t', async (tx) => tx.put(`t/${i}`, i))));
    const wall = (performance.now() - t0) / 1000;
    assert.equal(times.length, 1, 'twenty transactions queued together: one commit, one duration');
    assert.equal(s.commits - commits0, 1);
    assert.equal(done.length, 20, 'every transaction acknowledged although a commit-time listener threw');
    assert.equal(heard.length, 20, 'and its watchers heard every change');
    assert.equal((await s.get('t/19'))?.value, 19);
    assert.equal(s.writeHealth().writable, true);
    await s.transact('t', async () => 'nothing written');
    assert.equal(times.length, 1, 'none for a transaction that wrote nothing');
    await s.transact('t', async (tx) => tx.put('t/next', 1));
    assert.equal(times.length, 2);
    // Seconds, not milliseconds: the commit took no longer than the transactions waiting for it.
    assert.ok((times[0] ?? 0) > 0 && (times[0] ?? 0) <= wall, `a duration in seconds: ${times[0]} (the transactions took ${wall} s)`);
    stop();
    stopBad();
    await s.transact('t', async (tx) => tx.put('t/after', 1));
    assert.equal(times.length, 2, 'an unsubscribed listener hears nothing more');
  } finally {
    await s.close();
  }
});

test('sqlite: under writes that never pause, the WAL still starts over: it stays near its bound instead of growing to tens of MB', async () => {
  const file = join(dir, 'wal-bound.db');
  const s = new SqliteStore(file);
  const walSize = () => walBytes(file);
  try {
    // 32 writers with no pause between transactions (the pipeline always has a batch in the writer thread),
    // each transaction one key in a random place of the table: ~60 MB of WAL over the run.
    let next = 0;
    let largest = 0;
    let shrank = 0;
    const value = 'x'.repeat(1500);
    await Promise.all(Array.from({ length: 32 }, async () => {
      while (next < 10_000) {
        next++;
        await s.transact('t', async (tx) => tx.put(`k/${Math.random().toString(36).slice(2)}`, value));
        const size = walSize();
        if (size < largest / 2) shrank++;
        largest = Math.max(largest, size);
      }
    }));
    // The writer checkpoints past 256 pages (~1 MB), so the next commit starts the WAL over; a batch (at most
    // 32 transactions here, one per writer) adds well under 1 MB. With its bound at 20,000 pages the WAL
    // reached 80 MB, at 2,000 pages 8-10 MB.
    assert.ok(largest < 4_000_000, `the WAL stayed under 4 MB: its largest was ${(largest / 1e6).toFixed(1)} MB`);
    assert.ok(shrank > 0, 'the WAL started over during the run');
    assert.equal((await s.list('k/')).entries.length, 10_000);
  } finally {
    await s.close();
  }
});

test('sqlite: a writer thread that dies after its commit reached the file but before it answered: the batch counts as committed, its watchers hear it, and the batch planned on it commits', async () => {
  const file = join(dir, 'dies-after-commit.db');
  const s = new SqliteStore(file);
  const heard: string[] = [];
  s.subscribe((cs) => heard.push(...cs.map((c) => `${c.revision}:${c.key}`)));
  const raw = new Database(file, { readonly: true });
  const rev = () => raw.prepare("SELECT value FROM meta WHERE name = 'revision'").pluck().get();
  try {
    await s.transact('t', async (tx) => tx.put('a', 1));
    const thread = (s as unknown as { writer: { worker: Worker | undefined; waiting: Map<number, unknown> } }).writer;
    const k = s.transact('t', async (tx) => tx.put('b', 2));
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    while (thread.waiting.size === 0) await new Promise((r) => setImmediate(r));
    // Planned on k while k commits.
    const next = s.transact('t', async (tx) => { await gate; tx.put('c', ((await tx.get('b'))?.value as number) + 1); });
    await new Promise((r) => setImmediate(r));
    // Hold the loop until k is in the file, then stop the thread with its answer unread.
    while (rev() !== 2) { /* spin */ }
    const w = thread.worker as Worker;
    w.removeAllListeners('message');
    await w.terminate();
    assert.equal((await k).revision, 2, 'the file holds it: a success');
    release();
    assert.equal((await next).revision, 3);
    assert.deepEqual(heard, ['1:a', '2:b', '3:c'], 'every revision heard, in order');
    assert.deepEqual((await s.get('c'))?.value, 3);
  } finally {
    raw.close();
    await s.close();
  }
});

test('sqlite: a closed store refuses reads and writes, and a second store in the same process is refused without releasing the first one\'s lock', async () => {
  const file = join(dir, 'closed.db');
  const a = new SqliteStore(file);
  await a.transact('t', async (tx) => tx.put('k', 1));
  assert.throws(() => new SqliteStore(file), (e: unknown) => e instanceof WeftError && e.code === 'WEFT_IN_USE');
  // The refusal must not have dropped a's lock (a POSIX lock goes with any close of the file in the process).
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', `import { SqliteStore } from ${JSON.stringify(new URL('./sqlite.js', import.meta.url).href)}; try { const s = new SqliteStore(${JSON.stringify(file)}); await s.close(); console.log('OPENED'); } catch (e) { console.log(e.code); }`], { encoding: 'utf8' });
  assert.equal(child.stdout.trim(), 'WEFT_IN_USE', child.stderr);
  await a.close();
  await assert.rejects(a.transact('t', async (tx) => tx.put('late', 1)), /store is closed/);
  await assert.rejects(a.get('k'), /store is closed/);
  const b = new SqliteStore(file);
  assert.equal(await b.get('late'), undefined);
  await b.close();
});

test('a shared read (getShared) gives every transaction the same frozen value while the key is unchanged, a new one once it is written, and a transaction\'s own write first', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-shared-'));
  const s = new SqliteStore(join(dir, 'w.db'));
  try {
    await s.transact('t', async (tx) => tx.put('ipam/x/pools', { pools: [['g', '10.0.0.8-10.0.0.15', 8, 15]] }));
    const read = async () => (await s.transact('t', async (tx) => (await tx.getShared('ipam/x/pools'))?.value)).value as { pools: unknown[][] };
    const a = await read();
    assert.deepEqual(a, { pools: [['g', '10.0.0.8-10.0.0.15', 8, 15]] });
    assert.equal(await read(), a, 'the same object for the next transaction');
    assert.ok(Object.isFrozen(a) && Object.isFrozen(a.pools) && Object.isFrozen(a.pools[0]), 'frozen all the way down');
    assert.throws(() => { (a.pools[0] as unknown[])[2] = 0; }, TypeError, 'a reader cannot change what the others see');
    // get still gives each reader its own copy.
    const own = (await s.transact('t', async (tx) => (await tx.get('ipam/x/pools'))?.value)).value;
    assert.notEqual(own, a);
    assert.ok(!Object.isFrozen(own));
    // Written: in the writing transaction its own value; after it, a new shared object.
    const inside = (await s.transact('t', async (tx) => {
      tx.put('ipam/x/pools', { pools: [] });
      return (await tx.getShared('ipam/x/pools'))?.value;
    })).value;
    assert.deepEqual(inside, { pools: [] });
    const b = await read();
    assert.notEqual(b, a);
    assert.deepEqual(b, { pools: [] });
  } finally {
    await s.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the store\'s own getShared (outside a transaction) gives the same frozen value while the key is unchanged, a new one after a write, none after a delete', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-shared-'));
  const s = new SqliteStore(join(dir, 'w.db'));
  try {
    await s.transact('t', async (tx) => tx.put('hostids/h1', { name: 'h1', certs: [{ serial: 'a' }] }));
    const a = (await s.getShared('hostids/h1'))?.value as { certs: object[] };
    assert.deepEqual(a, { name: 'h1', certs: [{ serial: 'a' }] });
    assert.equal((await s.getShared('hostids/h1'))?.value, a);
    assert.ok(Object.isFrozen(a) && Object.isFrozen(a.certs[0]));
    await s.transact('t', async (tx) => tx.put('hostids/h1', { name: 'h1', certs: [{ serial: 'b' }] }));
    const b = (await s.getShared('hostids/h1'))?.value;
    assert.notEqual(b, a);
    assert.deepEqual(b, { name: 'h1', certs: [{ serial: 'b' }] });
    await s.transact('t', async (tx) => tx.delete('hostids/h1'));
    assert.equal(await s.getShared('hostids/h1'), undefined);
  } finally {
    await s.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
