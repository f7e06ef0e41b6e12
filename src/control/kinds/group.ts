import {
  WeftError, badReference, checkPool, overlaps,
  type AppProfile, type Group, type GroupInput, type Netprofile, type Network, type Policy,
} from '../../model/index.js';
import { findIn, label, listIn, type KindDef } from '../crud.js';
import type { Txn } from '../../store/index.js';
import { layoutOf } from '../addressing.js';
import { groupPoolsOf, trackGroupPool } from '../group-pools.js';
import { endpointsWhere } from '../shared.js';
import { rulesOfTenant } from '../policy-store.js';

/** Contiv's endpoint group: members share a network, policies and a netprofile. */
export const groupKind: KindDef<GroupInput, Group> = {
  collection: 'groups',

  async build(input, { tx, tenant, existing }) {
    const net = await findIn<Network>(tx, 'networks', tenant, input.network);
    if (!net) throw badReference('network', `network ${tenant}/${input.network}`);
    if (await findIn<Network>(tx, 'networks', tenant, input.name)) {
      throw new WeftError('WEFT_EXISTS', `name: network ${tenant}/${input.name} exists; a group may not share its name with a network`, { field: 'name' });
    }
    if (existing && existing.network !== input.network) {
      throw new WeftError('WEFT_IMMUTABLE', `network: a group cannot move from network ${existing.network} to ${input.network}`, { field: 'network' });
    }
    if (existing && (existing.ipPool ?? '') !== (input.ipPool ?? '')) {
      throw new WeftError('WEFT_IMMUTABLE', 'ipPool: a group\'s ipPool cannot change; create a new group instead', { field: 'ipPool' });
    }
    for (const [i, p] of (input.policies ?? []).entries()) {
      if (!(await findIn<Policy>(tx, 'policies', tenant, p))) throw badReference(`policies.${i}`, `policy ${tenant}/${p}`);
    }
    if (input.netprofile && !(await findIn<Netprofile>(tx, 'netprofiles', tenant, input.netprofile))) {
      throw badReference('netprofile', `netprofile ${tenant}/${input.netprofile}`);
    }
    if (input.ipPool !== undefined && !existing) {
      const layout = layoutOf(net, 'ipPool');
      const pool = checkPool(input.ipPool, layout, net.name);
      for (const [name, other, first, last] of await groupPoolsOf(tx, net, layout)) {
        if (overlaps(pool, { first, last })) {
          throw new WeftError('WEFT_OVERLAP', `ipPool: ${input.ipPool} overlaps the pool of group ${tenant}/${name} (${other})`, { field: 'ipPool' });
        }
      }
    }
    return {
      tenant,
      name: input.name,
      network: input.network,
      policies: input.policies ?? [],
      ...(input.netprofile ? { netprofile: input.netprofile } : {}),
      ...(input.ipPool !== undefined ? { ipPool: input.ipPool } : {}),
      labels: input.labels ?? {},
    };
  },

  async created(tx, g) {
    await trackPool(tx, g, true);
  },

  async release(tx, g) {
    await trackPool(tx, g, false);
  },

  async dependants(tx, g) {
    const eps = await endpointsWhere(tx, (e) => e.tenant === g.tenant && e.group === g.name);
    const apps = (await listIn<AppProfile>(tx, 'app-profiles', g.tenant)).filter((a) => a.groups.includes(g.name));
    const rules = (await rulesOfTenant(tx, g.tenant)).filter(({ rule: r }) => r.fromGroup === g.name || r.toGroup === g.name)
      .map(({ policy, rule }) => `policy ${g.tenant}/${policy} rule ${rule.id}`);
    return [...eps.map((e) => `endpoint ${e.id}`), ...apps.map((a) => label('app-profiles', a.tenant, a.name)), ...rules];
  },
};

/** A group's pool into (or out of) its network's index; the network is there (it may not go while a group names it). */
async function trackPool(tx: Txn, g: Pick<Group, 'tenant' | 'name' | 'network' | 'ipPool'>, add: boolean): Promise<void> {
  if (!g.ipPool) return;
  const net = await findIn<Network>(tx, 'networks', g.tenant, g.network);
  if (net) await trackGroupPool(tx, g, layoutOf(net, 'ipPool'), add);
}
