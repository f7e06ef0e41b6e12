import { WeftError, blockOf, checkNetwork, parseCidr, checkPool, formatIp, parseIp, cidrRange, type IpRange, type Network, type NetworkLayout, type Group } from '../model/index.js';
import { AddressBook, Bitmap, CHUNK_SIZE, allocateAddress, openAddressBook, releaseAddress, subtractRanges } from '../ipam/index.js';
import type { Txn } from '../store/index.js';
import { keys } from './keys.js';
import { groupPoolsWithRevision, writeGroupPools, type GroupPool } from './group-pools.js';

/**
 * Glue between the pure IPAM and the store. A network's book is a summary at `ipam/T/N` (which chunks
 * are full, how many addresses are used) plus one value per touched chunk at `ipam/T/N/INDEX`, so an
 * allocation writes a few dozen bytes whatever the subnet size.
 */
interface StoredSummary { size: number; chunkSize: number; used: number; full: string; plain?: PlainHint }

/**
 * Where a plain member's (or a VIP's) search may start: every address below `from` (an offset) among the
 * network's dynamic range minus its group pools is taken. Kept in the summary, valid only for the range and
 * the pools it was made under (`dynamic`, and the pools index's revision, which any pool's coming or going
 * moves): with a hundred pools scattered through the range no chunk ever becomes full (their free pool
 * addresses are in it), and each allocation read and scanned every chunk below the first free address.
 * An address given back lowers it. Only ever a place to start: a search from it that finds nothing
 * searches the whole range again before the network is called full, and the bitmaps alone say what is taken.
 */
type PlainHint = [from: number, dynamicFirst: number, dynamicLast: number, poolsRevision: number];

const isHint = (h: unknown): h is PlainHint => Array.isArray(h) && h.length === 4 && h.every((n) => Number.isSafeInteger(n) && n >= 0);
interface StoredChunk { bits: string }

/**
 * Layouts worked out before, by the fields that decide them (subnet, gateway, ipRange): an allocation
 * needs its network's twice, and parsing them was ~3 µs of its ~72. Frozen, as they are shared; at most
 * MAX_LAYOUTS kept (then all are dropped: a memo, never an answer a parse would not give).
 */
const layouts = new Map<string, NetworkLayout>();
const MAX_LAYOUTS = 4096;

/** The network's IPv4 layout; an IPv6-only network has none (refused, naming `field`). */
export function layoutOf(net: Network, field = 'subnet'): NetworkLayout {
  if (net.subnet === undefined) throw new WeftError('WEFT_INVALID_VALUE', `${field}: network ${net.tenant}/${net.name} is IPv6-only (it has no IPv4 subnet)`, { field });
  const key = `${net.subnet} ${net.gateway ?? '-'} ${net.ipRange ?? '-'}`;
  const kept = layouts.get(key);
  if (kept) return kept;
  const l = checkNetwork({ name: net.name, subnet: net.subnet, ...(net.gateway !== undefined ? { gateway: net.gateway } : {}), ...(net.ipRange ? { ipRange: net.ipRange } : {}) });
  const frozen: NetworkLayout = Object.freeze({ subnet: Object.freeze(l.subnet), gateway: l.gateway, dynamic: Object.freeze(l.dynamic) });
  if (layouts.size >= MAX_LAYOUTS) layouts.clear();
  layouts.set(key, frozen);
  return frozen;
}

const loaderFor = (tx: Txn, net: Network) => async (index: number) => {
  const e = await tx.get(`${keys.addressBook(net.tenant, net.name)}/${index}`);
  return e ? Bitmap.decode(CHUNK_SIZE, (e.value as StoredChunk).bits) : undefined;
};

export async function newAddressBook(tx: Txn, net: Network): Promise<void> {
  if (net.subnet === undefined) return;
  const layout = layoutOf(net);
  writeBook(tx, net, await openAddressBook(layout.subnet, layout.gateway, loaderFor(tx, net)), true);
  writeGroupPools(tx, net.tenant, net.name, []);
}

/** The book, and the plain search's hint as stored (unchecked: see PlainHint). */
async function readBookAndHint(tx: Txn, net: Network): Promise<{ book: AddressBook; hint: PlainHint | undefined }> {
  const e = await tx.get(keys.addressBook(net.tenant, net.name));
  const layout = layoutOf(net);
  if (!e) return { book: await openAddressBook(layout.subnet, layout.gateway, loaderFor(tx, net)), hint: undefined };
  const v = e.value as StoredSummary;
  const book = new AddressBook(layout.subnet, Bitmap.decode(AddressBook.chunkCount(layout.subnet), v.full), v.used, loaderFor(tx, net));
  return { book, hint: isHint(v.plain) ? v.plain : undefined };
}

/** Writes the chunks the book changed, and the summary (its `used` count changes with every write), with `hint` if any. */
export function writeBook(tx: Txn, net: Network, book: AddressBook, force = false, hint?: PlainHint): void {
  const key = keys.addressBook(net.tenant, net.name);
  if (!force && book.dirtyChunks.size === 0) return;
  for (const i of book.dirtyChunks) tx.put(`${key}/${i}`, { bits: book.chunk(i)?.encode() ?? '' } satisfies StoredChunk);
  tx.put(key, { size: book.size, chunkSize: CHUNK_SIZE, used: book.used, full: book.full.encode(), ...(hint ? { plain: hint } : {}) } satisfies StoredSummary);
}

/** Removes a network's whole book (summary and chunks). */
export async function dropBook(tx: Txn, net: Network): Promise<void> {
  const key = keys.addressBook(net.tenant, net.name);
  tx.delete(key);
  // One range delete, however many chunks (an IPv6 book's are unbounded: requested addresses anywhere).
  tx.deletePrefix(`${key}/`);
}

/**
 * Where an address for a member of `group` (or for a plain network member) may come from: a group with
 * an ipPool uses only its pool; everyone else uses the network's dynamic range minus every group's pool.
 * `allowed` is where a requested (static) address may lie.
 */
export async function addressSpace(tx: Txn, net: Network, group: Group | undefined, field = 'ip'): Promise<{ candidates: readonly IpRange[]; allowed: readonly IpRange[]; poolName: string; plain?: Fingerprint }> {
  const layout = layoutOf(net, group?.ipPool ? 'ipPool' : field);
  // A macvlan network's addresses are on a real segment: the operator's ipRange is all it may use, for a
  // requested address too (the rest of the subnet is other machines'), and a tenant's group pool must lie in it.
  const macvlan = net.encap === 'macvlan';
  if (group?.ipPool) {
    const pool = checkPool(group.ipPool, layout, net.name);
    if (macvlan && (pool.first < layout.dynamic.first || pool.last > layout.dynamic.last)) {
      throw new WeftError('WEFT_INVALID_VALUE', `ipPool: group ${group.tenant}/${group.name}'s pool ${group.ipPool} is outside macvlan network ${net.name}'s ipRange (the share of the segment its operator gave it)`, { field: 'ipPool' });
    }
    return { candidates: [pool], allowed: [pool], poolName: `group ${group.tenant}/${group.name} (ipPool ${group.ipPool})` };
  }
  const { pools, revision } = await groupPoolsWithRevision(tx, net, layout);
  const all = cidrRange(layout.subnet);
  const ranges = plainRanges(pools, layout.dynamic, macvlan ? layout.dynamic : { first: all.first + 1, last: all.last - 1 });
  return { ...ranges, poolName: `network ${net.tenant}/${net.name}`, plain: [layout.dynamic.first, layout.dynamic.last, revision] };
}

type PlainRanges = { readonly candidates: readonly IpRange[]; readonly allowed: readonly IpRange[] };
/**
 * The ranges last worked out from a pools list the store shares (frozen), with the ranges they were cut
 * from. One answer a list: a network has one dynamic range at a time, and keeping every range ever asked
 * for let a tenant grow the server's memory without bound (changing its network's ipRange, allocating,
 * again: ~10 KB a round with 100 pools).
 */
const rangesOf = new WeakMap<readonly GroupPool[], { key: string; ranges: PlainRanges }>();

/**
 * `dynamic` and `usable` minus the pools. A shared pools list (the index as the store keeps it, unchanged)
 * keeps its answer: with 100 pools, parsing and subtracting them again was ~15 % of an allocation's time.
 */
export function plainRanges(pools: readonly GroupPool[], dynamic: IpRange, usable: IpRange): PlainRanges {
  const key = `${dynamic.first}-${dynamic.last}/${usable.first}-${usable.last}`;
  const kept = Object.isFrozen(pools) ? rangesOf.get(pools) : undefined;
  if (kept?.key === key) return kept.ranges;
  const holes = pools.map(([, , first, last]) => ({ first, last }));
  const r: PlainRanges = Object.freeze({ candidates: Object.freeze(subtractRanges(dynamic, holes)), allowed: Object.freeze(subtractRanges(usable, holes)) });
  if (Object.isFrozen(pools)) rangesOf.set(pools, { key, ranges: r });
  return r;
}

/** What a PlainHint is valid for: the dynamic range and the pools index's revision. */
type Fingerprint = [dynamicFirst: number, dynamicLast: number, poolsRevision: number];

/** Where the plain search starts: the hint's offset, if it was made under `fp`; else the beginning. */
function hintFrom(hint: PlainHint | undefined, fp: Fingerprint): number {
  return hint !== undefined && hint[1] === fp[0] && hint[2] === fp[1] && hint[3] === fp[2] ? hint[0] : 0;
}

/**
 * Allocates an address in `net` inside the transaction and returns it as text. `host`: whose endpoint it
 * is (a routed network's address comes from one of that host's blocks; undefined: a service's VIP).
 */
export async function takeAddress(tx: Txn, net: Network, group: Group | undefined, requested: string | undefined, field = 'ip', host?: string): Promise<string> {
  let want: number | undefined;
  if (requested !== undefined) {
    want = parseIp(requested);
    if (want === undefined) throw new WeftError('WEFT_INVALID_FIELD', `${field}: '${requested}' is not an IPv4 address`, { field });
  }
  const space = await addressSpace(tx, net, group, field);
  const { book, hint } = await readBookAndHint(tx, net);
  try {
    if (net.encap === 'routed' || want !== undefined || space.plain === undefined) {
      const ip = net.encap === 'routed'
        ? await takeRouted(tx, net, book, space, host ?? SERVICES, want)
        : await allocateAddress(book, { ...space, ...(want !== undefined ? { requested: want } : {}) });
      // Taking an address keeps the hint true; a group's pool or a requested address does not move it.
      writeBook(tx, net, book, false, hint);
      return formatIp(ip);
    }
    const start = hintFrom(hint, space.plain);
    const ip = await allocateFrom(book, space, start);
    // Pools read from this transaction's own write (revision 0) say nothing a later one can check: no hint.
    writeBook(tx, net, book, false, space.plain[2] > 0 ? [ip - book.subnet.base + 1, ...space.plain] : undefined);
    return formatIp(ip);
  } catch (e) {
    if (e instanceof WeftError && e.field === 'ip' && field !== 'ip') {
      throw new WeftError(e.code, e.message.replace(/^ip:/, `${field}:`), { field });
    }
    throw e;
  }
}

/** The lowest free candidate from offset `start` on; if none, from the beginning (a hint is never trusted to say "full"). */
async function allocateFrom(book: AddressBook, space: { candidates: readonly IpRange[]; poolName: string }, start: number): Promise<number> {
  if (start > 0) {
    const i = await book.firstFreeIn(intersect(space.candidates, { first: book.subnet.base + start, last: book.subnet.base + book.size - 1 }));
    if (i >= 0) {
      await book.take(i);
      return book.subnet.base + i;
    }
  }
  return allocateAddress(book, space);
}

export async function giveBackAddress(tx: Txn, net: Network, ip: string | undefined): Promise<void> {
  const n = ip === undefined || net.subnet === undefined ? undefined : parseIp(ip);
  if (n === undefined) return;
  const { book, hint } = await readBookAndHint(tx, net);
  // A block counts its addresses: only one that was taken goes back (a second release changes nothing).
  const taken = n >= book.subnet.base && n - book.subnet.base < book.size && await book.has(n - book.subnet.base);
  await releaseAddress(book, n);
  // The address given back is free again: the plain search starts at it at the latest.
  const offset = n - book.subnet.base;
  writeBook(tx, net, book, false, hint && (offset < hint[0] ? [offset, hint[1], hint[2], hint[3]] : hint));
  if (net.encap === 'routed' && taken) await releaseFromBlock(tx, net, n);
}

/**
 * A routed network's blocks: which host holds each (by index inside the subnet) and how many of its
 * addresses are taken, kept beside its address book (`ipam/T/N/blocks`, never published). A block is held
 * from its first address's allocation to its last one's release, so every address of a block is on its
 * holder, and a host routes and announces exactly the blocks its endpoints are in. Service VIPs (no host)
 * hold blocks of their own, never routed to a host.
 */
interface StoredBlocks { owners: Record<string, string>; used: Record<string, number> }
const SERVICES = '';
const blocksKey = (net: Network) => `${keys.addressBook(net.tenant, net.name)}/blocks`;
const holderName = (h: string) => (h === SERVICES ? 'the services (VIPs)' : `host ${h}`);

async function readBlocks(tx: Txn, net: Network): Promise<StoredBlocks> {
  const v = (await tx.get(blocksKey(net)))?.value as Partial<StoredBlocks> | undefined;
  return { owners: { ...(v?.owners ?? {}) }, used: { ...(v?.used ?? {}) } };
}

const intersect = (a: readonly IpRange[], r: IpRange): IpRange[] => a.flatMap((x) => {
  const first = Math.max(x.first, r.first);
  const last = Math.min(x.last, r.last);
  return first <= last ? [{ first, last }] : [];
});

async function takeRouted(tx: Txn, net: Network, book: AddressBook, space: Awaited<ReturnType<typeof addressSpace>>, host: string, want: number | undefined): Promise<number> {
  const blocks = await readBlocks(tx, net);
  const took = (ip: number) => {
    const i = blockOf(net, ip).index;
    blocks.owners[i] = host;
    blocks.used[i] = (blocks.used[i] ?? 0) + 1;
    tx.put(blocksKey(net), blocks);
    return ip;
  };
  if (want !== undefined) {
    const b = blockOf(net, want);
    const owner = blocks.owners[b.index];
    if (owner !== undefined && owner !== host) {
      throw new WeftError('WEFT_INVALID_VALUE', `ip: ${formatIp(want)} is in block ${b.cidr} of routed network ${net.tenant}/${net.name}, which ${holderName(owner)} holds; a routed network's addresses are routed to their block's host`, { field: 'ip' });
    }
    return took(await allocateAddress(book, { ...space, requested: want }));
  }
  const base = layoutOf(net).subnet.base;
  const size = 2 ** (32 - (net.blockSize ?? 32));
  const rangeOf = (i: number): IpRange => ({ first: base + i * size, last: base + (i + 1) * size - 1 });
  const mine = Object.entries(blocks.owners).filter(([, h]) => h === host).map(([i]) => Number(i)).sort((x, y) => x - y);
  for (const i of mine) {
    const r = await tryIn(book, intersect(space.candidates, rangeOf(i)), space.poolName);
    if (r !== undefined) return took(r);
  }
  // A free block: the lowest of those the candidates meet (only those are looked at) with room.
  const seen = new Set<number>();
  for (const c of space.candidates) {
    for (let i = blockOf(net, c.first).index; i <= blockOf(net, c.last).index; i++) {
      if (seen.has(i) || blocks.owners[i] !== undefined) continue;
      seen.add(i);
      const r = await tryIn(book, intersect(space.candidates, rangeOf(i)), space.poolName);
      if (r !== undefined) return took(r);
    }
  }
  const held = new Map<string, number>();
  for (const h of Object.values(blocks.owners)) held.set(h, (held.get(h) ?? 0) + 1);
  const who = [...held].map(([h, n]) => `${holderName(h)} ${n}`).join(', ');
  throw new WeftError('WEFT_POOL_EXHAUSTED', `${space.poolName} has no free address in the blocks ${holderName(host)} holds, and every other /${net.blockSize} block it may use is held (blocks held: ${who || 'none'}); a smaller blockSize spreads addresses over more hosts, and a group's ipPool inside one block serves only the host that holds it`);
}

async function tryIn(book: AddressBook, ranges: IpRange[], poolName: string): Promise<number | undefined> {
  if (ranges.length === 0) return undefined;
  try {
    return await allocateAddress(book, { candidates: ranges, poolName });
  } catch (e) {
    if (e instanceof WeftError && e.code === 'WEFT_POOL_EXHAUSTED') return undefined;
    throw e;
  }
}

/** A block whose last address went back is held by no one: one counter, whatever the block's size. */
async function releaseFromBlock(tx: Txn, net: Network, ip: number): Promise<void> {
  const i = blockOf(net, ip).index;
  const blocks = await readBlocks(tx, net);
  if (blocks.owners[i] === undefined) return;
  const left = (blocks.used[i] ?? 1) - 1;
  if (left > 0) {
    blocks.used[i] = left;
  } else {
    delete blocks.owners[i];
    delete blocks.used[i];
  }
  tx.put(blocksKey(net), blocks);
}
