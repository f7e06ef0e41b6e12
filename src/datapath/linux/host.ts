import { readFileSync, writeFileSync } from 'node:fs';
import type { TenantPlan } from '../plan.js';
import { renderHostTable } from '../nft.js';
import type { NftTables } from './nft.js';

/** The host side: forwarding on, and the host NAT table (published ports, masquerade out of the host). */
export async function ensureHost(nft: NftTables, plans: readonly TenantPlan[]): Promise<void> {
  const f = '/proc/sys/net/ipv4/ip_forward';
  if (readFileSync(f, 'utf8').trim() !== '1') writeFileSync(f, '1');
  await nft.ensure(undefined, renderHostTable(plans));
}
