import { VXLAN_PORT, WIREGUARD_PORT, WeftError, type Endpoint, type PortMapping } from '../model/index.js';
import type { Store, Txn } from '../store/index.js';
import { keys } from './keys.js';

/**
 * Who publishes each host port: `hostports/HOST/PROTO/PORT` names the endpoint (internal, never published),
 * written in the same transaction as the endpoint's ports and given back with them. A check used to list
 * and parse every endpoint of the cluster, inside the batch every other write waits for (a hostile review:
 * 30 ms at 5,000 endpoints, 183 ms at 20,000, for any tenant publishing a port); it now reads one key per
 * port, and the endpoint a key names. A claim is a hint, checked against that endpoint: one whose endpoint
 * is gone, moved or no longer publishes the port is free (deletes that forget it cost nothing but a read).
 * Every start claims what is published and unclaimed (`reconcileHostPorts`: a data dir from before the
 * claims, an older server's endpoints).
 */
interface Claim { endpoint: string }

const CLAIMS = 'hostports/';
const claimKey = (host: string, m: Pick<PortMapping, 'hostPort' | 'protocol'>) => `${CLAIMS}${host}/${m.protocol}/${m.hostPort}`;
const publishes = (e: Partial<Pick<Endpoint, 'host' | 'portMappings'>> | undefined, host: string, m: Pick<PortMapping, 'hostPort' | 'protocol'>) =>
  // A record written outside the API may hold anything: a port list that is none publishes nothing.
  e?.host === host && Array.isArray(e.portMappings) && e.portMappings.some((p) => p?.hostPort === m.hostPort && p?.protocol === m.protocol);

/** The endpoint (other than `self`) that publishes host port `m` on `host`, as this transaction reads. */
async function publisherOf(tx: Txn, host: string, m: PortMapping, self?: string): Promise<string | undefined> {
  const claimant = ((await tx.get(claimKey(host, m)))?.value as Partial<Claim> | undefined)?.endpoint;
  if (typeof claimant !== 'string' || claimant === self) return undefined;
  const e = await tx.get(keys.endpoint(claimant));
  return publishes(e?.value as Partial<Endpoint> | undefined, host, m) ? claimant : undefined;
}

/**
 * A host port can be published by one endpoint per host and protocol, once (a port to two container ports
 * would be two answers to one lookup: the kernel refuses such a map, and with it the table), and never the
 * overlay's.
 */
export async function checkHostPorts(tx: Txn, host: string, wanted: readonly PortMapping[], self?: string): Promise<void> {
  const first = new Map<string, number>();
  for (const [i, p] of wanted.entries()) {
    const k = `${p.hostPort}/${p.protocol}`;
    const j = first.get(k);
    if (j !== undefined) throw new WeftError('WEFT_INVALID_VALUE', `portMappings.${i}: host port ${k} is published by portMappings.${j} already (a host port goes to one container port)`, { field: `portMappings.${i}` });
    first.set(k, i);
    if ((p.hostPort === VXLAN_PORT || p.hostPort === WIREGUARD_PORT) && p.protocol === 'udp') {
      const what = p.hostPort === VXLAN_PORT ? "the overlay's port" : "WireGuard's port (the encrypted overlay)";
      throw new WeftError('WEFT_INVALID_VALUE', `portMappings.${i}.hostPort: ${p.hostPort}/udp is ${what} on every host; it cannot be published`, { field: `portMappings.${i}.hostPort` });
    }
    const by = await publisherOf(tx, host, p, self);
    if (by) throw new WeftError('WEFT_ADDRESS_IN_USE', `portMappings.${i}: host port ${p.hostPort}/${p.protocol} on ${host} is published by endpoint ${by}`, { field: `portMappings.${i}` });
  }
}

/** Records `id` as the publisher of `ports` on `host` (checked first with checkHostPorts). */
export function claimHostPorts(tx: Txn, host: string, id: string, ports: readonly PortMapping[]): void {
  for (const p of ports) tx.put(claimKey(host, p), { endpoint: id } satisfies Claim);
}

/** Gives back the claims `id` holds among `ports` (another endpoint's claim on the same port stays). */
export async function releaseHostPorts(tx: Txn, host: string, id: string, ports: readonly PortMapping[]): Promise<void> {
  for (const p of ports) {
    const k = claimKey(host, p);
    if (((await tx.get(k))?.value as Partial<Claim> | undefined)?.endpoint === id) tx.delete(k);
  }
}

/** Claims given back per transaction after the fact: each a guarded read and a delete on etcd. */
const RELEASES_PER_TXN = 48;

/**
 * After a transaction that moved endpoint `id` off `ports` (an update, a replacing endpoint), gives back the
 * claims on them that still name it. Not in that transaction: on etcd, 64 ports swapped for 64 others
 * were 64 claims read and deleted beside the 64 read and written, past etcd's 128 operations
 * (WEFT_TOO_LARGE). A claim left behind is a hint the check sees through (its endpoint no longer
 * publishes the port), so this is tidying: best effort, a few dozen per transaction; a failure leaves
 * claims that cost the next check of their port one read.
 */
export async function forgetHostPorts(store: Store, actor: string, host: string, id: string, ports: readonly PortMapping[]): Promise<void> {
  for (let k = 0; k < ports.length; k += RELEASES_PER_TXN) {
    const part = ports.slice(k, k + RELEASES_PER_TXN);
    try {
      await store.transact(actor, async (tx) => {
        // As it stands now: an update since (another server, a retry) may publish a port again, or an
        // endpoint of the same id (container and interface) may have come: its claims are its own.
        const e = (await tx.get(keys.endpoint(id)))?.value as Partial<Endpoint> | undefined;
        await releaseHostPorts(tx, host, id, part.filter((m) => !publishes(e, host, m)));
      });
    } catch {
      return;
    }
  }
}

/** The mappings of `from` whose host port and protocol none of `to` has. */
export function portsLeft(from: readonly PortMapping[] | undefined, to: readonly PortMapping[] | undefined): PortMapping[] {
  const kept = new Set((to ?? []).map((p) => `${p.protocol}/${p.hostPort}`));
  return (from ?? []).filter((p) => !kept.has(`${p.protocol}/${p.hostPort}`));
}

/** A host's claims, all of them (the host is removed). */
export function dropHostPorts(tx: Txn, host: string): void {
  tx.deletePrefix(`${CLAIMS}${host}/`);
}

/** Claims written per transaction at start: each costs etcd a put and up to three guards (128 operations at most). */
const CLAIMS_PER_TXN = 24;

/**
 * At every start: every published port claimed by an endpoint that publishes it. Claims a data dir from
 * before them lacks, or that an older server left out (a rolling upgrade on etcd: it publishes ports
 * without claims), are written, a few dozen per transaction, each only if the claim is still what the
 * listing showed. Two endpoints of one host publishing one port (which only an older server could let
 * happen) are reported for the operator: the claim goes to the first by id and the check refuses a third.
 * One listing of the endpoints per start.
 */
export async function reconcileHostPorts(store: Store): Promise<{ claimed: number; doubles: string[] }> {
  const eps = (await store.list(keys.endpoints())).entries.map((e) => e.value as Partial<Endpoint> | undefined)
    .filter((e): e is Endpoint => typeof e?.id === 'string' && typeof e.host === 'string' && Array.isArray(e.portMappings))
    .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const want = new Map<string, string>();
  const publishing = new Set<string>();
  const doubles: string[] = [];
  for (const e of eps) {
    for (const p of e.portMappings ?? []) {
      if (!Number.isInteger(p?.hostPort) || (p.protocol !== 'tcp' && p.protocol !== 'udp')) continue;
      const k = claimKey(e.host, p);
      publishing.add(`${e.id} ${k}`);
      const first = want.get(k);
      if (first === undefined) want.set(k, e.id);
      else if (first !== e.id) doubles.push(`host port ${p.hostPort}/${p.protocol} on ${e.host}: endpoints ${first} and ${e.id}`);
    }
  }
  const held = new Map((await store.list(CLAIMS)).entries.map((e) => [e.key, (e.value as Partial<Claim> | undefined)?.endpoint]));
  // Missing: no claim, or one naming an endpoint that does not publish that port.
  const missing = [...want].filter(([k]) => { const c = held.get(k); return typeof c !== 'string' || !publishing.has(`${c} ${k}`); });
  let claimed = 0;
  for (let i = 0; i < missing.length; i += CLAIMS_PER_TXN) {
    const { value } = await store.transact('system', async (tx) => {
      let n = 0;
      for (const [k, id] of missing.slice(i, i + CLAIMS_PER_TXN)) {
        // Claimed meanwhile (an endpoint made since the listing): left as it is.
        if (((await tx.get(k))?.value as Partial<Claim> | undefined)?.endpoint !== held.get(k)) continue;
        tx.put(k, { endpoint: id } satisfies Claim);
        n++;
      }
      return n;
    });
    claimed += value;
  }
  return { claimed, doubles };
}
