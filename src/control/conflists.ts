import { conflistName, shortConflistName, shortNameTwins } from '../model/index.js';
import type { Store } from '../store/index.js';
import { keys } from './keys.js';

/**
 * What the creator of a group or network must be told when another tenant's group or network has the
 * same short conflist name (model/conflists.ts): no host writes that name any more, for either of them.
 * Names neither the other object nor its tenant.
 */
export async function conflistNotice(store: Store, tenant: string, name: string, canSee: (tenant: string) => boolean): Promise<string | undefined> {
  const twins = shortNameTwins(tenant, name);
  // Whether a tenant the caller cannot see holds the twin is not the caller's to learn (it would tell
  // which tenants exist and what they hold): the notice then says only that it may be so.
  let unseen = false;
  for (const twin of twins) {
    if (!canSee(twin.tenant)) { unseen = true; continue; }
    for (const c of ['networks', 'groups'] as const) {
      if (!(await store.get(keys.scoped(c, twin.tenant, twin.name)))) continue;
      return `the CNI network name ${shortConflistName(tenant, name)} is ambiguous (another tenant has a network or group `
        + `with the same short name), so no host writes it for either: select this one as ${conflistName(tenant, name)}`;
    }
  }
  if (!unseen) return undefined;
  return `the CNI network name ${shortConflistName(tenant, name)} is not written by hosts if another tenant has a network or group `
    + `with the same short name; ${conflistName(tenant, name)} always selects this one`;
}
