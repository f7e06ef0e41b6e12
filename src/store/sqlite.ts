import Database from 'better-sqlite3';
import { chmodSync } from 'node:fs';
import { dirname } from 'node:path';
import { WeftError } from '../model/index.js';
import { BufferedTxn, Mutex } from './buffered.js';
import { Overlay, type CommittedReads, type PlannedChange, type Written } from './overlay.js';
import { WriteTracker } from './health.js';
import { changeBytes, trimPoint, type HistoryBounds } from './history.js';
import { DEFAULT_HISTORY_BYTES, DEFAULT_HISTORY_LIMIT, type Change, type Entry, type Listing, type Store, type StoreOptions, type Txn, type WriteHealth } from './port.js';

interface KvRow { key: string; value: string; mod_rev: number; create_rev: number }
/** A log row's size as changeBytes counts it (the value is stored as its JSON text). */
const LOG_ROW_BYTES = 'length(CAST(key AS BLOB)) + length(CAST(value AS BLOB))';
interface LogRow { rev: number; key: string; op: 'put' | 'delete'; value: string; actor: string; time: string }

const SCHEMA = `
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL, mod_rev INTEGER NOT NULL, create_rev INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS log (rev INTEGER NOT NULL, seq INTEGER NOT NULL, key TEXT NOT NULL, op TEXT NOT NULL,
  value TEXT NOT NULL, actor TEXT NOT NULL, time TEXT NOT NULL, PRIMARY KEY (rev, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('revision', 0), ('compacted', 0);
INSERT OR IGNORE INTO meta SELECT 'log_bytes', COALESCE(SUM(${LOG_ROW_BYTES}), 0) FROM log;
`;
/** Keys are ASCII, so this sorts after every key that starts with a prefix. */
const PREFIX_END = '\uffff';
const COMPACT_EVERY = 1000;
/** At most this many transactions commit together (a batch is planned in memory before it is written). */
const MAX_BATCH = 256;

/** A transaction waiting for its batch. */
interface Job { actor: string; fn: (tx: Txn) => Promise<unknown>; resolve: (r: { value: unknown; revision: number }) => void; reject: (e: unknown) => void }

/**
 * SQLite's refusal to write as the store's error. A full disk (SQLite maps ENOSPC to SQLITE_FULL) says so
 * and where, since only an operator can free it; other I/O failures are the store being unavailable.
 * Anything else (a bug, a corrupt file) stays what it is: an internal error.
 */
function writeError(e: unknown, file: string): unknown {
  const code = (e as { code?: unknown } | undefined)?.code;
  if (typeof code !== 'string') return e;
  const what = `${(e as Error).message}, ${code}`;
  if (code === 'SQLITE_FULL') {
    return new WeftError('WEFT_STORE_FULL', `the store's disk is full: SQLite cannot write ${file} (${what}); free space on the filesystem holding ${dirname(file)} (the data dir): writes resume by themselves, reads still work`, { cause: e });
  }
  if (/^SQLITE_(IOERR|READONLY|CANTOPEN)/.test(code)) {
    return new WeftError('WEFT_STORE_UNAVAILABLE', `SQLite cannot write ${file} (${what}); check the disk holding ${dirname(file)}; retry`, { cause: e });
  }
  return e;
}

const toEntry = (r: KvRow): Entry => ({ key: r.key, value: JSON.parse(r.value), modRevision: r.mod_rev, createRevision: r.create_rev });

/**
 * The embedded store: one SQLite file in WAL mode, held exclusively by one server process.
 * synchronous=FULL: an acknowledged commit survives a crash of the process and a power cut (see
 * docs/decisions.md); transactions arriving together share one commit (group commit, see drain()).
 */
export class SqliteStore implements Store {
  private readonly db: Database.Database;
  private readonly mutex = new Mutex();
  private readonly listeners = new Set<(c: Change[]) => void>();
  private readonly bounds: HistoryBounds;
  private readonly clock: () => Date;
  private readonly stmt;
  private commitsSinceCompaction = 0;
  private readonly writes = new WriteTracker();
  /** Transactions waiting to commit; the first is in the running batch (or about to start one). */
  private readonly queue: Job[] = [];
  /** SQLite commits made (each holds a batch of transactions): the store's fsyncs, for its metrics and tests. */
  commits = 0;
  private readonly committed: CommittedReads = {
    key: (k) => this.read(k),
    scan: (p) => this.scan(p),
    ceiling: (p, k) => this.ceilingOf(p, k),
    keys: (p) => this.stmt.scanKeys.all(p, p + PREFIX_END),
  };
  /** The meta row `log_bytes`, mirrored: the file is this process's alone, and the mirror moves only after a commit. */
  private logBytes: number;

  constructor(private readonly file: string, options: StoreOptions = {}) {
    this.bounds = { limit: options.historyLimit ?? DEFAULT_HISTORY_LIMIT, bytes: options.historyBytes ?? DEFAULT_HISTORY_BYTES };
    this.clock = options.clock ?? (() => new Date());
    this.db = new Database(file, { timeout: 0 });
    try {
      this.db.pragma('journal_mode = WAL');
      // FULL: in WAL mode NORMAL skips the fsync at commit, so an allocation already acknowledged to a
      // runtime could vanish on power loss and the address be handed out twice.
      this.db.pragma('synchronous = FULL');
      // A second server on the same file would hand out the same addresses: refuse it outright.
      this.db.pragma('locking_mode = EXCLUSIVE');
      this.db.exec('BEGIN EXCLUSIVE; COMMIT;');
      this.db.exec(SCHEMA);
      // It holds password hashes; SQLite gives the WAL and shared-memory files the same mode.
      if (file !== ':memory:') chmodSync(file, 0o600);
    } catch (e) {
      this.db.close();
      if (e instanceof Error && /locked|busy/i.test(e.message)) {
        throw new WeftError('WEFT_IN_USE', `store ${file} is in use by another weft server`, { cause: e });
      }
      throw e;
    }
    this.stmt = {
      get: this.db.prepare<[string], KvRow>('SELECT * FROM kv WHERE key = ?'),
      scan: this.db.prepare<[string, string], KvRow>('SELECT * FROM kv WHERE key >= ? AND key < ? ORDER BY key'),
      scanKeys: this.db.prepare<[string, string], string>('SELECT key FROM kv WHERE key >= ? AND key < ? ORDER BY key').pluck(),
      ceiling: this.db.prepare<[string, string], KvRow>('SELECT * FROM kv WHERE key >= ? AND key < ? ORDER BY key LIMIT 1'),
      meta: this.db.prepare<[string], { value: number }>('SELECT value FROM meta WHERE name = ?'),
      setMeta: this.db.prepare('UPDATE meta SET value = ? WHERE name = ?'),
      setRevisionAndBytes: this.db.prepare<[{ rev: number; bytes: number }]>("UPDATE meta SET value = CASE name WHEN 'revision' THEN @rev ELSE @bytes END WHERE name IN ('revision', 'log_bytes')"),
      upsert: this.db.prepare('INSERT INTO kv VALUES (?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value, mod_rev = excluded.mod_rev, create_rev = excluded.create_rev'),
      del: this.db.prepare('DELETE FROM kv WHERE key = ?'),
      logAdd: this.db.prepare('INSERT INTO log VALUES (?, ?, ?, ?, ?, ?, ?)'),
      logFrom: this.db.prepare<[number, number], LogRow>('SELECT rev, key, op, value, actor, time FROM log WHERE rev > ? ORDER BY rev, seq LIMIT ?'),
      logRev: this.db.prepare<[number], LogRow>('SELECT rev, key, op, value, actor, time FROM log WHERE rev = ? ORDER BY seq'),
      logTrim: this.db.prepare('DELETE FROM log WHERE rev <= ?'),
      logSizes: this.db.prepare<[number], { rev: number; bytes: number }>(`SELECT rev, ${LOG_ROW_BYTES} AS bytes FROM log WHERE rev > ? ORDER BY rev, seq`),
      // One page rewritten (or, the first time, one row added) and synced: a commit at its smallest.
      probe: this.db.prepare("INSERT INTO meta VALUES ('probe', 1) ON CONFLICT(name) DO UPDATE SET value = value + 1"),
    };
    this.logBytes = this.meta('log_bytes');
  }

  private read(key: string): Entry | undefined {
    const r = this.stmt.get.get(key);
    return r && toEntry(r);
  }

  private scan(prefix: string): Entry[] {
    return this.stmt.scan.all(prefix, prefix + PREFIX_END).map(toEntry);
  }

  private meta(name: 'revision' | 'compacted' | 'log_bytes'): number {
    return this.stmt.meta.get(name)?.value ?? 0;
  }

  private ceilingOf(prefix: string, key: string): Entry | undefined {
    const r = this.stmt.ceiling.get(key > prefix ? key : prefix, prefix + PREFIX_END);
    return r && toEntry(r);
  }

  async get(key: string): Promise<Entry | undefined> {
    return this.read(key);
  }

  async list(prefix: string): Promise<Listing> {
    return this.db.transaction(() => ({ entries: this.scan(prefix), revision: this.meta('revision') }))();
  }

  transact<T>(actor: string, fn: (tx: Txn) => Promise<T>): Promise<{ value: T; revision: number }> {
    return new Promise((resolve, reject) => {
      this.queue.push({ actor, fn: fn as (tx: Txn) => Promise<unknown>, resolve: resolve as Job['resolve'], reject });
      // The batch starts after the requests already read in this turn of the event loop have queued
      // theirs: a commit blocks the loop for its fsync, so without this pause each batch held one.
      if (this.queue.length === 1) setImmediate(() => void this.mutex.run(() => this.drain()));
    });
  }

  /**
   * Group commit: the transactions waiting when a batch starts run one after another, each reading its
   * predecessors' writes through an overlay, and commit as one SQLite transaction: one fsync for them all
   * (synchronous=FULL costs one per commit, which bounded allocations at a few hundred per second on a
   * busy disk). None is acknowledged, and no reader outside the batch sees any of it, before that commit;
   * if it fails, every transaction of the batch fails with it and nothing of them is kept.
   */
  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      // Transactions arriving while this batch runs wait for the next one (the queue stays non-empty,
      // so no other drain starts meanwhile).
      const jobs = this.queue.slice(0, MAX_BATCH);
      await this.runBatch(jobs);
      this.queue.splice(0, jobs.length);
    }
  }

  private async runBatch(jobs: Job[]): Promise<void> {
    const overlay = new Overlay(this.committed);
    let revision = this.meta('revision');
    const done: Array<{ job: Job; ok: boolean; value: unknown; revision: number; changes: PlannedChange[] }> = [];
    for (const job of jobs) {
      try {
        const tx = new BufferedTxn(overlay);
        const value = await job.fn(tx);
        const changes = tx.empty ? [] : overlay.plan(tx, revision + 1, job.actor, this.clock().toISOString());
        if (changes.length > 0) revision++;
        done.push({ job, ok: true, value, revision, changes });
      } catch (e) {
        done.push({ job, ok: false, value: e, revision, changes: [] });
      }
    }
    const writing = done.filter((d) => d.changes.length > 0);
    if (writing.length > 0) {
      try {
        this.logBytes = this.commit(writing.map((d) => d.changes), overlay.final(), revision);
      } catch (e) {
        // better-sqlite3 has rolled the transaction back: nothing of the batch is kept, and the store stays usable.
        const err = this.writes.failed(writeError(e, this.file));
        for (const d of done) d.job.reject(d.ok ? err : d.value);
        return;
      }
      this.commits++;
      this.writes.wrote();
      for (const d of writing) for (const l of this.listeners) l(d.changes.map(({ text: _, ...c }) => c));
    }
    for (const d of done) {
      if (d.ok) d.job.resolve({ value: d.value, revision: d.revision });
      else d.job.reject(d.value);
    }
  }

  /** Writes a batch's changes, each transaction's at its own revision, as one SQLite transaction; returns the log's bytes. */
  private commit(batch: PlannedChange[][], final: ReadonlyMap<string, Written>, revision: number): number {
    return this.db.transaction(() => {
      let logBytes = this.logBytes;
      // The table gets each key's last state once: a batch of allocations in one network rewrites its
      // address book once, not once per allocation. The log keeps every change at its own revision.
      for (const [key, w] of final) {
        if (w === null) this.stmt.del.run(key);
        else this.stmt.upsert.run(key, w.text, w.modRevision, w.createRevision);
      }
      for (const changes of batch) {
        changes.forEach((c, seq) => {
          this.stmt.logAdd.run(c.revision, seq, c.key, c.op, c.text, c.actor, c.time);
          logBytes += changeBytes(c.key, c.text);
        });
      }
      this.stmt.setRevisionAndBytes.run({ rev: revision, bytes: logBytes });
      this.commitsSinceCompaction += batch.length;
      // The revision bound is checked in batches; the byte bound at every commit (it costs nothing: the
      // total is in memory), since one commit may carry a megabyte.
      if (this.commitsSinceCompaction >= COMPACT_EVERY || this.bounds.limit < COMPACT_EVERY || logBytes > this.bounds.bytes) {
        logBytes = this.compact(revision, logBytes);
      }
      return logBytes;
    })();
  }

  /** Trims the log to its bounds inside the commit's transaction; returns the bytes kept. */
  private compact(revision: number, logBytes: number): number {
    this.commitsSinceCompaction = 0;
    const compacted = this.meta('compacted');
    const { upTo, dropped } = trimPoint(this.stmt.logSizes.iterate(compacted), { compacted, keptBytes: logBytes, newest: revision }, this.bounds);
    if (upTo <= compacted) return logBytes;
    this.stmt.logTrim.run(upTo);
    this.stmt.setMeta.run(upTo, 'compacted');
    this.stmt.setMeta.run(logBytes - dropped, 'log_bytes');
    return logBytes - dropped;
  }

  async changes(since: number, limit = 1_000_000): Promise<Change[]> {
    const compacted = this.meta('compacted');
    if (since < compacted) {
      throw new WeftError('WEFT_HISTORY_COMPACTED', `revision ${since} is older than the kept history (from ${compacted + 1}); re-list`);
    }
    // Fetch one extra row to see whether the page ends inside a revision; a page holds whole revisions.
    let rows = this.stmt.logFrom.all(since, limit + 1);
    if (rows.length > limit) {
      const cut = rows[limit]?.rev ?? 0;
      rows = rows.filter((r) => r.rev < cut);
      if (rows.length === 0) rows = this.stmt.logRev.all(cut);
    }
    return rows.map((r) => ({ revision: r.rev, key: r.key, op: r.op, value: JSON.parse(r.value), actor: r.actor, time: r.time }));
  }

  async compactedRevision(): Promise<number> {
    return this.meta('compacted');
  }

  async revision(): Promise<number> {
    return this.meta('revision');
  }

  subscribe(listener: (changes: Change[]) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  writeHealth(): WriteHealth {
    return this.writes.health();
  }

  probe(): Promise<WriteHealth> {
    return this.mutex.run(() => this.writes.probe(async () => {
      try {
        this.stmt.probe.run();
      } catch (e) {
        throw writeError(e, this.file);
      }
    }));
  }

  async close(): Promise<void> {
    this.listeners.clear();
    await this.mutex.run(async () => this.db.close());
  }
}
