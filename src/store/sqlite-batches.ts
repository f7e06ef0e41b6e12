import { WeftError } from '../model/index.js';
import { BufferedTxn } from './buffered.js';
import { Overlay, pendingOver, type CommittedReads, type PlannedChange, type Written } from './overlay.js';
import type { Change, Txn } from './port.js';
import type { CommitRequest, LogRow, StoredRow } from './sqlite-write.js';

/** At most this many transactions commit together (a batch is planned in memory before it is written). */
const MAX_BATCH = 256;

/** A transaction waiting for its batch. */
interface Job { actor: string; fn: (tx: Txn) => Promise<unknown>; resolve: (r: { value: unknown; revision: number }) => void; reject: (e: unknown) => void }
interface Outcome { job: Job; ok: boolean; value: unknown; revision: number; changes: PlannedChange[] }

/** A planned batch: its transactions' outcomes, what it commits (if it writes), and its writes for the next batch. */
interface Batch {
  outcomes: Outcome[];
  req: CommitRequest | undefined;
  final: ReadonlyMap<string, Written>;
  /** Resolves once the batch is settled, true if it committed (or had nothing to commit). */
  settled: Promise<boolean>;
}

/** What the pipeline needs from the store it serves. */
export interface BatchStore {
  /** The committed state, as batches read it. */
  readonly committed: CommittedReads;
  /** The committed revision, read when the pipeline starts and after a failed batch. */
  committedRevision(): number;
  /** Commits one batch durably; called in order, and commits in the order called. */
  commit(req: CommitRequest): Promise<void>;
  /** A batch committed (called in order, before its transactions are acknowledged). */
  applied(req: CommitRequest, changes: Change[][]): void;
  /** A batch failed: forget what may be cached; returns the error its transactions fail with. */
  failed(e: unknown): unknown;
  clock(): Date;
}

/**
 * Group commit, pipelined. The transactions waiting when a batch starts run one after another, each
 * reading its predecessors' writes through an overlay, and commit as one SQLite transaction: one fsync
 * for them all. While a batch commits (in the writer thread), the next one is planned over its writes
 * and sent after it, so the writer always has the next commit ready; at most two batches are in flight.
 *
 * None is acknowledged, and no reader outside the pipeline sees any of a batch, before it commits. A batch
 * is acknowledged only after the one before it, and fails if that one failed (it read its writes; the
 * writer refuses a batch planned on a revision the store is not at). After a failure nothing new is
 * planned until every batch in flight has settled, and the revision is read again from the store.
 */
export class GroupCommit {
  private readonly queue: Job[] = [];
  private planning = false;
  /** Batches sent, oldest first (at most two). */
  private readonly inflight: Batch[] = [];
  /** The revision after the newest planned batch; undefined: read it from the store. */
  private revision: number | undefined;
  private recovering = false;
  /** Keys written by batches in flight, with how many of them write each. */
  private readonly writing = new Map<string, number>();
  private idle: Array<() => void> = [];

  constructor(private readonly store: BatchStore) {}

  transact<T>(actor: string, fn: (tx: Txn) => Promise<T>): Promise<{ value: T; revision: number }> {
    return new Promise((resolve, reject) => {
      this.queue.push({ actor, fn: fn as Job['fn'], resolve: resolve as Job['resolve'], reject });
      this.kick();
    });
  }

  /** Whether a batch in flight writes `key` (the store may hold it newer than the cache does). */
  isWriting(key: string): boolean {
    return this.writing.has(key);
  }

  /** Resolves when nothing is queued, planned or in flight. */
  whenIdle(): Promise<void> {
    if (this.queue.length === 0 && !this.planning && this.inflight.length === 0) return Promise.resolve();
    return new Promise((r) => this.idle.push(r));
  }

  private kick(): void {
    if (this.planning || this.queue.length === 0 || this.inflight.length > 1 || (this.recovering && this.inflight.length > 0)) return;
    this.planning = true;
    // The batch starts after the requests already read in this turn of the event loop have queued
    // theirs, so one commit serves them all.
    setImmediate(() => void this.planNext());
  }

  private async planNext(): Promise<void> {
    this.recovering = false;
    const jobs = this.queue.splice(0, MAX_BATCH);
    try {
      await this.plan(jobs);
    } catch (e) {
      // The store could not even be read (its revision, a listing): these transactions fail, nothing is sent.
      const err = this.store.failed(e);
      for (const job of jobs) job.reject(err);
      this.revision = undefined;
      this.planning = false;
      this.kick();
      this.wakeIdle();
    }
  }

  private async plan(jobs: Job[]): Promise<void> {
    const before = this.inflight[this.inflight.length - 1];
    const overlay = new Overlay(before ? pendingOver(this.store.committed, before.final) : this.store.committed);
    const base = (this.revision ??= this.store.committedRevision());
    let revision = base;
    const outcomes: Outcome[] = [];
    for (const job of jobs) {
      try {
        const tx = new BufferedTxn(overlay);
        const value = await job.fn(tx);
        const changes = tx.empty ? [] : overlay.plan(tx, revision + 1, job.actor, this.store.clock().toISOString());
        if (changes.length > 0) revision++;
        outcomes.push({ job, ok: true, value, revision, changes });
      } catch (e) {
        outcomes.push({ job, ok: false, value: e, revision, changes: [] });
      }
    }
    this.revision = revision;
    const writes = outcomes.filter((o) => o.changes.length > 0).map((o) => o.changes);
    const req = writes.length > 0 ? commitRequest(writes, overlay.final(), base, revision) : undefined;
    for (const [key] of req?.rows ?? []) this.writing.set(key, (this.writing.get(key) ?? 0) + 1);
    const batch: Batch = { outcomes, req, final: overlay.final(), settled: Promise.resolve(true) };
    batch.settled = this.settle(batch, before?.settled ?? Promise.resolve(true), req && this.store.commit(req));
    this.inflight.push(batch);
    this.planning = false;
    this.kick();
  }

  private async settle(b: Batch, before: Promise<boolean>, commit: Promise<void> | undefined): Promise<boolean> {
    let error: unknown;
    let failed = false;
    if (commit) await commit.catch((e: unknown) => { failed = true; error = e; });
    if (!(await before)) {
      // Whatever the writer said of this batch (it refuses one planned on a revision the store is not at),
      // the cause is the batch before it.
      failed = true;
      error = new WeftError('WEFT_STORE_UNAVAILABLE', 'the batch this transaction read from failed to commit, so it was not committed either; retry');
    }
    this.inflight.shift();
    for (const [key] of b.req?.rows ?? []) {
      const n = (this.writing.get(key) ?? 1) - 1;
      if (n > 0) this.writing.set(key, n);
      else this.writing.delete(key);
    }
    if (failed) {
      const err = this.store.failed(error);
      for (const o of b.outcomes) o.job.reject(o.ok ? err : o.value);
      this.recovering = true;
      this.revision = undefined;
    } else {
      if (b.req) this.store.applied(b.req, b.outcomes.filter((o) => o.changes.length > 0).map((o) => o.changes.map(({ text: _, ...c }) => c)));
      for (const o of b.outcomes) {
        if (o.ok) o.job.resolve({ value: o.value, revision: o.revision });
        else o.job.reject(o.value);
      }
    }
    this.kick();
    this.wakeIdle();
    return !failed;
  }

  private wakeIdle(): void {
    if (this.queue.length === 0 && !this.planning && this.inflight.length === 0) {
      for (const r of this.idle.splice(0)) r();
    }
  }
}

/** A batch's changes as the writer takes them: each key's final state, every change logged at its revision. */
function commitRequest(batch: PlannedChange[][], final: ReadonlyMap<string, Written>, base: number, revision: number): CommitRequest {
  const rows: StoredRow[] = [];
  for (const [key, w] of final) rows.push(w === null ? [key, null, 0, 0] : [key, w.text, w.modRevision, w.createRevision]);
  const log: LogRow[] = [];
  for (const changes of batch) changes.forEach((c, seq) => log.push([c.revision, seq, c.key, c.op, c.text, c.actor, c.time]));
  return { rows, log, base, revision, transactions: batch.length };
}
