// The one refusal Weft's Docker driver and the hook proxy share: the driver refuses a Docker network made
// without IPv6 on a dual-stack Weft network; dockerd passes only the error's text on, so the proxy reads
// which network it was from that text. Both ends use these two functions, so the text cannot drift apart.
import { NAME_PATTERN } from './objects.js';

const NAME = new RegExp(NAME_PATTERN);

/** The driver's refusal of a Docker network without IPv6 on dual-stack `tenant/network` (subnet6 `subnet6`). */
export function dualStackRefusal(tenant: string, network: string, subnet6: string): string {
  return `network ${tenant}/${network} is dual-stack (subnet6 ${subnet6}): create the Docker network with --ipv6 (and the subnet6 as a second --subnet, or --ipam-opt network=${network})`;
}

const REFUSAL = /network ([^/\s]+)\/(\S+) is dual-stack \(subnet6 /;

/** The tenant and network a dual-stack refusal names, if `text` contains one with valid names; else undefined. */
export function parseDualStackRefusal(text: string): { tenant: string; network: string } | undefined {
  const m = REFUSAL.exec(text);
  const [tenant, network] = [m?.[1], m?.[2]];
  if (tenant === undefined || network === undefined || !NAME.test(tenant) || !NAME.test(network)) return undefined;
  return { tenant, network };
}
