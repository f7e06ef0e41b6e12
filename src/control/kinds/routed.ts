import {
  DEFAULT_BGP_LOCAL_AS, DEFAULT_BLOCK_SIZE, RESERVED_SERVICES6, WeftError, block6Prefix, cidrRange, cidrRange6, overlaps, overlaps6, parseCidr, parseCidr6, parseIp, parseIp6,
  type Host, type Network, type NetworkInput,
} from '../../model/index.js';
import type { Txn } from '../../store/index.js';
import { withRevision } from '../keys.js';
import { readGlobal } from '../shared.js';

const refuse = (field: string, why: string) => new WeftError('WEFT_INVALID_VALUE', `${field}: ${why}`, { field });

/** At most this many blocks per network: the block record is one value, read by every allocation. */
export const MAX_BLOCKS = 16384;

/** What a routed network stores besides the common fields; nothing for any other encapsulation. */
export type RoutedFields = Pick<Network, 'blockSize' | 'bgpPeers' | 'bgpPeerAs' | 'bgpLocalAs'>;

/**
 * A routed network's own fields, checked: only a routed network has them. Its subnet is announced into
 * the hosts' shared routing table and the fabric, so it may overlap no other tenant's routed subnet, no
 * host's address and nothing the hosts route themselves; its BGP peers lie outside it, and the hosts'
 * AS differs from the peers' (eBGP only). The block size is fixed at creation; peers and AS may change.
 */
export async function checkRouted(tx: Txn, tenant: string, input: NetworkInput, encap: string, existing: Network | undefined): Promise<RoutedFields> {
  const fields = ['blockSize', 'bgpPeers', 'bgpPeerAs', 'bgpLocalAs'] as const;
  if (encap !== 'routed') {
    for (const f of fields) if (input[f] !== undefined) throw refuse(f, `only a network with encap routed has ${f} (this one is ${encap})`);
    return {};
  }
  // An update may omit the subnet (it keeps the network's); an IPv6-only network is never routed (refused before).
  const subnetText = input.subnet ?? existing?.subnet ?? '';
  const subnet = parseCidr(subnetText, 'subnet');
  const mine = cidrRange(subnet);
  if (input.encrypt === true) throw refuse('encrypt', 'a routed network has no overlay to encrypt (its packets are routed over the underlay as they are)');
  const blockSize = existing?.blockSize ?? input.blockSize ?? Math.max(DEFAULT_BLOCK_SIZE, subnet.prefix);
  if (existing && input.blockSize !== undefined && input.blockSize !== existing.blockSize) {
    throw new WeftError('WEFT_IMMUTABLE', `blockSize: cannot change from ${existing.blockSize} to ${input.blockSize}; hosts hold blocks of it`, { field: 'blockSize' });
  }
  if (blockSize < subnet.prefix) throw refuse('blockSize', `/${blockSize} is larger than the subnet ${subnetText}`);
  if (2 ** (blockSize - subnet.prefix) > MAX_BLOCKS) {
    throw refuse('blockSize', `/${blockSize} cuts ${subnetText} into ${2 ** (blockSize - subnet.prefix)} blocks; at most ${MAX_BLOCKS} (a block size of /${subnet.prefix + Math.log2(MAX_BLOCKS)} or larger)`);
  }
  // The special ranges (loopback, link-local, ...) are refused for every network (checkSubnetSpace).
  const tunnel = (await readGlobal(tx)).tunnelRange;
  if (overlaps(mine, cidrRange(parseCidr(tunnel, 'tunnelRange')))) throw refuse('subnet', `${subnetText} overlaps the cluster's tunnel range ${tunnel} (the hosts' WireGuard addresses)`);
  for (const e of await tx.list('networks/')) {
    const other = withRevision<Network>(e);
    if ((other.tenant === tenant && other.name === input.name) || (other.encap !== 'routed' && other.encap !== 'macvlan')) continue;
    if (other.subnet !== undefined && overlaps(mine, cidrRange(parseCidr(other.subnet, 'subnet')))) {
      const why = other.encap === 'routed' ? "routed subnets share the hosts' routing table and the fabric" : 'its addresses are machines on a real segment';
      throw new WeftError('WEFT_OVERLAP', `subnet: ${subnetText} overlaps ${other.encap} network ${other.tenant}/${other.name} (${other.subnet}): ${why}, so they may not overlap in any tenant`, { field: 'subnet' });
    }
    const inside = (other.bgpPeers ?? []).find((p) => { const n = parseIp(p) as number; return n >= mine.first && n <= mine.last; });
    if (inside !== undefined) throw refuse('subnet', `${subnetText} holds ${inside}, a BGP router of routed network ${other.tenant}/${other.name}`);
  }
  for (const e of await tx.list('hosts/')) {
    const h = withRevision<Host>(e);
    for (const a of [h.vtepIp, h.tunnelIp]) {
      const n = a === undefined ? undefined : parseIp(a);
      if (n !== undefined && n >= mine.first && n <= mine.last) throw refuse('subnet', `${subnetText} holds host ${h.name}'s address ${a}; its routes would capture the underlay`);
    }
  }
  await checkRouted6(tx, tenant, input, existing, subnet.prefix, blockSize);
  const peers = input.bgpPeers ?? existing?.bgpPeers ?? [];
  const seen = new Set<string>();
  for (const [i, p] of peers.entries()) {
    const n = parseIp(p);
    if (n === undefined) throw refuse(`bgpPeers.${i}`, `'${p}' is not an IPv4 address`);
    if (n >= mine.first && n <= mine.last) throw refuse(`bgpPeers.${i}`, `${p} is inside the network's own subnet ${subnetText}; a BGP router is on the underlay`);
    if (seen.has(p)) throw refuse(`bgpPeers.${i}`, `${p} is listed twice`);
    seen.add(p);
  }
  const peerAs = input.bgpPeerAs ?? existing?.bgpPeerAs;
  const localAs = input.bgpLocalAs ?? existing?.bgpLocalAs ?? DEFAULT_BGP_LOCAL_AS;
  if (peers.length > 0 && peerAs === undefined) throw refuse('bgpPeerAs', 'bgpPeers needs the routers\' AS (bgpPeerAs)');
  if (peers.length === 0 && input.bgpPeerAs !== undefined) throw refuse('bgpPeerAs', 'there are no bgpPeers to give an AS to');
  for (const e of await tx.list('networks/')) {
    const other = withRevision<Network>(e);
    if (other.encap !== 'routed' || (other.tenant === tenant && other.name === input.name)) continue;
    const shared = (other.bgpPeers ?? []).find((p) => seen.has(p));
    if (shared !== undefined && (other.bgpPeerAs !== peerAs || other.bgpLocalAs !== localAs)) {
      throw refuse('bgpPeerAs', `BGP router ${shared} is also routed network ${other.tenant}/${other.name}'s, with AS ${other.bgpPeerAs} and hosts' AS ${other.bgpLocalAs}: a host has one session per router, so the AS numbers must match`);
    }
  }
  if (peerAs !== undefined && peerAs === localAs) {
    throw refuse(input.bgpLocalAs !== undefined ? 'bgpLocalAs' : 'bgpPeerAs', `the hosts and their BGP routers are both in AS ${peerAs}; hosts speak eBGP only: give them another AS (bgpLocalAs)`);
  }
  return { blockSize, ...(peers.length ? { bgpPeers: peers, bgpPeerAs: peerAs as number, bgpLocalAs: localAs } : {}) };
}

/**
 * A routed network's subnet6 (dual stack): cut into as many blocks as its IPv4 subnet, each at least as
 * large as an IPv4 block (every endpoint of IPv4 block i has its IPv6 address in IPv6 block i); like the
 * IPv4 subnet it is routed on every host and announced, so it may overlap no other routed subnet6 and
 * hold no host's IPv6 underlay address.
 */
async function checkRouted6(tx: Txn, tenant: string, input: NetworkInput, existing: Network | undefined, prefix4: number, blockSize: number): Promise<void> {
  if (existing || input.subnet6 === undefined) return;
  const s6 = parseCidr6(input.subnet6, 'subnet6');
  const prefix = block6Prefix(s6.prefix, prefix4, blockSize);
  // Strictly larger: the IPv6 gateway may lie in another block than the IPv4 one, and a block one
  // address short of its IPv4 twin would fail its host's last allocation there.
  if (128 - prefix <= 32 - blockSize) {
    throw refuse('subnet6', `${input.subnet6} cut into ${2 ** (blockSize - prefix4)} blocks (one per IPv4 /${blockSize} block) gives /${prefix} blocks, no larger than the IPv4 ones; use a subnet6 of /${128 - (32 - blockSize) - (blockSize - prefix4) - 1} or larger`);
  }
  const mine6 = cidrRange6(s6);
  const service = RESERVED_SERVICES6.find((a) => { const n = parseIp6(a) as bigint; return n >= mine6.first && n <= mine6.last; });
  if (service !== undefined) throw refuse('subnet6', `${input.subnet6} holds ${service}, a cloud provider's metadata, DNS or time service the hosts reach by their own routes; a routed subnet6 is routed on every host`);
  for (const e of await tx.list('networks/')) {
    const other = withRevision<Network>(e);
    if ((other.encap !== 'routed' && other.encap !== 'macvlan') || other.subnet6 === undefined || (other.tenant === tenant && other.name === input.name)) continue;
    if (overlaps6(mine6, cidrRange6(parseCidr6(other.subnet6, 'subnet6')))) {
      const why = other.encap === 'routed' ? "routed subnets share the hosts' routing table and the fabric" : 'its addresses are machines on a real segment';
      throw new WeftError('WEFT_OVERLAP', `subnet6: ${input.subnet6} overlaps ${other.encap} network ${other.tenant}/${other.name} (${other.subnet6}): ${why}, so they may not overlap in any tenant`, { field: 'subnet6' });
    }
  }
  for (const e of await tx.list('hosts/')) {
    const h = withRevision<Host>(e);
    const n = h.vtepIp6 === undefined ? undefined : parseIp6(h.vtepIp6);
    if (n !== undefined && n >= mine6.first && n <= mine6.last) throw refuse('subnet6', `${input.subnet6} holds host ${h.name}'s IPv6 underlay address ${h.vtepIp6}; its routes would capture the underlay`);
  }
}
