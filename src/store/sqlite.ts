import Database from 'better-sqlite3';
import { chmodSync, existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { WeftError } from '../model/index.js';
import { Mutex } from './buffered.js';
import type { CommittedReads } from './overlay.js';
import { WriteTracker } from './health.js';
import { SCHEMA, migrateKeyTable } from './sqlite-write.js';
import { WriterStopped, WriterThread } from './sqlite-thread.js';
import { GroupCommit } from './sqlite-batches.js';
import { RowCache, type KvRow } from './sqlite-cache.js';
import { DEFAULT_HISTORY_BYTES, DEFAULT_HISTORY_LIMIT, type Change, type Entry, type Listing, type Store, type StoreOptions, type Txn, type WriteHealth } from './port.js';

interface LogRow { rev: number; key: string; op: 'put' | 'delete'; value: string; actor: string; time: string }

/** A row as KvRow has it (the table's rowid is only its place in the file). */
const KV_COLUMNS = 'key, value, mod_rev, create_rev';

/** Keys are ASCII, so this sorts after every key that starts with a prefix. */
const PREFIX_END = '\uffff';


/**
 * SQLite's refusal to write as the store's error. A full disk (SQLite maps ENOSPC to SQLITE_FULL) says so
 * and where, since only an operator can free it; other I/O failures are the store being unavailable.
 * Anything else (a bug, a corrupt file) stays what it is: an internal error.
 */
function writeError(e: unknown, file: string, atStart = false): unknown {
  const code = (e as { code?: unknown } | undefined)?.code;
  if (typeof code !== 'string') return e;
  const what = `${(e as Error).message}, ${code}`;
  if (code === 'SQLITE_FULL') {
    const then = atStart ? 'then start again (the store had nothing half-written)' : 'writes resume by themselves, reads still work';
    return new WeftError('WEFT_STORE_FULL', `the store's disk is full: SQLite cannot write ${file} (${what}); free space on the filesystem holding ${dirname(file)} (the data dir): ${then}`, { cause: e });
  }
  if (/^SQLITE_(IOERR|READONLY|CANTOPEN)/.test(code)) {
    return new WeftError('WEFT_STORE_UNAVAILABLE', `SQLite cannot write ${file} (${what}); check the disk holding ${dirname(file)}; retry`, { cause: e });
  }
  return e;
}

const inUse = (e: unknown) => e instanceof Error && /locked|busy/i.test(e.message);

/** Lock files this process holds: one open or close of such a file through node:fs would drop its lock. */
const held = new Set<string>();

/**
 * The lock that keeps a second server off the file: another SQLite file beside it, held in exclusive
 * locking mode for as long as the store is open (the store's own file has two connections, so it
 * cannot be held that way). The operating system drops it when the process ends, however it ends. It is
 * a POSIX lock, which belongs to the process and goes with the first close of *any* descriptor of the
 * file in it: only SQLite (which keeps its descriptors open) ever opens it, and a second store in this
 * process is refused before touching it.
 */
function takeLock(file: string): { db: Database.Database; release: () => void } {
  const lockFile = `${resolve(file)}.lock`;
  const refuse = (cause?: unknown) => new WeftError('WEFT_IN_USE', `store ${file} is in use by another weft server`, { cause });
  if (held.has(lockFile)) throw refuse();
  const lock = new Database(lockFile, { timeout: 0 });
  try {
    chmodSync(lockFile, 0o600);
    lock.pragma('locking_mode = EXCLUSIVE');
    lock.exec('BEGIN EXCLUSIVE; COMMIT;');
  } catch (e) {
    lock.close();
    if (inUse(e)) throw refuse(e);
    // A lock file made on a full disk (a data dir's first start) fails as any write to it would.
    throw writeError(e, file, true);
  }
  held.add(lockFile);
  return { db: lock, release: () => { lock.close(); held.delete(lockFile); } };
}

const closedError = () => new WeftError('WEFT_STORE_UNAVAILABLE', 'the SQLite store is closed');

/** Calls a listener; its bug must not keep a batch from being acknowledged, nor the others from hearing it. */
function tell<T>(listener: (v: T) => void, value: T, who: string): void {
  try {
    listener(value);
  } catch (e) {
    process.emitWarning(`${who} threw: ${e instanceof Error ? e.message : String(e)}`);
  }
}

const toEntry = (r: KvRow): Entry => ({ key: r.key, value: JSON.parse(r.value), modRevision: r.mod_rev, createRevision: r.create_rev });

/** A parsed JSON value frozen all the way down (a caller that changed it would throw, not corrupt others' reads). */
function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null && !Object.isFrozen(v)) {
    for (const x of Object.values(v)) deepFreeze(x);
    Object.freeze(v);
  }
  return v;
}

/** Rows parsed once for Txn.getShared: a row object stands for one stored value (the cache replaces it on a write). */
const sharedEntries = new WeakMap<KvRow, Entry>();
function sharedEntry(r: KvRow): Entry {
  let e = sharedEntries.get(r);
  if (!e) {
    e = Object.freeze({ key: r.key, value: deepFreeze(JSON.parse(r.value)), modRevision: r.mod_rev, createRevision: r.create_rev });
    sharedEntries.set(r, e);
  }
  return e;
}

/**
 * The embedded store: one SQLite file in WAL mode, held by one server process (takeLock). Reads run on the
 * event loop through the store's own connection; every write goes to the writer thread (WriterThread),
 * which commits with synchronous=FULL, so a commit's fsync and SQLite's checkpoints never stall the server.
 * Transactions arriving together share one commit, pipelined (sqlite-batches.ts).
 */
export class SqliteStore implements Store {
  private readonly lock: { db: Database.Database; release: () => void };
  private readonly db: Database.Database;
  private readonly writer: WriterThread;
  private readonly mutex = new Mutex();
  private readonly listeners = new Set<(c: Change[]) => void>();
  private readonly commitTimers = new Set<(seconds: number) => void>();
  private readonly stmt;
  private readonly writes = new WriteTracker();
  private readonly batches: GroupCommit;
  /** SQLite commits made (each holds a batch of transactions): the store's fsyncs, for its metrics and tests. */
  commits = 0;
  private closed = false;
  /** What batches read of the committed rows (see RowCache). */
  private readonly cache = new RowCache(() => this.stmt.scanKeys.all('', PREFIX_END));
  private readonly committed: CommittedReads = {
    key: (k) => {
      const r = this.cache.row(k, () => this.stmt.get.get(k));
      return r && toEntry(r);
    },
    scan: (p) => this.cache.rows(p, () => this.stmt.scan.all(p, p + PREFIX_END)).map(toEntry),
    ceiling: (p, k) => this.ceilingOf(p, k),
    keys: (p) => this.stmt.scanKeys.all(p, p + PREFIX_END),
    shared: (k) => {
      const r = this.cache.row(k, () => this.stmt.get.get(k));
      return r && sharedEntry(r);
    },
    created: (k) => this.cache.row(k, () => this.stmt.get.get(k))?.create_rev,
  };

  constructor(private readonly file: string, options: StoreOptions = {}) {
    const bounds = { limit: options.historyLimit ?? DEFAULT_HISTORY_LIMIT, bytes: options.historyBytes ?? DEFAULT_HISTORY_BYTES };
    const clock = options.clock ?? (() => new Date());
    this.lock = takeLock(file);
    let db: Database.Database | undefined;
    try {
      // It holds password hashes: made 0600 before its WAL and shared-memory files exist, so that SQLite,
      // which gives them the file's mode, makes them private too (and any left from before are made so).
      // Never opened through node:fs: closing that descriptor would drop SQLite's POSIX locks on it.
      db = new Database(file, { timeout: 5000 });
      for (const f of [file, `${file}-wal`, `${file}-shm`]) if (f === file || existsSync(f)) chmodSync(f, 0o600);
      db.pragma('journal_mode = WAL');
      // Before SCHEMA, whose index is on the new table.
      migrateKeyTable(db);
      db.exec(SCHEMA);
    } catch (e) {
      db?.close();
      this.lock.release();
      if (inUse(e)) throw new WeftError('WEFT_IN_USE', `store ${file} is in use by another weft server`, { cause: e });
      // A full disk at start (moving an old key table takes about its size again) is said as any write's.
      throw writeError(e, file, true);
    }
    this.db = db;
    this.stmt = {
      get: db.prepare<[string], KvRow>(`SELECT ${KV_COLUMNS} FROM kv WHERE key = ?`),
      scan: db.prepare<[string, string], KvRow>(`SELECT ${KV_COLUMNS} FROM kv WHERE key >= ? AND key < ? ORDER BY key`),
      scanKeys: db.prepare<[string, string], string>('SELECT key FROM kv WHERE key >= ? AND key < ? ORDER BY key').pluck(),
      ceiling: db.prepare<[string, string], KvRow>(`SELECT ${KV_COLUMNS} FROM kv WHERE key >= ? AND key < ? ORDER BY key LIMIT 1`),
      meta: db.prepare<[string], { value: number }>('SELECT value FROM meta WHERE name = ?'),
      logFrom: db.prepare<[number, number], LogRow>('SELECT rev, key, op, value, actor, time FROM log WHERE rev > ? ORDER BY rev, seq LIMIT ?'),
      logRev: db.prepare<[number], LogRow>('SELECT rev, key, op, value, actor, time FROM log WHERE rev = ? ORDER BY seq'),
    };
    this.writer = new WriterThread({ file, bounds });
    this.batches = new GroupCommit({
      committed: this.committed,
      committedRevision: () => this.meta('revision'),
      commit: async (req) => {
        let seconds: unknown;
        try {
          seconds = await this.writer.call({ op: 'commit', req });
        } catch (e) {
          // A thread that stopped may have committed before it could answer: the file says (a commit is
          // all or nothing), and a batch that is in is a success like any other.
          if (e instanceof WriterStopped && this.meta('revision') >= req.revision) return;
          throw e;
        }
        // Outside the try: the batch is in the file whatever a listener does.
        if (typeof seconds === 'number') for (const l of this.commitTimers) tell(l, seconds, 'a commit-time listener');
      },
      applied: (req, changes) => {
        this.cache.committed(req.rows);
        this.commits++;
        this.writes.wrote();
        for (const c of changes) for (const l of this.listeners) tell(l, c, 'a store listener');
      },
      // SQLite rolled the batch back (or, a thread having stopped, the file shows it is not in): the
      // cache still holds what the file does. Nothing of the batch is kept, and the store goes on.
      failed: (e) => this.writes.failed(writeError(e, file)),
      clock,
    });
  }

  private read(key: string): Entry | undefined {
    const r = this.stmt.get.get(key);
    return r && toEntry(r);
  }

  private scan(prefix: string): Entry[] {
    return this.stmt.scan.all(prefix, prefix + PREFIX_END).map(toEntry);
  }

  private meta(name: 'revision' | 'compacted'): number {
    return this.stmt.meta.get(name)?.value ?? 0;
  }

  private ceilingOf(prefix: string, key: string): Entry | undefined {
    const r = this.stmt.ceiling.get(key > prefix ? key : prefix, prefix + PREFIX_END);
    return r && toEntry(r);
  }

  async get(key: string): Promise<Entry | undefined> {
    this.open();
    // A key the writer thread is committing may be newer in SQLite than in the cache: ask SQLite. Any
    // other key is the same in both, before the commit and after it.
    return this.batches.isWriting(key) ? this.read(key) : this.committed.key(key);
  }

  async getShared(key: string): Promise<Entry | undefined> {
    this.open();
    return this.batches.isWriting(key) ? this.read(key) : this.committed.shared?.(key);
  }

  async list(prefix: string): Promise<Listing> {
    this.open();
    return this.db.transaction(() => ({ entries: this.scan(prefix), revision: this.meta('revision') }))();
  }

  transact<T>(actor: string, fn: (tx: Txn) => Promise<T>): Promise<{ value: T; revision: number }> {
    if (this.closed) return Promise.reject(closedError());
    return this.batches.transact(actor, fn);
  }

  async changes(since: number, limit = 1_000_000): Promise<Change[]> {
    this.open();
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
    this.open();
    return this.meta('compacted');
  }

  async revision(): Promise<number> {
    this.open();
    return this.meta('revision');
  }

  subscribe(listener: (changes: Change[]) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  onCommitTime(listener: (seconds: number) => void): () => void {
    this.commitTimers.add(listener);
    return () => this.commitTimers.delete(listener);
  }

  writeHealth(): WriteHealth {
    return this.writes.health();
  }

  probe(): Promise<WriteHealth> {
    return this.mutex.run(() => this.writes.probe(async () => {
      try {
        await this.writer.call({ op: 'probe' });
      } catch (e) {
        throw writeError(e, this.file);
      }
    }));
  }

  /** What the writer's connection commits with (tests hold the store to synchronous=FULL). */
  async writerSettings(): Promise<{ synchronous: number; journalMode: string }> {
    return (await this.writer.call({ op: 'settings' })) as { synchronous: number; journalMode: string };
  }

  /** Refuses a read once the store is closed (its connection is gone, or going). */
  private open(): void {
    if (this.closed) throw closedError();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // What was accepted before the close commits, and its listeners hear it; nothing is accepted after.
    await this.batches.whenIdle();
    this.listeners.clear();
    this.commitTimers.clear();
    await this.mutex.run(async () => {
      await this.writer.close();
      this.db.close();
      this.lock.release();
    });
  }
}
