import { WeftError, cidrRange, formatIp, parseIp, parseTunnelRange, type Host, type IpRange } from '../model/index.js';
import type { Txn } from '../store/index.js';
import { listNames } from './crud.js';
import { keys, withRevision, type Stored } from './keys.js';

/**
 * Hosts' addresses inside the WireGuard tunnel, handed out by the server from the global `tunnelRange`.
 * The set of hosts is small (one address each), so the used addresses are the hosts' own records: no
 * address book to keep in step with them.
 */

/** Where tunnel addresses come from: the range without its network and broadcast addresses. */
export function tunnelPool(range: string): IpRange {
  const all = cidrRange(parseTunnelRange(range));
  return { first: all.first + 1, last: all.last - 1 };
}

const inPool = (pool: IpRange, ip: number | undefined): ip is number => ip !== undefined && ip >= pool.first && ip <= pool.last;
const sizeOf = (pool: IpRange) => pool.last - pool.first + 1;

async function otherHosts(tx: Txn, name: string): Promise<Host[]> {
  return (await tx.list(keys.hosts())).map((e) => withRevision<Host>(e)).filter((h) => h.name !== name);
}

/**
 * The tunnel address of host `name`: the one it has while that lies in the range (a heartbeat reads no
 * other host), else the lowest one no other host holds.
 */
export async function tunnelIpFor(tx: Txn, name: string, current: string | undefined, range: string): Promise<string> {
  const pool = tunnelPool(range);
  if (current !== undefined && inPool(pool, parseIp(current))) return current;
  const used = new Set((await otherHosts(tx, name)).map((h) => (h.tunnelIp === undefined ? undefined : parseIp(h.tunnelIp))).filter((ip) => inPool(pool, ip)));
  for (let ip = pool.first; ip <= pool.last; ip++) if (!used.has(ip)) return formatIp(ip);
  throw new WeftError('WEFT_POOL_EXHAUSTED', `tunnelRange: ${range} has no tunnel address left for host ${name} (all ${sizeOf(pool)} are taken); widen it with \`weft global set --tunnel-range\``, { field: 'tunnelRange' });
}

/**
 * Moves every host into a new range in the caller's transaction: hosts sorted by name take the lowest
 * addresses in order, so the outcome depends only on the range and the names. Refused, changing nothing,
 * when the range cannot hold every host or holds a host's underlay address (its tunnel would shadow the
 * route its own WireGuard packets take).
 */
export async function retunnelHosts(tx: Txn, range: string, at: string): Promise<void> {
  const pool = tunnelPool(range);
  // Listed sorted by key (the store's contract), so by name.
  const hosts = (await tx.list(keys.hosts())).map((e) => e.value as Stored<Host>);
  const all = cidrRange(parseTunnelRange(range));
  const inside = hosts.filter((h) => inPool(all, parseIp(h.vtepIp)));
  if (inside.length > 0) {
    throw new WeftError('WEFT_OVERLAP', `tunnelRange: ${range} contains the underlay address of ${listNames(inside.map((h) => `host ${h.name} (${h.vtepIp})`))}`, { field: 'tunnelRange' });
  }
  const size = sizeOf(pool);
  if (hosts.length > size) {
    throw new WeftError('WEFT_INVALID_FIELD', `tunnelRange: ${range} holds ${size} tunnel addresses but ${hosts.length} hosts are registered`, { field: 'tunnelRange' });
  }
  hosts.forEach((h, i) => tx.put(keys.host(h.name), { ...h, tunnelIp: formatIp(pool.first + i), updatedAt: at }));
}
