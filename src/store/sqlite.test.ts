import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
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
    const db = (s as unknown as { db: Database.Database }).db;
    assert.equal(db.pragma('synchronous', { simple: true }), 2, 'FULL (2); NORMAL (1) can lose acknowledged commits on power loss');
    assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
  } finally {
    await s.close();
  }
});
