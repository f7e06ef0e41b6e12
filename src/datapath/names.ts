import { createHash } from 'node:crypto';

export { VXLAN_PORT } from '../model/index.js';

/**
 * Kernel names, derived from ids so an agent can rebuild them after a restart (addresses: transit.ts).
 * Link names must fit in 15 bytes; `a`/`b` alone are iproute2 keywords and never produced here.
 */
export const names = {
  /** The tenant's router namespace (its VRF). `prefix` separates agents sharing one machine (labs, tests). */
  tenantNs: (prefix: string, tenantId: number) => `${prefix}t${tenantId}`,
  bridge: (vni: number) => `wb${vni}`,
  /** A network's overlay device, whatever its encapsulation. */
  overlay: (vni: number) => `wx${vni}`,
  endpointVeth: (endpointId: string) => `we${endpointId.slice(0, 12)}`,
  /** The IFB that shapes traffic from the endpoint (its veth's ingress is redirected there). */
  endpointIfb: (endpointId: string) => `wi${endpointId.slice(0, 12)}`,
  uplinkHost: (tenantId: number) => `wu${tenantId}`,
  /** The tenant namespaces among `namespaces` that are this prefix's, with their tenant ids. */
  tenantNamespaces: (prefix: string, namespaces: Iterable<string>): Array<{ ns: string; id: number }> => {
    const pattern = new RegExp(`^${prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}t([0-9]+)$`);
    return [...namespaces].flatMap((ns) => {
      const m = pattern.exec(ns);
      return m ? [{ ns, id: Number(m[1]) }] : [];
    });
  },
  uplinkTenant: 'up0',
  /**
   * A network's bridge's MAC on a host: fixed, so the gateway keeps its MAC while ports come and go (a
   * bridge without one takes its lowest port's, and every container's cached neighbour entry for the
   * gateway would point nowhere once that port left); per host, since another host's bridge sends over
   * the overlay too (a bridge drops frames carrying its own MAC as their source). Locally administered
   * (0x06), outside the endpoints' 02:57:… space.
   */
  bridgeMac: (host: string, vni: number): string => {
    const h = createHash('sha256').update(`${host}\0${vni}`).digest();
    return ['06', ...[...h.subarray(0, 5)].map((b) => b.toString(16).padStart(2, '0'))].join(':');
  },
};
