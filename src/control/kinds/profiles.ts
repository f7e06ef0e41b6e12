import {
  badReference, checkNetprofile,
  type AppProfile, type AppProfileInput, type Group, type Netprofile, type NetprofileInput,
} from '../../model/index.js';
import { findIn, listIn, type KindDef } from '../crud.js';

export const netprofileKind: KindDef<NetprofileInput, Netprofile> = {
  collection: 'netprofiles',
  async build(input, { tenant }) {
    checkNetprofile(input);
    return {
      tenant,
      name: input.name,
      ...(input.bandwidth !== undefined ? { bandwidth: input.bandwidth } : {}),
      ...(input.burst !== undefined ? { burst: input.burst } : {}),
      dscp: input.dscp ?? 0,
    };
  },
  async dependants(tx, p) {
    return (await listIn<Group>(tx, 'groups', p.tenant)).filter((g) => g.netprofile === p.name).map((g) => `group ${g.tenant}/${g.name}`);
  },
};

export const appProfileKind: KindDef<AppProfileInput, AppProfile> = {
  collection: 'app-profiles',
  async build(input, { tx, tenant }) {
    for (const [i, g] of input.groups.entries()) {
      if (!(await findIn<Group>(tx, 'groups', tenant, g))) throw badReference(`groups.${i}`, `group ${tenant}/${g}`);
    }
    return { tenant, name: input.name, groups: input.groups };
  },
  async dependants() {
    return [];
  },
};
