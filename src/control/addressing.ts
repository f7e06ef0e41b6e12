import { WeftError, blockOf, checkNetwork, checkPool, formatIp, parseIp, cidrRange, type IpRange, type Network, type Group } from '../model/index.js';
import { AddressBook, Bitmap, CHUNK_SIZE, allocateAddress, openAddressBook, releaseAddress, subtractRanges } from '../ipam/index.js';
import type { Txn } from '../store/index.js';
import { keys, withRevision } from './keys.js';

/**
 * Glue between the pure IPAM and the store. A network's book is a summary at `ipam/T/N` (which chunks
 * are full, how many addresses are used) plus one value per touched chunk at `ipam/T/N/INDEX`, so an
 * allocation writes a few dozen bytes whatever the subnet size.
 */
interface StoredSummary { size: number; chunkSize: number; used: number; full: string }
interface StoredChunk { bits: string }

export function layoutOf(net: Network) {
  return checkNetwork({ name: net.name, subnet: net.subnet, gateway: net.gateway, ...(net.ipRange ? { ipRange: net.ipRange } : {}) });
}

const loaderFor = (tx: Txn, net: Network) => async (index: number) => {
  const e = await tx.get(`${keys.addressBook(net.tenant, net.name)}/${index}`);
  return e ? Bitmap.decode(CHUNK_SIZE, (e.value as StoredChunk).bits) : undefined;
};

export async function newAddressBook(tx: Txn, net: Network): Promise<void> {
  const layout = layoutOf(net);
  writeBook(tx, net, await openAddressBook(layout.subnet, layout.gateway, loaderFor(tx, net)), true);
}

export async function readBook(tx: Txn, net: Network): Promise<AddressBook> {
  const e = await tx.get(keys.addressBook(net.tenant, net.name));
  const layout = layoutOf(net);
  if (!e) return openAddressBook(layout.subnet, layout.gateway, loaderFor(tx, net));
  const v = e.value as StoredSummary;
  return new AddressBook(layout.subnet, Bitmap.decode(AddressBook.chunkCount(layout.subnet), v.full), v.used, loaderFor(tx, net));
}

/** Writes the chunks the book changed, and the summary (its `used` count changes with every write). */
export function writeBook(tx: Txn, net: Network, book: AddressBook, force = false): void {
  const key = keys.addressBook(net.tenant, net.name);
  if (!force && book.dirtyChunks.size === 0) return;
  for (const i of book.dirtyChunks) tx.put(`${key}/${i}`, { bits: book.chunk(i)?.encode() ?? '' } satisfies StoredChunk);
  tx.put(key, { size: book.size, chunkSize: CHUNK_SIZE, used: book.used, full: book.full.encode() } satisfies StoredSummary);
}

/** Removes a network's whole book (summary and chunks). */
export async function dropBook(tx: Txn, net: Network): Promise<void> {
  const key = keys.addressBook(net.tenant, net.name);
  tx.delete(key);
  for (const e of await tx.list(`${key}/`)) tx.delete(e.key);
}

async function groupsOf(tx: Txn, net: Network): Promise<Group[]> {
  const all = await tx.list(`groups/${net.tenant}/`);
  return all.map((e) => withRevision<Group>(e)).filter((g) => g.network === net.name);
}

/**
 * Where an address for a member of `group` (or for a plain network member) may come from: a group with
 * an ipPool uses only its pool; everyone else uses the network's dynamic range minus every group's pool.
 * `allowed` is where a requested (static) address may lie.
 */
export async function addressSpace(tx: Txn, net: Network, group: Group | undefined): Promise<{ candidates: IpRange[]; allowed: IpRange[]; poolName: string }> {
  const layout = layoutOf(net);
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
  const pools = (await groupsOf(tx, net)).flatMap((g) => (g.ipPool ? [checkPool(g.ipPool, layout, net.name)] : []));
  const all = cidrRange(layout.subnet);
  return {
    candidates: subtractRanges(layout.dynamic, pools),
    allowed: subtractRanges(macvlan ? layout.dynamic : { first: all.first + 1, last: all.last - 1 }, pools),
    poolName: `network ${net.tenant}/${net.name}`,
  };
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
  const book = await readBook(tx, net);
  const space = await addressSpace(tx, net, group);
  try {
    const ip = net.encap === 'routed'
      ? await takeRouted(tx, net, book, space, host ?? SERVICES, want)
      : await allocateAddress(book, { ...space, ...(want !== undefined ? { requested: want } : {}) });
    writeBook(tx, net, book);
    return formatIp(ip);
  } catch (e) {
    if (e instanceof WeftError && e.field === 'ip' && field !== 'ip') {
      throw new WeftError(e.code, e.message.replace(/^ip:/, `${field}:`), { field });
    }
    throw e;
  }
}

export async function giveBackAddress(tx: Txn, net: Network, ip: string): Promise<void> {
  const n = parseIp(ip);
  if (n === undefined) return;
  const book = await readBook(tx, net);
  await releaseAddress(book, n);
  writeBook(tx, net, book);
  if (net.encap === 'routed') await freeBlockIfEmpty(tx, net, book, n);
}

/**
 * A routed network's blocks: which host holds each (by index inside the subnet), kept beside its address
 * book (`ipam/T/N/blocks`, never published). A block is held from its first address's allocation to its
 * last one's release, so every address of a block is on its holder, and a host routes and announces
 * exactly the blocks its endpoints are in. Service VIPs (no host) hold blocks of their own, never routed
 * to a host.
 */
interface StoredBlocks { owners: Record<string, string> }
const SERVICES = '';
const blocksKey = (net: Network) => `${keys.addressBook(net.tenant, net.name)}/blocks`;

async function readBlocks(tx: Txn, net: Network): Promise<StoredBlocks> {
  const e = await tx.get(blocksKey(net));
  return { owners: { ...((e?.value as StoredBlocks | undefined)?.owners ?? {}) } };
}

const intersect = (a: readonly IpRange[], r: IpRange): IpRange[] => a.flatMap((x) => {
  const first = Math.max(x.first, r.first);
  const last = Math.min(x.last, r.last);
  return first <= last ? [{ first, last }] : [];
});

async function takeRouted(tx: Txn, net: Network, book: AddressBook, space: Awaited<ReturnType<typeof addressSpace>>, host: string, want: number | undefined): Promise<number> {
  const blocks = await readBlocks(tx, net);
  const holder = (h: string) => (h === SERVICES ? 'the services (VIPs)' : `host ${h}`);
  const claim = (index: number) => {
    if (blocks.owners[index] === host) return;
    blocks.owners[index] = host;
    tx.put(blocksKey(net), blocks);
  };
  if (want !== undefined) {
    const b = blockOf(net, want);
    const owner = blocks.owners[b.index];
    if (owner !== undefined && owner !== host) {
      throw new WeftError('WEFT_INVALID_VALUE', `ip: ${formatIp(want)} is in block ${b.cidr} of routed network ${net.tenant}/${net.name}, which ${holder(owner)} holds; a routed network's addresses are routed to their block's host`, { field: 'ip' });
    }
    const ip = await allocateAddress(book, { ...space, requested: want });
    claim(b.index);
    return ip;
  }
  const mine = Object.entries(blocks.owners).filter(([, h]) => h === host).map(([i]) => Number(i)).sort((a, b) => a - b);
  const base = layoutOf(net).subnet.base;
  const size = 2 ** (32 - (net.blockSize ?? 32));
  const rangeOf = (i: number): IpRange => ({ first: base + i * size, last: base + (i + 1) * size - 1 });
  for (const i of mine) {
    const r = await tryIn(book, intersect(space.candidates, rangeOf(i)), space.poolName);
    if (r !== undefined) return r;
  }
  // A free block: the lowest whose range meets the candidates and has room.
  const count = Math.ceil(book.size / size);
  for (let i = 0; i < count; i++) {
    if (blocks.owners[i] !== undefined) continue;
    const r = await tryIn(book, intersect(space.candidates, rangeOf(i)), space.poolName);
    if (r !== undefined) {
      claim(i);
      return r;
    }
  }
  const held = new Map<string, number>();
  for (const h of Object.values(blocks.owners)) held.set(h, (held.get(h) ?? 0) + 1);
  const who = [...held].map(([h, n]) => `${holder(h)} ${n}`).join(', ');
  throw new WeftError('WEFT_POOL_EXHAUSTED', `${space.poolName} has no free address in the blocks ${holder(host)} holds and no free block of /${net.blockSize} left (${count} blocks; held: ${who || 'none'}); a smaller blockSize or a larger subnet spreads addresses over more hosts`);
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

/** A block whose last address went back is held by no one (the network's own reserved addresses aside). */
async function freeBlockIfEmpty(tx: Txn, net: Network, book: AddressBook, ip: number): Promise<void> {
  const b = blockOf(net, ip);
  const blocks = await readBlocks(tx, net);
  if (blocks.owners[b.index] === undefined) return;
  const layout = layoutOf(net);
  const all = cidrRange(layout.subnet);
  for (let a = b.range.first; a <= b.range.last; a++) {
    if (a === all.first || a === all.last || a === layout.gateway) continue;
    if (await book.has(a - all.first)) return;
  }
  delete blocks.owners[b.index];
  tx.put(blocksKey(net), blocks);
}
