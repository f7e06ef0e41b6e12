import { WeftError, badReference, type Network, type Service, type ServiceInput } from '../../model/index.js';
import { findIn, type KindDef } from '../crud.js';
import { giveBackAddress, takeAddress } from '../addressing.js';

/** East-west service: a VIP from its network's address book, balancing to endpoints matching the selector. */
export const serviceKind: KindDef<ServiceInput, Service> = {
  collection: 'services',

  async build(input, { tx, tenant, existing }) {
    const net = await findIn<Network>(tx, 'networks', tenant, input.network);
    if (!net) throw badReference('network', `network ${tenant}/${input.network}`);
    // A VIP lives on the network's bridge in the tenant namespace; a macvlan network has none.
    if (net.encap === 'macvlan') throw new WeftError('WEFT_INVALID_VALUE', `network: ${tenant}/${input.network} is a macvlan network, which has no bridge to hold a service VIP; put the service on a bridged network`, { field: 'network' });
    if (Object.keys(input.selector).length === 0) {
      throw new WeftError('WEFT_INVALID_FIELD', 'selector: a service needs at least one label to select its backends', { field: 'selector' });
    }
    const seen = new Set<string>();
    for (const [i, p] of input.ports.entries()) {
      const k = `${p.port}/${p.protocol}`;
      if (seen.has(k)) throw new WeftError('WEFT_INVALID_FIELD', `ports.${i}: ${k} is listed twice`, { field: `ports.${i}` });
      seen.add(k);
    }
    let vip: string;
    if (existing) {
      if (existing.network !== input.network) {
        throw new WeftError('WEFT_IMMUTABLE', `network: a service cannot move from ${existing.network} to ${input.network}`, { field: 'network' });
      }
      if (input.vip !== undefined && input.vip !== existing.vip) {
        throw new WeftError('WEFT_IMMUTABLE', `vip: a service keeps its VIP ${existing.vip}`, { field: 'vip' });
      }
      vip = existing.vip;
    } else {
      vip = await takeAddress(tx, net, undefined, input.vip, 'vip');
    }
    return { tenant, name: input.name, network: input.network, vip, selector: input.selector, ports: input.ports };
  },

  async dependants() {
    return [];
  },

  async release(tx, svc) {
    const net = await findIn<Network>(tx, 'networks', svc.tenant, svc.network);
    if (net) await giveBackAddress(tx, net, svc.vip);
  },
};
