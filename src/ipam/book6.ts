import { WeftError, formatIp6, formatRange6, type Cidr6, type IpRange6 } from '../model/index.js';
import { Bitmap } from './bitmap.js';
import { CHUNK_SIZE } from './book.js';

/** Loads a chunk's bits by its index (a bigint: a /64 has 2^56 chunks); undefined: never written. */
export type ChunkLoader6 = (index: bigint) => Promise<Bitmap | undefined>;

/** Full chunks as sorted, disjoint, inclusive runs of chunk indices. */
export type Runs = Array<[bigint, bigint]>;

const CHUNK = BigInt(CHUNK_SIZE);

/**
 * An IPv6 network's address book. A /64 cannot have a bit per chunk as an IPv4 book does (2^56 chunks),
 * so "full" is kept as runs of chunk indices: addresses are handed out lowest first, so the full chunks are
 * one run from the bottom, and only releases (and requested addresses) cut it. A search jumps over a run
 * in one step, so it looks at (runs + 1) chunks at most; nothing is materialised for the empty rest of the
 * subnet. Chunks are 256 addresses, loaded on demand, written back only when changed, as in `AddressBook`.
 */
export class AddressBook6 {
  private readonly loaded = new Map<bigint, Bitmap>();
  readonly dirtyChunks = new Set<bigint>();
  summaryDirty = false;

  constructor(
    readonly subnet: Cidr6,
    readonly full: Runs,
    /** Addresses taken minus released through this object (a check for tests): the stored form keeps no count. */
    public used: number,
    private readonly load: ChunkLoader6,
  ) {}

  get size(): bigint {
    return 1n << BigInt(128 - this.subnet.prefix);
  }

  static empty(subnet: Cidr6, load: ChunkLoader6 = async () => undefined): AddressBook6 {
    if (subnet.prefix > 120) throw new Error(`an IPv6 address book needs at least one whole chunk (/120), not /${subnet.prefix}`);
    return new AddressBook6(subnet, [], 0, load);
  }

  chunk(index: bigint): Bitmap | undefined {
    return this.loaded.get(index);
  }

  private async bits(index: bigint): Promise<Bitmap> {
    let b = this.loaded.get(index);
    if (!b) {
      b = (await this.load(index)) ?? Bitmap.empty(CHUNK_SIZE);
      this.loaded.set(index, b);
    }
    return b;
  }

  async has(offset: bigint): Promise<boolean> {
    return (await this.bits(offset / CHUNK)).has(Number(offset % CHUNK));
  }

  async take(offset: bigint): Promise<void> {
    const ci = offset / CHUNK;
    const b = await this.bits(ci);
    const bit = Number(offset % CHUNK);
    if (b.has(bit)) return;
    b.set(bit);
    this.used++;
    this.dirtyChunks.add(ci);
    if (b.firstClear(0, CHUNK_SIZE - 1) < 0) {
      markFull(this.full, ci);
      this.summaryDirty = true;
    }
  }

  async release(offset: bigint): Promise<void> {
    const ci = offset / CHUNK;
    const b = await this.bits(ci);
    const bit = Number(offset % CHUNK);
    if (!b.has(bit)) return;
    b.clear(bit);
    this.used--;
    this.dirtyChunks.add(ci);
    if (unmarkFull(this.full, ci)) this.summaryDirty = true;
  }

  /** Lowest free offset inside `range` (absolute addresses), or -1n; jumps over runs of full chunks. */
  async firstFree(range: IpRange6): Promise<bigint> {
    const from = range.first - this.subnet.base;
    const to = range.last - this.subnet.base;
    const lastChunk = to / CHUNK;
    let ci = from / CHUNK;
    while (ci <= lastChunk) {
      const run = runAt(this.full, ci);
      if (run) {
        ci = run[1] + 1n;
        continue;
      }
      const start = from > ci * CHUNK ? Number(from - ci * CHUNK) : 0;
      const end = to < ci * CHUNK + CHUNK - 1n ? Number(to - ci * CHUNK) : CHUNK_SIZE - 1;
      const i = (await this.bits(ci)).firstClear(start, end);
      if (i >= 0) return ci * CHUNK + BigInt(i);
      ci++;
    }
    return -1n;
  }
}

/** The run holding chunk `ci`, if any (binary search). */
function runAt(runs: Runs, ci: bigint): [bigint, bigint] | undefined {
  let lo = 0;
  let hi = runs.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const r = runs[mid] as [bigint, bigint];
    if (ci < r[0]) hi = mid - 1;
    else if (ci > r[1]) lo = mid + 1;
    else return r;
  }
  return undefined;
}

/** The index of the first run ending at or after `ci`. */
function firstEndingFrom(runs: Runs, ci: bigint): number {
  let lo = 0;
  let hi = runs.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((runs[mid] as [bigint, bigint])[1] < ci) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export function markFull(runs: Runs, ci: bigint): void {
  const i = firstEndingFrom(runs, ci - 1n);
  const r = runs[i];
  if (r && r[0] <= ci && ci <= r[1]) return;
  const joinsLeft = r !== undefined && r[1] === ci - 1n;
  const right = joinsLeft ? runs[i + 1] : r;
  const joinsRight = right !== undefined && right[0] === ci + 1n;
  if (joinsLeft && joinsRight) runs.splice(i, 2, [(r as [bigint, bigint])[0], (right as [bigint, bigint])[1]]);
  else if (joinsLeft) (r as [bigint, bigint])[1] = ci;
  else if (joinsRight) (right as [bigint, bigint])[0] = ci;
  else runs.splice(i, 0, [ci, ci]);
}

/** Takes `ci` out of its run; whether it was in one. */
export function unmarkFull(runs: Runs, ci: bigint): boolean {
  const i = firstEndingFrom(runs, ci);
  const r = runs[i];
  if (!r || ci < r[0]) return false;
  const parts: Runs = [];
  if (r[0] < ci) parts.push([r[0], ci - 1n]);
  if (ci < r[1]) parts.push([ci + 1n, r[1]]);
  runs.splice(i, 1, ...parts);
  return true;
}

export const encodeRuns = (runs: Runs): string[] => runs.map(([a, b]) => (a === b ? `${a}` : `${a}-${b}`));

/** The stored form back; anything malformed, unsorted or overlapping is refused (a book is never guessed). */
export function decodeRuns(text: unknown): Runs {
  if (!Array.isArray(text)) throw new Error('full: not a list of runs');
  const out: Runs = [];
  for (const t of text) {
    const m = typeof t === 'string' ? /^(0|[1-9][0-9]{0,39})(?:-(0|[1-9][0-9]{0,39}))?$/.exec(t) : null;
    if (!m) throw new Error(`full: '${String(t).slice(0, 60)}' is not a run of chunk indices`);
    const a = BigInt(m[1] as string);
    const b = m[2] === undefined ? a : BigInt(m[2]);
    const prev = out[out.length - 1];
    if (b < a || (prev && a <= prev[1] + 1n)) throw new Error(`full: run '${t}' is out of order`);
    out.push([a, b]);
  }
  return out;
}

/** A new network's IPv6 book with its reserved addresses taken: the subnet-router anycast address and the gateway. */
export async function openAddressBook6(subnet: Cidr6, gateway: bigint, load?: ChunkLoader6): Promise<AddressBook6> {
  const book = AddressBook6.empty(subnet, load);
  await book.take(0n);
  await book.take(gateway - subnet.base);
  return book;
}

export interface AllocationRequest6 {
  candidates: readonly IpRange6[];
  requested?: bigint;
  allowed?: readonly IpRange6[];
  poolName: string;
  /** The request's field, named in errors (`ip6`). */
  field: string;
}

/** Takes an address out of the book: the lowest free one of the candidates, or the requested one. */
export async function allocateAddress6(book: AddressBook6, req: AllocationRequest6): Promise<bigint> {
  const f = req.field;
  if (req.requested !== undefined) {
    const ip = req.requested;
    const allowed = req.allowed ?? req.candidates;
    if (!allowed.some((r) => ip >= r.first && ip <= r.last)) {
      throw new WeftError('WEFT_INVALID_VALUE', `${f}: ${formatIp6(ip)} is not an address ${req.poolName} may use (${allowed.map(formatRange6).join(', ')})`, { field: f });
    }
    if (await book.has(ip - book.subnet.base)) {
      throw new WeftError('WEFT_ADDRESS_IN_USE', `${f}: ${formatIp6(ip)} is already in use in ${req.poolName}`, { field: f });
    }
    await book.take(ip - book.subnet.base);
    return ip;
  }
  for (const r of req.candidates) {
    const i = await book.firstFree(r);
    if (i >= 0n) {
      await book.take(i);
      return book.subnet.base + i;
    }
  }
  const where = req.candidates.map(formatRange6).join(', ') || 'no free range';
  throw new WeftError('WEFT_POOL_EXHAUSTED', `${req.poolName} has no free IPv6 address left (${where})`);
}

export async function releaseAddress6(book: AddressBook6, ip: bigint): Promise<void> {
  const offset = ip - book.subnet.base;
  if (offset >= 0n && offset < book.size) await book.release(offset);
}
