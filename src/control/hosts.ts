import { WeftError, notFound, parseIp, parseVxlanRange, checkGlobal, GLOBAL_DEFAULTS, type Global, type GlobalInput, type Host, type HostInput, type Network } from '../model/index.js';
import type { Store } from '../store/index.js';
import { checkRevision, listNames } from './crud.js';
import { keys, withRevision } from './keys.js';
import { endpointsWhere, readGlobal } from './shared.js';

/** Hosts are registered (and refreshed) by their agents. */
/** Agents heartbeat every 10 s; three missed beats make a host down. */
export const DEFAULT_HOST_TIMEOUT_MS = 30_000;

export class Hosts {
  constructor(
    private readonly store: Store,
    private readonly now: () => string,
    private readonly timeoutMs = DEFAULT_HOST_TIMEOUT_MS,
  ) {}

  /** Liveness is derived when read, never stored: a write per missed heartbeat would be noise. */
  private withState(h: Host): Host {
    const silent = Date.parse(this.now()) - Date.parse(h.lastSeen);
    return { ...h, state: silent > this.timeoutMs ? 'down' : 'up' };
  }

  async list(): Promise<{ items: Host[]; revision: number }> {
    const l = await this.store.list(keys.hosts());
    return { items: l.entries.map((e) => this.withState(withRevision<Host>(e))), revision: l.revision };
  }

  async get(name: string): Promise<Host> {
    const e = await this.store.get(keys.host(name));
    if (!e) throw notFound(`host ${name}`);
    return this.withState(withRevision<Host>(e));
  }

  /** Registers or refreshes a host (upsert: an agent calls this at start and as its heartbeat). */
  async register(actor: string, input: HostInput): Promise<Host> {
    if (parseIp(input.vtepIp) === undefined) {
      throw new WeftError('WEFT_INVALID_FIELD', `vtepIp: '${input.vtepIp}' is not an IPv4 address`, { field: 'vtepIp' });
    }
    const r = await this.store.transact(actor, async (tx) => {
      const old = await tx.get(keys.host(input.name));
      // Another host's underlay address would pull that host's overlay traffic here. Checked only when the
      // address is new, so a heartbeat does not read every host.
      const twin = old && (old.value as Host).vtepIp === input.vtepIp ? undefined
        : (await tx.list(keys.hosts())).map((e) => e.value as Host).find((h) => h.vtepIp === input.vtepIp && h.name !== input.name);
      if (twin) throw new WeftError('WEFT_ADDRESS_IN_USE', `vtepIp: ${input.vtepIp} is the underlay address of host ${twin.name}`, { field: 'vtepIp' });
      // Peers are keyed by public key: a second host with one would take the first one's tunnel.
      const key = input.wgPublicKey;
      const keyTwin = key === undefined || (old && (old.value as Host).wgPublicKey === key) ? undefined
        : (await tx.list(keys.hosts())).map((e) => e.value as Host).find((h) => h.wgPublicKey === key && h.name !== input.name);
      if (keyTwin) throw new WeftError('WEFT_EXISTS', `wgPublicKey: the WireGuard key of host ${keyTwin.name}`, { field: 'wgPublicKey' });
      const at = this.now();
      const h: Omit<Host, 'revision'> = {
        name: input.name,
        vtepIp: input.vtepIp,
        ...(input.agentVersion !== undefined ? { agentVersion: input.agentVersion } : {}),
        ...(input.wgPublicKey !== undefined ? { wgPublicKey: input.wgPublicKey } : {}),
        lastSeen: at,
        createdAt: old ? withRevision<Host>(old).createdAt : at,
        updatedAt: at,
      };
      tx.put(keys.host(input.name), h);
      return h;
    });
    return { ...r.value, revision: r.revision };
  }

  /**
   * Releases the endpoints of hosts silent for longer than `graceMs` (their addresses return to their
   * networks). A host that is merely down keeps its endpoints: its containers may still be running and
   * its agent may come back. Returns the released endpoint ids.
   */
  async collectSilent(graceMs: number, release: (id: string) => Promise<void>): Promise<string[]> {
    const now = Date.parse(this.now());
    const gone = new Set((await this.store.list(keys.hosts())).entries.map((e) => withRevision<Host>(e))
      .filter((h) => now - Date.parse(h.lastSeen) > graceMs).map((h) => h.name));
    if (gone.size === 0) return [];
    const ids = (await this.store.list(keys.endpoints())).entries.map((e) => e.value as { id: string; host: string })
      .filter((e) => gone.has(e.host)).map((e) => e.id);
    for (const id of ids) await release(id);
    return ids;
  }

  async remove(actor: string, name: string): Promise<void> {
    await this.store.transact(actor, async (tx) => {
      if (!(await tx.get(keys.host(name)))) throw notFound(`host ${name}`);
      const eps = await endpointsWhere(tx, (e) => e.host === name);
      if (eps.length > 0) throw new WeftError('WEFT_IN_USE', `host ${name} still has ${listNames(eps.map((e) => `endpoint ${e.id}`))}`);
      tx.delete(keys.host(name));
    });
  }
}

export class GlobalSettings {
  constructor(private readonly store: Store, private readonly now: () => string) {}

  async get(): Promise<Global> {
    return (await this.store.transact('read', readGlobal)).value;
  }

  async update(actor: string, input: GlobalInput, ifMatch?: number): Promise<Global> {
    checkGlobal(input);
    const r = await this.store.transact(actor, async (tx) => {
      const cur = await readGlobal(tx);
      checkRevision(cur.revision, ifMatch, 'global');
      const next = { ...GLOBAL_DEFAULTS, ...withoutMeta(cur), ...input };
      const range = parseVxlanRange(next.vxlanRange);
      const outside = (await tx.list('networks/')).map((e) => withRevision<Network>(e)).filter((n) => n.vni < range.first || n.vni > range.last);
      if (outside.length > 0) {
        throw new WeftError('WEFT_IN_USE', `vxlanRange: ${next.vxlanRange} leaves out VNIs in use by ${listNames(outside.map((n) => `network ${n.tenant}/${n.name} (${n.vni})`))}`, { field: 'vxlanRange' });
      }
      const at = this.now();
      const g = { ...next, createdAt: cur.createdAt || at, updatedAt: at };
      tx.put(keys.global(), g);
      return g;
    });
    return { ...r.value, revision: r.revision };
  }
}

function withoutMeta(g: Global): GlobalInput {
  return { vxlanRange: g.vxlanRange, mtu: g.mtu, arpMode: g.arpMode };
}
