import { expandDeleted, type BufferedTxn, type Reads } from './buffered.js';
import type { Change, Entry } from './port.js';

/** How the overlay reads what is committed: synchronous, as better-sqlite3 reads. */
export interface CommittedReads {
  key(key: string): Entry | undefined;
  scan(prefix: string): Entry[];
  ceiling(prefix: string, key: string): Entry | undefined;
  /** The keys under a prefix, sorted, without their values. */
  keys(prefix: string): string[];
  /** `key`'s entry with a frozen value that other readers may be given too (Txn.getShared). */
  shared?(key: string): Entry | undefined;
  /** `key`'s create revision, undefined if it does not exist: what `key` tells without parsing the value. */
  created?(key: string): number | undefined;
}

/** A change planned in a batch, with the JSON text it stores and logs. */
export type PlannedChange = Change & { text: string };

/** A key written by an earlier transaction of the batch: its stored text and revisions, or gone (null). */
export type Written = { text: string; modRevision: number; createRevision: number } | null;

const byKey = (a: Entry, b: Entry) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);

/**
 * What the store would hold if the transactions already planned in a batch had committed, read over what
 * has: each transaction of a group commit reads its predecessors' writes (with the revisions they will
 * have) while none of them is durable yet, and readers outside the batch see only committed data. Values
 * are kept as their JSON text and parsed on each read, as the store reads them, so no reader can change
 * what another one sees.
 */
export class Overlay implements Reads {
  private readonly written: Map<string, Written>;

  /** `pending`: writes of a batch still committing, read as if they were committed (see pendingOver). */
  constructor(private readonly base: CommittedReads, pending?: ReadonlyMap<string, Written>) {
    this.written = new Map(pending);
  }

  private entry(key: string, w: NonNullable<Written>): Entry {
    return { key, value: JSON.parse(w.text), modRevision: w.modRevision, createRevision: w.createRevision };
  }

  read(key: string): Entry | undefined {
    const w = this.written.get(key);
    if (w === undefined) return this.base.key(key);
    return w === null ? undefined : this.entry(key, w);
  }

  scan(prefix: string): Entry[] {
    const base = this.base.scan(prefix);
    if (this.written.size === 0) return base;
    const out = new Map(base.map((e) => [e.key, e]));
    for (const [key, w] of this.written) {
      if (!key.startsWith(prefix)) continue;
      if (w === null) out.delete(key);
      else out.set(key, this.entry(key, w));
    }
    return [...out.values()].sort(byKey);
  }

  /** The smallest key >= `key` under `prefix`: the committed one not deleted here, or one written here. */
  ceilingOf(prefix: string, key: string): Entry | undefined {
    const from = key > prefix ? key : prefix;
    let b = this.base.ceiling(prefix, from);
    while (b && this.written.get(b.key) === null) b = this.base.ceiling(prefix, `${b.key}\u0000`);
    let mine: string | undefined;
    for (const [k, w] of this.written) if (w !== null && k.startsWith(prefix) && k >= from && (mine === undefined || k < mine)) mine = k;
    const k = b && (mine === undefined || b.key < mine) ? b.key : mine;
    return k === undefined ? undefined : this.read(k);
  }

  /** Every key the batch wrote, as it stands after all of it (what the store's table must hold). */
  final(): ReadonlyMap<string, Written> {
    return this.written;
  }

  key = async (k: string) => this.read(k);
  /** Written earlier in the batch: parsed from its text, as `key`; committed: the store's shared entry. */
  shared = async (k: string) => (this.written.has(k) || !this.base.shared ? this.read(k) : this.base.shared(k));
  prefix = async (p: string) => this.scan(p);
  ceiling = async (p: string, k: string) => this.ceilingOf(p, k);

  /**
   * The changes a finished transaction makes at `revision`, as the store logs them (its prefix deletes
   * expanded first, a delete of a missing key dropped), applied to the overlay for the transactions after
   * it.
   */
  plan(tx: BufferedTxn, revision: number, actor: string, time: string): PlannedChange[] {
    const deletes = expandDeleted(tx, (p) => this.keysUnder(p)).map((k): [string, undefined] => [k, undefined]);
    const changes: PlannedChange[] = [];
    const next = new Map<string, Written>();
    for (const [key, w] of [...deletes, ...tx.writes]) {
      if (w === undefined) {
        const old = next.has(key) ? next.get(key) : this.prior(key);
        if (!old) continue;
        const text = 'text' in old ? old.text : JSON.stringify(old.value);
        next.set(key, null);
        changes.push({ revision, key, op: 'delete', value: JSON.parse(text), actor, time, text });
      } else {
        // A put needs only whether the key was there and since when: its value is not parsed.
        const created = next.has(key) ? next.get(key)?.createRevision : this.createdOf(key);
        next.set(key, { text: w.text, modRevision: revision, createRevision: created ?? revision });
        changes.push({ revision, key, op: 'put', value: JSON.parse(w.text), actor, time, text: w.text });
      }
    }
    for (const [k, w] of next) this.written.set(k, w);
    return changes;
  }

  keysUnder(prefix: string): string[] {
    const keys = this.base.keys(prefix);
    if (this.written.size === 0) return keys;
    const out = new Set(keys);
    for (const [k, w] of this.written) {
      if (!k.startsWith(prefix)) continue;
      if (w === null) out.delete(k);
      else out.add(k);
    }
    return [...out].sort();
  }

  /** `key`'s create revision before the transaction being planned (undefined: it does not exist). */
  createdOf(key: string): number | undefined {
    const w = this.written.get(key);
    if (w !== undefined) return w === null ? undefined : w.createRevision;
    return this.base.created ? this.base.created(key) : this.base.key(key)?.createRevision;
  }

  /** What `key` holds before the transaction being planned: written earlier in the batch, or committed. */
  private prior(key: string): Written | Entry | undefined {
    const w = this.written.get(key);
    return w !== undefined ? w : this.base.key(key);
  }
}

/**
 * What the next batch plans on while the batch before it commits: that batch's writes (`pending`, its
 * overlay's final()) over the committed state. The next batch is acknowledged only after that one.
 */
export function pendingOver(base: CommittedReads, pending: ReadonlyMap<string, Written>): CommittedReads {
  if (pending.size === 0) return base;
  const o = new Overlay(base, pending);
  const shared = base.shared;
  return {
    key: (k) => o.read(k), scan: (p) => o.scan(p), ceiling: (p, k) => o.ceilingOf(p, k), keys: (p) => o.keysUnder(p), created: (k) => o.createdOf(k),
    ...(shared ? { shared: (k: string) => (pending.has(k) ? o.read(k) : shared(k)) } : {}),
  };
}
