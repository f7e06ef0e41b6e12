/**
 * Fills and frees an etcd's space quota (`--quota-backend-bytes`) through etcd's JSON gateway, with plain
 * fetch (no etcdctl, no argv): the "full disk" fault of the etcd store, for tests and the chaos suite.
 * Filler keys live under a prefix of their own, outside Weft's `/weft/`, so freeing removes only them.
 * Plain-HTTP etcd only (the lab's and the tests'); every call is bounded by a timeout.
 *
 * What etcd does when full: the put that would pass the quota fails with "mvcc: database space exceeded"
 * and raises the cluster-wide NOSPACE alarm; from then on every write (put, txn with a put, lease grant)
 * is refused until an operator disarms the alarm, while reads, deletes and watches go on. Deleting keys
 * alone gives no space back: the old revisions must be compacted and each member defragmented first,
 * then the alarm disarmed (`freeEtcd`, the runbook of etcd's maintenance guide).
 */

export const FILLER_PREFIX = '/weft-filler/';

export interface EtcdAlarm { memberID: string; alarm: string }

interface GatewayAnswer { header?: { revision?: string }; error?: string; message?: string; [k: string]: unknown }

const b64 = (s: string | Buffer): string => Buffer.from(s).toString('base64');

/** The first key after every key that starts with `prefix` (etcd's range_end for a prefix). */
function prefixEnd(prefix: string): Buffer {
  const end = Buffer.from(prefix);
  end[end.length - 1] = (end[end.length - 1] ?? 0) + 1;
  return end;
}

/** One gateway call; etcd's refusals come back as `{error}` (with HTTP 200 or an error status), thrown as Errors. */
async function gateway(url: string, path: string, body: unknown, timeoutMs = 10_000): Promise<GatewayAnswer> {
  const res = await fetch(`${url.replace(/\/$/, '')}${path}`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(timeoutMs),
  });
  const json = (await res.json().catch(() => ({ error: `answered ${res.status} without JSON` }))) as GatewayAnswer;
  if (json.error !== undefined || !res.ok) throw new Error(`etcd ${url}${path}: ${json.error ?? json.message ?? res.status}`);
  return json;
}

export const isNoSpace = (e: unknown): boolean => /database space exceeded/i.test(String((e as Error)?.message ?? e));

/** The alarms etcd has raised (one per member and kind: NOSPACE, CORRUPT). */
export async function etcdAlarms(url: string): Promise<EtcdAlarm[]> {
  const r = await gateway(url, '/v3/maintenance/alarm', { action: 'GET' });
  return ((r['alarms'] as EtcdAlarm[] | undefined) ?? []).map((a) => ({ memberID: String(a.memberID), alarm: String(a.alarm ?? 'NONE') }));
}

/**
 * Puts `valueBytes`-sized keys under `prefix` until etcd refuses one for lack of space, then checks that
 * the NOSPACE alarm is up. Stops with an error past `maxBytes` (a real etcd with the default 2 GiB quota
 * is not what this is for). Returns what it wrote.
 */
export async function fillEtcd(url: string, prefix = FILLER_PREFIX, opts: { valueBytes?: number; maxBytes?: number } = {}): Promise<{ keys: number; bytes: number }> {
  const size = opts.valueBytes ?? 256 * 1024;
  const max = opts.maxBytes ?? 512 * 1024 * 1024;
  const value = b64(Buffer.alloc(size, 'x'));
  let keys = 0;
  for (let bytes = 0; bytes <= max; bytes += size) {
    try {
      await gateway(url, '/v3/kv/put', { key: b64(`${prefix}${String(keys).padStart(8, '0')}`), value });
    } catch (e) {
      if (!isNoSpace(e)) throw e;
      if (!(await etcdAlarms(url)).some((a) => a.alarm === 'NOSPACE')) throw new Error(`etcd ${url} refused a put for space but raised no NOSPACE alarm`);
      return { keys, bytes };
    }
    keys++;
  }
  throw new Error(`etcd ${url} took ${max} bytes under ${prefix} without running out of space; start it with a small --quota-backend-bytes`);
}

/**
 * The operator's way out of NOSPACE: delete the filler, compact the history up to now (physically), defragment
 * every member (`urls`: all of them, since each holds its own backend file), then disarm every NOSPACE alarm.
 * Compaction is keyspace-wide: watchers of older revisions are told to re-list, which Weft handles.
 */
export async function freeEtcd(urls: string[], prefix = FILLER_PREFIX): Promise<{ deleted: number }> {
  const [first] = urls;
  if (first === undefined) throw new Error('freeEtcd: no etcd URL');
  const del = await gateway(first, '/v3/kv/deleterange', { key: b64(prefix), range_end: b64(prefixEnd(prefix)) });
  const revision = del.header?.revision;
  try {
    await gateway(first, '/v3/kv/compaction', { revision, physical: true }, 60_000);
  } catch (e) {
    // Someone compacted further already: the space is as free as compaction can make it.
    if (!/compacted/i.test((e as Error).message)) throw e;
  }
  for (const url of urls) await gateway(url, '/v3/maintenance/defragment', {}, 60_000);
  for (const a of await etcdAlarms(first)) {
    if (a.alarm === 'NOSPACE') await gateway(first, '/v3/maintenance/alarm', { action: 'DEACTIVATE', memberID: a.memberID, alarm: 'NOSPACE' });
  }
  return { deleted: Number(del['deleted'] ?? 0) };
}
