import * as crypto from 'node:crypto';

/** Node's one-shot hash (20.12 and later; engines allow any 20): no Hash object a call. */
const oneShot = (crypto as { hash?: (algorithm: string, data: string, encoding: 'hex') => string }).hash;

/** One container interface is one endpoint; its id is stable for a container id and interface name. */
export function endpointId(containerId: string, ifname: string): string {
  const text = `${containerId}/${ifname}`;
  return (oneShot ? oneShot('sha256', text, 'hex') : crypto.createHash('sha256').update(text).digest('hex')).slice(0, 16);
}

/** How a host record names its agent's instance: the id's SHA-256, so the id itself never leaves the host's state dir. */
export function instanceDigest(instance: string): string {
  return crypto.createHash('sha256').update(instance).digest('hex');
}
