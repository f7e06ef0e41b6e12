import type { Host, WireguardStatus } from '../model/index.js';
import type { Entry, Store, Txn } from '../store/index.js';
import { keys, type Stored } from './keys.js';

/**
 * A host's liveness, kept apart from its record like a Kubernetes Lease (docs/decisions.md, "Host
 * heartbeats as leases"). Every agent watches the host records, so a heartbeat that rewrote the record
 * was a watch event to every agent: at 1,000 hosts, 100 heartbeats/s × 1,000 watchers. The lease key is
 * not published (control/changes.ts knows no `leases` kind), so no watch and no history API ever shows
 * it; the record changes only when something peers use changes.
 */
export interface HostLease {
  lastSeen: string;
  /** The tunnel status the agent sent with this heartbeat. */
  wireguard?: WireguardStatus;
}

/**
 * The host record as stored. Records written before leases carry `lastSeen` and `wireguard`; they are
 * read as the liveness until the host's first heartbeat, which writes its lease and rewrites the record
 * without them (one event per host, once).
 */
export type HostRecord = Stored<Omit<Host, 'lastSeen' | 'wireguard' | 'state'>> & { lastSeen?: string; wireguard?: WireguardStatus };

export async function leaseIn(tx: Txn, name: string): Promise<HostLease | undefined> {
  return (await tx.get(keys.hostLease(name)))?.value as HostLease | undefined;
}

/** The host as the API shows it: its record (and the record's revision) with its lease's liveness. */
export function withLease(e: Pick<Entry, 'value' | 'modRevision'>, lease: HostLease | undefined): Host {
  const { lastSeen: legacySeen, wireguard: legacyWireguard, ...record } = e.value as HostRecord;
  const wireguard = lease ? lease.wireguard : legacyWireguard;
  return { ...record, ...(wireguard ? { wireguard } : {}), lastSeen: lease?.lastSeen ?? legacySeen ?? record.createdAt, revision: e.modRevision };
}

/** Every host with its liveness. Records first: a lease read after its record is never older than it. */
export async function listHosts(store: Store): Promise<{ items: Host[]; revision: number }> {
  const records = await store.list(keys.hosts());
  const leases = new Map((await store.list(keys.hostLeases())).entries.map((e) => [e.key.slice(keys.hostLeases().length), e.value as HostLease]));
  return { items: records.entries.map((e) => withLease(e, leases.get((e.value as HostRecord).name))), revision: records.revision };
}

/** Whether two records hold the same fields (their `updatedAt` aside), whatever the order of their keys. */
export function sameRecord(a: HostRecord, b: HostRecord): boolean {
  const fields = (r: HostRecord) => {
    const { updatedAt: _u, ...rest } = r;
    return JSON.stringify(Object.entries(rest).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)));
  };
  return fields(a) === fields(b);
}
