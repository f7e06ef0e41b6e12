import { WeftError, checkNetwork, checkPool, formatIp, parseIp, cidrRange, type IpRange, type Network, type Group } from '../model/index.js';
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

/** Allocates an address in `net` inside the transaction and returns it as text. */
export async function takeAddress(tx: Txn, net: Network, group: Group | undefined, requested: string | undefined, field = 'ip'): Promise<string> {
  let want: number | undefined;
  if (requested !== undefined) {
    want = parseIp(requested);
    if (want === undefined) throw new WeftError('WEFT_INVALID_FIELD', `${field}: '${requested}' is not an IPv4 address`, { field });
  }
  const book = await readBook(tx, net);
  const space = await addressSpace(tx, net, group);
  try {
    const ip = await allocateAddress(book, { ...space, ...(want !== undefined ? { requested: want } : {}) });
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
}
