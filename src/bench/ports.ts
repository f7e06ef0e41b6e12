// npm run bench:ports — what published ports cost a new connection (issue 13): the host table
// (datapath/host-nft.ts) of a host publishing N ports, loaded into a namespace of its own ("host"), a
// client namespace beside it on a veth, and TCP connects from the client (weft-connloop, sequential, each
// a new connection through the nat hooks) to a port nobody publishes and to a published one (DNATed to
// the tenant's uplink address, here an address of the host namespace, where the same loop accepts).
// Rows for N = 0, 1, 1,000 and 5,000 published ports, each beside the anchor: the same namespaces with no
// table at all. Needs root; makes and deletes its own two namespaces and stops what it started by pid.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderHostRuleset } from '../datapath/host-nft.js';
import type { TenantPlan } from '../datapath/plan.js';
import { ProcessRunner } from '../exec/index.js';
import { onInterrupt } from './interrupt.js';

const SECONDS = Number(process.env['BENCH_PORTS_SECONDS'] ?? 3);
const COUNTS = (process.env['BENCH_PORTS_COUNTS'] ?? '0,1,1000,5000').split(',').map(Number);
const CONNLOOP = join(dirname(fileURLToPath(import.meta.url)), 'weft-connloop');
const HOST_IP = '10.78.0.1';
const CLIENT_IP = '10.78.0.2';
/** The tenant's uplink address the host DNATs published ports to (on the host namespace's loopback here). */
const TENANT_IP = '169.254.0.6';
const UNPUBLISHED = 7000;
const PUBLISHED = 20_000;
const FIRST_OTHER = 30_000;

const run = new ProcessRunner();
const tag = `wbp${process.pid}`;
const hostNs = `${tag}-h`;
const clientNs = `${tag}-c`;
const bg: ChildProcess[] = [];

async function sh(argv: string[]): Promise<string> {
  const r = await run.run(argv, { allowFailure: true, timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr.trim()}`);
  return r.stdout;
}
const inNs = (ns: string, argv: string[]) => sh(['ip', 'netns', 'exec', ns, ...argv]);

/** One tenant publishing PUBLISHED and `others` more TCP ports: only what the host table reads of a plan. */
function plan(others: number): TenantPlan {
  const port = (hostPort: number) => ({ hostPort, containerPort: hostPort, protocol: 'tcp' as const, containerIp: '10.1.0.2', endpoint: `e${hostPort}` });
  return {
    tenant: 'bench',
    uplink: { hostLink: 'wu1', tenantLink: 'up1', hostIp: '169.254.0.5', tenantIp: TENANT_IP, prefix: 30 },
    ports: others < 0 ? [] : [port(PUBLISHED), ...Array.from({ length: others }, (_, i) => port(FIRST_OTHER + i))],
    dns: undefined, routed: [], routedNat: [],
  } as unknown as TenantPlan;
}

async function setup(): Promise<void> {
  await sh(['ip', 'netns', 'add', hostNs]);
  await sh(['ip', 'netns', 'add', clientNs]);
  await sh(['ip', 'link', 'add', `${tag}a`, 'netns', hostNs, 'type', 'veth', 'peer', 'name', `${tag}b`, 'netns', clientNs]);
  await inNs(hostNs, ['ip', 'addr', 'add', `${HOST_IP}/24`, 'dev', `${tag}a`]);
  await inNs(clientNs, ['ip', 'addr', 'add', `${CLIENT_IP}/24`, 'dev', `${tag}b`]);
  for (const [ns, dev] of [[hostNs, `${tag}a`], [clientNs, `${tag}b`]] as const) {
    await inNs(ns, ['ip', 'link', 'set', 'lo', 'up']);
    await inNs(ns, ['ip', 'link', 'set', dev, 'up']);
  }
  await inNs(hostNs, ['ip', 'addr', 'add', `${TENANT_IP}/32`, 'dev', 'lo']);
  for (const p of [UNPUBLISHED, PUBLISHED]) bg.push(spawn('ip', ['netns', 'exec', hostNs, CONNLOOP, 'serve', String(p)], { stdio: 'ignore' }));
  await new Promise((r) => setTimeout(r, 300));
}

async function cleanup(): Promise<void> {
  for (const p of bg.splice(0)) if (p.pid !== undefined && p.exitCode === null) process.kill(p.pid, 'SIGKILL');
  for (const ns of [hostNs, clientNs]) await run.run(['ip', 'netns', 'del', ns], { allowFailure: true });
}

/** Sequential connects from the client for SECONDS: a second, p50 and p99 in µs. */
async function connects(port: number): Promise<{ rate: number; p50: number; p99: number }> {
  const out = await inNs(clientNs, [CONNLOOP, 'connect', HOST_IP, String(port), String(SECONDS)]);
  const [n, failed, p50, p99] = out.trim().split(' ').map(Number) as [number, number, number, number];
  if (!(n > 0) || failed > n / 100) throw new Error(`weft-connloop to ${port}: ${out}`);
  return { rate: n / SECONDS, p50, p99 };
}

async function loadTable(others: number | undefined): Promise<void> {
  await inNs(hostNs, ['nft', 'flush', 'ruleset']);
  if (others === undefined) return;
  const dir = mkdtempSync(join(tmpdir(), 'weft-bench-ports-'));
  try {
    writeFileSync(join(dir, 'host.nft'), renderHostRuleset([plan(others)], []));
    await inNs(hostNs, ['nft', '-f', join(dir, 'host.nft')]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const fmt = (x: { rate: number; p50: number; p99: number }) => `${Math.round(x.rate).toLocaleString('en')} /s, ${x.p50} / ${x.p99} µs`;

const forget = onInterrupt(cleanup);
try {
  await setup();
  console.log(`### bench:ports — ${new Date().toISOString().slice(0, 16)}, ${cpus().length} × ${cpus()[0]?.model.trim()}, Node ${process.version}\n`);
  console.log(`Sequential TCP connects from a client namespace, ${SECONDS} s each; rate, p50 / p99 of a connect.\n`);
  console.log('| published ports on the host | anchor (no table): unpublished port | host table: unpublished port (÷ anchor) | host table: published port, DNATed (÷ anchor) |');
  console.log('| --- | --- | --- | --- |');
  for (const n of COUNTS) {
    await loadTable(undefined);
    const anchor = await connects(UNPUBLISHED);
    // n = 0: the table without published ports; otherwise PUBLISHED and n - 1 more.
    await loadTable(n === 0 ? -1 : n - 1);
    const plain = await connects(UNPUBLISHED);
    const pub = n === 0 ? undefined : await connects(PUBLISHED);
    console.log(`| ${n.toLocaleString('en')} | ${fmt(anchor)} | ${fmt(plain)} (${(plain.rate / anchor.rate).toFixed(2)}×) | ${pub ? `${fmt(pub)} (${(pub.rate / anchor.rate).toFixed(2)}×)` : '—'} |`);
  }
} finally {
  await cleanup();
  forget();
}
