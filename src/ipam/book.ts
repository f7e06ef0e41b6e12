import type { IpRange, Cidr } from '../model/index.js';
import { Bitmap } from './bitmap.js';

/** Addresses per chunk: an allocation rewrites one chunk (32 bytes of bits), never the whole network. */
export const CHUNK_SIZE = 256;

/** Loads a chunk's bits; undefined means the chunk was never written (all free). */
export type ChunkLoader = (index: number) => Promise<Bitmap | undefined>;

/**
 * A network's address book, split into chunks that are loaded on demand. A summary bit per chunk says
 * "full", so a search skips full chunks without loading them. Offsets are relative to the subnet base.
 * The book records which chunks (and whether the summary) changed, so a caller writes only those.
 */
export class AddressBook {
  private readonly loaded = new Map<number, Bitmap>();
  readonly dirtyChunks = new Set<number>();
  summaryDirty = false;

  constructor(
    readonly subnet: Cidr,
    readonly full: Bitmap,
    public used: number,
    private readonly load: ChunkLoader,
  ) {}

  get size(): number {
    return 2 ** (32 - this.subnet.prefix);
  }

  static chunkCount(subnet: Cidr): number {
    return Math.ceil(2 ** (32 - subnet.prefix) / CHUNK_SIZE);
  }

  /** An empty book: nothing loaded or stored yet. */
  static empty(subnet: Cidr, load: ChunkLoader = async () => undefined): AddressBook {
    return new AddressBook(subnet, Bitmap.empty(AddressBook.chunkCount(subnet)), 0, load);
  }

  chunk(index: number): Bitmap | undefined {
    return this.loaded.get(index);
  }

  private async bits(index: number): Promise<Bitmap> {
    let b = this.loaded.get(index);
    if (!b) {
      b = (await this.load(index)) ?? Bitmap.empty(CHUNK_SIZE);
      this.loaded.set(index, b);
    }
    return b;
  }

  async has(offset: number): Promise<boolean> {
    return (await this.bits(Math.floor(offset / CHUNK_SIZE))).has(offset % CHUNK_SIZE);
  }

  async take(offset: number): Promise<void> {
    const ci = Math.floor(offset / CHUNK_SIZE);
    const b = await this.bits(ci);
    if (b.has(offset % CHUNK_SIZE)) return;
    b.set(offset % CHUNK_SIZE);
    this.used++;
    this.dirtyChunks.add(ci);
    if (b.firstClear(0, this.chunkLast(ci)) < 0) {
      this.full.set(ci);
      this.summaryDirty = true;
    }
  }

  async release(offset: number): Promise<void> {
    const ci = Math.floor(offset / CHUNK_SIZE);
    const b = await this.bits(ci);
    if (!b.has(offset % CHUNK_SIZE)) return;
    b.clear(offset % CHUNK_SIZE);
    this.used--;
    this.dirtyChunks.add(ci);
    if (this.full.has(ci)) {
      this.full.clear(ci);
      this.summaryDirty = true;
    }
  }

  /**
   * Lowest free offset (chunks marked full skipped) inside the first of `ranges` (absolute addresses, in order) that has one, or -1.
   * One call for them all, waiting only where a chunk must be loaded: a network whose dynamic range is cut
   * by a hundred group pools has a hundred ranges, most of them full, and an await per range was most of
   * an allocation's cost there (bench:api, 500 groups).
   */
  async firstFreeIn(ranges: readonly IpRange[]): Promise<number> {
    for (const range of ranges) {
      const from = range.first - this.subnet.base;
      const to = range.last - this.subnet.base;
      for (let ci = Math.floor(from / CHUNK_SIZE); ci <= Math.floor(to / CHUNK_SIZE); ci++) {
        if (this.full.has(ci)) continue;
        const start = Math.max(from, ci * CHUNK_SIZE) - ci * CHUNK_SIZE;
        const end = Math.min(to, ci * CHUNK_SIZE + this.chunkLast(ci)) - ci * CHUNK_SIZE;
        const i = (this.loaded.get(ci) ?? (await this.bits(ci))).firstClear(start, end);
        if (i >= 0) return ci * CHUNK_SIZE + i;
      }
    }
    return -1;
  }

  /** The last offset inside chunk `ci` (small subnets have one partial chunk). */
  private chunkLast(ci: number): number {
    return Math.min(CHUNK_SIZE, this.size - ci * CHUNK_SIZE) - 1;
  }
}
