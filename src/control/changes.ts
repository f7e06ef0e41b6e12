import type { Change } from '../store/index.js';
import type { ChangeEvent } from '../model/index.js';
import { canSeeTenant } from './access.js';
import type { Principal } from './users.js';

/** A change as watchers and the history see it: typed, attributed, secrets removed. */
export type PublicChange = ChangeEvent;

const KINDS: Record<string, string> = {
  tenants: 'tenant', networks: 'network', groups: 'group', policies: 'policy', netprofiles: 'netprofile',
  services: 'service', 'app-profiles': 'app-profile', namespaces: 'namespace', networkpolicies: 'networkpolicy',
  adminnetworkpolicies: 'adminnetworkpolicy', baselineadminnetworkpolicies: 'baselineadminnetworkpolicy',
  // `weft verify`'s requests, for the agents (their reports stay internal: verify.ts).
  verify: 'verify', 'docker-networks': 'docker-network', endpoints: 'endpoint', hosts: 'host', global: 'global', users: 'user',
  // A policy's rules, a segment at a time (model's RuleSegment); the `policy` change is its head, without rules.
  rules: 'policy-rules',
};

/** Internal keys (address books, tokens) are never published; user records lose their password hash. */
export function publicChange(c: Change): PublicChange | undefined {
  const [collection = '', second] = c.key.split('/');
  const kind = KINDS[collection];
  if (kind === undefined) return undefined;
  let object = c.value;
  if (kind === 'user' && object && typeof object === 'object') {
    const { passwordHash: _p, ...rest } = object as Record<string, unknown>;
    object = rest;
  }
  let tenant: string | undefined;
  if (kind === 'tenant') tenant = second;
  else if (kind === 'endpoint') tenant = (object as { tenant?: string } | undefined)?.tenant;
  else if (!['host', 'global', 'user'].includes(kind)) tenant = second;
  return { revision: c.revision, op: c.op, kind, key: c.key, ...(tenant !== undefined ? { tenant } : {}), object, actor: c.actor, time: c.time };
}

/**
 * Per tenant of a tenant user, the revision its present incarnation was made at: a tenant deleted and made
 * again under its name is another customer's, and its users must not read the history of the first.
 */
export type Floors = ReadonlyMap<string, number>;

export function visibleTo(p: Principal, c: PublicChange, floors?: Floors): boolean {
  if (c.kind === 'user') return p.role === 'admin';
  if (c.tenant === undefined) return p.role !== 'tenant' || c.kind === 'global';
  if (!canSeeTenant(p, c.tenant)) return false;
  if (floors === undefined || p.role !== 'tenant') return true;
  const since = floors.get(c.tenant);
  return since !== undefined && c.revision >= since;
}

/** The floors of a tenant user's tenants (a tenant that does not exist now shows nothing); none for others. */
export async function floorsOf(p: Principal, createdAt: (tenant: string) => Promise<number | undefined>): Promise<Floors | undefined> {
  if (p.role !== 'tenant') return undefined;
  const out = new Map<string, number>();
  for (const t of p.tenants) {
    const at = await createdAt(t);
    if (at !== undefined) out.set(t, at);
  }
  return out;
}
