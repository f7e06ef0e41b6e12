import { Range, type Etcd3, type IKeyValue } from 'etcd3';
import { BufferedTxn } from './buffered.js';
import { WeftError } from '../model/index.js';
import { call } from './etcd-history.js';
import type { Entry } from './port.js';

/** How the etcd store names things in etcd: data keys, prefix guards, and how a key-value reads back. */
export interface Keyspace {
  client: Etcd3;
  /** The etcd's --max-txn-ops (ETCD_MAX_TXN_OPS unless the server was told otherwise). */
  maxTxnOps: number;
  d(key: string): string;
  guard(prefix: string): string;
  entry(kv: IKeyValue): Entry;
}

type Comparator = ReturnType<Etcd3['if']>;
type Op = ReturnType<Etcd3['put']> | ReturnType<Etcd3['delete']>;

/**
 * etcd's bounds on one transaction, at its defaults (--max-txn-ops, --max-request-bytes). A transaction
 * past them is refused here, before it is sent: etcd would refuse it anyway, and a request past gRPC's
 * own limit (2 MiB) fails as "resource exhausted", which the etcd client retries and then counts against
 * the connection, cutting this server off etcd for seconds.
 */
export const ETCD_MAX_TXN_OPS = 128;
export const ETCD_MAX_REQUEST_BYTES = 1.5 * 1024 * 1024;

function tooLarge(what: string, maxTxnOps: number): WeftError {
  const ops = maxTxnOps === ETCD_MAX_TXN_OPS ? `--max-txn-ops ${ETCD_MAX_TXN_OPS} operations (its default; if etcd runs with more, tell the server: --etcd-max-txn-ops)` : `--max-txn-ops ${maxTxnOps} operations (--etcd-max-txn-ops)`;
  return new WeftError('WEFT_TOO_LARGE', `the change is too large for one etcd transaction (${what}; etcd takes at most ${ops} and --max-request-bytes ${ETCD_MAX_REQUEST_BYTES} bytes): make it in smaller parts`);
}

/** Every prefix of `key` that ends at a `/` (a key `a/b/c` has `a/` and `a/b/`; a prefix `a/b/` has both too). */
function guardPrefixes(key: string): string[] {
  const parts = key.split('/');
  return parts.slice(1).map((_, i) => `${parts.slice(0, i + 1).join('/')}/`);
}

/** The byte after every string that starts with `s`: Range.prefix's end. */
const endOf = (s: string): Buffer => Range.prefix(s).end;

/**
 * One attempt of an optimistic transaction on etcd: it records the mod revision of every key read and of
 * every listed prefix's guard, and turns the buffered writes into one etcd transaction guarded by them.
 */
export class EtcdAttempt {
  private readonly keysRead = new Map<string, number>();
  private readonly guardsRead = new Map<string, number>();
  readonly tx: BufferedTxn;

  constructor(private readonly ks: Keyspace) {
    const { client } = ks;
    this.tx = new BufferedTxn({
      key: async (k) => {
        const r = await call(client.get(ks.d(k)).exec());
        this.noteRead(this.keysRead, k, Number(r.kvs[0]?.mod_revision ?? 0));
        return r.kvs[0] && ks.entry(r.kvs[0]);
      },
      prefix: async (p) => {
        const [r] = await call(Promise.all([client.getAll().prefix(ks.d(p)).exec(), this.readGuard(p)]));
        return r.kvs.map((kv) => ks.entry(kv)).sort((a, b) => (a.key < b.key ? -1 : 1));
      },
      ceiling: async (p, k) => {
        const start = k > p ? ks.d(k) : ks.d(p);
        // No sort: etcd answers a range in key order and stops at the limit (a sorted read fetches it all).
        const [r] = await call(Promise.all([client.getAll().inRange({ start, end: endOf(ks.d(p)) }).limit(1).exec(), this.readGuard(p)]));
        return r.kvs[0] && ks.entry(r.kvs[0]);
      },
    });
  }

  private async readGuard(p: string): Promise<void> {
    const g = await this.ks.client.get(this.ks.guard(p)).exec();
    this.noteRead(this.guardsRead, p, Number(g.kvs[0]?.mod_revision ?? 0));
  }

  /**
   * The revision a key or guard had when this attempt first read it: the commit insists on that one. A
   * later read (a key read again after this transaction wrote it, for its create revision; a prefix listed
   * twice) must not replace it: a change another server made in between would then pass the compare, and
   * whatever was decided on the first read would commit on stale data (two overlapping group pools were
   * both made that way, one on each of two servers).
   */
  private noteRead(reads: Map<string, number>, k: string, mod: number): void {
    if (!reads.has(k)) reads.set(k, mod);
  }

  /**
   * The guarded transaction that commits the writes, or undefined when they would change nothing (wrapped:
   * etcd3's transaction builder is a thenable, which an async function would run).
   */
  async plan(base: Comparator, last: Op): Promise<{ txn: Comparator } | undefined> {
    const guards = new Set<string>();
    const ops = [...(await this.prefixDeletes(guards)), ...(await this.keyWrites(guards))];
    if (ops.length === 0) return undefined;
    const max = this.ks.maxTxnOps;
    if (ops.length + guards.size + 1 > max) throw tooLarge(`${ops.length + guards.size + 1} operations`, max);
    if (this.keysRead.size + this.guardsRead.size + 1 > max) throw tooLarge(`${this.keysRead.size + this.guardsRead.size + 1} keys to compare`, max);
    const { client, d, guard } = this.ks;
    let cmp = base;
    for (const [k, mod] of this.keysRead) cmp = mod === 0 ? cmp.and(d(k), 'Version', '==', 0) : cmp.and(d(k), 'Mod', '==', mod);
    for (const [p, mod] of this.guardsRead) cmp = mod === 0 ? cmp.and(guard(p), 'Version', '==', 0) : cmp.and(guard(p), 'Mod', '==', mod);
    for (const g of guards) ops.push(client.put(guard(g)).value(''));
    return { txn: cmp.then(...ops, last) };
  }

  /**
   * Prefix deletes come first, as the other stores log them: each an etcd delete-range around the keys this
   * transaction writes itself (etcd refuses a put inside a range the same transaction deletes), guarded
   * like a listing of the prefix; an empty prefix is no operation.
   */
  private async prefixDeletes(guards: Set<string>): Promise<Op[]> {
    const { client, d } = this.ks;
    const ops: Op[] = [];
    for (const p of this.tx.deleted) {
      if (!this.guardsRead.has(p)) await call(this.readGuard(p));
      if ((await call(client.getAll().prefix(d(p)).count())) === 0) continue;
      const kept = [...this.tx.writes.keys()].filter((k) => k.startsWith(p)).sort();
      let start: Buffer = Buffer.from(d(p));
      for (const k of [...kept.map((x) => Buffer.from(d(x))), endOf(d(p))]) {
        if (Buffer.compare(start, k) < 0) ops.push(client.delete().range(new Range(start, k)));
        start = Buffer.concat([k, Buffer.from([0])]);
      }
      for (const g of guardPrefixes(p)) guards.add(g);
    }
    return ops;
  }

  /** The puts and deletes of single keys, in the order written; refused past etcd's request bytes. */
  private async keyWrites(guards: Set<string>): Promise<Op[]> {
    const { client, d } = this.ks;
    const ops: Op[] = [];
    let bytes = 0;
    for (const [k, w] of this.tx.writes) {
      if (w === undefined && !this.keysRead.has(k)) {
        // A delete of a key never read: drop it if the key does not exist (and insist it still does not).
        const r = await call(client.get(d(k)).exec());
        this.keysRead.set(k, Number(r.kvs[0]?.mod_revision ?? 0));
        if (!r.kvs[0]) continue;
      }
      const text = w === undefined ? '' : `{"v":${w.text}}`;
      bytes += Buffer.byteLength(d(k)) + Buffer.byteLength(text);
      if (bytes > ETCD_MAX_REQUEST_BYTES) throw tooLarge(`more than ${ETCD_MAX_REQUEST_BYTES} bytes`, this.ks.maxTxnOps);
      ops.push(w === undefined ? client.delete().key(d(k)) : client.put(d(k)).value(text));
      for (const g of guardPrefixes(k)) guards.add(g);
    }
    return ops;
  }
}
