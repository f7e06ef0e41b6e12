import type { Entry, Txn } from './port.js';

/**
 * A pending write: the value's JSON text, taken when it was put (so changing the object afterwards
 * changes nothing, and every store commits, logs and reads back the same text), or `undefined` for a delete.
 */
export type Pending = Map<string, { text: string } | undefined>;

/** A value as the stores keep it: its JSON text. Refuses what JSON cannot hold (undefined, a function, a BigInt, a cycle). */
export function jsonText(key: string, value: unknown): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (e) {
    throw new TypeError(`the value for ${key} cannot be stored: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (typeof text !== 'string') throw new TypeError(`the value for ${key} cannot be stored: JSON has no form for ${typeof value}`);
  return text;
}

/** How a store reads for a transaction: one key, a prefix, the smallest key >= `key` under a prefix. */
export interface Reads {
  key(key: string): Promise<Entry | undefined>;
  prefix(prefix: string): Promise<Entry[]>;
  ceiling(prefix: string, key: string): Promise<Entry | undefined>;
  /** One key's entry with a frozen value, shared between readers (Txn.getShared); absent: `key`'s. */
  shared?(key: string): Promise<Entry | undefined>;
}

const byKey = (a: Entry, b: Entry) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);

/**
 * A transaction that reads through to a backend and buffers its writes, so each store only has to
 * implement the three reads of `Reads` and "commit these writes". Reads see the transaction's own writes.
 * Prefix deletes are kept as prefixes (`deleted`), with the writes made under them before dropped: the
 * store expands them at commit (SQLite, memory) or sends them as one delete-range (etcd).
 */
export class BufferedTxn implements Txn {
  readonly writes: Pending = new Map();
  /** Prefixes deleted whole, in order; a key in `writes` (put after the delete) survives its prefix. */
  readonly deleted: string[] = [];

  constructor(private readonly reads: Reads) {}

  /** Whether the stored `key` is gone through a prefix delete (and not written since). */
  private goneByPrefix(key: string): boolean {
    return !this.writes.has(key) && this.deleted.some((p) => key.startsWith(p));
  }

  async get(key: string): Promise<Entry | undefined> {
    if (this.writes.has(key)) {
      const w = this.writes.get(key);
      if (w === undefined) return undefined;
      const base = await this.reads.key(key);
      return { key, value: JSON.parse(w.text), modRevision: 0, createRevision: base?.createRevision ?? 0 };
    }
    return this.goneByPrefix(key) ? undefined : this.reads.key(key);
  }

  async getShared(key: string): Promise<Entry | undefined> {
    // Written (or deleted) here, or no shared reads: the transaction's own copy.
    if (this.writes.has(key) || this.goneByPrefix(key) || !this.reads.shared) return this.get(key);
    return this.reads.shared(key);
  }

  async list(prefix: string): Promise<Entry[]> {
    const base = (await this.reads.prefix(prefix)).filter((e) => !this.goneByPrefix(e.key));
    if (this.writes.size === 0) return base;
    const out = new Map(base.map((e) => [e.key, e]));
    for (const [key, w] of this.writes) {
      if (!key.startsWith(prefix)) continue;
      if (w === undefined) out.delete(key);
      else out.set(key, { key, value: JSON.parse(w.text), modRevision: 0, createRevision: out.get(key)?.createRevision ?? 0 });
    }
    return [...out.values()].sort(byKey);
  }

  async ceiling(prefix: string, key: string): Promise<Entry | undefined> {
    const touched = this.deleted.some((p) => p.startsWith(prefix) || prefix.startsWith(p)) || [...this.writes.keys()].some((k) => k.startsWith(prefix));
    if (!touched) return this.reads.ceiling(prefix, key);
    // This transaction wrote under the prefix: answer from the merged listing (rare: writes follow reads).
    return (await this.list(prefix)).find((e) => e.key >= key);
  }

  // A key written again moves to the end: the commit logs each key once, at its last write's place (the
  // control plane writes a policy's head last so watchers know its transaction's segments are all there).
  // The text is taken here, not at commit: the caller may go on changing its object. (It was a
  // structuredClone, then a JSON.stringify at commit: twice the work, 3-4 % of the event loop's time.)
  put(key: string, value: unknown): void {
    const text = jsonText(key, value);
    this.writes.delete(key);
    this.writes.set(key, { text });
  }

  delete(key: string): void {
    this.writes.delete(key);
    this.writes.set(key, undefined);
  }

  deletePrefix(prefix: string): void {
    for (const key of [...this.writes.keys()]) if (key.startsWith(prefix)) this.writes.delete(key);
    if (!this.deleted.includes(prefix)) this.deleted.push(prefix);
  }

  /** Whether committing would change anything the store must look at (writes, or prefixes to expand). */
  get empty(): boolean {
    return this.writes.size === 0 && this.deleted.length === 0;
  }
}

/**
 * The stored keys a commit deletes through `tx.deleted`, in prefix order, each once, without those the
 * transaction writes itself (they stay, as a put). `keysUnder` lists the stored keys of a prefix, sorted.
 */
export function expandDeleted(tx: BufferedTxn, keysUnder: (prefix: string) => string[]): string[] {
  const out = new Set<string>();
  for (const p of tx.deleted) for (const k of keysUnder(p)) if (!tx.writes.has(k)) out.add(k);
  return [...out];
}

/** Serialises async critical sections within one process. */
export class Mutex {
  private tail: Promise<void> = Promise.resolve();

  async run<T>(fn: () => Promise<T>): Promise<T> {
    const prev = this.tail;
    let release!: () => void;
    this.tail = new Promise<void>((r) => (release = r));
    await prev;
    try {
      return await fn();
    } finally {
      release();
    }
  }
}
