import { existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startTestHost, within, type TestHost } from '../testkit/host.js';
import { cpuSeconds, mib, rssBytes } from './procstat.js';
import { pool } from './scale-pool.js';
import { onInterrupt } from './interrupt.js';
import { every, fmtSeconds } from './deadline.js';

const PRELOAD = join(dirname(fileURLToPath(import.meta.url)), 'heap-report.js');
/**
 * A Linux bridge takes at most 1,024 ports (BR_MAX_PORTS), so one network holds at most ~1,020 endpoints on
 * a host: the endpoints are spread over this many networks, all made before the first is measured.
 */
const NETWORKS = 8;
/** Long enough for a few full resync passes (2 s each) and the maintenance after them. */
const SETTLE_MS = 20_000;

export interface MemoryPoint { endpoints: number; rss: number; heapUsed: number; addsPerS: number; idleCores: number }

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Asks the agent (through the preload) for a full GC and its memory; the median of three readings 2 s apart. */
async function memoryOf(h: TestHost, file: string): Promise<{ rss: number; heapUsed: number }> {
  const pid = h.agentPid();
  if (pid === undefined) throw new Error('the agent is not running');
  const readings: Array<{ rss: number; heapUsed: number }> = [];
  for (let i = 0; i < 3; i++) {
    const before = existsSync(file) ? statSync(file).mtimeMs : 0;
    process.kill(pid, 'SIGUSR2');
    if ((await within(10_000, async () => existsSync(file) && statSync(file).mtimeMs > before, 50)) < 0) throw new Error('the agent did not report its memory');
    const m = JSON.parse(readFileSync(file, 'utf8')) as { rss: number; heapUsed: number };
    readings.push({ rss: rssBytes(pid), heapUsed: m.heapUsed });
    await sleep(2000);
  }
  const mid = <K extends 'rss' | 'heapUsed'>(k: K) => readings.map((r) => r[k]).sort((x, y) => x - y)[1] as number;
  return { rss: mid('rss'), heapUsed: mid('heapUsed') };
}

/** Adds containers c<from>..c<to-1> through the CNI plugin, 4 at a time, as a runtime would. */
async function addContainers(h: TestHost, from: number, to: number, log: (s: string) => void): Promise<number> {
  const t0 = performance.now();
  let done = 0;
  const stop = every(10_000, () => log(`memory: ${from + done} of ${to} endpoints on the agent's host, ${fmtSeconds(performance.now() - t0)} into this step`));
  const failures = await pool(Array.from({ length: to - from }, (_, i) => from + i), 4, async (i) => {
    const netns = await h.container(`c${i}`);
    const r = await h.cni('ADD', { conflist: `weft-default-mem${i % NETWORKS}`, containerId: `mem-c${i}`, netns });
    if (r.code !== 0) throw new Error(`ADD c${i}: ${r.stdout}`);
    done++;
  }).finally(stop);
  if (failures.length) throw new Error(`${failures.length} ADDs failed: ${failures.slice(0, 3).join('; ')}`);
  return (to - from) / ((performance.now() - t0) / 1000);
}

/**
 * The real agent (a host namespace, the kernel datapath, real veths and container namespaces made through
 * the CNI plugin) with `counts` endpoints on its host in turn: after each, a settle, then its RSS and V8
 * heap after a full GC, and its CPU over the settle.
 */
export async function runMemory(counts: number[], log: (s: string) => void): Promise<MemoryPoint[]> {
  const saved = process.env['NODE_OPTIONS'];
  let h: TestHost | undefined;
  const points: MemoryPoint[] = [];
  let file = '';
  let forget = () => undefined as void;
  try {
    // Only the processes started here see it, and the preload acts only in `weft agent`.
    process.env['NODE_OPTIONS'] = `${saved ?? ''} --import ${PRELOAD}`.trim();
    process.env['WEFT_BENCH_HEAP_FILE'] = file = join('/tmp', `weft-scale-heap-${process.pid}.json`);
    h = await startTestHost('scm', { agentArgs: ['--resync', '2000'] });
    const host0 = h;
    forget = onInterrupt(() => host0.cleanup());
    if (saved === undefined) delete process.env['NODE_OPTIONS'];
    else process.env['NODE_OPTIONS'] = saved;
    const host = h;
    for (let i = 0; i < NETWORKS; i++) {
      const r = await h.api('POST', '/api/v1/tenants/default/networks', { name: `mem${i}`, subnet: `10.96.${i * 8}.0/21` });
      if (r.status !== 201) throw new Error(`network: ${JSON.stringify(r.json)}`);
      if ((await within(10_000, async () => existsSync(join(host.cniConfDir, `weft-default-mem${i}.conflist`)))) < 0) throw new Error(`no conflist for mem${i}`);
    }
    let have = 0;
    for (const n of [...counts].sort((x, y) => x - y)) {
      const addsPerS = await addContainers(h, have, n, log);
      have = n;
      log(`memory: ${n} endpoints on the agent's host (${addsPerS.toFixed(1)} ADDs/s); settling`);
      const pid = h.agentPid() as number;
      const cpu0 = cpuSeconds(pid);
      await sleep(SETTLE_MS);
      const idleCores = (cpuSeconds(pid) - cpu0) / (SETTLE_MS / 1000);
      points.push({ endpoints: n, ...(await memoryOf(h, file)), addsPerS, idleCores });
    }
    return points;
  } finally {
    if (saved === undefined) delete process.env['NODE_OPTIONS'];
    else process.env['NODE_OPTIONS'] = saved;
    delete process.env['WEFT_BENCH_HEAP_FILE'];
    forget();
    log('memory: removing the host and its containers');
    await h?.cleanup();
    if (file) rmSync(file, { force: true });
  }
}

const kib = (bytes: number) => `${(bytes / 1024).toFixed(2)} KiB`;

export function memoryReport(points: MemoryPoint[]): string {
  const out = [`#### the real agent: memory per endpoint (kernel datapath: a veth and a container namespace per endpoint, over ${NETWORKS} networks)`, '',
    '| endpoints on its host | RSS | V8 heap after GC | agent CPU over 20 s settle | ADDs/s to get there |', '| --- | --- | --- | --- | --- |'];
  for (const p of points) out.push(`| ${p.endpoints} | ${mib(p.rss)} | ${mib(p.heapUsed)} | ${(p.idleCores * 100).toFixed(1)} % | ${p.addsPerS.toFixed(1)} |`);
  for (let i = 1; i < points.length; i++) {
    const a = points[i - 1] as MemoryPoint;
    const b = points[i] as MemoryPoint;
    const d = b.endpoints - a.endpoints;
    out.push('', `Slope ${a.endpoints} → ${b.endpoints}: RSS ${kib((b.rss - a.rss) / d)} per endpoint, V8 heap ${kib((b.heapUsed - a.heapUsed) / d)} per endpoint (target ≤ 5 KiB).`);
  }
  return `${out.join('\n')}\n`;
}
