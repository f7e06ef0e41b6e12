import { WeftError, checkNetwork, checkPool, formatIp, parseIp, cidrRange, type IpRange, type Network, type Group } from '../model/index.js';
import { Bitmap, allocateAddress, openAddressBook, releaseAddress, subtractRanges, type AddressBook } from '../ipam/index.js';
import type { Txn } from '../store/index.js';
import { keys, withRevision } from './keys.js';

/** Glue between the pure IPAM and the store: a network's address book is one value, read and written in a transaction. */
interface StoredBook { size: number; bits: string }

export function layoutOf(net: Network) {
  return checkNetwork({ name: net.name, subnet: net.subnet, gateway: net.gateway, ...(net.ipRange ? { ipRange: net.ipRange } : {}) });
}

export function newAddressBook(tx: Txn, net: Network): void {
  const layout = layoutOf(net);
  writeBook(tx, net, openAddressBook(layout.subnet, layout.gateway));
}

export async function readBook(tx: Txn, net: Network): Promise<AddressBook> {
  const e = await tx.get(keys.addressBook(net.tenant, net.name));
  const layout = layoutOf(net);
  if (!e) return openAddressBook(layout.subnet, layout.gateway);
  const v = e.value as StoredBook;
  return { subnet: layout.subnet, bits: Bitmap.decode(v.size, v.bits) };
}

export function writeBook(tx: Txn, net: Network, book: AddressBook): void {
  tx.put(keys.addressBook(net.tenant, net.name), { size: book.bits.size, bits: book.bits.encode() } satisfies StoredBook);
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
  if (group?.ipPool) {
    const pool = checkPool(group.ipPool, layout, net.name);
    return { candidates: [pool], allowed: [pool], poolName: `group ${group.tenant}/${group.name} (ipPool ${group.ipPool})` };
  }
  const pools = (await groupsOf(tx, net)).flatMap((g) => (g.ipPool ? [checkPool(g.ipPool, layout, net.name)] : []));
  const all = cidrRange(layout.subnet);
  return {
    candidates: subtractRanges(layout.dynamic, pools),
    allowed: subtractRanges({ first: all.first + 1, last: all.last - 1 }, pools),
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
    const ip = allocateAddress(book, { ...space, ...(want !== undefined ? { requested: want } : {}) });
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
  releaseAddress(book, n);
  writeBook(tx, net, book);
}
