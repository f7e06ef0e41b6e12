import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { SqliteStore } from './sqlite.js';
import type { Change } from './port.js';

const dir = mkdtempSync(join(tmpdir(), 'weft-group-'));
let n = 0;
const fresh = () => join(dir, `g-${n++}.db`);

test('group commit: 100 transactions sent at once share one commit and keep the order, revisions and reads of 100 serial ones', async () => {
  const file = fresh();
  const s = new SqliteStore(file);
  const heard: Change[][] = [];
  s.subscribe((c) => heard.push(c));
  // Each counts what the ones before it wrote, then writes its own key: serial semantics make it i.
  const all = Array.from({ length: 100 }, (_, i) => s.transact(`a${i}`, async (tx) => {
    const seen = (await tx.list('e/')).length;
    tx.put(`e/${String(i).padStart(3, '0')}`, { i });
    return seen;
  }));
  const results = await Promise.all(all);
  assert.deepEqual(results.map((r) => r.value), Array.from({ length: 100 }, (_, i) => i));
  assert.deepEqual(results.map((r) => r.revision), Array.from({ length: 100 }, (_, i) => i + 1));
  assert.equal(s.commits, 1, 'one SQLite commit (one fsync) for the 100');
  assert.deepEqual(heard.map((c) => c.map((x) => [x.revision, x.key, x.actor])), Array.from({ length: 100 }, (_, i) => [[i + 1, `e/${String(i).padStart(3, '0')}`, `a${i}`]]));
  assert.deepEqual((await s.changes(0)).map((c) => c.revision), Array.from({ length: 100 }, (_, i) => i + 1));
  await s.close();
  const again = new SqliteStore(file);
  assert.equal(await again.revision(), 100);
  assert.equal((await again.list('e/')).entries.length, 100);
  assert.deepEqual((await again.get('e/042'))?.modRevision, 43);
  await again.close();
});

test('group commit: a transaction reads what earlier ones of its batch wrote, with the revisions they commit at', async () => {
  const s = new SqliteStore(fresh());
  await s.transact('t', async (tx) => { tx.put('p/old', 1); tx.put('z', 0); });
  const [a, b, c, d, e] = await Promise.all([
    s.transact('a', async (tx) => { tx.put('k', { v: 1 }); tx.put('p/x', 2); }),
    s.transact('b', async (tx) => tx.get('k')),
    s.transact('c', async (tx) => { tx.put('k', { v: 2 }); tx.delete('missing'); }),
    s.transact('d', async (tx) => { tx.deletePrefix('p/'); return tx.list('p/'); }),
    s.transact('e', async (tx) => ({ k: await tx.get('k'), ceiling: await tx.ceiling('', 'l'), p: await tx.list('p/') })),
  ]);
  assert.deepEqual([a.revision, b.revision, c.revision, d.revision, e.revision], [2, 2, 3, 4, 4]);
  assert.deepEqual(b.value, { key: 'k', value: { v: 1 }, modRevision: 2, createRevision: 2 });
  assert.deepEqual(d.value, []);
  assert.deepEqual(e.value.k, { key: 'k', value: { v: 2 }, modRevision: 3, createRevision: 2 });
  assert.equal(e.value.ceiling?.key, 'z', 'p/ keys deleted in the batch are skipped');
  assert.deepEqual(e.value.p, []);
  assert.deepEqual(await s.get('k'), { key: 'k', value: { v: 2 }, modRevision: 3, createRevision: 2 });
  const log = (await s.changes(1)).map((x) => [x.revision, x.op, x.key, x.value]);
  assert.deepEqual(log, [[2, 'put', 'k', { v: 1 }], [2, 'put', 'p/x', 2], [3, 'put', 'k', { v: 2 }], [4, 'delete', 'p/old', 1], [4, 'delete', 'p/x', 2]]);
  await s.close();
});

test('group commit: nothing of a batch is visible outside it, or acknowledged, before its commit', async () => {
  const s = new SqliteStore(fresh());
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let aDone = false;
  const a = s.transact('a', async (tx) => tx.put('k', 1)).then((r) => { aDone = true; return r; });
  const b = s.transact('b', async (tx) => { await gate; tx.put('j', 2); });
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(await s.get('k'), undefined, 'a reader outside the batch sees only committed data');
  assert.equal((await s.list('')).entries.length, 0);
  assert.equal(aDone, false, 'a is not acknowledged while its commit waits for b');
  release();
  assert.deepEqual([(await a).revision, (await b).revision], [1, 2]);
  assert.equal((await s.get('k'))?.value, 1);
  await s.close();
});

test('group commit: a transaction that throws, or holds a value JSON cannot, fails alone; the rest of its batch commits', async () => {
  const s = new SqliteStore(fresh());
  const results = await Promise.allSettled([
    s.transact('a', async (tx) => tx.put('a', 1)),
    s.transact('b', async (tx) => { tx.put('b', 1); throw new Error('refused'); }),
    s.transact('c', async (tx) => tx.put('c', { n: 1n })),
    s.transact('d', async (tx) => { tx.put('d', (await tx.get('a'))?.value); }),
  ]);
  assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'rejected', 'rejected', 'fulfilled']);
  assert.match(String((results[1] as PromiseRejectedResult).reason), /refused/);
  assert.match(String((results[2] as PromiseRejectedResult).reason), /BigInt/);
  assert.deepEqual((await s.list('')).entries.map((e) => [e.key, e.value, e.modRevision]), [['a', 1, 1], ['d', 1, 2]]);
  await s.close();
});

test('group commit: a batch whose commit fails fails every transaction in it, keeps nothing, and the store goes on', async () => {
  const file = fresh();
  await new SqliteStore(file).close();
  const raw = new Database(file);
  // SQLite refuses one of the batch's rows at commit time, as a full disk refuses all of them.
  raw.exec("CREATE TRIGGER poison BEFORE INSERT ON kv WHEN NEW.key = 'poison' BEGIN SELECT RAISE(ABORT, 'poisoned row'); END;");
  raw.close();
  const s = new SqliteStore(file);
  const heard: Change[][] = [];
  s.subscribe((c) => heard.push(c));
  const results = await Promise.allSettled(['ok1', 'poison', 'ok2'].map((k) => s.transact('t', async (tx) => tx.put(k, 1))));
  assert.deepEqual(results.map((r) => r.status), ['rejected', 'rejected', 'rejected']);
  for (const r of results) assert.match(String((r as PromiseRejectedResult).reason), /poisoned row/);
  assert.equal(await s.revision(), 0);
  assert.deepEqual((await s.list('')).entries, []);
  assert.deepEqual(heard, [], 'no watcher heard of a batch that did not commit');
  assert.equal((await s.transact('t', async (tx) => tx.put('ok1', 1))).revision, 1);
  assert.deepEqual((await s.changes(0)).map((c) => [c.revision, c.key]), [[1, 'ok1']]);
  await s.close();
});

test('group commit: a key written by several transactions of a batch is stored once, with the revisions serial commits give it; the log keeps every write', async () => {
  const file = fresh();
  const s = new SqliteStore(file);
  await s.transact('a', async (tx) => tx.put('k/old', { v: 0 }));
  const writes = await Promise.all([
    s.transact('b', async (tx) => { tx.put('k/new', { v: 1 }); tx.put('k/old', { v: 1 }); }),
    s.transact('c', async (tx) => { tx.put('k/new', { v: 2 }); tx.put('k/gone', { v: 2 }); tx.delete('k/old'); }),
    s.transact('d', async (tx) => { tx.put('k/old', { v: 3 }); tx.delete('k/gone'); }),
  ]);
  assert.deepEqual(writes.map((w) => w.revision), [2, 3, 4]);
  assert.equal(s.commits, 2, 'the three shared one commit');
  await s.close();
  const again = new SqliteStore(file);
  const get = async (k: string) => { const e = await again.get(k); return e && [e.value, e.createRevision, e.modRevision]; };
  assert.deepEqual(await get('k/new'), [{ v: 2 }, 2, 3]);
  // Deleted and made again within the batch: a new key as far as its revisions go.
  assert.deepEqual(await get('k/old'), [{ v: 3 }, 4, 4]);
  assert.equal(await get('k/gone'), undefined);
  assert.deepEqual((await again.changes(0)).map((c) => [c.revision, c.key, c.op]),
    [[1, 'k/old', 'put'], [2, 'k/new', 'put'], [2, 'k/old', 'put'], [3, 'k/new', 'put'], [3, 'k/gone', 'put'], [3, 'k/old', 'delete'], [4, 'k/old', 'put'], [4, 'k/gone', 'delete']]);
  await again.close();
});

test.after(() => rmSync(dir, { recursive: true, force: true }));
