import { WeftError, block6Of, blockOf, checkNetwork6, formatIp6, parseIp, parseIp6, type IpRange6, type Network } from '../model/index.js';
import { AddressBook6, Bitmap, CHUNK_SIZE, allocateAddress6, decodeRuns, encodeRuns, openAddressBook6, releaseAddress6 } from '../ipam/index.js';
import type { Txn } from '../store/index.js';
import { keys } from './keys.js';

/**
 * A dual-stack network's IPv6 book, beside its IPv4 one: a summary at `ipam/T/N/v6` (runs of full
 * chunks) and one value per touched chunk at `ipam/T/N/v6/INDEX`; dropped with the IPv4 book (`dropBook`
 * removes everything under `ipam/T/N/`). A /64 costs what a /24 does: nothing is stored for chunks never
 * touched. The summary keeps no count of addresses in use, so an allocation writes it only when a chunk
 * fills or empties (one in 256): one row per allocation, not two (bench:api's dual rows).
 */
interface StoredSummary6 { size: string; chunkSize: number; full: string[] }

const bookKey = (net: Network) => `${keys.addressBook(net.tenant, net.name)}/v6`;

/** Layouts by their text: an allocation does not parse the network's IPv6 fields again (bounded). */
const layouts = new Map<string, NonNullable<ReturnType<typeof checkNetwork6>>>();

function layout6(net: Network) {
  const key = `${net.subnet6}|${net.gateway6}|${net.ipRange6}`;
  let l = layouts.get(key);
  if (!l) {
    const checked = checkNetwork6(net);
    if (!checked) throw new WeftError('WEFT_INVALID_VALUE', `network ${net.tenant}/${net.name} has no subnet6`, { field: 'ip6' });
    if (layouts.size >= 1000) layouts.clear();
    layouts.set(key, (l = checked));
  }
  return l;
}

/** A dual-stack network's IPv6 prefix length (what an endpoint's `prefixLength6` says), from the layout cache. */
export const prefixLength6 = (net: Network): number => layout6(net).subnet.prefix;

const loaderFor = (tx: Txn, net: Network) => async (index: bigint) => {
  const e = await tx.get(`${bookKey(net)}/${index}`);
  return e ? Bitmap.decode(CHUNK_SIZE, (e.value as { bits: string }).bits) : undefined;
};

async function readBook6(tx: Txn, net: Network): Promise<AddressBook6> {
  const l = layout6(net);
  const e = await tx.get(bookKey(net));
  if (!e) return openAddressBook6(l.subnet, l.gateway, loaderFor(tx, net));
  const v = e.value as StoredSummary6;
  return new AddressBook6(l.subnet, decodeRuns(v.full), 0, loaderFor(tx, net));
}

function writeBook6(tx: Txn, net: Network, book: AddressBook6, force = false): void {
  // A chunk emptied again is deleted, not kept: keys stay bounded by the addresses in use.
  for (const i of book.dirtyChunks) {
    const bits = book.chunk(i);
    if (!bits || bits.count() === 0) tx.delete(`${bookKey(net)}/${i}`);
    else tx.put(`${bookKey(net)}/${i}`, { bits: bits.encode() });
  }
  if (force || book.summaryDirty) tx.put(bookKey(net), { size: book.size.toString(), chunkSize: CHUNK_SIZE, full: encodeRuns(book.full) } satisfies StoredSummary6);
}

/** A new dual-stack network's book (anycast and gateway taken); nothing for an IPv4-only one. */
export async function newAddressBook6(tx: Txn, net: Network): Promise<void> {
  if (net.subnet6 === undefined) return;
  const l = layout6(net);
  writeBook6(tx, net, await openAddressBook6(l.subnet, l.gateway, loaderFor(tx, net)), true);
}

/**
 * Allocates an IPv6 address in a dual-stack network inside the transaction (lowest free of ipRange6, or
 * the requested one) and returns it as canonical text. Group pools are IPv4 only: every member's IPv6
 * address comes from the network's range.
 */
export async function takeAddress6(tx: Txn, net: Network, requested: string | undefined, field = 'ip6', ip4?: string): Promise<string> {
  let want: bigint | undefined;
  if (requested !== undefined) {
    want = parseIp6(requested);
    if (want === undefined) throw new WeftError('WEFT_INVALID_FIELD', `${field}: '${requested.slice(0, 64)}' is not an IPv6 address`, { field });
  }
  const l = layout6(net);
  const book = await readBook6(tx, net);
  const block = net.encap === 'routed' ? pairedBlock(net, ip4) : undefined;
  const ip = await allocateAddress6(book, {
    candidates: [block?.range ?? l.dynamic],
    // A macvlan network's addresses are machines on a real segment: only its range is Weft's (as in IPv4).
    allowed: [block?.range ?? (net.encap === 'macvlan' ? l.dynamic : { first: l.subnet.base + 1n, last: l.subnet.base + book.size - 1n })],
    poolName: block ? `network ${net.tenant}/${net.name}'s IPv6 block ${block.cidr} (paired with the IPv4 block of ${ip4 ?? ''})` : `network ${net.tenant}/${net.name}`,
    field,
    ...(want !== undefined ? { requested: want } : {}),
  });
  writeBook6(tx, net, book);
  return formatIp6(ip);
}

/**
 * A routed network's IPv6 block paired with the IPv4 block `ip4` is in (block6Of): an endpoint's two
 * addresses are routed to the same host. The subnet-router anycast address (the block's first in block 0)
 * is never handed out: the book holds it taken.
 */
function pairedBlock(net: Network, ip4: string | undefined): { range: IpRange6; cidr: string } {
  const n = ip4 === undefined ? undefined : parseIp(ip4);
  const block = n === undefined ? undefined : block6Of(net, blockOf(net, n).index);
  if (!block) throw new WeftError('WEFT_INTERNAL', `routed network ${net.tenant}/${net.name}: an IPv6 address is taken after its IPv4 one`);
  return block;
}

export async function giveBackAddress6(tx: Txn, net: Network, ip: string | undefined): Promise<void> {
  const n = ip === undefined || net.subnet6 === undefined ? undefined : parseIp6(ip);
  if (n === undefined) return;
  const book = await readBook6(tx, net);
  await releaseAddress6(book, n);
  writeBook6(tx, net, book);
}
