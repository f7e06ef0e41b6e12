import { WeftError, badReference, parseIp6, type Network, type Service, type ServiceInput } from '../../model/index.js';
import { findIn, type KindDef } from '../crud.js';
import { giveBackAddress, takeAddress } from '../addressing.js';
import { giveBackAddress6, takeAddress6 } from '../addressing6.js';

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
    // An IPv6-only network's service has an IPv6 VIP alone.
    if (input.vip !== undefined && net.subnet === undefined) {
      throw new WeftError('WEFT_INVALID_VALUE', `vip: network ${tenant}/${net.name} is IPv6-only; ask for vip6`, { field: 'vip' });
    }
    if (input.vip6 !== undefined && parseIp6(input.vip6) === undefined) {
      throw new WeftError('WEFT_INVALID_FIELD', `vip6: '${input.vip6.slice(0, 64)}' is not an IPv6 address`, { field: 'vip6' });
    }
    if (input.vip6 !== undefined && net.subnet6 === undefined) {
      throw new WeftError('WEFT_INVALID_VALUE', `vip6: network ${tenant}/${net.name} has no IPv6 subnet (subnet6)`, { field: 'vip6' });
    }
    let vip: string | undefined;
    let vip6: string | undefined;
    if (existing) {
      if (existing.network !== input.network) {
        throw new WeftError('WEFT_IMMUTABLE', `network: a service cannot move from ${existing.network} to ${input.network}`, { field: 'network' });
      }
      if (input.vip !== undefined && input.vip !== existing.vip) {
        throw new WeftError('WEFT_IMMUTABLE', `vip: a service keeps its VIP ${existing.vip}`, { field: 'vip' });
      }
      if (input.vip6 !== undefined && parseIp6(input.vip6) !== (existing.vip6 === undefined ? undefined : parseIp6(existing.vip6))) {
        throw new WeftError('WEFT_IMMUTABLE', `vip6: a service keeps its IPv6 VIP ${existing.vip6 ?? '(none)'}`, { field: 'vip6' });
      }
      vip = existing.vip;
      vip6 = existing.vip6;
    } else {
      if (net.subnet !== undefined) vip = await takeAddress(tx, net, undefined, input.vip, 'vip');
      if (net.subnet6 !== undefined) vip6 = await takeAddress6(tx, net, input.vip6, 'vip6', vip);
    }
    return { tenant, name: input.name, network: input.network, ...(vip !== undefined ? { vip } : {}), ...(vip6 !== undefined ? { vip6 } : {}), selector: input.selector, ports: input.ports };
  },

  async dependants() {
    return [];
  },

  async release(tx, svc) {
    const net = await findIn<Network>(tx, 'networks', svc.tenant, svc.network);
    if (net) {
      await giveBackAddress(tx, net, svc.vip);
      await giveBackAddress6(tx, net, svc.vip6);
    }
  },
};
