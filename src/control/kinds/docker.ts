import { WeftError, badReference, type DockerNetwork, type DockerNetworkInput, type Group, type Network } from '../../model/index.js';
import { findIn, type KindDef } from '../crud.js';

/** Docker's view of a Weft network (and group) on one host: see DockerNetworkInput. */
export const dockerNetworkKind: KindDef<DockerNetworkInput, DockerNetwork> = {
  collection: 'docker-networks',

  async build(input, { tx, tenant }) {
    if (!(await findIn<Network>(tx, 'networks', tenant, input.network))) throw badReference('network', `network ${tenant}/${input.network}`);
    if (input.group !== undefined) {
      const g = await findIn<Group>(tx, 'groups', tenant, input.group);
      if (!g) throw badReference('group', `group ${tenant}/${input.group}`);
      if (g.network !== input.network) {
        throw new WeftError('WEFT_INVALID_FIELD', `group: ${tenant}/${input.group} is on network ${g.network}, not ${input.network}`, { field: 'group' });
      }
    }
    return {
      tenant, name: input.name, network: input.network, host: input.host,
      ...(input.group !== undefined ? { group: input.group } : {}), ...(input.pool !== undefined ? { pool: input.pool } : {}),
    };
  },

  async dependants() {
    return [];
  },
};
