import type { Logger } from 'pino';
import { ApiError, type Client } from '../client/index.js';
import type { ChangeEvent, DockerNetwork, Endpoint, Global, Group, Host, Netprofile, Network, Policy, Service, Tenant } from '../model/index.js';
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
  for (const t of tenants.items) {
    const list = async <T>(collection: string, into: T[]) => {
      const l = await client.request<Listing<T>>('GET', `/api/v1/tenants/${t.name}/${collection}`);
      into.push(...l.items);
      revisions.push(l.revision);
    };
    await list('networks', networks);
    await list('groups', groups);
    await list('policies', policies);
    await list('services', services);
    await list('netprofiles', netprofiles);
    await list('docker-networks', dockerNetworks);
  }
  const endpoints = await client.request<Listing<Endpoint>>('GET', '/api/v1/endpoints');
  const hosts = await client.request<Listing<Host>>('GET', '/api/v1/hosts');
  const global = await client.request<Global>('GET', '/api/v1/global');
  revisions.push(endpoints.revision, hosts.revision);
  return { revision: Math.min(...revisions), tenants: tenants.items, networks, groups, policies, services, netprofiles, dockerNetworks, endpoints: endpoints.items, hosts: hosts.items, global };
}

/**
 * List, then watch from the listed revision; on any break (server restart, 410 compacted, network error)
 * list again after a short pause. `changed` gets the affected tenant (or undefined: everything).
 */
export class Syncer {
  private abort = new AbortController();
  private running = false;
  synced = false;

  constructor(
    private readonly client: Client,
    private readonly state: DesiredState,
    private readonly changed: (tenant: string | undefined) => void,
    private readonly log: Logger,
    private readonly retryMs = 1000,
  ) {}

  async start(): Promise<void> {
    this.running = true;
    await this.relist();
    void this.loop();
  }

  stop(): void {
    this.running = false;
    this.abort.abort();
  }

  private async relist(): Promise<void> {
    this.state.replaceAll(await listAll(this.client));
    this.synced = true;
    this.changed(undefined);
  }

  private async loop(): Promise<void> {
    while (this.running) {
      try {
        await this.watch();
      } catch (e) {
        if (!this.running) return;
        const gone = e instanceof ApiError && e.status === 410;
        this.log.warn({ err: (e as Error).message }, gone ? 'watch revision compacted; re-listing' : 'watch broke; re-listing');
      }
      if (!this.running) return;
      await new Promise((r) => setTimeout(r, this.retryMs));
      try {
        await this.relist();
      } catch (e) {
        this.log.warn({ err: (e as Error).message }, 'list failed; retrying');
      }
    }
  }

  private async watch(): Promise<void> {
    this.abort = new AbortController();
    const body = await this.client.stream(`/api/v1/watch?since=${this.state.revision}`, this.abort.signal);
    const decoder = new TextDecoder();
    let buf = '';
    for await (const chunk of body) {
      buf += decoder.decode(chunk, { stream: true });
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = JSON.parse(buf.slice(0, nl)) as ChangeEvent | { op: 'bookmark'; revision: number };
        buf = buf.slice(nl + 1);
        if (line.op === 'bookmark') continue;
        const affected = this.state.apply(line);
        if (affected !== 'nothing') this.changed(affected === 'all' ? undefined : affected.tenant);
      }
    }
    throw new Error('watch stream ended');
  }
}
