import { WeftError, badReference, type DockerNetwork, type DockerNetworkInput, type Group, type Network } from '../../model/index.js';
import type { Txn } from '../../store/index.js';
import { findIn, type KindDef } from '../crud.js';
import { withRevision } from '../keys.js';

/**
 * Agents find a mapping by Docker's network ID or by its IPAM pool ID alone, in every tenant: a second
 * mapping with either (another tenant's, written through the API) would decide which tenant a container
 * lands in. Both are unique across tenants; the message names no other tenant.
 */
async function requireUnique(tx: Txn, tenant: string, input: DockerNetworkInput): Promise<void> {
  if (input.pool !== undefined && input.pool === input.pool6) throw new WeftError('WEFT_INVALID_VALUE', 'pool6: the IPv6 pool must differ from the IPv4 one', { field: 'pool6' });
  for (const e of await tx.list('docker-networks/')) {
    const o = withRevision<DockerNetwork>(e);
    if (o.tenant === tenant && o.name === input.name) continue;
    if (o.name === input.name) throw new WeftError('WEFT_EXISTS', `name: Docker network ${input.name.slice(0, 12)} is already mapped in another tenant`, { field: 'name' });
    const theirs = [o.pool, o.pool6];
    for (const f of ['pool', 'pool6'] as const) {
      const mine = input[f];
      if (mine !== undefined && theirs.includes(mine)) throw new WeftError('WEFT_EXISTS', `${f}: ${mine} already belongs to another Docker network`, { field: f });
    }
  }
}

/** Docker's view of a Weft network (and group) on one host: see DockerNetworkInput. */
export const dockerNetworkKind: KindDef<DockerNetworkInput, DockerNetwork> = {
  collection: 'docker-networks',

  async build(input, { tx, tenant }) {
    const net = await findIn<Network>(tx, 'networks', tenant, input.network);
    if (!net) throw badReference('network', `network ${tenant}/${input.network}`);
    // Docker asks every network for an IPv4 pool.
    if (net.subnet === undefined) throw new WeftError('WEFT_INVALID_VALUE', `network: ${tenant}/${input.network} is IPv6-only; Docker networks need a Weft network with an IPv4 subnet`, { field: 'network' });
    // Docker gives a container its IPv6 address with an on-link prefix; a routed network's neighbours are
    // on other ports and hosts, where no one answers its neighbour solicitations (Weft's own plugin sets none).
    if (net.encap === 'routed' && net.subnet6 !== undefined) {
      throw new WeftError('WEFT_INVALID_VALUE', `network: ${tenant}/${input.network} is a routed network with IPv6; Docker configures IPv6 on-link, which a routed network cannot answer (use podman or another CNI runtime)`, { field: 'network' });
    }
    await requireUnique(tx, tenant, input);
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
      ...(input.pool6 !== undefined ? { pool6: input.pool6 } : {}),
    };
  },

  async dependants() {
    return [];
  },
};
