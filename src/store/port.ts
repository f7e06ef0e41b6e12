import { LIMIT_DEFAULTS, type WeftError } from '../model/index.js';

/**
 * The store port: a revisioned key-value space with transactions, a change log and subscriptions.
 * Every implementation (memory, SQLite, later etcd) passes the one contract suite in contract.ts.
 *
 * Revisions are global and grow by one per committed transaction (as in etcd); every change made by a
 * transaction carries its revision. The change log is kept up to a limit; reading changes older than
 * what is kept fails with WEFT_HISTORY_COMPACTED so a watcher knows to re-list.
 */
export interface Entry {
  key: string;
  value: unknown;
  /** Revision of the last change to this key. */
  modRevision: number;
  createRevision: number;
}

export interface Change {
  revision: number;
  key: string;
  op: 'put' | 'delete';
  /** The new value for a put; the last value for a delete. */
  value: unknown;
  actor: string;
  time: string;
}

export interface Txn {
  get(key: string): Promise<Entry | undefined>;
  /**
   * The same entry, read as `get` reads it (and guarded the same way on etcd), whose value the caller
   * must not change: it is frozen, and a store may hand the same object to every reader while the key is
   * unchanged (SQLite: parsed once per stored row). For a value read on every request and derived from
   * (a network's group pools), so the derivation can be kept with the object (a WeakMap).
   */
  getShared(key: string): Promise<Entry | undefined>;
  /** Entries whose key starts with `prefix`, sorted by key; the transaction's own writes included. */
  list(prefix: string): Promise<Entry[]>;
  /**
   * The entry with the smallest key >= `key` among those starting with `prefix` (one ordered read: how a
   * segment covering a range of ids is found without listing them all); the transaction's own writes
   * included. Ascending on purpose: etcd serves a range read with a limit in key order without reading the
   * rest, but sorts a descending one by fetching all of it.
   */
  ceiling(prefix: string, key: string): Promise<Entry | undefined>;
  put(key: string, value: unknown): void;
  delete(key: string): void;
  /**
   * Deletes every key starting with `prefix` as one operation (one delete-range on etcd, whatever the
   * number of keys); each deleted key is still a change with its last value, logged before the
   * transaction's other writes. A key put after this in the same transaction is kept (a put, not a
   * delete and a put). On etcd, list the prefix first if a concurrent insert under it must conflict.
   */
  deletePrefix(prefix: string): void;
}

export interface Listing {
  entries: Entry[];
  revision: number;
}

export interface Store {
  get(key: string): Promise<Entry | undefined>;
  /**
   * `key` as `get` reads it, whose value the caller must not change (Txn.getShared): a store may hand every
   * reader the same frozen object while the key is unchanged, and never after it changed (a read is as
   * fresh as `get`'s). Absent: `get`'s answer is the caller's to use.
   */
  getShared?(key: string): Promise<Entry | undefined>;
  list(prefix: string): Promise<Listing>;
  /**
   * Runs `fn` against a consistent view and commits its writes atomically under one new revision
   * (no new revision when it wrote nothing). Implementations may run `fn` more than once on conflict,
   * so `fn` must not have side effects outside the transaction.
   */
  transact<T>(actor: string, fn: (tx: Txn) => Promise<T>): Promise<{ value: T; revision: number }>;
  /** Changes with revision > `since`, oldest first, at most `limit`. */
  changes(since: number, limit?: number): Promise<Change[]>;
  /** The highest revision whose changes are no longer kept (0 if nothing was compacted). */
  compactedRevision(): Promise<number>;
  revision(): Promise<number>;
  /**
   * Called after each commit with that commit's changes. Returns an unsubscribe function. `lost` is called
   * when the store could not deliver some commits and never will (a shared store's watch resumed past
   * history that was compacted meanwhile): the subscriber must re-list, as after a WEFT_HISTORY_COMPACTED.
   */
  subscribe(listener: (changes: Change[]) => void, lost?: () => void): () => void;
  /** Whether the store could write when it last tried (a commit or a probe); no I/O. */
  writeHealth(): WriteHealth;
  /**
   * Tries a tiny write outside the object space (no revision of ours, no change, no subscriber called)
   * and answers the health after it; never throws. How a server learns that the store can write again
   * (or could not meanwhile) when nobody else writes.
   */
  probe(): Promise<WriteHealth>;
  /**
   * Called with each successful commit's duration in seconds where the store measures one (SQLite: a
   * batch's transaction in its writer thread: statements, fsync, any checkpoint or log compaction). A commit that fails,
   * or one whose thread stopped before answering, reports none. Returns an unsubscribe function.
   */
  onCommitTime?(listener: (seconds: number) => void): () => void;
  close(): Promise<void>;
}

export interface WriteHealth {
  /** False from a write that failed for lack of space or of the store itself, until a commit or probe succeeds. */
  writable: boolean;
  /** How many writes failed so, ever: one that moved between two looks means the store could not write in between. */
  failures: number;
  /** What the last such write was refused with (what clients were answered). */
  error?: WeftError;
}

export interface StoreOptions {
  /** How many revisions of change log to keep. */
  historyLimit?: number;
  /**
   * How many bytes of change log to keep (each change's key and JSON value, UTF-8), beside the revision
   * limit: whole oldest revisions go first, the newest revision is always kept. Stores whose history
   * lives elsewhere (etcd) leave it to that system.
   */
  historyBytes?: number;
  clock?: () => Date;
  /**
   * etcd only: the most operations (and compares) one transaction may hold, as the etcd it talks to was
   * started with (`--max-txn-ops`, default 128). A larger transaction is refused before it is sent.
   */
  maxTxnOps?: number;
}

export const DEFAULT_HISTORY_LIMIT = 100_000;
export const DEFAULT_HISTORY_BYTES = LIMIT_DEFAULTS.historyBytes;
