import { createHash, hash } from 'node:crypto';

/** One container interface is one endpoint; its id is stable for a container id and interface name. */
export function endpointId(containerId: string, ifname: string): string {
  // One-shot: no Hash object for every allocation.
  return hash('sha256', `${containerId}/${ifname}`, 'hex').slice(0, 16);
}

/** How a host record names its agent's instance: the id's SHA-256, so the id itself never leaves the host's state dir. */
export function instanceDigest(instance: string): string {
  return createHash('sha256').update(instance).digest('hex');
}
