// npm run bench:cni — CNI latency of Weft against the reference bridge plugin, a 30-container burst, and
// `podman run` on a Weft network against podman's default network. Needs root; makes and removes its own
// namespaces, bridge and processes.
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { spawn } from 'node:child_process';
import { ProcessRunner } from '../exec/index.js';
import { startTestHost, within } from '../testkit/host.js';
import { startPodman, IMAGE, RUN_FLAGS } from '../testkit/podman.js';
import { summarise, ms } from './stats.js';

const N = Number(process.env['BENCH_CNI_N'] ?? 50);
const BURST = Number(process.env['BENCH_CNI_BURST'] ?? 30);
const PODMAN_RUNS = Number(process.env['BENCH_PODMAN_RUNS'] ?? 10);
const runner = new ProcessRunner();

function exec(path: string, env: Record<string, string>, stdin: string): Promise<{ code: number; ms: number; stdout: string }> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const child = spawn(path, [], { env: { PATH: process.env['PATH'] ?? '', ...env }, stdio: ['pipe', 'pipe', 'ignore'] });
    let stdout = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.on('close', (code) => resolve({ code: code ?? -1, ms: performance.now() - t0, stdout }));
    child.stdin.end(stdin);
  });
}

async function reference(nss: string[]): Promise<{ add: number[]; del: number[] }> {
  const work = mkdtempSync(join(tmpdir(), 'weft-ref-'));
  const conf = JSON.stringify({ cniVersion: '1.0.0', name: 'benchref', type: 'bridge', bridge: 'wbenchref0', isGateway: true, ipMasq: false,
    ipam: { type: 'host-local', subnet: '10.78.0.0/16', dataDir: join(work, 'ipam') } });
  const env = (cmd: string, i: number) => ({ CNI_COMMAND: cmd, CNI_CONTAINERID: `ref${i}`, CNI_NETNS: `/run/netns/${nss[i]}`, CNI_IFNAME: 'eth0', CNI_PATH: '/usr/lib/cni' });
  const add: number[] = [];
  const del: number[] = [];
  try {
    for (let i = 0; i < nss.length; i++) {
      const r = await exec('/usr/lib/cni/bridge', env('ADD', i), conf);
      if (r.code !== 0) throw new Error(`reference ADD failed: ${r.stdout}`);
      add.push(r.ms);
    }
    for (let i = 0; i < nss.length; i++) del.push((await exec('/usr/lib/cni/bridge', env('DEL', i), conf)).ms);
  } finally {
    await runner.run(['ip', 'link', 'del', 'wbenchref0'], { allowFailure: true });
    rmSync(work, { recursive: true, force: true });
  }
  return { add, del };
}

async function podmanRuns(pm: Awaited<ReturnType<typeof startPodman>>, network: string): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < PODMAN_RUNS + 2; i++) {
    const t0 = performance.now();
    const r = await pm.run(['run', '--rm', ...RUN_FLAGS, '--network', network, IMAGE, 'true']);
    if (r.code !== 0) throw new Error(`podman run on ${network} failed: ${r.stderr}`);
    if (i >= 2) out.push(performance.now() - t0); // the first two warm caches
  }
  return out;
}

const h = await startTestHost('bn');
const made: string[] = [];
const ns = async (name: string) => {
  await h.container(name);
  made.push(`${h.tag}-${name}`);
  return `${h.tag}-${name}`;
};
try {
  await h.api('POST', '/api/v1/tenants/default/networks', { name: 'bench', subnet: '10.30.0.0/16' });
  await h.api('POST', '/api/v1/tenants/default/groups', { name: 'db', network: 'bench' });
  await within(5000, async () => existsSync(join(h.cniConfDir, 'weft-default-db.conflist')));
  const nss = await Promise.all(Array.from({ length: N }, (_, i) => ns(`s${i}`)));
  const cni = (cmd: string, i: number, name: string, netns: string) => h.cni(cmd, { conflist: 'weft-default-db', containerId: `${name}${i}`, netns });
  for (let i = 0; i < 10; i++) { await cni('ADD', i, 'warm', `/run/netns/${nss[i]}`); await cni('DEL', i, 'warm', ''); }

  const time = async (f: () => Promise<{ code: number; stdout: string }>) => {
    const t0 = performance.now();
    const r = await f();
    if (r.code !== 0) throw new Error(r.stdout);
    return performance.now() - t0;
  };
  const wAdd: number[] = [];
  const wDel: number[] = [];
  for (let i = 0; i < N; i++) wAdd.push(await time(() => cni('ADD', i, 'seq', `/run/netns/${nss[i]}`)));
  for (let i = 0; i < N; i++) wDel.push(await time(() => cni('DEL', i, 'seq', '')));
  const ref = await reference(nss);

  const bss = await Promise.all(Array.from({ length: BURST }, (_, i) => ns(`b${i}`)));
  const tb = performance.now();
  const burst = await Promise.all(bss.map((b, i) => time(() => cni('ADD', i, 'burst', `/run/netns/${b}`))));
  const burstTotal = performance.now() - tb;
  await Promise.all(bss.map((_, i) => cni('DEL', i, 'burst', '')));

  const pm = await startPodman(h.cniConfDir, [dirname(h.pluginPath), '/usr/lib/cni'], h.hostNs);
  let pw: number[] = [];
  let pd: number[] = [];
  try {
    pw = await podmanRuns(pm, 'weft-default-db');
    pd = await podmanRuns(pm, 'podman');
  } finally {
    await pm.cleanup();
  }

  const a = summarise(wAdd), d = summarise(wDel), ra = summarise(ref.add), rd = summarise(ref.del), b = summarise(burst);
  const p1 = summarise(pw), p2 = summarise(pd);
  const date = new Date().toISOString().slice(0, 10);
  console.log(`### bench:cni — ${date}, ${cpus().length} × ${cpus()[0]?.model.trim()}, Node ${process.version}\n`);
  console.log('| measure | Weft | reference / podman default | ratio | target |');
  console.log('| --- | --- | --- | --- | --- |');
  console.log(`| sequential ADD p50 / p99 (${N}) | ${ms(a.p50)} / ${ms(a.p99)} | ${ms(ra.p50)} / ${ms(ra.p99)} (bridge + host-local) | ${(a.p50 / ra.p50).toFixed(2)}× | p50 ≤ 2× |`);
  console.log(`| sequential DEL p50 / p99 (${N}) | ${ms(d.p50)} / ${ms(d.p99)} | ${ms(rd.p50)} / ${ms(rd.p99)} | ${(d.p50 / rd.p50).toFixed(2)}× | — |`);
  console.log(`| burst of ${BURST} concurrent ADDs: p50 / p99 / all done | ${ms(b.p50)} / ${ms(b.p99)} / ${ms(burstTotal)} | — | — | p99 ≤ 500 ms |`);
  console.log(`| podman run --rm bb true, median of ${PODMAN_RUNS} | ${ms(p1.p50)} | ${ms(p2.p50)} (bridge+portmap+firewall+tuning) | ${(p1.p50 / p2.p50).toFixed(2)}× | ≤ 1.0× |`);
  const anchor = join(process.cwd(), '..', 'shared', 'anchors', 'cni-reference-latency.sh');
  if (existsSync(anchor)) {
    const r = await runner.run(['bash', anchor, String(N)], { allowFailure: true, timeoutMs: 120_000 });
    console.log(`\nshared/anchors/cni-reference-latency.sh ${N}, same run:\n\n\`\`\`\n${r.stdout.trim()}\n\`\`\``);
  }
} finally {
  await h.cleanup();
}
