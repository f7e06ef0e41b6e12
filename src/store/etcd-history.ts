import type { Etcd3, IKeyValue } from 'etcd3';
import { WeftError } from '../model/index.js';
import { isNoSpace } from './etcd-faults.js';
import type { Change } from './port.js';

export type WatchEvent = { type: string; kv: IKeyValue; prev_kv?: IKeyValue };

/** How long a read of etcd's history may take before the store counts as unavailable. */
export const HISTORY_TIMEOUT_MS = 10_000;

/**
 * Every failure of etcd itself (unreachable, no leader, a call that timed out) is the store being
 * unavailable: retryable, 503 and CNI 11, never a conflict or an internal error. Past its space quota etcd
 * refuses every write until an operator frees space, which the error says (and where, when the caller
 * knows: `at`). A WeftError passes as it is.
 */
export function unavailable(e: unknown, at = 'etcd'): never {
  if (e instanceof WeftError) throw e;
  const m = e instanceof Error ? e.message : String(e);
  // etcd's own bounds on one transaction (etcd-txn.ts checks them before sending): retrying will not help.
  if (/too many operations in txn|request is too large/i.test(m)) {
    throw new WeftError('WEFT_TOO_LARGE', `${at} refused the change as one transaction (${m}); make it in smaller parts`, { cause: e });
  }
  if (isNoSpace(e)) {
    throw new WeftError('WEFT_STORE_FULL', `${at}: etcd's space quota (--quota-backend-bytes) is exhausted (${m}); etcd raised its NOSPACE alarm and refuses `
      + 'every write until an operator frees space: compact its history, defragment each member, then disarm the alarm '
      + '(etcdctl compaction, etcdctl defrag, etcdctl alarm disarm); reads still work', { cause: e });
  }
  throw new WeftError('WEFT_STORE_UNAVAILABLE', `${at}: ${m}; retry`, { cause: e });
}

/** An etcd call whose failure is the store being unavailable (or full). */
export const call = <T>(p: Promise<T>, at?: string): Promise<T> => p.catch((e: unknown) => unavailable(e, at));

/** etcd's answer to a read at a revision it has compacted away ("required revision has been compacted"). */
export const isCompacted = (e: Error): boolean => /compact/i.test(e.message);

/**
 * Whether etcd has compacted away etcd revision `rev`. A watch etcd cancels for that reason says nothing
 * of it (etcd 3.4 sends an empty cancel reason with the compact revision, which the client drops), so the
 * reason is asked by a read at that revision; a revision still to come is not compacted.
 */
export async function compactedAt(client: Etcd3, key: string, rev: number): Promise<boolean> {
  try {
    await client.get(key).revision(String(rev)).exec();
    return false;
  } catch (e) {
    if (e instanceof Error && isCompacted(e)) return true;
    if (e instanceof Error && /future revision/i.test(e.message)) return false;
    return unavailable(e);
  }
}

function historyError(e: Error): WeftError {
  if (isCompacted(e)) return new WeftError('WEFT_HISTORY_COMPACTED', 'history compacted; re-list', { cause: e });
  try { return unavailable(e); } catch (w) { return w as WeftError; }
}

export interface HistoryRead {
  prefix: string;
  /** etcd revisions: read from `from` until an event at `to` or later, or until `limit` changes are in. */
  from: number;
  to: number;
  limit: number;
  decode: (events: WatchEvent[]) => Change[];
  timeoutMs?: number;
}

/**
 * Reads revisions of etcd's history through a watch (etcd never splits a revision across responses). The
 * deadline covers the watch's creation too: with etcd unreachable the client would wait for it forever.
 */
export function readHistory(client: Etcd3, r: HistoryRead): Promise<Change[][]> {
  return new Promise((resolve, reject) => {
    const byRev: Change[][] = [];
    let finished = false;
    let cancel: () => Promise<void> = async () => undefined;
    // Settles at once; the watch is cancelled behind, unless etcd already cancelled it (a second cancel
    // of its id makes etcd answer for a watcher the client no longer knows: an unhandled rejection).
    const finish = (settle: () => void, cancelled = false) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      if (!cancelled) void cancel().catch(() => undefined);
      settle();
    };
    const timer = setTimeout(() => finish(() => reject(new WeftError('WEFT_STORE_UNAVAILABLE', `reading the change history from etcd took longer than ${(r.timeoutMs ?? HISTORY_TIMEOUT_MS) / 1000} s; retry`))), r.timeoutMs ?? HISTORY_TIMEOUT_MS);
    const w = client.watch().prefix(r.prefix).startRevision(String(r.from)).withPreviousKV();
    w.create().then((watcher) => {
      cancel = () => watcher.cancel();
      if (finished) { void cancel().catch(() => undefined); return; }
      let count = 0;
      watcher.on('data', (res) => {
        const batch = r.decode(res.events ?? []);
        if (batch.length) byRev.push(batch);
        count += batch.length;
        if (count >= r.limit || (res.events ?? []).some((e) => Number(e.kv.mod_revision) >= r.to)) finish(() => resolve(byRev));
      });
      watcher.on('error', (e) => void explain(e).then((err) => finish(() => reject(err), true)));
    }, (e: Error) => void explain(e).then((err) => finish(() => reject(err))));
    const explain = (e: Error): Promise<WeftError> => compactedAt(client, r.prefix, r.from).then(
      (gone) => (gone ? new WeftError('WEFT_HISTORY_COMPACTED', 'history compacted; re-list', { cause: e }) : historyError(e)), historyError);
  });
}
