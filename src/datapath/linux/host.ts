import { readFileSync, writeFileSync } from 'node:fs';
import type { HostPlan } from '../plan.js';
import { renderHostTable } from '../host-nft.js';
import type { NftTables } from './nft.js';

/**
 * The host side: forwarding on, and the host table (published ports, masquerade out of the host, and the
 * filter that keeps tenants off the host's listeners and out of each other, and overlay frames from anyone
 * but the other hosts).
 */
export async function ensureHost(nft: NftTables, h: HostPlan): Promise<void> {
  const f = '/proc/sys/net/ipv4/ip_forward';
  if (readFileSync(f, 'utf8').trim() !== '1') writeFileSync(f, '1');
  // Not owned: other software (Docker, a firewall) keeps its own tables in the host namespace.
  await nft.ensureAll(undefined, [renderHostTable(h.tenants, h.peers, h.tunnel && { device: h.tunnel.device, clearVnis: h.clearVnis })], false);
}
