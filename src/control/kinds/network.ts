import { randomInt } from 'node:crypto';
import {
  V6ONLY_SPAN, WeftError, cidrRange, cidrRange6, checkNetwork, checkNetwork6, checkSubnetSpace, defaultNetworkMtu, formatCidr6, formatIp6, overlaps6, parseCidr6, parseIp6, formatCidr, formatIp, overlaps, parseCidr, parseVxlanRange,
  type DockerNetwork, type Endpoint, type Group, type Network, type NetworkInput, type NetworkLayout6, type Service,
} from '../../model/index.js';
import { allocateVni } from '../../ipam/index.js';
import type { Txn } from '../../store/index.js';
import { findIn, label, listIn, type KindDef } from '../crud.js';
import { dropBook, newAddressBook } from '../addressing.js';
import { newAddressBook6 } from '../addressing6.js';
import { endpointsWhere, readGlobal } from '../shared.js';
import { withRevision } from '../keys.js';
import { rulesOfTenant } from '../policy-store.js';
import { checkRouted } from './routed.js';

function immutable(field: string, existing: unknown, next: unknown): void {
  if (existing !== next) {
    throw new WeftError('WEFT_IMMUTABLE', `${field}: cannot change from ${String(existing)} to ${String(next)}; create a new network instead`, { field });
  }
}

/** What a network keeps for life: an update may repeat these fields or omit them, never change them. */
function keepFixed(existing: Network, input: NetworkInput, gateway: number | undefined): void {
  immutable('gateway', existing.gateway, gateway === undefined ? undefined : formatIp(gateway));
  if (input.vni !== undefined) immutable('vni', existing.vni, input.vni);
  if (input.encap !== undefined) immutable('encap', existing.encap, input.encap);
  // Networks made before encryption existed have no field and count as encrypted.
  if (input.encrypt !== undefined) immutable('encrypt', existing.encrypt ?? true, input.encrypt);
  if (input.parent !== undefined) immutable('parent', existing.parent, input.parent);
}

/**
 * A macvlan network names its hosts' parent interface, and nothing else does. Its endpoints are on that
 * interface's segment, where one address means one machine: another macvlan network on the same parent
 * with an overlapping subnet (in any tenant) would hand out the same addresses on one wire.
 */
async function checkMacvlan(tx: Txn, tenant: string, input: NetworkInput, mine: ReturnType<typeof cidrRange> | undefined, mine6: ReturnType<typeof cidrRange6> | undefined): Promise<void> {
  if (input.encap !== 'macvlan') {
    if (input.parent !== undefined) throw new WeftError('WEFT_INVALID_VALUE', `parent: only a network with encap macvlan has a parent interface (this one is ${input.encap ?? 'vxlan'})`, { field: 'parent' });
    return;
  }
  if (input.parent === undefined) throw new WeftError('WEFT_INVALID_VALUE', "parent: encap macvlan needs the hosts' parent interface (e.g. eth1)", { field: 'parent' });
  // Weft's own links (bridges, veths, overlays, uplinks, the tunnel) and loopback are no segment.
  if (/^(wb|we|wi|wx|wu|weft)|^(up0|lo)$/.test(input.parent)) throw new WeftError('WEFT_INVALID_VALUE', `parent: ${input.parent} is ${input.parent === 'lo' ? 'loopback' : "one of Weft's own links"}, not an interface on a segment`, { field: 'parent' });
  if (input.encrypt === true) throw new WeftError('WEFT_INVALID_VALUE', 'encrypt: a macvlan network has no overlay to encrypt (its endpoints are on the parent\'s segment)', { field: 'encrypt' });
  for (const e of await tx.list('networks/')) {
    const other = withRevision<Network>(e);
    if (mine6 && other.subnet6 !== undefined && (other.encap === 'routed' || (other.encap === 'macvlan' && other.parent === input.parent && !(other.tenant === tenant && other.name === input.name)))
      && overlaps6(mine6, cidrRange6(parseCidr6(other.subnet6, 'subnet6')))) {
      const why = other.encap === 'routed' ? 'which every host routes and the fabric knows' : `on the same parent ${input.parent}: one segment, one set of addresses`;
      throw new WeftError('WEFT_OVERLAP', `subnet6: ${input.subnet6} overlaps ${other.encap} network ${other.tenant}/${other.name} (${other.subnet6}), ${why}`, { field: 'subnet6' });
    }
    if (mine === undefined || other.subnet === undefined) continue;
    if (other.encap === 'routed' && overlaps(mine, cidrRange(parseCidr(other.subnet, 'subnet')))) {
      throw new WeftError('WEFT_OVERLAP', `subnet: ${input.subnet} overlaps routed network ${other.tenant}/${other.name} (${other.subnet}), which every host routes and the fabric knows`, { field: 'subnet' });
    }
    if (other.encap !== 'macvlan' || other.parent !== input.parent || (other.tenant === tenant && other.name === input.name)) continue;
    if (overlaps(mine, cidrRange(parseCidr(other.subnet, 'subnet')))) {
      throw new WeftError('WEFT_OVERLAP', `subnet: ${input.subnet} overlaps macvlan network ${other.tenant}/${other.name} (${other.subnet}) on the same parent ${input.parent}: one segment, one set of addresses`, { field: 'subnet' });
    }
  }
}

/**
 * The endpoints of an IPv6-only macvlan network take MACs from their offset in subnet6 (02:58 and 32 bits,
 * endpoints.ts macFor6), and on one segment no two may share one. Which parents share a segment the
 * server cannot know (an interface's other names, two NICs on one VLAN), so any two IPv6-only macvlan
 * networks need ranges (and endpoints) at different offsets, whatever their parents and prefixes.
 * Dual-stack ones take 02:57 and their IPv4 address, which never meets these. Checked on every write: a
 * replace may move the range.
 */
async function checkMacvlanMacs6(tx: Txn, tenant: string, name: string, layout6: NetworkLayout6): Promise<void> {
  const mine = { first: layout6.dynamic.first - layout6.subnet.base, last: layout6.dynamic.last - layout6.subnet.base };
  const clash = (first: bigint, last: bigint) => first <= mine.last && mine.first <= last;
  const others: Array<{ net: Network; base: bigint; last: bigint }> = [];
  for (const e of await tx.list('networks/')) {
    const other = withRevision<Network>(e);
    if (other.encap !== 'macvlan' || other.subnet !== undefined || other.subnet6 === undefined || (other.tenant === tenant && other.name === name)) continue;
    const theirs = checkNetwork6({ subnet6: other.subnet6, gateway6: other.gateway6, ipRange6: other.ipRange6 });
    if (!theirs) continue;
    const [first, last] = [theirs.dynamic.first - theirs.subnet.base, theirs.dynamic.last - theirs.subnet.base];
    if (clash(first, last)) refuseMacs6(other, `its range ${other.ipRange6 ?? ''}`, layout6.subnet.base + last + 1n);
    others.push({ net: other, base: theirs.subnet.base, last });
  }
  if (others.length === 0) return;
  // Endpoints a range left behind (a replace may narrow it): one listing for all the networks.
  const byNet = new Map(others.map((o) => [`${o.net.tenant}/${o.net.name}`, o]));
  for (const x of await endpointsWhere(tx, (x: Endpoint) => x.ip6 !== undefined && x.ip === undefined && byNet.has(`${x.tenant}/${x.network}`))) {
    const o = byNet.get(`${x.tenant}/${x.network}`) as (typeof others)[number];
    const offset = (parseIp6(x.ip6 as string) ?? o.base) - o.base;
    if (clash(offset, offset)) refuseMacs6(o.net, `endpoint ${x.id} (${x.ip6 ?? ''})`, layout6.subnet.base + o.last + 1n);
  }
}

function refuseMacs6(other: Network, what: string, from: bigint): never {
  throw new WeftError('WEFT_OVERLAP', `ipRange6: IPv6-only macvlan network ${other.tenant}/${other.name} (parent ${other.parent ?? ''}) has ${what} at the same offsets in its subnet6: the endpoints' MACs come from those offsets, and one segment cannot carry a MAC twice (parents with other names may be one segment); give this network a range at other offsets (e.g. from ${formatIp6(from)})`, { field: 'ipRange6' });
}

async function usedVnis(tx: Txn, except?: Network): Promise<Map<number, string>> {
  const used = new Map<number, string>();
  for (const e of await tx.list('networks/')) {
    const n = withRevision<Network>(e);
    if (except && n.tenant === except.tenant && n.name === except.name) continue;
    used.set(n.vni, `${n.tenant}/${n.name}`);
  }
  return used;
}

export const networkKind: KindDef<NetworkInput, Network> = {
  collection: 'networks',

  async build(input, { tx, tenant, existing }) {
    // An update that omits subnet keeps the network's (as subnet6 below); an IPv6-only network has none.
    const subnet4 = input.subnet ?? existing?.subnet;
    if (existing) immutable('subnet', existing.subnet, subnet4 === undefined ? undefined : formatCidr(parseCidr(subnet4, 'subnet')));
    if (subnet4 === undefined) {
      for (const f of ['gateway', 'ipRange'] as const) if (input[f] !== undefined) throw new WeftError('WEFT_INVALID_VALUE', `${f}: only a network with an IPv4 subnet has one (this one has subnet6 alone)`, { field: f });
      if (input.subnet6 === undefined && existing?.subnet6 === undefined) throw new WeftError('WEFT_INVALID_VALUE', 'subnet: give subnet (IPv4), subnet6 (IPv6) or both, e.g. subnet 10.1.2.0/24', { field: 'subnet' });
    }
    const layout = subnet4 === undefined ? undefined : checkNetwork({ subnet: subnet4, ...(input.gateway !== undefined ? { gateway: input.gateway } : input.subnet === undefined && existing?.gateway !== undefined ? { gateway: existing.gateway } : {}), ...(input.ipRange !== undefined ? { ipRange: input.ipRange } : {}) });
    if (layout && !existing) checkSubnetSpace(layout.subnet);
    // An update that omits subnet6 keeps the network's (as it may omit the other fixed fields).
    const keep6 = existing?.subnet6 !== undefined && input.subnet6 === undefined;
    const layout6 = checkNetwork6(keep6 ? { subnet6: existing.subnet6, gateway6: input.gateway6 ?? existing.gateway6, ipRange6: input.ipRange6 } : input);
    if (existing) {
      immutable('subnet6', existing.subnet6, layout6 ? formatCidr6(layout6.subnet) : undefined);
      immutable('gateway6', existing.gateway6, layout6 ? formatIp6(layout6.gateway) : undefined);
    }
    if (await findIn<Group>(tx, 'groups', tenant, input.name)) {
      throw new WeftError('WEFT_EXISTS', `name: group ${tenant}/${input.name} exists; a network may not share its name with a group`, { field: 'name' });
    }
    const global = await readGlobal(tx);
    const subnet = layout ? formatCidr(layout.subnet) : undefined;
    const encap = existing?.encap ?? input.encap ?? 'vxlan';
    if (layout6 && encap === 'macvlan' && input.ipRange6 === undefined) {
      // The segment's prefix is its machines' (SLAAC addresses among them, predictable from their MACs): Weft
      // takes a share it is given, on every write (a replace that left it out would widen it to the prefix).
      throw new WeftError('WEFT_INVALID_VALUE', "ipRange6: a macvlan network's subnet6 is a real segment's prefix; give the share of it Weft may hand out (e.g. fd00:50::100-fd00:50::1ff)", { field: 'ipRange6' });
    }
    if (layout6 && encap === 'routed') {
      // Its IPv6 blocks pair with its IPv4 ones (block6Of): a host holds both of an endpoint's addresses.
      if (!layout) throw new WeftError('WEFT_INVALID_VALUE', 'subnet: a routed network with subnet6 needs an IPv4 subnet too (its IPv6 blocks pair with its IPv4 blocks)', { field: 'subnet' });
      if (input.ipRange6 !== undefined) throw new WeftError('WEFT_INVALID_VALUE', "ipRange6: a routed network's IPv6 addresses come from the IPv6 block paired with each endpoint's IPv4 block, not from a range", { field: 'ipRange6' });
    }
    // IPv6 only: endpoints' MACs come from their place in the subnet's first 2^32 addresses (macFor6).
    if (!layout && layout6 && input.ipRange6 !== undefined && layout6.dynamic.last - layout6.subnet.base >= V6ONLY_SPAN) {
      throw new WeftError('WEFT_INVALID_VALUE', `ipRange6: on an IPv6-only network the range lies in the first 2^32 addresses of subnet6 (an endpoint's MAC comes from its place there): up to ${formatIp6(layout6.subnet.base + V6ONLY_SPAN - 1n)}`, { field: 'ipRange6' });
    }
    if (existing) {
      keepFixed(existing, input, layout?.gateway);
    } else {
      const mine = layout ? cidrRange(layout.subnet) : undefined;
      const mine6 = layout6 ? cidrRange6(layout6.subnet) : undefined;
      for (const other of await listIn<Network>(tx, 'networks', tenant)) {
        if (mine && other.subnet !== undefined && overlaps(mine, cidrRange(parseCidr(other.subnet, 'subnet')))) {
          throw new WeftError('WEFT_OVERLAP', `subnet: ${subnet} overlaps network ${tenant}/${other.name} (${other.subnet}) in tenant ${tenant}`, { field: 'subnet' });
        }
        if (mine6 && other.subnet6 !== undefined && overlaps6(mine6, cidrRange6(parseCidr6(other.subnet6, 'subnet6')))) {
          throw new WeftError('WEFT_OVERLAP', `subnet6: ${input.subnet6} overlaps network ${tenant}/${other.name} (${other.subnet6}) in tenant ${tenant}`, { field: 'subnet6' });
        }
      }
    }
    if (!existing) await checkMacvlan(tx, tenant, input, layout ? cidrRange(layout.subnet) : undefined, layout6 ? cidrRange6(layout6.subnet) : undefined);
    // A write that keeps the range need not look again: every later range or endpoint of the others was checked against it.
    const range6 = layout6 ? `${formatIp6(layout6.dynamic.first)}-${formatIp6(layout6.dynamic.last)}` : undefined;
    if (encap === 'macvlan' && !layout && layout6 && existing?.ipRange6 !== range6) await checkMacvlanMacs6(tx, tenant, input.name, layout6);
    const routed = await checkRouted(tx, tenant, input, encap, existing);
    const parent = existing ? existing.parent : input.parent;
    const encrypt = encap === 'macvlan' || encap === 'routed' ? false : existing ? existing.encrypt ?? true : input.encrypt ?? true;
    const vxlan = parseVxlanRange(global.vxlanRange);
    const vni = existing?.vni ?? allocateVni(vxlan, new Set((await usedVnis(tx)).keys()), input.vni, (free) => randomInt(free));
    const net: Omit<Network, 'revision' | 'createdAt' | 'updatedAt'> = {
      tenant,
      name: input.name,
      ...(layout ? { subnet: formatCidr(layout.subnet), gateway: formatIp(layout.gateway) } : {}),
      ...(layout && input.ipRange !== undefined ? { ipRange: input.ipRange } : {}),
      ...(layout6 ? { subnet6: formatCidr6(layout6.subnet), gateway6: formatIp6(layout6.gateway) } : {}),
      ...(range6 !== undefined && input.ipRange6 !== undefined ? { ipRange6: range6 } : {}),
      encap,
      ...(parent !== undefined ? { parent } : {}),
      ...routed,
      encrypt,
      vni,
      // An update that names no MTU keeps the network's: its endpoints were made with it.
      mtu: input.mtu ?? existing?.mtu ?? defaultNetworkMtu(global.mtu, encap, encrypt),
    };
    if (!existing) {
      await newAddressBook(tx, { ...net, revision: 0, createdAt: '', updatedAt: '' });
      await newAddressBook6(tx, { ...net, revision: 0, createdAt: '', updatedAt: '' });
    }
    return net;
  },

  async dependants(tx, net) {
    const groups = (await listIn<Group>(tx, 'groups', net.tenant)).filter((g) => g.network === net.name);
    const services = (await listIn<Service>(tx, 'services', net.tenant)).filter((s) => s.network === net.name);
    const eps = await endpointsWhere(tx, (e: Endpoint) => e.tenant === net.tenant && e.network === net.name);
    const docker = (await listIn<DockerNetwork>(tx, 'docker-networks', net.tenant)).filter((d) => d.network === net.name);
    const rules = (await rulesOfTenant(tx, net.tenant)).filter(({ rule: r }) => r.fromNetwork === net.name || r.toNetwork === net.name)
      .map(({ policy, rule }) => `policy ${net.tenant}/${policy} rule ${rule.id}`);
    return [
      ...docker.map((d) => `docker network ${d.name.slice(0, 12)} on ${d.host}`),
      ...groups.map((g) => label('groups', g.tenant, g.name)),
      ...services.map((s) => label('services', s.tenant, s.name)),
      ...eps.map((e) => `endpoint ${e.id}`),
      ...rules,
    ];
  },

  async release(tx, net) {
    await dropBook(tx, net);
  },
};

export { usedVnis };
