import { alive, labPid, labRespawn, readLab, type LabRole } from '../lab/index.js';
import type { LabApi } from './api.js';
import { runner } from './cni.js';
import type { Prng } from './prng.js';
import type { Recorder } from './recorder.js';
import type { Workload } from './workload.js';

/** The bound the issue sets for a restarted component to be back and converged. */
export const BACK_MS = 10_000;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `fn` until true or `ms` pass: how long it took, or -1. */
export async function within(ms: number, fn: () => Promise<boolean>, everyMs = 250): Promise<number> {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    if (await fn()) return Date.now() - t0;
    await sleep(everyMs);
  }
  return -1;
}

/** The etcd member's client URL, from the argv the lab started it with. */
export function etcdUrl(dir: string, i: number): string {
  const argv = readLab(dir).daemons?.[`etcd${i}`]?.argv ?? [];
  return argv[argv.indexOf('--listen-client-urls') + 1] ?? '';
}

/** etcd's own /health (a member answers true once it has a leader and serves reads); no etcdctl needed. */
export async function etcdHealthy(url: string): Promise<boolean> {
  try {
    const r = await fetch(`${url}/health`, { signal: AbortSignal.timeout(2000) });
    return r.ok && (await r.json() as { health?: string }).health === 'true';
  } catch {
    return false;
  }
}

/**
 * Kills and restarts lab daemons (SIGKILL: a crash, not a clean stop), each followed by the checks that it
 * is back and converged within BACK_MS of its restart. `partitioned` holds the hosts cut off right now.
 */
export class Faults {
  readonly partitioned = new Set<number>();
  /** When each host's uplink last came back. */
  readonly healedAt = new Map<number, number>();

  constructor(private readonly dir: string, private readonly api: LabApi, private readonly rec: Recorder, private readonly prng: Prng, private readonly work: Workload) {}

  private async crash(role: LabRole, i: number): Promise<number> {
    const pid = labPid(readLab(this.dir), role, i);
    process.kill(pid, 'SIGKILL');
    await within(5000, async () => !alive(pid), 50);
    await sleep(this.prng.int(0, 2000));
    const t0 = Date.now();
    const next = labRespawn(this.dir, role, i);
    this.rec.event(`${role} ${i} restarted (pid ${pid} -> ${next})`);
    return t0;
  }

  async agent(i: number): Promise<void> {
    this.rec.fault('agent SIGKILL + restart', `host${i + 1}`);
    const t0 = await this.crash('agent', i);
    const back = await within(BACK_MS, async () => {
      const r = await this.api.call('GET', `/api/v1/hosts/host${i + 1}`);
      return r.status === 200 && Date.parse(r.json.lastSeen) >= t0 - 1000;
    });
    this.rec.check('agent back (heartbeat) <= 10 s', back >= 0, () => `host${i + 1}'s agent sent no heartbeat within ${BACK_MS / 1000} s of its restart`);
    // Converged: it serves its plugin again, an ADD through it answers with an address.
    const conv = await within(BACK_MS - (Date.now() - t0), async () => (await this.work.add(i, this.prng.pick(['a', 'b', 'c'] as const))) !== undefined, 500);
    this.rec.check('agent converged (ADD served) <= 10 s', conv >= 0, () => `no ADD on host${i + 1} succeeded within ${BACK_MS / 1000} s of its agent's restart`);
    this.rec.event(`agent host${i + 1}: heartbeat after ${back} ms, ADD served within ${Date.now() - t0} ms of the restart`);
  }

  async server(i: number): Promise<void> {
    this.rec.fault('server SIGKILL + restart', `server ${i + 1}`);
    const url = this.api.urls[i] as string;
    const t0 = await this.crash('server', i);
    const back = await within(BACK_MS, async () => (await this.api.one(url, 'GET', '/healthz', undefined, { auth: false, timeoutMs: 2000 })).status === 200);
    this.rec.check('server back (/healthz) <= 10 s', back >= 0, () => `${url} did not answer /healthz within ${BACK_MS / 1000} s of its restart`);
    // Converged: it lists the same endpoints as the other server (the store is shared; churn may move
    // the two lists apart for a moment, so it is asked until they agree).
    const other = this.api.urls.find((u) => u !== url) ?? url;
    const ids = async (u: string) => { const r = await this.api.one(u, 'GET', '/api/v1/endpoints', undefined, { timeoutMs: 3000 }); return r.status === 200 ? (r.json.items as Array<{ id: string }>).map((e) => e.id).sort().join() : undefined; };
    const conv = await within(BACK_MS - (Date.now() - t0), async () => { const a = await ids(url); return a !== undefined && a === (await ids(other)); });
    this.rec.check('server converged (same endpoints as its peer) <= 10 s', conv >= 0, () => `${url} did not list the same endpoints as ${other} within ${BACK_MS / 1000} s of its restart`);
    this.rec.event(`server ${i + 1}: /healthz after ${back} ms, agrees with its peer ${Date.now() - t0} ms after the restart`);
  }

  async etcd(i: number): Promise<void> {
    this.rec.fault('etcd member SIGKILL + restart', `member e${i}`);
    const url = etcdUrl(this.dir, i);
    const t0 = await this.crash('etcd', i);
    const back = await within(BACK_MS, () => etcdHealthy(url));
    this.rec.check('etcd member back (endpoint health) <= 10 s', back >= 0, () => `etcd member e${i} (${url}) was not healthy within ${BACK_MS / 1000} s of its restart`);
    this.rec.event(`etcd e${i}: healthy after ${back} ms`);
  }

  /**
   * Cuts the host's /30 to the servers (its veth in the root namespace) for `ms`, longer than the host
   * grace, then heals it. Only the control plane is cut: the underlay between hosts stays up.
   */
  async partition(i: number, ms: number): Promise<number> {
    const link = `${readLab(this.dir).prefix}r${i + 1}`;
    this.rec.fault('uplink cut past the host grace', `host${i + 1} (${link} down for ${(ms / 1000).toFixed(1)} s)`);
    this.partitioned.add(i);
    await runner.run(['ip', 'link', 'set', link, 'down']);
    try {
      await sleep(ms);
    } finally {
      await runner.run(['ip', 'link', 'set', link, 'up']);
      this.healedAt.set(i, Date.now());
      this.rec.event(`host${i + 1} healed (${link} up)`);
    }
    const t0 = Date.now();
    const healed = await within(30_000, async () => {
      const r = await this.api.call('GET', `/api/v1/hosts/host${i + 1}`);
      return r.status === 200 && Date.parse(r.json.lastSeen) >= t0 - 500;
    });
    // Still `partitioned` (its containers at risk, no churn there) until the caller has checked them.
    return healed;
  }
}
