import { WeftError } from '../model/index.js';
import { BufferedTxn, Mutex, expandDeleted } from './buffered.js';
import { changeBytes, trimPoint, type HistoryBounds } from './history.js';
import { DEFAULT_HISTORY_BYTES, DEFAULT_HISTORY_LIMIT, type Change, type Entry, type Listing, type Store, type StoreOptions, type Txn, type WriteHealth } from './port.js';

/** The store in memory: for unit tests and throw-away servers. */
export class MemoryStore implements Store {
  private readonly data = new Map<string, Entry>();
  private log: Change[] = [];
  /** Bytes of each change in `log`, same order. */
  private sizes: number[] = [];
  private logBytes = 0;
  private rev = 0;
  private compacted = 0;
  private readonly mutex = new Mutex();
  private readonly listeners = new Set<(c: Change[]) => void>();
  private readonly bounds: HistoryBounds;
  private readonly clock: () => Date;

  constructor(options: StoreOptions = {}) {
    this.bounds = { limit: options.historyLimit ?? DEFAULT_HISTORY_LIMIT, bytes: options.historyBytes ?? DEFAULT_HISTORY_BYTES };
    this.clock = options.clock ?? (() => new Date());
  }

  async get(key: string): Promise<Entry | undefined> {
    const e = this.data.get(key);
    return e && { ...e, value: structuredClone(e.value) };
  }

  async list(prefix: string): Promise<Listing> {
    return { entries: this.scan(prefix), revision: this.rev };
  }

  private scan(prefix: string): Entry[] {
    const out: Entry[] = [];
    for (const e of this.data.values()) if (e.key.startsWith(prefix)) out.push({ ...e, value: structuredClone(e.value) });
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  private ceiling(prefix: string, key: string): Entry | undefined {
    let best: Entry | undefined;
    for (const e of this.data.values()) if (e.key.startsWith(prefix) && e.key >= key && (!best || e.key < best.key)) best = e;
    return best && { ...best, value: structuredClone(best.value) };
  }

  transact<T>(actor: string, fn: (tx: Txn) => Promise<T>): Promise<{ value: T; revision: number }> {
    return this.mutex.run(async () => {
      const tx = new BufferedTxn({ key: (k) => this.get(k), prefix: async (p) => this.scan(p), ceiling: async (p, k) => this.ceiling(p, k) });
      const value = await fn(tx);
      if (tx.empty) return { value, revision: this.rev };
      const revision = this.rev + 1;
      const time = this.clock().toISOString();
      const changes: Change[] = [];
      for (const key of expandDeleted(tx, (p) => this.scan(p).map((e) => e.key))) {
        const old = this.data.get(key);
        if (!old) continue;
        this.data.delete(key);
        changes.push({ revision, key, op: 'delete', value: old.value, actor, time });
      }
      for (const [key, w] of tx.writes) {
        const old = this.data.get(key);
        if (w === undefined) {
          if (!old) continue;
          this.data.delete(key);
          changes.push({ revision, key, op: 'delete', value: old.value, actor, time });
        } else {
          // Kept as the other stores keep it: what its JSON text reads back as.
          const value = JSON.parse(w.text);
          this.data.set(key, { key, value, modRevision: revision, createRevision: old?.createRevision ?? revision });
          changes.push({ revision, key, op: 'put', value: JSON.parse(w.text), actor, time });
        }
      }
      if (changes.length === 0) return { value, revision: this.rev };
      this.rev = revision;
      for (const c of changes) {
        const size = changeBytes(c.key, JSON.stringify(c.value));
        this.log.push(c);
        this.sizes.push(size);
        this.logBytes += size;
      }
      this.compact();
      for (const l of this.listeners) l(changes);
      return { value, revision };
    });
  }

  private compact(): void {
    const log = this.log;
    const sizes = this.sizes;
    // Lazily: trimPoint stops at the first revision it keeps, so a commit costs O(dropped), not O(log).
    const rows = (function* () { for (let i = 0; i < log.length; i++) yield { rev: log[i]!.revision, bytes: sizes[i] ?? 0 }; })();
    const { upTo, dropped } = trimPoint(rows, { compacted: this.compacted, keptBytes: this.logBytes, newest: this.rev }, this.bounds);
    if (upTo <= this.compacted) return;
    const keep = this.log.findIndex((c) => c.revision > upTo);
    const cut = keep < 0 ? this.log.length : keep;
    this.log = this.log.slice(cut);
    this.sizes = this.sizes.slice(cut);
    this.logBytes -= dropped;
    this.compacted = upTo;
  }

  async changes(since: number, limit = Number.MAX_SAFE_INTEGER): Promise<Change[]> {
    if (since < this.compacted) {
      throw new WeftError('WEFT_HISTORY_COMPACTED', `revision ${since} is older than the kept history (from ${this.compacted + 1}); re-list`);
    }
    const out: Change[] = [];
    for (const c of this.log) {
      if (c.revision <= since) continue;
      // Never split one revision across pages: a reader resumes from the last whole revision.
      if (out.length >= limit && c.revision !== out[out.length - 1]?.revision) break;
      out.push(c);
    }
    return out;
  }

  async compactedRevision(): Promise<number> {
    return this.compacted;
  }

  async revision(): Promise<number> {
    return this.rev;
  }

  subscribe(listener: (changes: Change[]) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Memory never fills up here; tests that need a full store override these two. */
  writeHealth(): WriteHealth {
    return { writable: true, failures: 0 };
  }

  async probe(): Promise<WriteHealth> {
    return this.writeHealth();
  }

  async close(): Promise<void> {
    this.listeners.clear();
  }
}
