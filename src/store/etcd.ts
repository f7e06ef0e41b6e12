import { Etcd3, type IKeyValue, type IOptions } from 'etcd3';
import { WeftError } from '../model/index.js';
import { Mutex } from './buffered.js';
import { ETCD_MAX_TXN_OPS, EtcdAttempt } from './etcd-txn.js';
import { callOptions, faultHandling } from './etcd-faults.js';
import { call, compactedAt, isCompacted, readHistory, type WatchEvent } from './etcd-history.js';
import { WriteTracker } from './health.js';
import { DEFAULT_HISTORY_LIMIT, type Change, type Entry, type Listing, type Store, type StoreOptions, type Txn, type WriteHealth } from './port.js';

/** The largest answer taken from etcd: gRPC's own ceiling (2 GiB − 1), which etcd applies to what it sends. */
const MAX_ANSWER_BYTES = 2 ** 31 - 1;

/** How to reach etcd beyond its addresses: TLS (CA, client certificate) and etcd's own user and password. */
export type EtcdConnection = Pick<IOptions, 'credentials' | 'auth'>;

/**
 * The store on etcd, for several servers sharing one state. Keys live under `PREFIX/d/`. Our revisions
 * are etcd's minus the create revision of `PREFIX/m/base`, so a new keyspace starts at 0 like the others.
 * Transactions are optimistic: each key read is compared by mod revision at commit, and each listed prefix
 * by a guard key that every write under it bumps (so an insertion another server made after our read is
 * caught too); on conflict the function runs again. `PREFIX/m/last` is written in every transaction with its
 * actor and time, which is how the change log (read back through etcd's watch history) is attributed.
 *
 * The history limit is a logical floor: revisions below it answer WEFT_HISTORY_COMPACTED, but this store never
 * calls etcd's compact, which is keyspace-wide and would take other users' history in a shared etcd (and
 * needs etcd's root role). How much history etcd keeps is etcd's own setting (--auto-compaction-*).
 */
export class EtcdStore implements Store {
  private readonly client: Etcd3;
  private base = 0;
  private readonly historyLimit: number;
  private readonly maxTxnOps: number;
  private readonly clock: () => Date;
  private readonly listeners = new Set<(c: Change[]) => void>();
  private readonly lostListeners = new Set<() => void>();
  private closed = false;
  private watcher: { cancel(): Promise<void> } | undefined;
  /** Transactions of this process run one at a time; only other servers' writes make one retry. */
  private readonly mutex = new Mutex();
  /** Highest revision the watcher has delivered; transact returns only once its commit got there. */
  private watched = 0;
  private readonly waiting = new Set<{ rev: number; done: () => void }>();
  private readonly writes = new WriteTracker();
  /** Where a write was refused, for the error: the endpoints as configured. */
  private readonly at: string;

  private constructor(endpoints: string[], private readonly prefix: string, options: StoreOptions, connection: EtcdConnection) {
    this.at = `etcd at ${endpoints.map((e) => e.replace(/^https?:\/\//, '')).join(', ')}`;
    // gRPC refuses answers past 4 MiB by default, and a list of 50,000 endpoints is ~28 MB: every agent's
    // list failed (503, forever). The store's lists are whole by contract, so take what etcd sends (its
    // own limit is 2 GiB); reading a prefix in pages would bound the memory, and is left to do.
    this.client = new Etcd3({ hosts: endpoints, dialTimeout: 3000, faultHandling: faultHandling(), defaultCallOptions: callOptions(),
      grpcOptions: { 'grpc.max_receive_message_length': MAX_ANSWER_BYTES }, ...connection });
    this.historyLimit = options.historyLimit ?? DEFAULT_HISTORY_LIMIT;
    this.maxTxnOps = options.maxTxnOps ?? ETCD_MAX_TXN_OPS;
    this.clock = options.clock ?? (() => new Date());
  }

  /** `connection`: TLS credentials (client certificate) and etcd user, passed to the etcd3 client as they are. */
  static async open(endpoints: string[], prefix = '/weft/', options: StoreOptions = {}, connection: EtcdConnection = {}): Promise<EtcdStore> {
    const s = new EtcdStore(endpoints, prefix, options, connection);
    try {
      const baseKey = `${prefix}m/base`;
      await s.client.if(baseKey, 'Version', '==', 0).then(s.client.put(baseKey).value('base')).commit();
      const r = await s.client.get(baseKey).exec();
      s.base = Number(r.kvs[0]?.create_revision ?? 0);
      await s.startWatch();
      return s;
    } catch (e) {
      s.client.close();
      throw e;
    }
  }

  private d = (key: string) => `${this.prefix}d/${key}`;
  private guard = (p: string) => `${this.prefix}g/${p}`;
  private rev = (etcdRev: string | number) => Number(etcdRev) - this.base;

  private entry(kv: IKeyValue): Entry {
    return {
      key: kv.key.toString().slice(this.d('').length),
      value: (JSON.parse(kv.value.toString()) as { v: unknown }).v,
      modRevision: this.rev(kv.mod_revision),
      createRevision: this.rev(kv.create_revision),
    };
  }

  async get(key: string): Promise<Entry | undefined> {
    const r = await call(this.client.get(this.d(key)).exec());
    return r.kvs[0] && this.entry(r.kvs[0]);
  }

  async list(prefix: string): Promise<Listing> {
    const r = await call(this.client.getAll().prefix(this.d(prefix)).exec());
    return { entries: r.kvs.map((kv) => this.entry(kv)).sort((a, b) => (a.key < b.key ? -1 : 1)), revision: this.rev(r.header.revision) };
  }

  transact<T>(actor: string, fn: (tx: Txn) => Promise<T>): Promise<{ value: T; revision: number }> {
    // An unreachable etcd counts as not writable even when it failed a read: the write could not happen either.
    return this.mutex.run(() => this.attempt(actor, fn).catch((e: unknown) => { throw this.writes.failed(e); }));
  }

  private async attempt<T>(actor: string, fn: (tx: Txn) => Promise<T>): Promise<{ value: T; revision: number }> {
    const keyspace = { client: this.client, maxTxnOps: this.maxTxnOps, d: this.d, guard: this.guard, entry: (kv: IKeyValue) => this.entry(kv) };
    for (let attempt = 0; attempt < 50; attempt++) {
      const a = new EtcdAttempt(keyspace);
      const value = await fn(a.tx);
      if (a.tx.empty) return { value, revision: await this.revision() };
      const last = this.client.put(`${this.prefix}m/last`).value(JSON.stringify({ a: actor, t: this.clock().toISOString() }));
      const planned = await a.plan(this.client.if(`${this.prefix}m/base`, 'Version', '>', 0), last);
      if (!planned) return { value, revision: await this.revision() };
      const r = await call(planned.txn.commit(), this.at);
      if (r.succeeded) {
        this.writes.wrote();
        const revision = this.rev(r.header.revision);
        await this.seen(revision);
        return { value, revision };
      }
      await new Promise((res) => setTimeout(res, Math.random() * 5 * (attempt + 1)));
    }
    throw new WeftError('WEFT_STORE_CONFLICT', 'the store stayed contended for 50 attempts; retry');
  }

  /** Replays etcd's history of our keys from `since` (exclusive) up to now, grouped and attributed per revision. */
  async changes(since: number, limit = 1_000_000): Promise<Change[]> {
    const now = await this.revision();
    if (since < (await this.compactedRevision())) {
      throw new WeftError('WEFT_HISTORY_COMPACTED', `revision ${since} is older than the kept history; re-list`);
    }
    if (since >= now) return [];
    // Every transaction writes m/last, so its mod revision is this keyspace's latest revision (other
    // keyspaces on the same etcd also advance etcd's revision, without events here).
    const last = await call(this.client.get(`${this.prefix}m/last`).exec());
    const to = last.kvs[0] ? this.rev(last.kvs[0].mod_revision) : 0;
    if (to <= since) return [];
    const all = (await this.history(since + 1, to, limit)).flat();
    const out: Change[] = [];
    for (const c of all) {
      if (out.length >= limit && c.revision !== out[out.length - 1]?.revision) break;
      out.push(c);
    }
    return out;
  }

  private history(from: number, to: number, limit: number): Promise<Change[][]> {
    return readHistory(this.client, { prefix: this.prefix, from: from + this.base, to: to + this.base, limit, decode: (ev) => this.toChanges(ev) });
  }

  /** One watch response may hold several revisions: each is attributed from its own m/last event. */
  private toChanges(events: WatchEvent[]): Change[] {
    const whoAt = new Map<string, { a: string; t: string }>();
    for (const e of events) if (e.kv.key.toString() === `${this.prefix}m/last`) whoAt.set(String(e.kv.mod_revision), JSON.parse(e.kv.value.toString()) as { a: string; t: string });
    const out: Change[] = [];
    for (const e of events) {
      const key = e.kv.key.toString();
      if (!key.startsWith(this.d(''))) continue;
      const revision = this.rev(e.kv.mod_revision);
      const who = whoAt.get(String(e.kv.mod_revision)) ?? { a: 'unknown', t: '' };
      const deleted = e.type === 'Delete' || e.type === 'DELETE' || (e.type as unknown) === 1;
      const raw = deleted ? e.prev_kv?.value : e.kv.value;
      out.push({ revision, key: key.slice(this.d('').length), op: deleted ? 'delete' : 'put', value: raw ? (JSON.parse(raw.toString()) as { v: unknown }).v : undefined, actor: who.a, time: who.t });
    }
    return out;
  }

  /** Waits (up to 5 s) until the watcher has delivered `rev` to subscribers. */
  private seen(rev: number): Promise<void> {
    if (this.watched >= rev) return Promise.resolve();
    return new Promise((resolve) => {
      const w = { rev, done: () => { clearTimeout(t); this.waiting.delete(w); resolve(); } };
      const t = setTimeout(w.done, 5000);
      this.waiting.add(w);
    });
  }

  /** Watches our keys from `from` (by default the next revision) and fans each response out to subscribers. */
  private async startWatch(from?: number): Promise<void> {
    const start = from ?? (await this.revision()) + 1;
    const watcher = await this.client.watch().prefix(this.prefix).startRevision(String(start + this.base)).withPreviousKV().create();
    if (this.closed) { await watcher.cancel(); return; }
    // etcd cancels a watch it cannot serve (after a reconnect, its next revision was compacted meanwhile);
    // the client emits that as 'error', which unhandled would take the whole server down.
    watcher.on('error', (e) => void this.rewatch(e));
    watcher.on('data', (res) => this.deliver(res.events ?? [], this.rev(res.header.revision)));
    this.watcher = watcher;
    this.advance(start - 1);
  }

  private deliver(events: WatchEvent[], header: number): void {
    const changes = this.toChanges(events);
    if (changes.length) for (const l of this.listeners) l(changes);
    this.advance(Math.max(header, ...events.map((e) => this.rev(e.kv.mod_revision))));
  }

  private advance(top: number): void {
    if (top > this.watched) this.watched = top;
    for (const w of [...this.waiting]) if (w.rev <= this.watched) w.done();
  }

  /**
   * Re-establishes a cancelled watch from the last revision delivered. If etcd no longer has that
   * revision, what happened in between cannot be delivered: subscribers are told to re-list, and the
   * watch goes on from now. Retries (each second) while etcd cannot be reached; stops when the store closes.
   */
  private async rewatch(e: Error): Promise<void> {
    this.watcher = undefined;
    let compacted = isCompacted(e);
    while (!this.closed) {
      try {
        compacted ||= await compactedAt(this.client, `${this.prefix}m/base`, this.watched + 1 + this.base);
        if (compacted) {
          await this.startWatch();
          for (const l of this.lostListeners) l();
        } else {
          await this.startWatch(this.watched + 1);
        }
        return;
      } catch (err) {
        if (err instanceof Error && isCompacted(err)) compacted = true;
        else await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }

  async compactedRevision(): Promise<number> {
    return Math.max(0, (await this.revision()) - this.historyLimit);
  }

  async revision(): Promise<number> {
    const r = await call(this.client.get(`${this.prefix}m/base`).exec());
    return this.rev(r.header.revision);
  }

  subscribe(listener: (changes: Change[]) => void, lost?: () => void): () => void {
    this.listeners.add(listener);
    if (lost) this.lostListeners.add(lost);
    return () => {
      this.listeners.delete(listener);
      if (lost) this.lostListeners.delete(lost);
    };
  }

  writeHealth(): WriteHealth {
    return this.writes.health();
  }

  /** A put outside the data keys (no watcher sees a change of ours): refused like any write while etcd is full. */
  probe(): Promise<WriteHealth> {
    return this.writes.probe(async () => { await call(this.client.put(`${this.prefix}m/probe`).value(this.clock().toISOString()).exec(), this.at); });
  }

  async close(): Promise<void> {
    this.closed = true;
    this.listeners.clear();
    this.lostListeners.clear();
    await this.watcher?.cancel();
    this.client.close();
  }
}
