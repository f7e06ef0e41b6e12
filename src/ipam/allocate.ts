import { WeftError, formatIp, formatRange, type Cidr, type IpRange } from '../model/index.js';
import { AddressBook, type ChunkLoader } from './book.js';

/**
 * A new network's book with its reserved addresses taken: network, broadcast and gateway. Taking the
 * network and broadcast addresses (never handed out anyway) lets the first and last chunks become "full".
 */
export async function openAddressBook(subnet: Cidr, gateway: number, load?: ChunkLoader): Promise<AddressBook> {
  const book = AddressBook.empty(subnet, load);
  await book.take(0);
  await book.take(book.size - 1);
  await book.take(gateway - subnet.base);
  return book;
}

export interface AllocationRequest {
  /** Ranges dynamic addresses may come from, lowest first (a group's pool, or the network's free area). */
  candidates: readonly IpRange[];
  /** A specific address; it must lie inside one of `allowed` and be free. */
  requested?: number;
  allowed?: readonly IpRange[];
  /** Names the pool in errors, e.g. `network blue/web` or `group blue/db pool`. */
  poolName: string;
}

/** Takes an address out of the book and returns it: the lowest free one, or the requested one. */
export async function allocateAddress(book: AddressBook, req: AllocationRequest): Promise<number> {
  if (req.requested !== undefined) return takeRequested(book, req.requested, req);
  const i = await book.firstFreeIn(req.candidates);
  if (i >= 0) {
    await book.take(i);
    return book.subnet.base + i;
  }
  const where = req.candidates.map(formatRange).join(', ') || 'no free range';
  throw new WeftError('WEFT_POOL_EXHAUSTED', `${req.poolName} has no free address left (${where})`);
}

async function takeRequested(book: AddressBook, ip: number, req: AllocationRequest): Promise<number> {
  const allowed = req.allowed ?? req.candidates;
  if (!allowed.some((r) => ip >= r.first && ip <= r.last)) {
    throw new WeftError('WEFT_INVALID_VALUE', `ip: ${formatIp(ip)} is not an address ${req.poolName} may use (${allowed.map(formatRange).join(', ')})`, { field: 'ip' });
  }
  if (await book.has(ip - book.subnet.base)) {
    throw new WeftError('WEFT_ADDRESS_IN_USE', `ip: ${formatIp(ip)} is already in use in ${req.poolName}`, { field: 'ip' });
  }
  await book.take(ip - book.subnet.base);
  return ip;
}

export async function releaseAddress(book: AddressBook, ip: number): Promise<void> {
  const offset = ip - book.subnet.base;
  if (offset >= 0 && offset < book.size) await book.release(offset);
}

/**
 * The requested VNI when free, else the free one `pick` chooses by its rank among the free ones (0: the
 * lowest). The server picks uniformly at random: handed out lowest-free, a VNI told any tenant how many
 * networks the others have, and each new one when theirs came and went (DESIGN §10: no counts across
 * tenants). Uniform among the free, not the first free after a random place: that one favours the VNI
 * just past a run of used ones, and its frequency measured the run (a review counted 1,000 networks made
 * lowest-free before an upgrade from 100 creates).
 */
export function allocateVni(range: { first: number; last: number }, used: ReadonlySet<number>, requested?: number, pick: (free: number) => number = () => 0): number {
  if (requested !== undefined) {
    if (requested < range.first || requested > range.last) {
      throw new WeftError('WEFT_INVALID_VALUE', `vni: ${requested} is outside the global vxlanRange ${range.first}-${range.last}`, { field: 'vni' });
    }
    if (used.has(requested)) throw new WeftError('WEFT_EXISTS', `vni: ${requested} is already used by another network`, { field: 'vni' });
    return requested;
  }
  const taken = [...used].filter((v) => v >= range.first && v <= range.last).sort((a, b) => a - b);
  const free = range.last - range.first + 1 - taken.length;
  if (free <= 0) throw new WeftError('WEFT_POOL_EXHAUSTED', `the global vxlanRange ${range.first}-${range.last} has no free VNI left`);
  // The k-th free VNI: first + k, moved past each used one at or below it (in order).
  let v = range.first + Math.min(Math.max(Math.floor(pick(free)), 0), free - 1);
  for (const t of taken) {
    if (t > v) break;
    v++;
  }
  return v;
}
