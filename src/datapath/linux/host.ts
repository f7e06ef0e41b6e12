import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
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
  // After the table (which holds NAT66 and its filter): a failure here costs IPv6 out, not the table.
  if (h.tenants.some((t) => t.uplink.tenantIp6 !== undefined)) forwardIpv6();
}

const CONF6 = '/proc/sys/net/ipv6/conf';
let warned = false;

/**
 * IPv6 forwarding, while some tenant here has IPv6 (NAT66 through the host). An interface that forwards
 * ignores router advertisements unless its accept_ra is 2: a host that learns its own IPv6 address and
 * default route by SLAAC would lose them at their next expiry. So every interface that takes them now
 * (accept_ra 1), and the default for new ones, is set to 2 first: it keeps taking them, as before.
 * Left on when the last such tenant goes, as ip_forward is (other software may rely on it by then).
 */
export function forwardIpv6(conf = CONF6): void {
  if (!existsSync(conf)) return;
  const read = (p: string) => { try { return readFileSync(p, 'utf8').trim(); } catch { return undefined; } };
  if (read(`${conf}/all/forwarding`) === '1') return;
  // `default` first: an interface made during the loop then starts with 2.
  const devs = readdirSync(conf).filter((d) => d !== 'all' && d !== 'lo').sort((a, b) => (a === 'default' ? -1 : b === 'default' ? 1 : 0));
  for (const dev of devs) {
    const p = `${conf}/${dev}/accept_ra`;
    // An interface gone meanwhile has nothing to keep.
    try { if (read(p) === '1') writeFileSync(p, '2'); } catch { /* gone */ }
  }
  try {
    writeFileSync(`${conf}/all/forwarding`, '1');
  } catch (e) {
    if (warned) return;
    warned = true;
    process.emitWarning(`weft: IPv6 forwarding could not be turned on (${(e as Error).message}): containers reach no IPv6 outside their host`);
  }
}
