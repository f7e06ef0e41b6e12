import { DockerApiError, endpointsOfNetwork } from './api.js';
import type { DockerDeps, DockerMappings } from './mappings.js';
import { RESERVATION_PREFIX } from '../../model/index.js';

/**
 * Releases this host's Docker endpoints that Docker no longer has (an agent down during `docker rm`, a
 * release cut short) and address reservations never claimed by CreateEndpoint, once older than `graceMs`.
 * Needs Docker's API; without it nothing is collected.
 */
export class DockerCollector {
  constructor(private readonly d: DockerDeps, private readonly m: DockerMappings) {}

  async collect(graceMs: number): Promise<string[]> {
    if (!this.d.dockerApi) return [];
    const live = await this.live(this.d.dockerApi);
    if (!live) return [];
    const released: string[] = [];
    const now = Date.now();
    for (const ep of [...this.d.state.endpoints.values()]) {
      if (ep.host !== this.d.host || ep.labels['runtime'] !== 'docker' || now - Date.parse(ep.createdAt) < graceMs) continue;
      if (!ep.containerId.startsWith(RESERVATION_PREFIX) && live.has(ep.containerId)) continue;
      await this.d.endpoints.with(ep.id, async () => {
        if (!this.d.state.endpoints.has(ep.id)) return;
        await this.d.endpoints.release(ep, true);
        released.push(ep.id);
      });
    }
    if (released.length) this.d.log.info({ endpoints: released }, 'released Docker endpoints that Docker no longer has');
    return released;
  }

  /** Docker's endpoint IDs on this host's Weft networks; undefined when Docker cannot say (collect nothing then). */
  private async live(api: string): Promise<Set<string> | undefined> {
    const live = new Set<string>();
    for (const n of this.m.mine()) {
      try {
        for (const e of await endpointsOfNetwork(api, n.name)) live.add(e);
      } catch (e) {
        // A network Docker no longer has has no live endpoints; any other failure proves nothing.
        if (!(e instanceof DockerApiError && e.status === 404)) return undefined;
      }
    }
    return live;
  }
}
