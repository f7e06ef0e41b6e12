import { UPLINK_RANGE6, WeftError, cidrRange, cidrRange6, formatIp6, inEndpointSpace6, instanceDigest, notFound, parseCidr, parseCidr6, parseIp, parseIp6, specialRangeOf, type Host, type HostInput, type Network } from '../model/index.js';
import type { Store, Txn } from '../store/index.js';
import { listNames } from './crud.js';
import { keys } from './keys.js';
import { leaseIn, listHosts, sameRecord, withLease, type HostLease, type HostRecord } from './leases.js';
import { endpointsWhere, readGlobal } from './shared.js';
import { dropHostPorts } from './host-ports.js';
import { tunnelIpFor } from './tunnels.js';

/** Agents heartbeat every 10 s; three missed beats make a host down. */
export const DEFAULT_HOST_TIMEOUT_MS = 30_000;
/** `weft server --host-grace`: a host silent this long loses its endpoints, and its name may be taken over. */
export const DEFAULT_HOST_GRACE_MS = 600_000;

/** Whether an endpoint, as read inside a transaction, may still be released as its host's. */
export type SilentCheck = (tx: Txn, endpoint: { host: string; createdAt: string }) => Promise<boolean>;

/** Hosts are registered (and refreshed) by their agents. */
export class Hosts {
  constructor(
    private readonly store: Store,
    private readonly now: () => string,
    private readonly timeoutMs = DEFAULT_HOST_TIMEOUT_MS,
    private readonly graceMs = DEFAULT_HOST_GRACE_MS,
  ) {}

  /** Liveness is derived when read, never stored: a write per missed heartbeat would be noise. */
  private withState(h: Host): Host {
    const silent = Date.parse(this.now()) - Date.parse(h.lastSeen);
    return { ...h, state: silent > this.timeoutMs ? 'down' : 'up' };
  }

  async list(): Promise<{ items: Host[]; revision: number }> {
    const l = await listHosts(this.store);
    return { items: l.items.map((h) => this.withState(h)), revision: l.revision };
  }

  async get(name: string): Promise<Host> {
    const e = await this.store.get(keys.host(name));
    if (!e) throw notFound(`host ${name}`);
    return this.withState(withLease(e, (await this.store.get(keys.hostLease(name)))?.value as HostLease | undefined));
  }

  /**
   * Registers or refreshes a host (upsert: an agent calls this at start and as its heartbeat). The agent
   * sends what it knows (underlay, key, tunnel status); what the server decides (tunnel address, key
   * rotation count) is carried over from the stored record, never taken from the input. Every call
   * renews the host's lease; the record is written only when a field of it changed, so a heartbeat is no
   * watch event to the agents (leases.ts).
   */
  async register(actor: string, input: HostInput): Promise<Host> {
    const vtep = underlayOf(input);
    const vtep6 = underlay6Of(input);
    const r = await this.store.transact(actor, async (tx) => {
      const old = await tx.get(keys.host(input.name));
      const prev = old ? withLease(old, await leaseIn(tx, input.name)) : undefined;
      const at = this.now();
      const instance = this.instanceOf(input, prev, at);
      await refuseTwins(tx, input, prev);
      if (vtep6 !== undefined && vtep6 !== prev?.vtepIp6) await refuseTaken6(tx, input.name, vtep6);
      const { tunnelRange } = await readGlobal(tx);
      const range = cidrRange(parseCidr(tunnelRange, 'tunnelRange'));
      // Its own tunnel route would swallow the traffic to it (WireGuard's, the clear overlay's).
      if (range.first <= vtep && vtep <= range.last) {
        throw new WeftError('WEFT_OVERLAP', `vtepIp: ${input.vtepIp} is inside the tunnel range ${tunnelRange}; choose another range (weft global set --tunnel-range)`, { field: 'vtepIp' });
      }
      const tunnelIp = await tunnelIpFor(tx, input.name, prev?.tunnelIp, tunnelRange);
      const rec: HostRecord = {
        name: input.name,
        vtepIp: input.vtepIp,
        ...(vtep6 !== undefined ? { vtepIp6: vtep6 } : {}),
        ...(input.agentVersion !== undefined ? { agentVersion: input.agentVersion } : {}),
        ...(input.wgPublicKey !== undefined ? { wgPublicKey: input.wgPublicKey } : {}),
        tunnelIp,
        ...(prev?.rotateKey !== undefined ? { rotateKey: prev.rotateKey } : {}),
        ...(instance !== undefined ? { instance } : {}),
        // The operator's, never the agent's: a registration carries them over.
        ...(prev?.labels !== undefined ? { labels: prev.labels } : {}),
        createdAt: prev?.createdAt ?? at,
        updatedAt: at,
      };
      const lease: HostLease = { lastSeen: at, ...(input.wireguard !== undefined ? { wireguard: input.wireguard } : {}) };
      tx.put(keys.hostLease(input.name), lease);
      if (old && sameRecord(old.value as HostRecord, rec)) return { record: old.value as HostRecord, lease, revision: old.modRevision };
      tx.put(keys.host(input.name), rec);
      return { record: rec, lease, revision: undefined };
    });
    const { record, lease, revision } = r.value;
    return withLease({ value: record, modRevision: revision ?? r.revision }, lease);
  }

  /**
   * The agent instance the host is recorded with after this registration. Registration is an upsert, so
   * without this a second agent given the same name (a copied config, a common short hostname) would
   * share the record, and each agent would release the other's endpoints as containers it cannot find.
   * Another instance is refused while the recorded one heartbeated within the grace period; after it (a
   * reinstalled host: by then its endpoints are released anyway) it takes over. A registration without an
   * instance (the API, older agents) changes nothing about it.
   */
  private instanceOf(input: HostInput, prev: Host | undefined, at: string): string | undefined {
    if (input.instance === undefined) return prev?.instance;
    const instance = instanceDigest(input.instance);
    if (prev?.instance === undefined || prev.instance === instance) return instance;
    const silentMs = Date.parse(at) - Date.parse(prev.lastSeen);
    if (silentMs > this.graceMs) return instance;
    throw new WeftError('WEFT_IN_USE', `name: host ${input.name} is registered by another agent instance, last heard from ${Math.max(0, Math.round(silentMs / 1000))} s ago; `
      + `give this host another name (--host), or, if it was reinstalled, wait until the old agent has been silent for ${Math.round(this.graceMs / 1000)} s (--host-grace) `
      + `or remove it with \`weft host rm ${input.name}\` (which releases its endpoints)`, { field: 'name' });
  }

  /** Sets (null: removes) the operator's labels of a host; at most 64 in all. */
  async label(actor: string, name: string, patch: Record<string, string | null>): Promise<Host> {
    const r = await this.store.transact(actor, async (tx) => {
      const e = await tx.get(keys.host(name));
      if (!e) throw notFound(`host ${name}`);
      const cur = e.value as HostRecord;
      const labels: Record<string, string> = { ...(cur.labels ?? {}) };
      for (const [k, v] of Object.entries(patch)) {
        if (v === null) delete labels[k];
        else labels[k] = v;
      }
      if (Object.keys(labels).length > 64) throw new WeftError('WEFT_INVALID_FIELD', `labels: a host has at most 64 labels (this would make ${Object.keys(labels).length})`, { field: 'labels' });
      const { labels: _old, ...rest } = cur;
      const h: HostRecord = { ...rest, ...(Object.keys(labels).length ? { labels } : {}), updatedAt: this.now() };
      tx.put(keys.host(name), h);
      return { h, lease: await leaseIn(tx, name) };
    });
    return this.withState(withLease({ value: r.value.h, modRevision: r.revision }, r.value.lease));
  }

  /** Asks the host's agent for a new WireGuard key pair (it acts when the count exceeds its own); peers follow its new public key. */
  async rotateKey(actor: string, name: string): Promise<Host> {
    const r = await this.store.transact(actor, async (tx) => {
      const e = await tx.get(keys.host(name));
      if (!e) throw notFound(`host ${name}`);
      const cur = e.value as HostRecord;
      const h = { ...cur, rotateKey: (cur.rotateKey ?? 0) + 1, updatedAt: this.now() };
      tx.put(keys.host(name), h);
      return { h, lease: await leaseIn(tx, name) };
    });
    return this.withState(withLease({ value: r.value.h, modRevision: r.revision }, r.value.lease));
  }

  /**
   * Releases the endpoints of hosts silent for longer than `graceMs` (their addresses return to their
   * networks). A host that is merely down keeps its endpoints: its containers may still be running and
   * its agent may come back. `release` re-checks inside its own transaction with `stillSilent`, since the
   * host may heartbeat (or the endpoint move) between this listing and that transaction; it answers
   * whether it released. Returns the released endpoint ids.
   */
  async collectSilent(graceMs: number, release: (id: string, stillSilent: SilentCheck) => Promise<boolean>): Promise<string[]> {
    const now = Date.parse(this.now());
    const gone = new Set((await listHosts(this.store)).items.filter((h) => now - Date.parse(h.lastSeen) > graceMs).map((h) => h.name));
    if (gone.size === 0) return [];
    const found = (await this.store.list(keys.endpoints())).entries.map((e) => e.value as { id: string; host: string })
      .filter((e) => gone.has(e.host));
    const released: string[] = [];
    for (const e of found) {
      // An endpoint younger than the grace was made by its host's ADD, so that host was alive since: an
      // ADD held through a partition and answered after it heals must not lose its address to the
      // heartbeat that has not come yet (found by the chaos suite, seed 3).
      const check: SilentCheck = async (tx, ep) => ep.host === e.host && now - Date.parse(ep.createdAt) > graceMs && this.silentIn(tx, e.host, graceMs);
      if (await release(e.id, check)) released.push(e.id);
    }
    return released;
  }

  /**
   * Read inside the releasing transaction (the lease, where heartbeats land, and the record), so a
   * heartbeat committed meanwhile makes it retry and keep.
   */
  private async silentIn(tx: Txn, name: string, graceMs: number): Promise<boolean> {
    const h = await tx.get(keys.host(name));
    return h !== undefined && Date.parse(this.now()) - Date.parse(withLease(h, await leaseIn(tx, name)).lastSeen) > graceMs;
  }

  async remove(actor: string, name: string): Promise<void> {
    await this.store.transact(actor, async (tx) => {
      if (!(await tx.get(keys.host(name)))) throw notFound(`host ${name}`);
      const eps = await endpointsWhere(tx, (e) => e.host === name);
      if (eps.length > 0) throw new WeftError('WEFT_IN_USE', `host ${name} still has ${listNames(eps.map((e) => `endpoint ${e.id}`))}`);
      tx.delete(keys.host(name));
      tx.delete(keys.hostLease(name));
      dropHostPorts(tx, name);
    });
  }
}

/** The host's underlay address, refused when it is no address a peer could send to. */
function underlayOf(input: HostInput): number {
  const vtep = parseIp(input.vtepIp);
  if (vtep === undefined) {
    throw new WeftError('WEFT_INVALID_FIELD', `vtepIp: '${input.vtepIp}' is not an IPv4 address`, { field: 'vtepIp' });
  }
  // Every other host would send its overlay (and WireGuard) there.
  const special = specialRangeOf(vtep);
  if (special) throw new WeftError('WEFT_INVALID_FIELD', `vtepIp: ${input.vtepIp} is in ${special}, not a host's underlay address`, { field: 'vtepIp' });
  return vtep;
}

/** The host's IPv6 underlay address in RFC 5952 form, refused when it is no global or unique local unicast address. */
function underlay6Of(input: HostInput): string | undefined {
  if (input.vtepIp6 === undefined) return undefined;
  const n = parseIp6(input.vtepIp6);
  if (n === undefined) throw new WeftError('WEFT_INVALID_FIELD', `vtepIp6: '${input.vtepIp6}' is not an IPv6 address`, { field: 'vtepIp6' });
  if (!inEndpointSpace6(n) || (n >= UPLINK_RANGE6.first && n <= UPLINK_RANGE6.last)) {
    throw new WeftError('WEFT_INVALID_FIELD', `vtepIp6: ${input.vtepIp6} is no global (2000::/3) or unique local (fc00::/7) address a peer could route to`, { field: 'vtepIp6' });
  }
  return formatIp6(n);
}

/** A new IPv6 underlay address: not another host's, and not inside a routed network's subnet6 (its routes would capture it). */
async function refuseTaken6(tx: Txn, name: string, vtep6: string): Promise<void> {
  const twin = (await tx.list(keys.hosts())).map((e) => e.value as Host).find((h) => h.name !== name && h.vtepIp6 === vtep6);
  if (twin) throw new WeftError('WEFT_ADDRESS_IN_USE', `vtepIp6: ${vtep6} is the IPv6 underlay address of host ${twin.name}`, { field: 'vtepIp6' });
  const n = parseIp6(vtep6) as bigint;
  for (const e of await tx.list('networks/')) {
    const net = e.value as Network;
    if (net.encap !== 'routed' || net.subnet6 === undefined) continue;
    const r = cidrRange6(parseCidr6(net.subnet6, 'subnet6', false));
    if (n >= r.first && n <= r.last) throw new WeftError('WEFT_OVERLAP', `vtepIp6: ${vtep6} is inside routed network ${net.tenant}/${net.name}'s subnet6 ${net.subnet6}, which every host routes`, { field: 'vtepIp6' });
  }
}

/**
 * Another host's underlay address would pull that host's overlay traffic here, and peers are keyed by
 * public key, so a second host with one would take the first one's tunnel. Checked only when the value is
 * new, so a heartbeat does not read every host.
 */
async function refuseTwins(tx: Txn, input: HostInput, prev: Host | undefined): Promise<void> {
  const others = async () => (await tx.list(keys.hosts())).map((e) => e.value as Host).filter((h) => h.name !== input.name);
  const twin = prev?.vtepIp === input.vtepIp ? undefined : (await others()).find((h) => h.vtepIp === input.vtepIp);
  if (twin) throw new WeftError('WEFT_ADDRESS_IN_USE', `vtepIp: ${input.vtepIp} is the underlay address of host ${twin.name}`, { field: 'vtepIp' });
  const key = input.wgPublicKey;
  const keyTwin = key === undefined || prev?.wgPublicKey === key ? undefined : (await others()).find((h) => h.wgPublicKey === key);
  if (keyTwin) throw new WeftError('WEFT_EXISTS', `wgPublicKey: the WireGuard key of host ${keyTwin.name}`, { field: 'wgPublicKey' });
}
