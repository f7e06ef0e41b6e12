import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WeftError } from '../model/index.js';
import type { Change, Store, StoreOptions } from './port.js';

export interface ContractCaps {
  keepsOwnHistory: boolean;
  /** Why the suite cannot run here: every test is registered and reported as skipped with this reason. */
  skip?: string;
}

/**
 * The one behaviour every store must have. Each implementation's test file calls this with a factory;
 * the etcd store will run the same suite.
 */
export function storeContract(name: string, open: (options: StoreOptions) => Promise<Store>, caps: ContractCaps = { keepsOwnHistory: true }): void {
  // A store that cannot run here (no etcd installed) still registers every test, as skipped: a suite that
  // registers nothing would read as green.
  const run = { skip: caps.skip ?? false };
  const ownHistory = { skip: caps.skip ?? (!caps.keepsOwnHistory && 'this store leaves its history to the system it runs on') };
  const withStore = async (options: StoreOptions, body: (s: Store) => Promise<void>) => {
    const s = await open(options);
    try {
      await body(s);
    } finally {
      await s.close();
    }
  };

  test(`${name}: a transaction commits all its writes under one new revision`, run, () => withStore({}, async (s) => {
    assert.equal(await s.revision(), 0);
    const r = await s.transact('alice', async (tx) => {
      tx.put('a/1', { n: 1 });
      tx.put('a/2', { n: 2 });
      tx.put('b/1', { n: 3 });
      return 'done';
    });
    assert.deepEqual(r, { value: 'done', revision: 1 });
    const listing = await s.list('a/');
    assert.deepEqual(listing.entries.map((e) => [e.key, e.value, e.modRevision]), [['a/1', { n: 1 }, 1], ['a/2', { n: 2 }, 1]]);
    assert.equal(listing.revision, 1);
    await s.transact('bob', async (tx) => tx.put('a/1', { n: 10 }));
    const e = await s.get('a/1');
    assert.deepEqual([e?.value, e?.modRevision, e?.createRevision], [{ n: 10 }, 2, 1]);
  }));

  test(`${name}: a transaction that throws changes nothing`, run, () => withStore({}, async (s) => {
    await s.transact('t', async (tx) => tx.put('k', 1));
    await assert.rejects(s.transact('t', async (tx) => {
      tx.put('k', 2);
      tx.put('other', 3);
      throw new Error('boom');
    }), /boom/);
    assert.equal((await s.get('k'))?.value, 1);
    assert.equal(await s.get('other'), undefined);
    assert.equal(await s.revision(), 1);
    assert.equal((await s.changes(0)).length, 1);
  }));

  test(`${name}: reads inside a transaction see its own writes and deletes`, run, () => withStore({}, async (s) => {
    await s.transact('t', async (tx) => { tx.put('p/a', 1); tx.put('p/b', 2); });
    await s.transact('t', async (tx) => {
      tx.delete('p/a');
      tx.put('p/c', 3);
      assert.equal(await tx.get('p/a'), undefined);
      assert.equal((await tx.get('p/c'))?.value, 3);
      assert.deepEqual((await tx.list('p/')).map((e) => e.key), ['p/b', 'p/c']);
    });
    assert.deepEqual((await s.list('p/')).entries.map((e) => e.key), ['p/b', 'p/c']);
  }));

  test(`${name}: a transaction that writes nothing makes no revision; deleting a missing key is a no-op`, run, () => withStore({}, async (s) => {
    await s.transact('t', async (tx) => { await tx.get('x'); });
    await s.transact('t', async (tx) => tx.delete('missing'));
    assert.equal(await s.revision(), 0);
  }));

  test(`${name}: concurrent read-modify-write transactions never lose an update`, run, () => withStore({}, async (s) => {
    await Promise.all(Array.from({ length: 50 }, () => s.transact('t', async (tx) => {
      const n = ((await tx.get('counter'))?.value as number | undefined) ?? 0;
      await new Promise((r) => setImmediate(r));
      tx.put('counter', n + 1);
    })));
    assert.equal((await s.get('counter'))?.value, 50);
    assert.equal(await s.revision(), 50);
  }));

  test(`${name}: the change log replays from any kept revision, whole revisions per page`, run, () => withStore({}, async (s) => {
    const seen: Change[] = [];
    const stop = s.subscribe((c) => seen.push(...c));
    await s.transact('a', async (tx) => { tx.put('x', 1); tx.put('y', 1); tx.put('z', 1); });
    await s.transact('b', async (tx) => tx.delete('y'));
    stop();
    await s.transact('c', async (tx) => tx.put('x', 2));
    assert.deepEqual(seen.map((c) => [c.revision, c.key, c.op]), [[1, 'x', 'put'], [1, 'y', 'put'], [1, 'z', 'put'], [2, 'y', 'delete']]);
    const all = await s.changes(0);
    assert.deepEqual(all.map((c) => [c.revision, c.key, c.op, c.actor]), [
      [1, 'x', 'put', 'a'], [1, 'y', 'put', 'a'], [1, 'z', 'put', 'a'], [2, 'y', 'delete', 'b'], [3, 'x', 'put', 'c']]);
    assert.equal(all[3]?.value, 1, 'a delete carries the last value');
    assert.deepEqual((await s.changes(1)).map((c) => c.revision), [2, 3]);
    assert.deepEqual((await s.changes(0, 2)).map((c) => c.revision), [1, 1, 1], 'revision 1 is not split');
    assert.deepEqual((await s.changes(1, 1)).map((c) => c.revision), [2]);
  }));

  test(`${name}: revisions older than the kept history answer WEFT_HISTORY_COMPACTED`, run, () => withStore({ historyLimit: 3 }, async (s) => {
    for (let i = 0; i < 6; i++) await s.transact('t', async (tx) => tx.put('k', i));
    assert.equal(await s.compactedRevision(), 3);
    assert.deepEqual((await s.changes(3)).map((c) => c.revision), [4, 5, 6]);
    await assert.rejects(s.changes(2), (e: unknown) => e instanceof WeftError && e.code === 'WEFT_HISTORY_COMPACTED');
  }));

  // 200 characters of value: the change costs 1 (key) + 202 (JSON string) bytes.
  const big = (n: number) => 'x'.repeat(n);
  test(`${name}: the kept history is bounded by bytes too, dropping whole oldest revisions`, ownHistory, () => withStore({ historyBytes: 1000 }, async (s) => {
    for (let i = 0; i < 10; i++) await s.transact('t', async (tx) => tx.put('k', big(200)));
    assert.equal(await s.compactedRevision(), 6, '4 revisions of 203 bytes fit in 1000, the 5th would not');
    assert.deepEqual((await s.changes(6)).map((c) => c.revision), [7, 8, 9, 10]);
    await assert.rejects(s.changes(5), (e: unknown) => e instanceof WeftError && e.code === 'WEFT_HISTORY_COMPACTED');
    // Two changes of 151 bytes per revision: whole revisions go, never half of one.
    for (let i = 0; i < 5; i++) await s.transact('t', async (tx) => { tx.put('a', big(148)); tx.put('b', big(148)); });
    const kept = await s.changes(await s.compactedRevision());
    assert.deepEqual(kept.map((c) => c.revision), [13, 13, 14, 14, 15, 15]);
    assert.ok(kept.reduce((n, c) => n + c.key.length + JSON.stringify(c.value).length, 0) <= 1000);
  }));

  test(`${name}: the newest revision is kept even when it alone is larger than the byte bound`, ownHistory, () => withStore({ historyBytes: 1000 }, async (s) => {
    await s.transact('t', async (tx) => tx.put('k', 1));
    await s.transact('t', async (tx) => tx.put('k', big(5000)));
    assert.equal(await s.compactedRevision(), 1);
    assert.deepEqual((await s.changes(1)).map((c) => [c.revision, (c.value as string).length]), [[2, 5000]]);
    await s.transact('t', async (tx) => tx.put('k', 2));
    assert.equal(await s.compactedRevision(), 2, 'the big revision goes as soon as it is not the newest');
  }));

  test(`${name}: ceiling finds the smallest key >= a key under a prefix, the transaction's own writes included`, run, () => withStore({}, async (s) => {
    await s.transact('t', async (tx) => { for (const k of ['o/z', 'p/a', 'p/c', 'p/e', 'pq/a', 'q/a']) tx.put(k, k); });
    await s.transact('t', async (tx) => {
      const at = async (k: string) => (await tx.ceiling('p/', k))?.key;
      assert.deepEqual([await at('p/b'), await at('p/c'), await at('p/0'), await at('p/f'), await at('a')], ['p/c', 'p/c', 'p/a', undefined, 'p/a']);
      assert.equal((await tx.ceiling('p/', 'p/c'))?.value, 'p/c');
      tx.put('p/d', 'new');
      tx.delete('p/c');
      assert.deepEqual([await at('p/b'), await at('p/cc'), await at('p/e')], ['p/d', 'p/d', 'p/e']);
    });
    assert.equal((await s.transact('t', async (tx) => (await tx.ceiling('p/', 'p/b'))?.key)).value, 'p/d', 'the writes were committed');
  }));

  test(`${name}: deletePrefix deletes every key under a prefix as one revision, each a change with its last value`, run, () => withStore({}, async (s) => {
    await s.transact('t', async (tx) => { for (const k of ['r/1/a', 'r/1/b', 'r/10/a', 'r/2/a']) tx.put(k, { k }); });
    const r = await s.transact('u', async (tx) => {
      tx.put('r/1/z', 'dropped by the prefix delete that follows');
      tx.deletePrefix('r/1/');
      assert.equal(await tx.get('r/1/a'), undefined);
      assert.equal(await tx.ceiling('r/1/', 'r/1/'), undefined);
      assert.deepEqual((await tx.list('r/')).map((e) => e.key), ['r/10/a', 'r/2/a']);
    });
    assert.equal(r.revision, 2);
    assert.deepEqual((await s.list('r/')).entries.map((e) => e.key), ['r/10/a', 'r/2/a'], 'r/10/ is not under r/1/');
    assert.deepEqual((await s.changes(1)).map((c) => [c.revision, c.key, c.op, c.value, c.actor]), [
      [2, 'r/1/a', 'delete', { k: 'r/1/a' }, 'u'], [2, 'r/1/b', 'delete', { k: 'r/1/b' }, 'u']]);
    await s.transact('t', async (tx) => tx.deletePrefix('r/9/'));
    assert.equal(await s.revision(), 2, 'deleting an empty prefix changes nothing');
  }));

  test(`${name}: a key put after its prefix was deleted in the same transaction stays, as a put; the deletes come first`, run, () => withStore({}, async (s) => {
    await s.transact('t', async (tx) => { tx.put('g/1/a', 1); tx.put('g/1/b', 1); tx.put('g/1/c', 1); });
    await s.transact('t', async (tx) => {
      tx.deletePrefix('g/1/');
      tx.put('g/1/b', 2);
      tx.put('g/2/a', 2);
      assert.deepEqual((await tx.list('g/')).map((e) => [e.key, e.value]), [['g/1/b', 2], ['g/2/a', 2]]);
    });
    assert.deepEqual((await s.list('g/')).entries.map((e) => [e.key, e.value, e.createRevision, e.modRevision]), [['g/1/b', 2, 1, 2], ['g/2/a', 2, 2, 2]]);
    assert.deepEqual((await s.changes(1)).map((c) => [c.key, c.op]), [['g/1/a', 'delete'], ['g/1/c', 'delete'], ['g/1/b', 'put'], ['g/2/a', 'put']]);
  }));

  test(`${name}: a key written twice in a transaction is one change, logged at its last write's place`, run, () => withStore({}, async (s) => {
    await s.transact('t', async (tx) => { tx.put('h', 1); tx.put('s/1', 1); tx.put('s/2', 1); tx.put('h', 2); });
    assert.deepEqual((await s.changes(0)).map((c) => [c.key, c.value]), [['s/1', 1], ['s/2', 1], ['h', 2]]);
  }));

  test(`${name}: values are copies, not shared references`, run, () => withStore({}, async (s) => {
    const v = { list: [1] };
    await s.transact('t', async (tx) => tx.put('k', v));
    v.list.push(2);
    const got = (await s.get('k'))?.value as { list: number[] };
    got.list.push(3);
    assert.deepEqual((await s.get('k'))?.value, { list: [1] });
  }));

  test(`${name}: inside a transaction, a value is what it was when put, and each read of it is a copy`, run, () => withStore({}, async (s) => {
    const heard: unknown[] = [];
    const stop = s.subscribe((cs) => heard.push(...cs.map((c) => c.value)));
    try {
      const v = { list: [1] };
      await s.transact('t', async (tx) => {
        tx.put('k', v);
        v.list.push(2);
        const read = (await tx.get('k'))?.value as { list: number[] };
        read.list.push(3);
        assert.deepEqual((await tx.get('k'))?.value, { list: [1] }, 'neither the caller\'s object nor a read changed the pending write');
        assert.deepEqual((await tx.list('k'))[0]?.value, { list: [1] });
      });
      assert.deepEqual((await s.get('k'))?.value, { list: [1] });
      assert.deepEqual(heard, [{ list: [1] }], 'watchers hear the value as put');
    } finally {
      stop();
    }
  }));

  test(`${name}: a value JSON cannot hold is refused when put, naming its key, and its transaction changes nothing`, run, () => withStore({}, async (s) => {
    const cyclic: Record<string, unknown> = {};
    cyclic['self'] = cyclic;
    for (const bad of [undefined, () => 1, 10n, cyclic]) {
      await assert.rejects(s.transact('t', async (tx) => { tx.put('ok', 1); tx.put('bad/key', bad); }), (e: unknown) => e instanceof TypeError && /the value for bad\/key cannot be stored/.test(e.message));
    }
    assert.equal(await s.get('ok'), undefined);
    assert.equal(await s.revision(), 0);
  }));
}
