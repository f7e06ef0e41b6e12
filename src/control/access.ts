import { WeftError, notFound, type Host } from '../model/index.js';
import type { Principal } from './users.js';

/**
 * Role rules (DESIGN section 3): admin may do everything; ops works in every tenant but may not change
 * global settings or users; a tenant user sees and changes only its listed tenants, and may not create
 * or delete tenants. Other tenants are reported as missing (404), not forbidden, so names do not leak.
 */
export function canSeeTenant(p: Principal, tenant: string): boolean {
  return p.role !== 'tenant' || p.tenants.includes(tenant);
}

/**
 * Principals with the same key see the same tenants (canSeeTenant answers alike for them): what a shared,
 * serialized answer is keyed by, so one filtered for some tenants never reaches anyone else.
 */
export function visibilityKey(p: Principal): string {
  return p.role === 'tenant' ? `tenants:${[...p.tenants].sort().join(',')}` : 'all';
}

export function requireTenantAccess(p: Principal, tenant: string): void {
  if (!canSeeTenant(p, tenant)) throw notFound(`tenant ${tenant}`);
}

export function requireRole(p: Principal, roles: ReadonlyArray<Principal['role']>, what: string): void {
  if (!roles.includes(p.role)) throw new WeftError('WEFT_FORBIDDEN', `user ${p.user} (role ${p.role}) may not ${what}`);
}

/**
 * A macvlan network puts its containers straight on the hosts' own segment (`parent`), past every host
 * firewall and NAT, with addresses the network's creator picks; a routed network's subnet is announced to
 * the fabric's routers and routed by every host: only admin and ops users make or change either. A tenant
 * user may still use one an operator made for the tenant.
 */
export async function requireFabricRights(p: Principal, spec: { encap?: unknown; parent?: unknown; bgpPeers?: unknown; vni?: unknown } | undefined, field: string, stored?: () => Promise<{ encap?: unknown; vni?: unknown } | undefined>): Promise<void> {
  if (p.role === 'admin' || p.role === 'ops') return;
  let read: Promise<{ encap?: unknown; vni?: unknown } | undefined> | undefined;
  const storedOnce = () => (read ??= stored?.() ?? Promise.resolve(undefined));
  // VNIs are one range for every tenant: a tenant user choosing one would learn which others hold (409).
  // Its network's own VNI (a document read back and applied again) is no choice.
  if (spec?.vni !== undefined && (await storedOnce())?.vni !== spec.vni) {
    const at = field.replace(/encap$/, 'vni');
    throw new WeftError('WEFT_FORBIDDEN', `${at}: user ${p.user} (role ${p.role}) may not choose a network's VNI (one range serves every tenant); leave it out and the network gets one`, { field: at });
  }
  const fabric = (e: unknown) => e === 'macvlan' || e === 'routed';
  // The stored network too: a tenant user's PATCH of an operator's network names no encap.
  if (!fabric(spec?.encap) && spec?.parent === undefined && spec?.bgpPeers === undefined) {
    const s = await storedOnce();
    if (!fabric(s?.encap)) return;
  }
  throw new WeftError('WEFT_FORBIDDEN', `${field}: user ${p.user} (role ${p.role}) may not make or change a macvlan or routed network (its containers sit on the hosts' own segment, or its subnet is routed by every host and announced to the fabric); an admin or ops user does it for the tenant`, { field });
}

/** A stored network, or undefined when there is none (any other failure of the store is not "none"). */
export async function storedNetwork(c: { networks: { get(tenant: string, name: string): Promise<{ encap?: unknown }> } }, tenant: string, name: string): Promise<{ encap?: unknown } | undefined> {
  try {
    return await c.networks.get(tenant, name);
  } catch (e) {
    if (e instanceof WeftError && e.code === 'WEFT_NOT_FOUND') return undefined;
    throw e;
  }
}

/** What of a host only admin and ops users and agents see: where its overlay and tunnel traffic goes, and how it fares. */
type HostPrivate = 'vtepIp' | 'vtepIp6' | 'wgPublicKey' | 'tunnelIp' | 'rotateKey' | 'wireguard';

/**
 * A host as `p` may see it: tenant users see its name, state and agent, never its underlay or tunnel
 * addresses, its key, its rotations or its peers' traffic (which would tell one tenant about the others).
 */
export function hostFor(p: Principal, h: Host): Host | Omit<Host, HostPrivate> {
  if (p.role !== 'tenant') return h;
  const { vtepIp: _v, vtepIp6: _v6, wgPublicKey: _k, tunnelIp: _t, rotateKey: _r, wireguard: _w, ...rest } = h;
  return rest;
}
