import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { get as httpsGet } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePorts } from '../lab/free.js';
import { healthy as plainHealthy } from '../lab/etcd-health.js';
import type { KeyPair, TestPki } from './pki.js';

export interface EtcdProcess { endpoint: string; pid: number | undefined; stop(): Promise<void> }

/**
 * A single-member etcd on loopback with its own data directory, stopped by pid. With `tls`, it serves
 * https only and demands a client certificate signed by the test CA (`--client-cert-auth`); `tls.client`
 * is the certificate the health check uses. `args`: more flags (a small `--quota-backend-bytes`).
 */
export async function startEtcd(opts: { tls?: { pki: TestPki; client: KeyPair }; args?: string[] } = {}): Promise<EtcdProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'weft-etcd-'));
  const [client, peer] = (await freePorts(2)) as [number, number];
  const tls = opts.tls;
  const endpoint = `${tls ? 'https' : 'http'}://127.0.0.1:${client}`;
  const tlsArgs = tls ? ['--cert-file', tls.pki.server.cert, '--key-file', tls.pki.server.key, '--trusted-ca-file', tls.pki.ca, '--client-cert-auth'] : [];
  const p: ChildProcess = spawn('etcd', ['--name', 'e1', '--data-dir', dir, '--listen-client-urls', endpoint, '--advertise-client-urls', endpoint,
    '--listen-peer-urls', `http://127.0.0.1:${peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
    '--initial-cluster', `e1=http://127.0.0.1:${peer}`, '--log-level', 'error', ...tlsArgs, ...(opts.args ?? [])], { stdio: 'ignore' });
  const stop = async () => {
    if (p.exitCode === null) { const done = new Promise((r) => p.once('exit', r)); p.kill('SIGTERM'); await done; }
    rmSync(dir, { recursive: true, force: true });
  };
  for (let i = 0; i < 100; i++) {
    if (await healthy(endpoint, tls)) return { endpoint, pid: p.pid, stop };
    await new Promise((r) => setTimeout(r, 100));
  }
  await stop();
  throw new Error('etcd did not start');
}

function healthy(endpoint: string, tls?: { pki: TestPki; client: KeyPair }): Promise<boolean> {
  // Plain http: the lab's check (with its 2 s bound on a member that accepts and never answers).
  if (!tls) return plainHealthy(endpoint);
  return new Promise((resolve) => {
    const req = httpsGet(`${endpoint}/health`, { ca: readFileSync(tls.pki.ca), cert: readFileSync(tls.client.cert), key: readFileSync(tls.client.key) }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
  });
}

export interface EtcdCluster { endpoints: string[]; members: Array<{ pid: number | undefined; stop(): Promise<void> }>; stop(): Promise<void> }

/**
 * An N-member etcd cluster on loopback, each member with its own data directory, stopped by pid. A
 * cluster that does not come up is stopped and started once more on other ports: a port picked free can
 * be taken by a test running beside this one before etcd binds it, and the member that lost it exits
 * (the suspected cause of the one such failure seen in CI; the error now names each member's state).
 */
export async function startEtcdCluster(n: number): Promise<EtcdCluster> {
  try {
    return await tryEtcdCluster(n);
  } catch (e) {
    return await tryEtcdCluster(n).catch((again: Error) => { throw new Error(`${(e as Error).message}; again on other ports: ${again.message}`); });
  }
}

async function tryEtcdCluster(n: number): Promise<EtcdCluster> {
  const free = await freePorts(2 * n);
  const ports = Array.from({ length: n }, (_, i) => ({ client: free[2 * i] as number, peer: free[2 * i + 1] as number }));
  const initial = ports.map((p, i) => `e${i}=http://127.0.0.1:${p.peer}`).join(',');
  const members = ports.map((p, i) => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-etcd-'));
    const url = `http://127.0.0.1:${p.client}`;
    const proc = spawn('etcd', ['--name', `e${i}`, '--data-dir', dir, '--listen-client-urls', url, '--advertise-client-urls', url,
      '--listen-peer-urls', `http://127.0.0.1:${p.peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${p.peer}`,
      '--initial-cluster', initial, '--initial-cluster-state', 'new', '--log-level', 'error'], { stdio: ['ignore', 'ignore', 'pipe'] });
    // The end of what it said, for the error if the cluster never comes up.
    let said = '';
    proc.stderr?.on('data', (d: Buffer) => { said = (said + d.toString()).slice(-300); });
    return {
      url, pid: proc.pid,
      state: () => (proc.exitCode !== null || proc.signalCode !== null ? `e${i} exited (${proc.exitCode ?? proc.signalCode}): ${said.trim().split('\n').pop() ?? ''}` : `e${i} running`),
      async stop() {
        if (proc.exitCode === null && proc.signalCode === null) { const done = new Promise((r) => proc.once('exit', r)); proc.kill('SIGKILL'); await done; }
        rmSync(dir, { recursive: true, force: true });
      },
    };
  });
  const cluster = { endpoints: members.map((m) => m.url), members, stop: async () => { for (const m of members) await m.stop(); } };
  for (let i = 0; i < 150; i++) {
    const ok = await Promise.all(members.map((m) => fetch(`${m.url}/health`).then((r) => r.ok, () => false)));
    if (ok.every(Boolean)) return cluster;
    await new Promise((r) => setTimeout(r, 100));
  }
  const states = members.map((m) => m.state()).join('; ');
  await cluster.stop();
  throw new Error(`the etcd cluster did not become healthy (${states})`);
}
