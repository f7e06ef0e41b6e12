import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Client } from '../client/index.js';
import { joinWithToken } from '../agent/index.js';
import { listAll } from '../agent/sync.js';
import { startServerProcess, type ServerProcess } from '../testkit/server.js';
import { startEtcd, type EtcdProcess } from '../testkit/etcd.js';
import { summarise } from './stats.js';
import { pool } from './scale-pool.js';
import type { HostCreds } from './scale-protocol.js';
import { every, fmtSeconds } from './deadline.js';

/** How often the long setup steps (joins, allocations) say how far they got. */
const PROGRESS_MS = 10_000;
/** 'joins: 120 of 1000 in 30 s (4 failed)'. */
const progress = (what: string, done: () => number, total: number, failed: () => number, t0: number) =>
  `${what}: ${done()} of ${total} in ${fmtSeconds(performance.now() - t0)} (${failed()} failed)`;

export const TENANT = 'scale';
export const GROUPS = 10;
/** Rules the measured policy holds before the changes start (a policy of realistic size, not an empty one). */
export const BASE_RULES = 50;

export interface Cluster {
  store: 'sqlite' | 'etcd';
  srv: ServerProcess;
  etcd: EtcdProcess | undefined;
  ca: string;
  admin: Client;
  /** Where the joined hosts keep their credentials (as agents do in their state dirs). */
  dir: string;
  stop(): Promise<void>;
}

/**
 * A real `weft server` (and, for etcd, a 1-member etcd it uses), stopped by pid. Host grace is a day: a
 * run without heartbeats lasts longer than the default 10 min, and the host GC would release the endpoints.
 */
export async function startCluster(store: 'sqlite' | 'etcd'): Promise<Cluster> {
  const etcd = store === 'etcd' ? await startEtcd() : undefined;
  const dir = mkdtempSync(join(tmpdir(), 'weft-scale-'));
  try {
    const storeArgs = etcd ? ['--store', `etcd://${etcd.endpoint.slice('http://'.length)}`] : [];
    const srv = await startServerProcess({ args: ['--log-level', 'warn', '--host-grace', '86400000', '--audit-log', 'none', ...storeArgs] });
    const ca = readFileSync(srv.caFile, 'utf8');
    const admin = new Client({ servers: [srv.url], token: srv.token, tls: { ca } });
    return {
      store, srv, etcd, ca, admin, dir,
      async stop() {
        admin.close();
        await srv.stop();
        await etcd?.stop();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (e) {
    await etcd?.stop();
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}

/** The tenant: one /16 network, GROUPS groups, and policy `pol` of BASE_RULES rules on group g0. */
export async function makeObjects(c: Cluster): Promise<void> {
  const t = `/api/v1/tenants/${TENANT}`;
  await c.admin.request('POST', '/api/v1/tenants', { name: TENANT });
  await c.admin.request('POST', `${t}/networks`, { name: 'net', subnet: '10.128.0.0/16' });
  const rules = Array.from({ length: BASE_RULES }, (_, i) => ({ id: `base-${i}`, direction: 'in', action: 'allow', protocol: 'tcp', ports: String(1000 + i), fromCidr: `172.16.${i}.0/24`, priority: 5 }));
  await c.admin.request('POST', `${t}/policies`, { name: 'pol', rules });
  for (let g = 0; g < GROUPS; g++) await c.admin.request('POST', `${t}/groups`, { name: `g${g}`, network: 'net', ...(g === 0 ? { policies: ['pol'] } : {}) });
}

/** The server's warnings so far, counted by message (a dropped watch, a slow request). */
export function serverWarnings(c: Cluster): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of `${c.srv.stdout}\n${c.srv.stderr}`.split('\n')) {
    const msg = /"msg":"([^"]*)"/.exec(line)?.[1];
    if (msg) out[msg] = (out[msg] ?? 0) + 1;
  }
  return out;
}

/** A host's underlay address: 198.19.0.0/16 (benchmarking space, outside the default tunnel range). */
const vtepOf = (i: number) => `198.19.${(i + 1) >> 8}.${(i + 1) & 255}`;

/**
 * `n` hosts through the real join flow, as `weft agent --join` does it: an admin's one-time token, the CA
 * fetched and checked against the token's pin, a key made here and a CSR traded for the certificate.
 */
export async function joinHosts(c: Cluster, n: number, concurrency: number, say: (s: string) => void) {
  const log = pino({ level: 'silent' });
  const hosts: HostCreds[] = [];
  const times: number[] = [];
  const t0 = performance.now();
  let failed = 0;
  const stop = every(PROGRESS_MS, () => say(progress(`${c.store}: joins`, () => hosts.length, n, () => failed, t0)));
  const failures = await pool(Array.from({ length: n }, (_, i) => i), concurrency, async (i) => {
    const name = `h${String(i).padStart(4, '0')}`;
    const s = performance.now();
    const { token } = await c.admin.request<{ token: string }>('POST', `/api/v1/hosts/${name}/join-token`, {});
    const stateDir = join(c.dir, name);
    const creds = await joinWithToken([c.srv.url], token, stateDir, log);
    times.push(performance.now() - s);
    hosts.push({ name, cert: creds.cert, key: creds.key, stateDir, vtepIp: vtepOf(i) });
  }, () => failed++).finally(stop);
  if (failures.length) throw new Error(`${failures.length} joins failed: ${failures.slice(0, 3).join('; ')}`);
  hosts.sort((a, b) => (a.name < b.name ? -1 : 1));
  return { hosts, seconds: (performance.now() - t0) / 1000, lat: summarise(times) };
}

export const hostClient = (c: Cluster, h: HostCreds) => new Client({ servers: [c.srv.url], token: undefined, tls: { ca: c.ca, cert: h.cert, key: h.key } });

/** An endpoint as the agent's CNI ADD asks for it (cni-host.ts: allocate). */
export function endpointBody(host: string, k: number, group = `g${k % GROUPS}`) {
  return {
    tenant: TENANT, network: 'net', group, containerId: `${host}-c${k}`, host, ifname: 'eth0',
    netns: `/run/netns/cni-${randomBytes(8).toString('hex')}`, labels: { app: `a${k % 5}` }, seal: randomBytes(32).toString('hex'),
  };
}

/**
 * Registers every host (without an agent instance, as the API does, so the simulated agents may take the
 * names over) and creates `perHost` endpoints on each through the API with the host's own certificate,
 * `concurrency` hosts at a time, each host's ADDs one after another as one agent makes them.
 */
export async function populate(c: Cluster, hosts: HostCreds[], perHost: number, concurrency: number, say: (s: string) => void) {
  const times: number[] = [];
  const t0 = performance.now();
  let failed = 0;
  const stop = every(PROGRESS_MS, () => say(progress(`${c.store}: endpoints`, () => times.length, hosts.length * perHost, () => failed, t0)));
  const failures = await pool(hosts, concurrency, async (h) => {
    const client = hostClient(c, h);
    try {
      await client.request('PUT', `/api/v1/hosts/${h.name}`, { name: h.name, vtepIp: h.vtepIp, agentVersion: 'bench-scale' });
      for (let k = 0; k < perHost; k++) {
        const s = performance.now();
        await client.request('POST', '/api/v1/endpoints', endpointBody(h.name, k));
        times.push(performance.now() - s);
      }
    } finally {
      client.close();
    }
  }, () => failed++).finally(stop);
  const seconds = (performance.now() - t0) / 1000;
  return { rate: times.length / seconds, seconds, lat: summarise(times), created: times.length, failures };
}

/**
 * What one agent's list costs once every endpoint exists: the real agent's listAll (every endpoint of the
 * cluster) and the simulated agent's own-host list. After a server restart every agent lists again.
 */
export async function listCosts(c: Cluster, h: HostCreds) {
  const client = hostClient(c, h);
  try {
    let t0 = performance.now();
    const full = await listAll(client);
    const fullMs = performance.now() - t0;
    t0 = performance.now();
    await client.request('GET', `/api/v1/endpoints?host=${h.name}`);
    const ownMs = performance.now() - t0;
    // Every agent lists every host at its start (hosts × hosts in all): what one such list costs.
    t0 = performance.now();
    const hosts = await client.request<{ items: unknown[] }>('GET', '/api/v1/hosts');
    const hostsMs = performance.now() - t0;
    return { fullMs, fullBytes: Buffer.byteLength(JSON.stringify(full)), endpoints: full.endpoints.length, ownMs, hostsMs, hosts: hosts.items.length, hostsBytes: Buffer.byteLength(JSON.stringify(hosts)) };
  } finally {
    client.close();
  }
}

/**
 * `hosts.length` real agents' endpoint lists at once (every endpoint, as listAll asks, each with its own
 * host certificate), bodies read and dropped here: what the server pays when real agents re-list together.
 */
export async function fullLists(c: Cluster, hosts: HostCreds[]) {
  const t0 = performance.now();
  let bytes = 0;
  const failures = await pool(hosts, hosts.length, async (h) => {
    const client = hostClient(c, h);
    try {
      for await (const chunk of await client.stream('/api/v1/endpoints')) bytes += (chunk as Buffer).length;
    } finally {
      client.close();
    }
  });
  return { lists: hosts.length - failures.length, ms: performance.now() - t0, bytesEach: bytes / Math.max(1, hosts.length - failures.length), failures };
}
