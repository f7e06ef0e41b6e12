import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fstatSync, mkdtempSync, rmSync, statSync } from 'node:fs';
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

/** A syncFile a test holds: each call waits until released, and says which file it was asked to sync. */
function heldSync() {
  const calls: Array<{ ino: number; release: () => void; fail: (e: Error) => void }> = [];
  const sync = (fd: number) => new Promise<void>((release, fail) => calls.push({ ino: fstatSync(fd).ino, release, fail }));
  return { calls, sync };
}
const until = async (f: () => boolean) => { for (let i = 0; i < 500 && !f(); i++) await new Promise((r) => setTimeout(r, 2)); assert.ok(f()); };

test('sqlite: a commit is acknowledged, heard and read only after the WAL is fsynced; the next batch runs meanwhile', async () => {
  const file = join(dir, 'durable.db');
  const held = heldSync();
  const s = new SqliteStore(file, { syncFile: held.sync });
  try {
    const heard: number[] = [];
    s.subscribe((c) => heard.push(...c.map((x) => x.revision)));
    let acked = false;
    const first = s.transact('a', async (tx) => { tx.put('k', 1); }).then((r) => { acked = true; return r; });
    await until(() => held.calls.length === 1);
    assert.equal(held.calls[0]?.ino, statSync(`${file}-wal`).ino, 'the WAL file is what is synced');
    const read = s.get('k');
    let ranSecond = false;
    const second = s.transact('b', async (tx) => { ranSecond = true; return (await tx.get('k'))?.value; });
    await until(() => ranSecond);
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual([acked, heard], [false, []], 'not acknowledged, not heard before its fsync');
    held.calls[0]?.release();
    assert.equal((await first).revision, 1);
    assert.equal((await read)?.value, 1, 'a read waiting for the fsync sees the commit after it');
    assert.deepEqual(heard, [1]);
    assert.equal((await second).value, 1, 'the next batch read it while it was being synced');
  } finally {
    for (const c of held.calls) c.release();
    await s.close();
  }
  const db = new Database(file);
  assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
  db.close();
});

test('sqlite: a failed fsync fails its batch and the store: nothing more is acknowledged or read until a restart', async () => {
  const file = join(dir, 'fsync-fails.db');
  const held = heldSync();
  const s = new SqliteStore(file, { syncFile: held.sync });
  const ok = s.transact('a', async (tx) => { tx.put('ok', 1); });
  await until(() => held.calls.length === 1);
  held.calls[0]?.release();
  await ok;
  const lost = s.transact('b', async (tx) => { tx.put('lost', 1); });
  await until(() => held.calls.length === 2);
  const after = s.transact('c', async (tx) => { tx.put('after', 1); });
  held.calls[1]?.fail(Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' }));
  await assert.rejects(lost, (e: WeftError) => e.code === 'WEFT_STORE_UNAVAILABLE' && /fsync .*fsync-fails\.db-wal failed .*restart the server/.test(e.message));
  await assert.rejects(after, (e: WeftError) => e.code === 'WEFT_STORE_UNAVAILABLE', 'a batch that read an unsynced commit fails with it');
  await assert.rejects(s.get('ok'), (e: WeftError) => e.code === 'WEFT_STORE_UNAVAILABLE');
  assert.equal(s.writeHealth().writable, false);
  assert.equal((await s.probe()).writable, false, 'a probe does not make it writable again');
  await s.close();
  const again = new SqliteStore(file);
  assert.equal((await again.get('ok'))?.value, 1, 'a restart serves what the file holds');
  await again.close();
});
