import {
  FIXED_LABELS, RESERVATION_PREFIX, SERVER_LABELS, WeftError, badReference, endpointId, invalid, notFound, parseCidr, parseIp, parseIp6, parseCidr6, inV6OnlySpan,
  type Endpoint, type Host, type Labels, type EndpointPatch, type PortMapping, type EndpointRequest, type Group, type Network,
} from '../model/index.js';
import type { Store, Txn } from '../store/index.js';
import { checkHostPorts, claimHostPorts, forgetHostPorts, portsLeft, releaseHostPorts } from './host-ports.js';
import { findIn, findShared, requireTenant } from './crud.js';
import { giveBackAddress, layoutOf, takeAddress } from './addressing.js';
import { giveBackAddress6, prefixLength6, takeAddress6 } from './addressing6.js';
import { keys, withRevision } from './keys.js';
import { SharedListing, type Snapshot } from './listing.js';


/**
 * A MAC an endpoint may be given (Docker's `--mac-address`, or the one Docker generates): not all zeros,
 * not multicast or broadcast. Such a MAC would not come up in the container, and on every other host it
 * would steer the network's broadcasts (the overlay's forwarding entries) to this one.
 */
function checkMac(mac: string): void {
  if (/^00(:00){5}$/.test(mac)) throw new WeftError('WEFT_INVALID_VALUE', `mac: ${mac} is all zeros`, { field: 'mac' });
  if (parseInt(mac.slice(0, 2), 16) & 1) throw new WeftError('WEFT_INVALID_VALUE', `mac: ${mac} is a multicast (or broadcast) address`, { field: 'mac' });
}

/** A locally administered MAC derived from the address, so a restarted container keeps its MAC. */
export function macFor(ip: string): string {
  return macOf(0x57, parseIp(ip) ?? 0);
}

/** 02 (locally administered, unicast), `kind`, and 32 bits. */
function macOf(kind: number, n: number): string {
  return [0x02, kind, n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

/**
 * An IPv6-only network's endpoint: 02:58 (apart from IPv4-derived 02:57 ones) and the address's offset
 * inside subnet6, which is below 2^32 (V6ONLY_SPAN): one MAC per address of the network, none shared.
 */
export function macFor6(ip6: string, subnet6: string): string {
  return macOf(0x58, Number(((parseIp6(ip6) ?? 0n) - parseCidr6(subnet6, 'subnet6', false).base) & 0xffffffffn));
}

export interface EndpointFilter { tenant?: string; host?: string }

/** The endpoints of `s` that pass `filter`: a host's, or a tenant's, are found by it, not by scanning them all. */
export function selectEndpoints(s: Snapshot<Endpoint>, filter: EndpointFilter): Endpoint[] {
  if (filter.host === undefined && filter.tenant !== undefined) return [...(s.grouped('tenant', (e) => e.tenant).get(filter.tenant) ?? [])];
  const base = filter.host === undefined ? s.items : s.grouped('host', (e) => e.host).get(filter.host) ?? [];
  return filter.tenant === undefined ? [...base] : base.filter((e) => e.tenant === filter.tenant);
}

/**
 * An endpoint on a real segment (macvlan) takes the MAC derived from its address (a chosen one could be
 * another machine's, the router's: the switch would send it that machine's traffic), publishes no ports
 * (nothing forwards them: it is not behind the tenant's uplink), and never a host's own address.
 */
async function checkMacvlanEndpoint(tx: Txn, net: Network, req: EndpointRequest): Promise<void> {
  const refuse = (field: string, why: string) => new WeftError('WEFT_INVALID_VALUE', `${field}: ${why}`, { field });
  if (req.mac !== undefined) throw refuse('mac', `network ${net.tenant}/${net.name} is a macvlan network: its endpoints take the MAC derived from their address (a chosen one could be another machine's on the segment)`);
  if (req.portMappings?.length) throw refuse('portMappings', `network ${net.tenant}/${net.name} is a macvlan network: its endpoints are on the segment itself, with no host port to publish through`);
  const ip6 = req.ip6 === undefined ? undefined : parseIp6(req.ip6);
  if (req.ip !== undefined || ip6 !== undefined) {
    for (const e of await tx.list('hosts/')) {
      const h = withRevision<Host>(e);
      if (req.ip !== undefined && (h.vtepIp === req.ip || h.tunnelIp === req.ip)) throw refuse('ip', `${req.ip} is host ${h.name}'s own address`);
      if (ip6 !== undefined && h.vtepIp6 !== undefined && parseIp6(h.vtepIp6) === ip6) throw refuse('ip6', `${req.ip6 ?? ''} is host ${h.name}'s own IPv6 address`);
    }
  }
}

export class Endpoints {
  /** Every endpoint, read once for all the listings that can share it (agents re-listing at once). */
  private readonly all: SharedListing<Endpoint>;

  /** The newest revision that changed an endpoint, and the newest this server has heard of, from the store's feed. */
  private endpointChange = 0;
  private heard = 0;
  /** The feed lost changes: nothing heard before the next one can be vouched for. */
  private lost = false;

  constructor(private readonly store: Store, private readonly now: () => string) {
    // A listing read at `at` stands while every commit up to the store's revision has been heard and none
    // of them touched an endpoint: a tenant's `GET /endpoints` read the whole cluster again after each
    // heartbeat (108 ms at 10,000 endpoints, 338 at 30,000). A commit not heard yet (etcd's feed lags the
    // write's answer) makes the revision run ahead of `heard`: the listing is read again, as before.
    store.subscribe((changes) => {
      for (const c of changes) {
        if (c.revision > this.heard) this.heard = c.revision;
        if ((this.lost || c.key.startsWith(keys.endpoints())) && c.revision > this.endpointChange) this.endpointChange = c.revision;
      }
      this.lost = false;
    }, () => {
      this.lost = true;
    });
    this.all = new SharedListing(async () => {
      const l = await store.list(keys.endpoints());
      return { items: l.entries.map((e) => withRevision<Endpoint>(e)), revision: l.revision };
    }, () => store.revision(), undefined, (at, now) => !this.lost && this.heard >= now && this.endpointChange <= at);
  }

  /** Every endpoint at one revision, shared with other callers: read it, never change it. */
  snapshot(): Promise<Snapshot<Endpoint>> {
    return this.all.get();
  }

  async list(filter: EndpointFilter = {}): Promise<{ items: Endpoint[]; revision: number }> {
    const s = await this.snapshot();
    return { items: selectEndpoints(s, filter), revision: s.revision };
  }

  async get(id: string): Promise<Endpoint> {
    const e = await this.store.get(keys.endpoint(id));
    if (!e) throw notFound(`endpoint ${id}`);
    return withRevision<Endpoint>(e);
  }

  /** Allocates the address and records the endpoint in one transaction: no address without an endpoint. */
  async create(actor: string, req: EndpointRequest): Promise<Endpoint> {
    const id = endpointId(req.containerId, req.ifname);
    let replaced: Endpoint | undefined;
    const r = await this.store.transact(actor, async (tx) => {
      replaced = undefined;
      try {
        await requireTenant(tx, req.tenant);
      } catch (e) {
        // Only a missing tenant is the caller's fault (permanent); a store outage must stay retryable.
        if (e instanceof WeftError && e.code === 'WEFT_NOT_FOUND') throw badReference('tenant', `tenant ${req.tenant}`);
        throw e;
      }
      const net = await findShared<Network>(tx, 'networks', req.tenant, req.network);
      if (!net) throw badReference('network', `network ${req.tenant}/${req.network}`);
      let group: Group | undefined;
      if (req.group !== undefined) {
        group = await findShared<Group>(tx, 'groups', req.tenant, req.group);
        if (!group) throw badReference('group', `group ${req.tenant}/${req.group}`);
        if (group.network !== net.name) {
          throw new WeftError('WEFT_INVALID_VALUE', `group: group ${req.tenant}/${group.name} is on network ${group.network}, not ${net.name}`, { field: 'group' });
        }
      }
      const existing = await tx.get(keys.endpoint(id));
      if (existing) {
        throw new WeftError('WEFT_EXISTS', `endpoint ${id} already exists for container ${req.containerId} interface ${req.ifname}`, { field: 'containerId' });
      }
      if (req.mac !== undefined) checkMac(req.mac);
      if (net.encap === 'macvlan') await checkMacvlanEndpoint(tx, net, req);
      // The endpoint replaced goes in this transaction (checked below): its ports are no conflict.
      if (req.portMappings?.length) await checkHostPorts(tx, req.host, req.portMappings, req.replaces);
      let requested = req.ip;
      let requested6 = req.ip6;
      if (requested6 !== undefined && net.subnet6 === undefined) {
        throw new WeftError('WEFT_INVALID_VALUE', `ip6: network ${req.tenant}/${net.name} has no IPv6 subnet (subnet6)`, { field: 'ip6' });
      }
      if (requested6 !== undefined && net.subnet === undefined && net.subnet6 !== undefined && !inV6OnlySpan(requested6, net.subnet6)) {
        throw new WeftError('WEFT_INVALID_VALUE', `ip6: ${requested6} lies past the first 2^32 addresses of ${net.subnet6}; on an IPv6-only network an endpoint's MAC comes from its address's place there, so addresses are taken from that span`, { field: 'ip6' });
      }
      if (requested !== undefined && net.subnet === undefined) {
        throw new WeftError('WEFT_INVALID_VALUE', `ip: network ${req.tenant}/${net.name} is IPv6-only (no subnet); ask for ip6`, { field: 'ip' });
      }
      if (req.replaces !== undefined) {
        const old = await tx.get(keys.endpoint(req.replaces));
        if (!old) throw badReference('replaces', `endpoint ${req.replaces}`);
        const o = withRevision<Endpoint>(old);
        if (o.tenant !== req.tenant || o.network !== net.name || o.host !== req.host) {
          throw new WeftError('WEFT_INVALID_VALUE', `replaces: endpoint ${o.id} is on ${o.tenant}/${o.network} at ${o.host}, not ${req.tenant}/${net.name} at ${req.host}`, { field: 'replaces' });
        }
        if (requested !== undefined && o.ip !== undefined && requested !== o.ip) {
          throw new WeftError('WEFT_INVALID_VALUE', `ip: ${requested} differs from ${o.ip}, the address of the endpoint it replaces`, { field: 'ip' });
        }
        if (requested6 !== undefined && parseIp6(requested6) !== (o.ip6 === undefined ? undefined : parseIp6(o.ip6))) {
          throw new WeftError('WEFT_INVALID_VALUE', `ip6: ${requested6} differs from ${o.ip6 ?? 'nothing'}, the IPv6 address of the endpoint it replaces`, { field: 'ip6' });
        }
        await giveBackAddress(tx, net, o.ip);
        await giveBackAddress6(tx, net, o.ip6);
        // Its claims are given back after this transaction (forgetHostPorts); until then they name an
        // endpoint that is gone, which no check counts.
        replaced = o;
        tx.delete(keys.endpoint(o.id));
        requested = o.ip;
        requested6 = o.ip6;
      }
      const ip = net.subnet === undefined ? undefined : await takeAddress(tx, net, group, requested, 'ip', req.host);
      const ip6 = net.subnet6 === undefined ? undefined : await takeAddress6(tx, net, requested6, 'ip6', ip);
      // Every endpoint has an address of some family: the schema refuses a network with neither subnet.
      if (ip === undefined && ip6 === undefined) throw new WeftError('WEFT_INTERNAL', `network ${req.tenant}/${net.name} has neither subnet nor subnet6`);
      const at = this.now();
      const ep: Omit<Endpoint, 'revision'> = {
        id,
        tenant: req.tenant,
        network: net.name,
        ...(group ? { group: group.name } : {}),
        ...(ip !== undefined && net.subnet !== undefined && net.gateway !== undefined ? { ip, prefixLength: layoutOf(net).subnet.prefix, gateway: net.gateway } : {}),
        ...(ip6 !== undefined ? { ip6, prefixLength6: prefixLength6(net), gateway6: net.gateway6 as string } : {}),
        mac: req.mac ?? (ip !== undefined ? macFor(ip) : macFor6(ip6 as string, net.subnet6 as string)),
        mtu: net.mtu,
        vni: net.vni,
        host: req.host,
        ifname: req.ifname,
        containerId: req.containerId,
        ...(req.containerName !== undefined ? { containerName: req.containerName } : {}),
        ...(req.cniNetwork !== undefined ? { cniNetwork: req.cniNetwork } : {}),
        labels: { ...withoutServerLabels(req.labels), network: net.name, ...(group ? { group: group.name } : {}) },
        ...(req.netns !== undefined ? { netns: req.netns } : {}),
        ...(req.seal !== undefined ? { seal: req.seal } : {}),
        ...(req.portMappings?.length ? { portMappings: req.portMappings } : {}),
        ...(req.attached ? { attached: { defaultRoute: req.attached.defaultRoute } } : {}),
        state: 'created',
        createdAt: at,
        updatedAt: at,
      };
      if (ep.portMappings) claimHostPorts(tx, req.host, id, ep.portMappings);
      tx.put(keys.endpoint(id), ep);
      return ep;
    });
    if (replaced?.portMappings?.length) await forgetHostPorts(this.store, actor, replaced.host, replaced.id, replaced.portMappings);
    return { ...r.value, revision: r.revision };
  }

  /**
   * Records what the runtime learnt after creating the endpoint (published ports are checked like at
   * creation), or changes its labels: a pod relabelled, which moves it between selectors and services.
   * `allowed` judges the endpoint as this transaction read it; `initial`: the caller is the endpoint's own
   * agent, which may give a fixed label its first value (Docker's labels come after the endpoint is made).
   */
  async update(actor: string, id: string, patch: EndpointPatch, allowed?: (ep: Endpoint) => void, initial = false): Promise<Endpoint> {
    let dropped: { host: string; ports: PortMapping[] } | undefined;
    const r = await this.store.transact(actor, async (tx) => {
      dropped = undefined;
      const e = await tx.get(keys.endpoint(id));
      if (!e) throw notFound(`endpoint ${id}`);
      const current = withRevision<Endpoint>(e);
      // Checked on what this transaction read: the endpoint cannot change tenant between check and write.
      allowed?.(current);
      const { revision: _, portMappings: oldPorts, ...rest } = current;
      if (patch.portMappings?.length) await checkHostPorts(tx, rest.host, patch.portMappings, id);
      const ports = patch.portMappings ?? oldPorts;
      const ip6 = patch.ip6 === undefined ? undefined : await moveAddress6(tx, current, patch.ip6);
      const labels = patch.labels ? mergedLabels(rest.labels, patch.labels, initial) : rest.labels;
      // Nothing changes: nothing is written (no revision, no event for every agent).
      const same = ip6 === undefined && (patch.containerName === undefined || patch.containerName === rest.containerName)
        && (patch.portMappings === undefined || JSON.stringify(patch.portMappings) === JSON.stringify(oldPorts ?? []))
        && JSON.stringify(labels) === JSON.stringify(rest.labels);
      if (same) return current;
      const next: Omit<Endpoint, 'revision'> = {
        ...rest,
        labels,
        ...(ip6 !== undefined ? { ip6 } : {}),
        ...(patch.containerName !== undefined ? { containerName: patch.containerName } : {}),
        ...(ports?.length ? { portMappings: ports } : {}),
        updatedAt: this.now(),
      };
      if (patch.portMappings !== undefined) {
        // The ports given up are forgotten after this transaction (see forgetHostPorts).
        dropped = { host: rest.host, ports: portsLeft(oldPorts, ports) };
        claimHostPorts(tx, rest.host, id, ports ?? []);
      }
      tx.put(keys.endpoint(id), next);
      return next;
    });
    if (dropped?.ports.length) await forgetHostPorts(this.store, actor, dropped.host, id, dropped.ports);
    return 'revision' in r.value ? r.value as Endpoint : { ...r.value, revision: r.revision };
  }

  /**
   * Idempotent: deleting a missing endpoint succeeds. Always returns the address to its network. With
   * `only`, read inside the transaction, the endpoint is kept unless it still holds; answers whether an
   * endpoint was removed.
   */
  async remove(actor: string, id: string, only?: (tx: Txn, ep: Endpoint) => Promise<boolean>): Promise<boolean> {
    const r = await this.store.transact(actor, async (tx) => {
      const e = await tx.get(keys.endpoint(id));
      if (!e) return false;
      const ep = withRevision<Endpoint>(e);
      if (only && !(await only(tx, ep))) return false;
      const net = await findIn<Network>(tx, 'networks', ep.tenant, ep.network);
      if (net) {
        await giveBackAddress(tx, net, ep.ip);
        await giveBackAddress6(tx, net, ep.ip6);
      }
      await releaseHostPorts(tx, ep.host, ep.id, ep.portMappings ?? []);
      tx.delete(keys.endpoint(id));
      return true;
    });
    return r.value;
  }
}

/**
 * Docker's `--ip6`: dockerd asks for an endpoint's IPv4 address (which reserves both) before its IPv6 one,
 * so the reservation's IPv6 address moves to the one asked for, in one transaction (taken, then the old one
 * given back). Only before the endpoint is wired (no netns: nothing configured it yet), and not on an
 * IPv6-only network (its MAC comes from its address). Returns the new address, or undefined if unchanged.
 */
async function moveAddress6(tx: Txn, ep: Endpoint, wanted: string): Promise<string | undefined> {
  if (ep.ip6 === undefined) throw invalid('ip6', `endpoint ${ep.id} has no IPv6 address (its network has no subnet6)`);
  const n = parseIp6(wanted);
  if (n === undefined) throw new WeftError('WEFT_INVALID_FIELD', `ip6: '${wanted.slice(0, 64)}' is not an IPv6 address`, { field: 'ip6' });
  if (n === parseIp6(ep.ip6)) return undefined;
  // Only a Docker IPAM reservation, before anything configured it: a running container keeps its address.
  if (ep.netns !== undefined || !ep.containerId.startsWith(RESERVATION_PREFIX)) {
    throw invalid('ip6', `endpoint ${ep.id} is not an address reservation awaiting Docker's IPv6 request (its container may have ${ep.ip6} already); an endpoint's IPv6 address changes only then`);
  }
  if (ep.ip === undefined) throw invalid('ip6', `endpoint ${ep.id} is on an IPv6-only network: its MAC comes from its address, which stays`);
  const net = await findIn<Network>(tx, 'networks', ep.tenant, ep.network);
  if (!net) throw badReference('network', `network ${ep.tenant}/${ep.network}`);
  const taken = await takeAddress6(tx, net, wanted, 'ip6', ep.ip);
  await giveBackAddress6(tx, net, ep.ip6);
  return taken;
}

const LABELS_MAX = 64;

function withoutServerLabels(labels: Labels | undefined): Labels {
  return Object.fromEntries(Object.entries(labels ?? {}).filter(([k]) => !SERVER_LABELS.includes(k)));
}

/** `patch` merged into `labels` (null removes a key), refused whole when it touches a fixed label or holds too many. */
function mergedLabels(labels: Labels, patch: Record<string, string | null>, initial: boolean): Labels {
  for (const k of FIXED_LABELS) {
    const first = initial && labels[k] === undefined && !SERVER_LABELS.includes(k) && typeof patch[k] === 'string';
    if (k in patch && (patch[k] ?? undefined) !== labels[k] && !first) throw invalid(`labels.${k}`, `an endpoint's ${k} label is set when it is made and cannot change (it is ${labels[k] === undefined ? 'unset' : `'${labels[k]}'`})`);
  }
  const next: Labels = { ...labels };
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete next[k];
    else next[k] = v;
  }
  // The server's own labels come on top of the 64 an endpoint is made with.
  const own = (x: Labels) => Object.keys(x).filter((k) => !SERVER_LABELS.includes(k)).length;
  const n = own(next);
  if (n > LABELS_MAX && n > own(labels)) {
    throw invalid('labels', `the endpoint would hold ${n} labels (at most ${LABELS_MAX}, besides network and group)`);
  }
  return next;
}
