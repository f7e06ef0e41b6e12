import { ApiError, type Client } from '../client/index.js';
import { Anchor, anchorFanout, anchorRequests } from './scale-anchor.js';
import { timedChanges, untimedChanges, type Seen, type Writers } from './scale-changes.js';
import { Fleet } from './scale-fleet.js';
import { onInterrupt } from './interrupt.js';
import { PhaseMeter, settled, type Usage } from './procstat.js';
import { TENANT, fullLists, hostClient, joinHosts, listCosts, makeObjects, populate, serverWarnings, startCluster, type Cluster } from './scale-setup.js';
import { stateDigest, wallMs, type HostCreds, type WorkerStats } from './scale-protocol.js';
import type { summarise } from './stats.js';

export interface FleetOptions {
  hosts: number;
  endpointsPerHost: number;
  rounds: number;
  workers: number;
  /** Concurrent API clients for the joins and the endpoint allocations. */
  clients: number;
  heartbeatMs: number;
  /** Rounds with heartbeats on (each change may wait `timeoutMs` when the server cannot keep up). */
  heartbeatRounds: number;
  timeoutMs: number;
}

type Summary = ReturnType<typeof summarise>;

export interface FleetResult {
  store: string;
  joins: { seconds: number; lat: Summary };
  allocations: { rate: number; seconds: number; lat: Summary; created: number; failures: string[] };
  lists: Awaited<ReturnType<typeof listCosts>>;
  start: { agents: number; ms: number; failures: string[]; usage: Usages };
  baseline: { changes: number; usage: Usages };
  idle: Usages;
  quiet: { seen: Seen[]; usage: Usages };
  heartbeats: { seen: Seen[]; usage: Usages };
  anchor: { streams: number; fanout: Awaited<ReturnType<typeof anchorFanout>>; requests: Awaited<ReturnType<typeof anchorRequests>>; bytes: number };
  consistent: { agents: number; mismatched: number; error?: string };
  /** How long the server stayed busy after the heartbeats stopped (its watch backlog); NaN: not within DRAIN_MS. */
  drainMs: number;
  /** Every agent re-listing at once (own host's endpoints), and FULL_LISTS real agents' full lists at once. */
  relists: { own: Awaited<ReturnType<Fleet['relist']>>; ownUsage: Usages; full: Awaited<ReturnType<typeof fullLists>>; fullUsage: Usages };
  tunnelRange: { ok: boolean; ms: number; seenMs: number; missing: number; answer: string };
  workers: WorkerStats;
  warnings: Record<string, number>;
}

/** Real agents' full endpoint lists made at once (each ~28 MB at 50,000 endpoints; the bench reads them all). */
export const FULL_LISTS = 50;
/** How long the bench waits for the server to settle after the heartbeat phase. */
const DRAIN_MS = 600_000;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** What a phase cost each group of processes (server, etcd, workers). */
export type Usages = Record<string, Usage>;

/** Runs `fn` while measuring what each group of processes spends. */
async function metered<T>(groups: Record<string, () => number[]>, fn: () => Promise<T>): Promise<{ value: T; usage: Usages }> {
  const meters = Object.entries(groups).map(([name, pids]) => [name, new PhaseMeter(pids)] as const);
  for (const [, m] of meters) m.start();
  const value = await fn();
  return { value, usage: Object.fromEntries(meters.map(([name, m]) => [name, m.stop()])) };
}

/** Every agent's digest against the server's view of the same objects; a failed read is reported, not thrown. */
async function consistency(c: Cluster, fleet: Fleet, hosts: HostCreds[]) {
  return checkConsistency(c, fleet, hosts).catch((e: Error) => ({ agents: hosts.length, mismatched: NaN, error: e.message }));
}

async function checkConsistency(c: Cluster, fleet: Fleet, hosts: HostCreds[]) {
  const list = <T>(p: string) => c.admin.request<{ items: T[] }>('GET', p).then((r) => r.items);
  type Named = { name: string; tenant: string; revision: number };
  const [policies, groups, endpoints, all] = await Promise.all([
    list<Named>(`/api/v1/tenants/${TENANT}/policies`), list<Named>(`/api/v1/tenants/${TENANT}/groups`),
    list<{ id: string; host: string; revision: number }>('/api/v1/endpoints'), list<unknown>('/api/v1/hosts'),
  ]);
  const got = await fleet.digests(TENANT);
  let mismatched = 0;
  for (const h of hosts) {
    const want = stateDigest({ policies, groups, endpoints: endpoints.filter((e) => e.host === h.name), hosts: all.length }, TENANT);
    if (got[h.name] !== want) mismatched++;
  }
  return { agents: Object.keys(got).length, mismatched };
}

/** A new tunnel range re-addresses every host in one transaction (control/tunnels.ts); then every agent must see it. */
async function retunnel(c: Cluster, fleet: Fleet, timeoutMs: number) {
  const t0 = wallMs();
  try {
    const g = await c.admin.request<{ revision: number }>('PATCH', '/api/v1/global', { tunnelRange: '100.65.0.0/16' });
    const ms = wallMs() - t0;
    const s = await fleet.seen('weft', g.revision, timeoutMs);
    return { ok: true, ms, seenMs: s.last - t0, missing: s.missing, answer: `revision ${g.revision}` };
  } catch (e) {
    const answer = e instanceof ApiError ? `${e.status} ${e.code}: ${e.message}` : (e as Error).message;
    return { ok: false, ms: wallMs() - t0, seenMs: NaN, missing: NaN, answer };
  }
}

/** The hosts and their endpoints, and what one agent's list then costs. */
async function prepare(c: Cluster, o: FleetOptions, log: (s: string) => void) {
  await makeObjects(c);
  const joins = await joinHosts(c, o.hosts, o.clients, log);
  log(`${c.store}: ${o.hosts} hosts joined in ${joins.seconds.toFixed(1)} s`);
  const allocations = await populate(c, joins.hosts, o.endpointsPerHost, o.clients, log);
  log(`${c.store}: ${allocations.created} endpoints in ${allocations.seconds.toFixed(1)} s (${allocations.failures.length} failures)`);
  return { joins, allocations, lists: await listCosts(c, joins.hosts[0] as HostCreds) };
}

/** The admin, and a host's own client for its endpoint (kept open, as its agent keeps one). */
function writersOf(c: Cluster, hosts: HostCreds[], clients: Map<string, Client>): Writers {
  return {
    admin: c.admin,
    host(i) {
      const h = hosts[(i * 97) % hosts.length] as HostCreds;
      const client = clients.get(h.name) ?? hostClient(c, h);
      clients.set(h.name, client);
      return { name: h.name, client };
    },
  };
}

/** The anchor server's line to every agent (the size of the measured policy's line), and its plain requests. */
async function anchorPhase(c: Cluster, f: Fleet, o: FleetOptions, anchor: Anchor) {
  const bytes = Buffer.byteLength(JSON.stringify(await c.admin.request('GET', `/api/v1/tenants/${TENANT}/policies/pol`)));
  const anchored = await f.anchor(anchor.url, anchor.ca);
  const fanout = await anchorFanout(anchor, f, o.rounds * 5, bytes, o.timeoutMs);
  return { streams: anchored.streams, fanout, requests: await anchorRequests(anchor, o.clients, 10_000), bytes };
}

/** The simulated fleet on one store: setup, the timed changes (without and with heartbeats), the anchor, the checks. */
export async function runFleet(store: 'sqlite' | 'etcd', o: FleetOptions, log: (s: string) => void): Promise<FleetResult> {
  const c = await startCluster(store);
  const f = Fleet.spawn(o.workers, log);
  let anchor: Anchor | undefined;
  const hostClients = new Map<string, Client>();
  const stopAll = async () => {
    for (const cl of hostClients.values()) cl.close();
    await f.stop();
    await anchor?.stop();
    await c.stop();
  };
  const forget = onInterrupt(stopAll);
  try {
    const { joins, allocations, lists } = await prepare(c, o, log);
    const writers = writersOf(c, joins.hosts, hostClients);
    const groups = { server: () => [c.srv.proc.pid ?? NaN], etcd: () => (c.etcd?.pid ? [c.etcd.pid] : []), workers: () => f.pids() };
    const baseline = await metered(groups, () => untimedChanges(writers, o.rounds, 0));
    const start = await metered(groups, () => f.start([c.srv.url], c.ca, joins.hosts, 8));
    log(`${store}: ${start.value.agents} agents listed in ${(start.value.ms / 1000).toFixed(1)} s`);
    // Every watch stream is open once one change has reached every agent.
    const warm = await timedChanges(writers, f, 1, 1000, 120_000);
    if (warm.some((s) => s.missing > 0 || s.error)) throw new Error(`agents missing the warm-up changes: ${JSON.stringify(warm)}`);
    const idle = await metered(groups, () => sleep(10_000));
    const quiet = await metered(groups, () => timedChanges(writers, f, o.rounds, 2000, o.timeoutMs));
    log(`${store}: ${quiet.value.length} changes without heartbeats`);
    // The anchor before the heartbeats: their backlog (the server buffers what its agents have not read
    // yet) would still be draining after them.
    anchor = await Anchor.start();
    const anchorResult = await anchorPhase(c, f, o, anchor);
    f.heartbeats(o.heartbeatMs);
    await sleep(o.heartbeatMs + 2000);
    const beating = await metered(groups, () => timedChanges(writers, f, o.heartbeatRounds, 3000, o.timeoutMs));
    f.heartbeats(0);
    log(`${store}: ${beating.value.length} changes with heartbeats every ${o.heartbeatMs / 1000} s; waiting for the server to settle`);
    // Every heartbeat is a host change sent to every agent: the server may still be writing that backlog.
    const drainMs = await settled(c.srv.proc.pid ?? NaN, 0.25, DRAIN_MS, log);
    await sleep(2000);
    const consistent = await consistency(c, f, joins.hosts);
    const own = await metered(groups, () => f.relist());
    const full = await metered(groups, () => fullLists(c, joins.hosts.slice(0, FULL_LISTS)));
    log(`${store}: every agent re-listed at once in ${(own.value.ms / 1000).toFixed(1)} s; ${full.value.lists} full lists at once in ${(full.value.ms / 1000).toFixed(1)} s`);
    const relists = { own: own.value, ownUsage: own.usage, full: full.value, fullUsage: full.usage };
    const tunnelRange = await retunnel(c, f, 120_000);
    log(`${store}: tunnel range change: ${tunnelRange.answer}`);
    return {
      store, joins, allocations, lists, start: { ...start.value, usage: start.usage }, baseline: { changes: baseline.value, usage: baseline.usage }, idle: idle.usage,
      quiet: { seen: quiet.value, usage: quiet.usage }, heartbeats: { seen: beating.value, usage: beating.usage },
      anchor: anchorResult, consistent, drainMs, relists, tunnelRange, workers: await f.stats(), warnings: serverWarnings(c),
    };
  } finally {
    forget();
    await stopAll();
  }
}
