import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GroupCommit, type BatchStore } from './sqlite-batches.js';
import type { CommittedReads } from './overlay.js';
import type { Change, Entry } from './port.js';
import type { CommitRequest } from './sqlite-write.js';

/**
 * The pipeline over a store in a Map whose commits the test lets through one by one: what a batch plans
 * on while the one before it commits, in which order they are acknowledged, and what a failure takes down.
 */
class GatedStore implements BatchStore {
  readonly rows = new Map<string, Entry>();
  revision = 0;
  readonly sent: CommitRequest[] = [];
  readonly heard: Change[][] = [];
  private readonly gates: Array<{ req: CommitRequest; pass: () => void; fail: (e: unknown) => void }> = [];
  private waiters: Array<() => void> = [];
  failures = 0;

  readonly committed: CommittedReads = {
    key: (k) => this.copy(this.rows.get(k)),
    scan: (p) => [...this.rows.values()].filter((e) => e.key.startsWith(p)).sort((a, b) => (a.key < b.key ? -1 : 1)).map((e) => this.copy(e) as Entry),
    ceiling: (p, k) => this.committed.scan(p).find((e) => e.key >= k),
    keys: (p) => this.committed.scan(p).map((e) => e.key),
  };

  private copy(e: Entry | undefined): Entry | undefined {
    return e && { ...e, value: structuredClone(e.value) };
  }

  committedRevision(): number {
    return this.revision;
  }

  commit(req: CommitRequest): Promise<void> {
    this.sent.push(req);
    return new Promise((resolve, reject) => {
      this.gates.push({
        req,
        // As the writer does: refuse a batch planned on a revision the store is not at.
        pass: () => {
          if (req.base !== this.revision) return reject(new Error(`planned on ${req.base}, store at ${this.revision}`));
          for (const [key, text, mod, create] of req.rows) {
            if (text === null) this.rows.delete(key);
            else this.rows.set(key, { key, value: JSON.parse(text), modRevision: mod, createRevision: create });
          }
          this.revision = req.revision;
          resolve();
        },
        fail: reject,
      });
      for (const w of this.waiters.splice(0)) w();
    });
  }

  applied(_req: CommitRequest, changes: Change[][]): void {
    this.heard.push(...changes);
  }

  failed(e: unknown): unknown {
    this.failures++;
    return e;
  }

  clock(): Date {
    return new Date(0);
  }

  /** Waits until `n` commits have been sent and not yet let through. */
  async waiting(n: number): Promise<void> {
    while (this.gates.length < n) await new Promise<void>((r) => this.waiters.push(r));
  }

  get held(): number {
    return this.gates.length;
  }

  release(): void {
    this.gates.shift()?.pass();
  }

  refuse(e: unknown): void {
    this.gates.shift()?.fail(e);
  }
}

const tick = () => new Promise((r) => setImmediate(r));

test('pipeline: the next batch is planned over the writes of the one committing, sent behind it, and acknowledged after it', async () => {
  const s = new GatedStore();
  const g = new GroupCommit(s);
  const acked: string[] = [];
  const a = g.transact('a', async (tx) => tx.put('n', 1)).then((r) => { acked.push('a'); return r; });
  await s.waiting(1);
  // While batch 1 commits, batch 2 reads its write (with the revision it will commit at) and builds on it.
  const b = g.transact('b', async (tx) => {
    const seen = await tx.get('n');
    tx.put('n', (seen?.value as number) + 1);
    return seen?.modRevision;
  }).then((r) => { acked.push('b'); return r; });
  const c = g.transact('c', async (tx) => (await tx.list('')).map((e) => e.key)).then((r) => { acked.push('c'); return r; });
  await s.waiting(2);
  assert.equal(s.sent[1]?.base, 1, 'batch 2 is planned on the revision batch 1 commits at');
  assert.equal(g.isWriting('n'), true);
  await tick();
  assert.deepEqual(acked, [], 'nothing is acknowledged before its commit');
  s.release();
  assert.deepEqual(await a, { value: undefined, revision: 1 });
  await tick();
  assert.deepEqual(acked, ['a'], 'batch 2 (b and the read-only c) waits for its own commit');
  s.release();
  assert.deepEqual([(await b).value, (await b).revision, (await c).value, (await c).revision], [1, 2, ['n'], 2]);
  assert.deepEqual(acked, ['a', 'b', 'c']);
  assert.deepEqual(s.rows.get('n')?.value, 2);
  assert.deepEqual(s.heard.map((cs) => cs.map((x) => [x.revision, x.key, x.value])), [[[1, 'n', 1]], [[2, 'n', 2]]]);
  assert.equal(g.isWriting('n'), false);
  await g.whenIdle();
});

test('pipeline: at most two batches are in flight; the third is planned once the first has settled', async () => {
  const s = new GatedStore();
  const g = new GroupCommit(s);
  const all = [g.transact('1', async (tx) => tx.put('k1', 1))];
  await s.waiting(1);
  all.push(g.transact('2', async (tx) => tx.put('k2', 2)));
  await s.waiting(2);
  all.push(g.transact('3', async (tx) => tx.put('k3', (await tx.get('k2'))?.value)));
  for (let i = 0; i < 5; i++) await tick();
  assert.equal(s.sent.length, 2, 'the third waits while two are in flight');
  s.release();
  await s.waiting(2);
  assert.equal(s.sent.length, 3);
  s.release();
  s.release();
  assert.deepEqual((await Promise.all(all)).map((r) => r.revision), [1, 2, 3]);
  assert.equal(s.rows.get('k3')?.value, 2);
});

test('pipeline: a batch that fails takes down the one planned on it, and the store goes on from its last commit', async () => {
  const s = new GatedStore();
  const g = new GroupCommit(s);
  await Promise.all([g.transact('x', async (tx) => tx.put('base', 0)), (async () => { await s.waiting(1); s.release(); })()]);
  const first = g.transact('a', async (tx) => tx.put('a', 1));
  await s.waiting(1);
  const second = g.transact('b', async (tx) => tx.put('b', (await tx.get('a'))?.value));
  const reader = g.transact('r', async (tx) => (await tx.get('a'))?.value);
  await s.waiting(2);
  s.refuse(new Error('disk full'));
  await assert.rejects(first, /disk full/);
  // The writer refuses batch 2 (planned on revision 2, store at 1): let it answer.
  s.release();
  const settled = await Promise.allSettled([second, reader]);
  for (const r of settled) {
    assert.equal(r.status, 'rejected', 'what read the failed batch\'s writes is not acknowledged');
    // The writer refused it too (planned on revision 2, the store at 1); what it is told is the cause.
    assert.match(String((r as PromiseRejectedResult).reason), /failed to commit/);
    assert.equal(((r as PromiseRejectedResult).reason as { code?: string }).code, 'WEFT_STORE_UNAVAILABLE');
  }
  assert.deepEqual([...s.rows.keys()], ['base']);
  // Nothing was planned on the failed batches: the next one starts again from the store's revision.
  const next = g.transact('c', async (tx) => ({ a: await tx.get('a'), base: (await tx.get('base'))?.value }));
  const nextWrite = g.transact('d', async (tx) => tx.put('d', 1));
  await s.waiting(1);
  assert.equal(s.sent[s.sent.length - 1]?.base, 1);
  s.release();
  assert.deepEqual((await next).value, { a: undefined, base: 0 });
  assert.equal((await nextWrite).revision, 2);
  assert.equal(s.failures, 2);
});

test('pipeline: a batch that only read what a failed batch wrote fails with it, though it had nothing to commit', async () => {
  const s = new GatedStore();
  const g = new GroupCommit(s);
  const first = g.transact('a', async (tx) => tx.put('a', 1));
  await s.waiting(1);
  const reader = g.transact('r', async (tx) => (await tx.get('a'))?.value);
  for (let i = 0; i < 3; i++) await tick();
  assert.equal(s.sent.length, 1, 'a batch without writes sends nothing');
  s.refuse(new Error('disk full'));
  await assert.rejects(first, /disk full/);
  await assert.rejects(reader, (e: Error) => /failed to commit/.test(e.message) && (e as { code?: string }).code === 'WEFT_STORE_UNAVAILABLE');
  assert.equal((await g.transact('r2', async (tx) => (await tx.get('a'))?.value ?? 'none')).value, 'none');
});
