import type { Logger } from 'pino';
import { ApiError, linesOf, type Client } from '../client/index.js';
import type { AdminNetworkPolicySpec, AdminPolicyObject, BaselineAdminNetworkPolicySpec, ChangeEvent, DockerNetwork, Endpoint, Global, Group, Host, NamespaceObject, Netprofile, Network, NetworkPolicyObject, Policy, Service, Tenant } from '../model/index.js';
import type { DesiredState, Snapshot } from './state.js';

interface Listing<T> { items: T[]; revision: number }

/** Lists everything the agent needs; the snapshot's revision is the oldest of the lists, so the watch replays any gap. */
export async function listAll(client: Client): Promise<Snapshot> {
  const tenants = await client.request<Listing<Tenant>>('GET', '/api/v1/tenants');
  const revisions = [tenants.revision];
  const networks: Network[] = [];
  const groups: Group[] = [];
  const policies: Policy[] = [];
  const services: Service[] = [];
  const netprofiles: Netprofile[] = [];
  const dockerNetworks: DockerNetwork[] = [];
  const networkPolicies: NetworkPolicyObject[] = [];
  const namespaces: NamespaceObject[] = [];
  const adminNetworkPolicies: AdminPolicyObject<AdminNetworkPolicySpec>[] = [];
  const baselineAdminNetworkPolicies: AdminPolicyObject<BaselineAdminNetworkPolicySpec>[] = [];
  for (const t of tenants.items) {
    const list = async <T>(collection: string, into: T[], optional = false) => {
      try {
        const l = await client.request<Listing<T>>('GET', `/api/v1/tenants/${t.name}/${collection}`);
        into.push(...l.items);
        revisions.push(l.revision);
      } catch (e) {
        // A server older than the kind (an upgrade in progress) has none of it.
        if (!(optional && e instanceof ApiError && e.status === 404 && e.message.startsWith('no route'))) throw e;
      }
    };
    await list('networks', networks);
    await list('groups', groups);
    await list('policies', policies);
    await list('services', services);
    await list('netprofiles', netprofiles);
    await list('docker-networks', dockerNetworks);
    await list('networkpolicies', networkPolicies, true);
    await list('namespaces', namespaces, true);
    await list('adminnetworkpolicies', adminNetworkPolicies, true);
    await list('baselineadminnetworkpolicies', baselineAdminNetworkPolicies, true);
  }
  const endpoints = await client.request<Listing<Endpoint>>('GET', '/api/v1/endpoints');
  const hosts = await client.request<Listing<Host>>('GET', '/api/v1/hosts');
  const global = await client.request<Global>('GET', '/api/v1/global');
  revisions.push(endpoints.revision, hosts.revision);
  return { revision: Math.min(...revisions), tenants: tenants.items, networks, groups, policies, services, netprofiles, networkPolicies, namespaces, adminNetworkPolicies, baselineAdminNetworkPolicies, dockerNetworks, endpoints: endpoints.items, hosts: hosts.items, global };
}

/**
 * The server sends a bookmark line every 15 s on an idle watch (BOOKMARK_MS in server/routes/changes.ts).
 * A server that stops without closing the connection (frozen, its host gone, a partition that drops
 * packets) sends nothing at all, and TCP may not notice for many minutes: after three missed bookmarks the
 * agent gives up on the stream and re-lists, so it never serves stale policy unknowingly.
 */
export const WATCH_IDLE_MS = 3 * 15_000;

export interface SyncTiming {
  /** The pause before the first re-list after the watch broke; it doubles with each break in a row, up to `maxRetryMs`. */
  retryMs: number;
  /** The longest pause between re-lists (default MAX_RETRY_MS). */
  maxRetryMs?: number;
  /** A watch that stayed up this long ends a run of breaks: the next pause is `retryMs` again (default HEALTHY_WATCH_MS). */
  healthyMs?: number;
  /** No line (change or bookmark) for this long, headers included, and the watch is abandoned. */
  idleMs: number;
}

/** The longest pause between re-lists while the watch keeps breaking. */
export const MAX_RETRY_MS = 8_000;
/** A watch that lived this long was healthy: a break after it starts again from the shortest pause. */
export const HEALTHY_WATCH_MS = 30_000;

/**
 * The pause before the re-list after `breaks` breaks in a row (1: the first): `retryMs` doubled with each
 * one, up to `maxRetryMs`, then spread over 75-125 % of itself by `random` (0..1), so that a server which
 * breaks every watch (a bad line, 429, a loop of 410s) is not re-listed by every agent once a second, and
 * agents that lost the same server do not all come back in the same instant.
 */
export function retryPause(breaks: number, retryMs: number, maxRetryMs: number, random: number): number {
  const doubled = retryMs * 2 ** Math.min(Math.max(breaks - 1, 0), 30);
  return Math.round(Math.min(doubled, maxRetryMs) * (0.75 + 0.5 * random));
}

/**
 * List, then watch from the listed revision; on any break (server restart, 410 compacted, network error)
 * list again after a short pause. `changed` gets the affected tenant (or undefined: everything).
 */
export class Syncer {
  private abort = new AbortController();
  private running = false;
  /** Ends the pause between re-lists early (stop). */
  private wake: (() => void) | undefined;
  synced = false;
  /** Told of every `weft verify` request the watch brings (the agent answers those of its endpoints). */
  onVerify: ((request: unknown) => void) | undefined;

  constructor(
    private readonly client: Client,
    private readonly state: DesiredState,
    private readonly changed: (tenant: string | undefined) => void,
    private readonly log: Logger,
    private readonly timing: SyncTiming = { retryMs: 1000, idleMs: WATCH_IDLE_MS },
  ) {}

  async start(): Promise<void> {
    this.running = true;
    await this.relist();
    void this.loop();
  }

  stop(): void {
    this.running = false;
    this.abort.abort();
    this.wake?.();
  }

  /** Waits `ms`, or until stop(). */
  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wake = done;
    });
  }

  private async relist(): Promise<void> {
    const listed = await listAll(this.client);
    // Stopped while listing: nothing more is applied.
    if (!this.running && this.synced) return;
    this.state.replaceAll(listed);
    this.synced = true;
    this.changed(undefined);
  }

  private async loop(): Promise<void> {
    /** Breaks in a row: a watch that stayed up for `healthyMs` ends the run. */
    let breaks = 0;
    while (this.running) {
      const opened = Date.now();
      try {
        await this.watch();
      } catch (e) {
        if (!this.running) return;
        const gone = e instanceof ApiError && e.status === 410;
        this.log.warn({ err: (e as Error).message }, gone ? 'watch revision compacted or ahead of the server; re-listing' : 'watch broke; re-listing');
      }
      if (!this.running) return;
      breaks = Date.now() - opened >= (this.timing.healthyMs ?? HEALTHY_WATCH_MS) ? 1 : breaks + 1;
      await this.pause(retryPause(breaks, this.timing.retryMs, this.timing.maxRetryMs ?? MAX_RETRY_MS, Math.random()));
      if (!this.running) return;
      try {
        await this.relist();
      } catch (e) {
        this.log.warn({ err: (e as Error).message }, 'list failed; retrying');
      }
    }
  }

  private async watch(): Promise<void> {
    const abort = (this.abort = new AbortController());
    let idle = false;
    let timer: NodeJS.Timeout | undefined;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        idle = true;
        abort.abort();
      }, this.timing.idleMs);
    };
    arm();
    try {
      await this.follow(abort.signal, arm);
    } catch (e) {
      if (idle) throw new Error(`no line from the server in ${this.timing.idleMs / 1000} s (bookmarks are due every 15 s); the server is gone or frozen`);
      throw e;
    } finally {
      clearTimeout(timer);
    }
    throw new Error('watch stream ended');
  }

  /** Applies the stream's lines as they come; `alive` is called at each one. */
  private async follow(signal: AbortSignal, alive: () => void): Promise<void> {
    const body = await this.client.stream(`/api/v1/watch?since=${this.state.revision}`, signal);
    // Bounded: a line without its end (a broken or hostile server) ends the watch, and the loop re-lists.
    for await (const text of linesOf(body)) {
      const line = JSON.parse(text) as ChangeEvent | { op: 'bookmark'; revision: number };
      alive();
      if (line.op === 'bookmark') continue;
      if (line.kind === 'verify' && line.op === 'put') this.onVerify?.(line.object);
      this.log.debug({ kind: line.kind, op: line.op, revision: line.revision }, 'watch event');
      const affected = this.state.apply(line);
      if (affected !== 'nothing') this.changed(affected === 'all' ? undefined : affected.tenant);
    }
  }
}
