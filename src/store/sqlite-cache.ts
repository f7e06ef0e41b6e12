import type { StoredRow } from './sqlite-write.js';

/** A row of the kv table as SQLite returns it. */
export interface KvRow { key: string; value: string; mod_rev: number; create_rev: number }

/** Rows the batches' read cache keeps at most (a few MB); a listing larger than a quarter of it is not kept. */
const MAX_CACHED = 20_000;
/** Listings kept at most: a commit checks each of its keys against every one. */
const MAX_PREFIXES = 256;

/**
 * The committed rows the batches read most (a tenant, its networks, address books, group listings), and
 * every key there is (as etcd keeps its key index in memory): every write to the file goes through this
 * store's batches, so each commit updates them exactly, in order. A key a batch in flight writes is read
 * from that batch (pendingOver) or from SQLite (SqliteStore.get), never from here, so every other answer
 * is what SQLite would give, without asking it: a key that does not exist (a new endpoint's) is known
 * absent at once. Only keys and prefixes read before keep their rows, up to MAX_CACHED rows.
 */
export class RowCache {
  private readonly keys = new Map<string, KvRow | undefined>();
  private readonly prefixes = new Map<string, KvRow[]>();
  private size = 0;
  /** Every key in the table, loaded on first use. */
  private known: Set<string> | undefined;

  constructor(private readonly allKeys: () => string[]) {}

  row(key: string, load: () => KvRow | undefined): KvRow | undefined {
    if (this.keys.has(key)) return this.keys.get(key);
    this.known ??= new Set(this.allKeys());
    if (!this.known.has(key)) return undefined;
    const r = load();
    if (r) this.keep(() => this.keys.set(key, r), 1);
    return r;
  }

  rows(prefix: string, load: () => KvRow[]): KvRow[] {
    const cached = this.prefixes.get(prefix);
    if (cached) return cached;
    const rs = load();
    if (this.prefixes.size >= MAX_PREFIXES) this.dropRows();
    this.keep(() => this.prefixes.set(prefix, rs), rs.length + 1);
    return rs;
  }

  private keep(add: () => void, n: number): void {
    if (n > MAX_CACHED / 4) return;
    if (this.size + n > MAX_CACHED) this.dropRows();
    add();
    this.size += n;
  }

  /** A commit's rows: kept keys take their new state, listings under a written key are dropped. */
  committed(rows: readonly StoredRow[]): void {
    for (const [key, text, mod, create] of rows) {
      if (text === null) this.known?.delete(key);
      else this.known?.add(key);
      if (this.keys.has(key)) this.keys.set(key, text === null ? undefined : { key, value: text, mod_rev: mod, create_rev: create });
      for (const [p, rs] of this.prefixes) {
        if (!key.startsWith(p)) continue;
        this.prefixes.delete(p);
        this.size -= rs.length + 1;
      }
    }
  }

  private dropRows(): void {
    this.keys.clear();
    this.prefixes.clear();
    this.size = 0;
  }
}

