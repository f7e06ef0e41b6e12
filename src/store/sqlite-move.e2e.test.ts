import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { WeftError } from '../model/index.js';
import { mountSmallDisk } from '../testkit/disk.js';
import { SqliteStore } from './sqlite.js';

// A data dir from before session 44 (its key table keyed by the key) on a 16 MiB tmpfs with no room left
// for the move to the new layout, which needs about the table's size again while it runs.
const root = process.getuid?.() === 0;
const cleanups: Array<() => Promise<unknown>> = [];
after(async () => { for (const c of cleanups.reverse()) await c().catch(() => undefined); });

const OLD_KV = 'CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL, mod_rev INTEGER NOT NULL, create_rev INTEGER NOT NULL) WITHOUT ROWID';
const ROWS = 4000;

test('a store whose key table cannot be moved for lack of disk: start refused with WEFT_STORE_FULL naming the file, the old table whole; freed, it starts and every row is there', { skip: !root && 'needs root (mounts a tmpfs)', timeout: 60_000 }, async () => {
  const disk = await mountSmallDisk(16);
  cleanups.push(() => disk.unmount());
  const dir = join(disk.dir, 'data');
  mkdirSync(dir);
  const file = join(dir, 'weft.db');
  // The lock file a server that ran here left (made on first start: on a full disk, that start would
  // fail at the lock, before any move).
  const lock = new Database(`${file}.lock`);
  lock.exec('BEGIN EXCLUSIVE; COMMIT;');
  lock.close();
  const old = new Database(file);
  old.pragma('journal_mode = WAL');
  old.exec(OLD_KV);
  const put = old.prepare('INSERT INTO kv VALUES (?, ?, ?, ?)');
  old.transaction(() => { for (let i = 0; i < ROWS; i++) put.run(`endpoints/${(i * 7919 % ROWS).toString(16).padStart(8, '0')}`, JSON.stringify({ i, pad: 'x'.repeat(900) }), i + 1, i + 1); })();
  old.pragma('wal_checkpoint(TRUNCATE)');
  const layout = () => old.prepare<[], string>("SELECT sql FROM sqlite_master WHERE name = 'kv'").pluck().get() ?? '';
  // This connection stays open: SQLite's shared memory keeps the pages it has (a page of a full tmpfs
  // first written through a mapping would kill the process instead of failing a write).
  assert.equal(old.prepare('SELECT count(*) FROM kv').pluck().get(), ROWS);

  assert.ok(disk.fill() > 1_000_000, 'the filler took what was left');
  assert.throws(() => new SqliteStore(file), (e: unknown) => e instanceof WeftError && e.code === 'WEFT_STORE_FULL' && e.message.includes(file) && /free space .* then start again/.test(e.message), 'refused as the disk being full, saying where and what to do');
  assert.match(layout(), /WITHOUT ROWID/, 'the old table is as it was');
  assert.equal(old.prepare('SELECT count(*) FROM kv').pluck().get(), ROWS);
  assert.equal(old.prepare('PRAGMA integrity_check').pluck().get(), 'ok');

  disk.free();
  const s = new SqliteStore(file);
  try {
    assert.doesNotMatch(layout(), /WITHOUT ROWID/, 'moved once there is room');
    const listed = (await s.list('endpoints/')).entries;
    assert.equal(listed.length, ROWS);
    assert.deepEqual(listed.map((e) => e.key), [...listed.map((e) => e.key)].sort(), 'in key order');
    assert.equal((await s.get('endpoints/00000000'))?.modRevision, 1);
    await s.transact('t', async (tx) => tx.put('endpoints/new', { ok: true }));
    assert.deepEqual((await s.get('endpoints/new'))?.value, { ok: true });
  } finally {
    await s.close();
    old.close();
  }
});
