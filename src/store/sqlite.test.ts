import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { Worker } from 'node:worker_threads';
import { SqliteStore } from './sqlite.js';
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

test('sqlite: the checkpointer thread copies the WAL into the file while the writer only appends', async () => {
  const file = join(dir, 'checkpointer.db');
  const s = new SqliteStore(file);
  try {
    const before = statSync(file).size;
    // ~2 MB in 20 commits: far below the writer's own checkpoint bound (80 MiB of WAL).
    for (let i = 0; i < 20; i++) await s.transact('t', async (tx) => { for (let j = 0; j < 25; j++) tx.put(`k/${i}/${j}`, 'x'.repeat(4000)); });
    const deadline = Date.now() + 5000;
    while (statSync(file).size < before + 1_500_000 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.ok(statSync(file).size >= before + 1_500_000, `the database file holds the commits within seconds (${statSync(file).size} bytes)`);
    assert.equal((await s.list('k/')).entries.length, 500);
  } finally {
    await s.close();
  }
});
