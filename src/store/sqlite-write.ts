import type Database from 'better-sqlite3';
import { changeBytes, trimPoint, type HistoryBounds } from './history.js';

/** A log row's size as changeBytes counts it (the value is stored as its JSON text). */
const LOG_ROW_BYTES = 'length(CAST(key AS BLOB)) + length(CAST(value AS BLOB))';

/**
 * The key table: rows in the order they were first written (a rowid table), found by key through a unique
 * index. Keyed by the key itself (WITHOUT ROWID, before session 44) every new endpoint, whose id is a
 * hash, landed in a random leaf of ~500-byte rows that split every few inserts: ~2.5 pages into the WAL
 * per allocation, and again into the file at each checkpoint. Now its row is appended and only the index
 * (~40-byte entries) takes a random leaf (docs/decisions.md, "The key table in write order").
 */
const KV_TABLE = (name: string) => `CREATE TABLE IF NOT EXISTS ${name} (id INTEGER PRIMARY KEY, key TEXT NOT NULL, value TEXT NOT NULL, mod_rev INTEGER NOT NULL, create_rev INTEGER NOT NULL);`;

/** What finds a row by its key, and what the writer's upsert conflicts on. */
const KV_INDEX = 'CREATE UNIQUE INDEX IF NOT EXISTS kv_key ON kv (key);';

export const SCHEMA = `
${KV_TABLE('kv')}
${KV_INDEX}
CREATE TABLE IF NOT EXISTS log (rev INTEGER NOT NULL, seq INTEGER NOT NULL, key TEXT NOT NULL, op TEXT NOT NULL,
  value TEXT NOT NULL, actor TEXT NOT NULL, time TEXT NOT NULL, PRIMARY KEY (rev, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('revision', 0), ('compacted', 0);
INSERT OR IGNORE INTO meta SELECT 'log_bytes', COALESCE(SUM(${LOG_ROW_BYTES}), 0) FROM log;
`;

const COMPACT_EVERY = 1000;
/**
 * WAL pages (4 KiB) past which the writer checkpoints after a commit: ~1 MB. The WAL starts over only at a
 * write that finds all of it copied into the file, and only the writer can bring that about while commits
 * keep coming (a checkpoint from another connection always leaves behind what was appended meanwhile), so
 * each bound crossed costs the commit that crosses it a checkpoint and the next one a truncation, both in
 * proportion to the bound. An allocation put ~3-3.5 pages into the WAL when its endpoint's row landed in
 * a random leaf of the key table (~2.7 since session 44: only its index entry does): at ~2,000 pages that
 * was a stall of 8-20 ms every ~140 ms under load; at 256 the stalls are smaller and more frequent
 * (commits over 10 ms 4-20× fewer, over 5 ms ~1.5× more; docs/decisions.md, "The WAL's bound"; not
 * measured again since).
 */
export const CHECKPOINT_PAGES = 256;

/**
 * Moves a data dir's key table from the layout before session 44 (WITHOUT ROWID, keyed by the key) to the
 * one SCHEMA makes, its index included, in one transaction: a crash leaves the old table whole. Rows go in
 * key order, so a scan of a prefix reads them in sequence at first. Returns whether there was anything to
 * move. One way: a Weft from before cannot write the moved table (its insert gives four values for five
 * columns) and says so; 100,000 rows move in ~0.15 s.
 */
export function migrateKeyTable(db: Database.Database): boolean {
  const sql = db.prepare<[], string>("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'kv'").pluck().get();
  if (sql === undefined || !/WITHOUT\s+ROWID/i.test(sql)) return false;
  db.transaction(() => {
    db.exec(`${KV_TABLE('kv_rowid')}
      INSERT INTO kv_rowid (key, value, mod_rev, create_rev) SELECT key, value, mod_rev, create_rev FROM kv ORDER BY key;
      DROP TABLE kv;
      ALTER TABLE kv_rowid RENAME TO kv;
      ${KV_INDEX}`);
  })();
  return true;
}

/** A key's state after a batch: its JSON text and revisions, or gone (`null` text). */
export type StoredRow = [key: string, text: string | null, modRevision: number, createRevision: number];
/** One logged change, at its own revision. */
export type LogRow = [revision: number, seq: number, key: string, op: 'put' | 'delete', text: string, actor: string, time: string];

/** One group commit, as the writer thread receives it. */
export interface CommitRequest {
  /** Each key the batch wrote, once, as it stands after the whole batch. */
  rows: StoredRow[];
  log: LogRow[];
  /** The revision the batch was planned on: the writer refuses it if the store is elsewhere (an earlier batch failed). */
  base: number;
  /** The store's revision after the batch. */
  revision: number;
  /** Transactions in the batch that changed something (one revision each). */
  transactions: number;
}

/**
 * The write side of the SQLite store: the only connection that writes, synchronous=FULL (an acknowledged
 * commit survives a power cut; see docs/decisions.md). It runs in the store's writer thread
 * (sqlite-worker.ts), so the commit's statements, its fsync and SQLite's checkpoints never hold the
 * server's event loop.
 */
export class SqliteWriter {
  private readonly stmt;
  /** The meta row `log_bytes`, mirrored: only this connection writes it. */
  private logBytes: number;
  private commitsSinceCompaction = 0;

  constructor(private readonly db: Database.Database, private readonly bounds: HistoryBounds) {
    db.pragma('journal_mode = WAL');
    // FULL: in WAL mode NORMAL skips the fsync at commit, so an allocation already acknowledged to a
    // runtime could vanish on power loss and the address be handed out twice.
    db.pragma('synchronous = FULL');
    // SQLite's own checkpoint after a commit past the bound, on this thread: the event loop never waits for
    // it, and the commits queued behind it wait a few milliseconds.
    db.pragma(`wal_autocheckpoint = ${CHECKPOINT_PAGES}`);
    // Each time the WAL starts over, it is cut to nothing rather than overwritten in place: a burst cannot
    // leave it holding disk space for ever, and on a full disk writes are refused at once
    // (disk-full.e2e.test.ts), except the first commit after a checkpoint, which may still land in the
    // ~1 MB the WAL held.
    db.pragma('journal_size_limit = 0');
    this.stmt = {
      meta: db.prepare<[string], { value: number }>('SELECT value FROM meta WHERE name = ?'),
      revision: db.prepare<[], number>("SELECT value FROM meta WHERE name = 'revision'").pluck(),
      setMeta: db.prepare('UPDATE meta SET value = ? WHERE name = ?'),
      setRevisionAndBytes: db.prepare<[{ rev: number; bytes: number }]>("UPDATE meta SET value = CASE name WHEN 'revision' THEN @rev ELSE @bytes END WHERE name IN ('revision', 'log_bytes')"),
      upsert: db.prepare('INSERT INTO kv (key, value, mod_rev, create_rev) VALUES (?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value, mod_rev = excluded.mod_rev, create_rev = excluded.create_rev'),
      del: db.prepare('DELETE FROM kv WHERE key = ?'),
      logAdd: db.prepare('INSERT INTO log VALUES (?, ?, ?, ?, ?, ?, ?)'),
      logTrim: db.prepare('DELETE FROM log WHERE rev <= ?'),
      logSizes: db.prepare<[number], { rev: number; bytes: number }>(`SELECT rev, ${LOG_ROW_BYTES} AS bytes FROM log WHERE rev > ? ORDER BY rev, seq`),
      // One page rewritten (or, the first time, one row added) and synced: a commit at its smallest.
      probe: db.prepare("INSERT INTO meta VALUES ('probe', 1) ON CONFLICT(name) DO UPDATE SET value = value + 1"),
    };
    this.logBytes = this.meta('log_bytes');
  }

  private meta(name: 'compacted' | 'log_bytes'): number {
    return this.stmt.meta.get(name)?.value ?? 0;
  }

  /** Writes a batch as one SQLite transaction; if it throws, SQLite has rolled all of it back. */
  commit(req: CommitRequest): void {
    this.logBytes = this.db.transaction(() => {
      const at = this.stmt.revision.get();
      if (at !== req.base) throw new Error(`the batch was planned on revision ${req.base} but the store is at ${at}: a batch before it failed`);
      let logBytes = this.logBytes;
      // The table gets each key's last state once: a batch of allocations in one network rewrites its
      // address book once, not once per allocation. The log keeps every change at its own revision.
      for (const [key, text, mod, create] of req.rows) {
        if (text === null) this.stmt.del.run(key);
        else this.stmt.upsert.run(key, text, mod, create);
      }
      for (const row of req.log) {
        this.stmt.logAdd.run(...row);
        logBytes += changeBytes(row[2], row[4]);
      }
      this.stmt.setRevisionAndBytes.run({ rev: req.revision, bytes: logBytes });
      this.commitsSinceCompaction += req.transactions;
      // The revision bound is checked in batches; the byte bound at every commit (it costs nothing: the
      // total is in memory), since one commit may carry a megabyte.
      if (this.commitsSinceCompaction >= COMPACT_EVERY || this.bounds.limit < COMPACT_EVERY || logBytes > this.bounds.bytes) {
        logBytes = this.compact(req.revision, logBytes);
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

  probe(): void {
    this.stmt.probe.run();
  }

  /** What this connection writes with, for the tests that hold the store to it. */
  settings(): { synchronous: number; journalMode: string } {
    return { synchronous: this.db.pragma('synchronous', { simple: true }) as number, journalMode: this.db.pragma('journal_mode', { simple: true }) as string };
  }
}

/** Separates the fields of an encoded commit: JSON texts never hold it raw, and keys, actors and times are names. */
const SEP = '\u0000';

/**
 * A commit as one string, which crosses to the writer thread in one copy (a structured clone of its
 * hundreds of small strings costs several times more); undefined if a field holds the separator, and the
 * request goes as it is. A gone row's text is '' (no JSON text is empty).
 */
export function encodeCommit(req: CommitRequest): string | undefined {
  const out: string[] = [String(req.rows.length), String(req.log.length), String(req.base), String(req.revision), String(req.transactions)];
  for (const [key, text, mod, create] of req.rows) out.push(key, text ?? '', String(mod), String(create));
  for (const [rev, seq, key, op, text, actor, time] of req.log) out.push(String(rev), String(seq), key, op, text, actor, time);
  for (const f of out) if (f.includes(SEP)) return undefined;
  return out.join(SEP);
}

export function decodeCommit(encoded: string): CommitRequest {
  const f = encoded.split(SEP);
  let i = 5;
  const rows: StoredRow[] = Array.from({ length: Number(f[0]) }, () => {
    const row: StoredRow = [f[i] ?? '', f[i + 1] || null, Number(f[i + 2]), Number(f[i + 3])];
    i += 4;
    return row;
  });
  const log: LogRow[] = Array.from({ length: Number(f[1]) }, () => {
    const row: LogRow = [Number(f[i]), Number(f[i + 1]), f[i + 2] ?? '', f[i + 3] === 'delete' ? 'delete' : 'put', f[i + 4] ?? '', f[i + 5] ?? '', f[i + 6] ?? ''];
    i += 7;
    return row;
  });
  return { rows, log, base: Number(f[2]), revision: Number(f[3]), transactions: Number(f[4]) };
}
