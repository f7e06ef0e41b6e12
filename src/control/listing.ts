/**
 * One store read of a large prefix (every endpoint: ~28 MB of JSON at 50,000) shared by every listing that
 * may use it. After a server restart every agent lists at once; read and parsed per request, that was a
 * thousand reads of the whole prefix. Here:
 * - a request that arrives while a read is running waits for the next read, which starts when that one ends
 *   and serves everyone who queued meanwhile (a read begun before a request arrived may predate a write its
 *   caller made just before, so joining it could hide the caller's own write);
 * - a request that finds the store at the revision of the last read gets that read: nothing committed since;
 *   nor when all that was committed since is other keys (`unchanged`: heartbeats move the revision many
 *   times a second in a large cluster, and each move made the next listing read every endpoint again);
 * Whatever the arrival pattern, at most one read runs and one waits. A snapshot is kept `keepMs` after its
 * last use, then dropped (its memory is the listing's). Snapshots are shared: callers must not change them.
 */
export interface Snapshot<T> {
  readonly items: readonly T[];
  readonly revision: number;
  /** The items grouped by `keyOf` (e.g. by host), computed once per snapshot and key function name. */
  grouped(name: string, keyOf: (x: T) => string): ReadonlyMap<string, readonly T[]>;
  /** `make()` once per snapshot and `key` (the same serialized answer for everyone asking the same), the last `MEMO_ENTRIES` kept. */
  memo(key: string, make: () => string): string;
}

/** Serialized answers kept per snapshot: each at most the whole listing, so this bounds their memory. */
export const MEMO_ENTRIES = 8;

class Snap<T> implements Snapshot<T> {
  private readonly groups = new Map<string, Map<string, T[]>>();
  private readonly memos = new Map<string, string>();

  constructor(readonly items: readonly T[], readonly revision: number) {}

  grouped(name: string, keyOf: (x: T) => string): ReadonlyMap<string, readonly T[]> {
    let g = this.groups.get(name);
    if (!g) {
      g = new Map();
      for (const x of this.items) {
        const k = keyOf(x);
        const list = g.get(k);
        if (list) list.push(x);
        else g.set(k, [x]);
      }
      this.groups.set(name, g);
    }
    return g;
  }

  memo(key: string, make: () => string): string {
    const hit = this.memos.get(key);
    if (hit !== undefined) {
      this.memos.delete(key);
      this.memos.set(key, hit);
      return hit;
    }
    const text = make();
    this.memos.set(key, text);
    for (const old of this.memos.keys()) {
      if (this.memos.size <= MEMO_ENTRIES) break;
      this.memos.delete(old);
    }
    return text;
  }
}

export class SharedListing<T> {
  private last: Snap<T> | undefined;
  private running: Promise<Snap<T>> | undefined;
  private queued: Promise<Snap<T>> | undefined;
  private expiry: NodeJS.Timeout | undefined;

  /**
   * `unchanged(at, now)`: whether nothing the listing holds changed after revision `at` up to `now` (the
   * store's revision moved for other keys only); absent, any move of the revision reads again.
   */
  constructor(
    private readonly read: () => Promise<{ items: T[]; revision: number }>,
    private readonly revision: () => Promise<number>,
    private readonly keepMs = 10_000,
    private readonly unchanged?: (at: number, now: number) => boolean,
  ) {}

  async get(): Promise<Snapshot<T>> {
    if (this.running) return this.next();
    const last = this.last;
    if (last) {
      const now = await this.revision();
      if ((now === last.revision || this.unchanged?.(last.revision, now)) && this.last === last) return this.keep(last);
    }
    return this.running ? this.next() : this.start();
  }

  private next(): Promise<Snap<T>> {
    const running = this.running as Promise<Snap<T>>;
    this.queued ??= running.catch(() => undefined).then(() => {
      this.queued = undefined;
      return this.start();
    });
    return this.queued;
  }

  private start(): Promise<Snap<T>> {
    const p = this.read().then((l) => this.keep(new Snap(l.items, l.revision)));
    this.running = p;
    const done = () => {
      if (this.running === p) this.running = undefined;
    };
    p.then(done, done);
    return p;
  }

  private keep(s: Snap<T>): Snap<T> {
    this.last = s;
    clearTimeout(this.expiry);
    this.expiry = setTimeout(() => {
      if (this.last === s) this.last = undefined;
    }, this.keepMs);
    this.expiry.unref();
    return s;
  }
}
