import { WeftError, formatIp, formatRange, type Cidr, type IpRange } from '../model/index.js';
import { Bitmap } from './bitmap.js';

/**
 * The address book of one network: which addresses are taken. Network and broadcast addresses are never
 * handed out; the gateway is marked taken when the book is opened.
 */
export interface AddressBook {
  subnet: Cidr;
  bits: Bitmap;
}

export function openAddressBook(subnet: Cidr, gateway: number): AddressBook {
  const bits = Bitmap.empty(2 ** (32 - subnet.prefix));
  const book = { subnet, bits };
  bits.set(gateway - subnet.base);
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

/** Takes an address out of the book (mutates it) and returns it; lowest free, or the requested one. */
export function allocateAddress(book: AddressBook, req: AllocationRequest): number {
  if (req.requested !== undefined) return takeRequested(book, req.requested, req);
  for (const r of req.candidates) {
    const i = book.bits.firstClear(r.first - book.subnet.base, r.last - book.subnet.base);
    if (i >= 0) {
      book.bits.set(i);
      return book.subnet.base + i;
    }
  }
  const where = req.candidates.map(formatRange).join(', ') || 'no free range';
  throw new WeftError('WEFT_POOL_EXHAUSTED', `${req.poolName} has no free address left (${where})`);
}

function takeRequested(book: AddressBook, ip: number, req: AllocationRequest): number {
  const allowed = req.allowed ?? req.candidates;
  if (!allowed.some((r) => ip >= r.first && ip <= r.last)) {
    throw new WeftError('WEFT_INVALID_VALUE', `ip: ${formatIp(ip)} is not an address ${req.poolName} may use (${allowed.map(formatRange).join(', ')})`, { field: 'ip' });
  }
  const i = ip - book.subnet.base;
  if (book.bits.has(i)) {
    throw new WeftError('WEFT_ADDRESS_IN_USE', `ip: ${formatIp(ip)} is already in use in ${req.poolName}`, { field: 'ip' });
  }
  book.bits.set(i);
  return ip;
}

export function releaseAddress(book: AddressBook, ip: number): void {
  const i = ip - book.subnet.base;
  if (i >= 0 && i < book.bits.size) book.bits.clear(i);
}

/** Lowest unused VNI in the range, or the requested one when free. */
export function allocateVni(range: { first: number; last: number }, used: ReadonlySet<number>, requested?: number): number {
  if (requested !== undefined) {
    if (requested < range.first || requested > range.last) {
      throw new WeftError('WEFT_INVALID_VALUE', `vni: ${requested} is outside the global vxlanRange ${range.first}-${range.last}`, { field: 'vni' });
    }
    if (used.has(requested)) throw new WeftError('WEFT_EXISTS', `vni: ${requested} is already used by another network`, { field: 'vni' });
    return requested;
  }
  for (let v = range.first; v <= range.last; v++) if (!used.has(v)) return v;
  throw new WeftError('WEFT_POOL_EXHAUSTED', `the global vxlanRange ${range.first}-${range.last} has no free VNI left`);
}
