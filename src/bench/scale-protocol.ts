import { createHash } from 'node:crypto';

/** What the bench tells a worker process of simulated agents, and what it answers (over the fork's IPC channel). */

/** A joined host: its certificate and key (from the real join flow), its state dir, its underlay address. */
export interface HostCreds { name: string; cert: string; key: string; stateDir: string; vtepIp: string }

/** One simulated agent's registration and list may take this long before it counts as failed. */
export const AGENT_START_MS = 60_000;

/** Two kinds of line are timed: the Weft watch (keyed by revision) and the anchor's stream (by sequence). */
export type Feed = 'weft' | 'anchor';

export type ToWorker =
  | { op: 'start'; servers: string[]; ca: string; hosts: HostCreds[]; concurrency: number }
  | { op: 'heartbeats'; everyMs: number }
  /** Every agent lists everything again at once, as after a server restart (the watch goes on). */
  | { op: 'relist'; deadlineMs: number }
  | { op: 'anchor'; url: string; ca: string }
  | { op: 'await'; feed: Feed; key: number; timeoutMs: number }
  | { op: 'digest'; tenant: string }
  | { op: 'stats' }
  | { op: 'stop' };

export interface WorkerStats {
  agents: number;
  /** Re-lists after the first (a broken or abandoned watch). */
  relists: number;
  heartbeats: number;
  heartbeatFailures: number;
  rss: number;
  heapUsed: number;
  /** Changes applied from the Weft watch. */
  lines: number;
  /** The agents' warnings (watch broken, list failed, heartbeat failed) by message and cause. */
  warnings: Record<string, number>;
}

export type FromWorker =
  | { op: 'started'; agents: number; ms: number; failures: string[] }
  /** Sent every few seconds while a worker starts its agents: how far it got, and what the slowest wait for. */
  | { op: 'progress'; text: string }
  | { op: 'anchored'; streams: number; failures: string[] }
  | { op: 'relisted'; agents: number; ms: number; failures: string[] }
  | { op: 'seen'; feed: Feed; key: number; last: number; missing: number }
  | { op: 'digest'; byHost: Record<string, string> }
  | { op: 'stats'; stats: WorkerStats };

/** Milliseconds on a clock every process of this machine shares (performance.now() starts per process). */
export const wallMs = () => performance.timeOrigin + performance.now();

/**
 * What a host's agent holds that the bench checks at the end: the revision of each policy and group of the
 * tenant, its own endpoints by id and revision, and how many hosts it knows. The bench computes the same
 * from the server's lists; every agent must match.
 */
export function stateDigest(s: {
  policies: Iterable<{ name: string; tenant: string; revision: number }>;
  groups: Iterable<{ name: string; tenant: string; revision: number }>;
  endpoints: Iterable<{ id: string; revision: number }>;
  hosts: number;
}, tenant: string): string {
  const of = (xs: Iterable<{ name: string; tenant: string; revision: number }>) =>
    [...xs].filter((x) => x.tenant === tenant).map((x) => `${x.name}@${x.revision}`).sort();
  const eps = [...s.endpoints].map((e) => `${e.id}@${e.revision}`).sort();
  return createHash('sha256').update(JSON.stringify([of(s.policies), of(s.groups), eps, s.hosts])).digest('hex').slice(0, 16);
}
