import type { Entry, Txn } from './port.js';

/** A pending write: a value, or `undefined` for a delete. */
export type Pending = Map<string, { value: unknown } | undefined>;

/**
 * A transaction that reads through to a backend and buffers its writes, so each store only has to
 * implement "read a key", "read a prefix" and "commit these writes". Reads see the transaction's own writes.
 */
export class BufferedTxn implements Txn {
  readonly writes: Pending = new Map();

  constructor(
    private readonly readKey: (key: string) => Promise<Entry | undefined>,
    private readonly readPrefix: (prefix: string) => Promise<Entry[]>,
  ) {}

  async get(key: string): Promise<Entry | undefined> {
    if (this.writes.has(key)) {
      const w = this.writes.get(key);
      if (w === undefined) return undefined;
      const base = await this.readKey(key);
      return { key, value: w.value, modRevision: 0, createRevision: base?.createRevision ?? 0 };
    }
    return this.readKey(key);
  }

  async list(prefix: string): Promise<Entry[]> {
    const base = await this.readPrefix(prefix);
    if (this.writes.size === 0) return base;
    const byKey = new Map(base.map((e) => [e.key, e]));
    for (const [key, w] of this.writes) {
      if (!key.startsWith(prefix)) continue;
      if (w === undefined) byKey.delete(key);
      else byKey.set(key, { key, value: w.value, modRevision: 0, createRevision: byKey.get(key)?.createRevision ?? 0 });
    }
    return [...byKey.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  put(key: string, value: unknown): void {
    this.writes.set(key, { value: structuredClone(value) });
  }

  delete(key: string): void {
    this.writes.set(key, undefined);
  }
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
