// npm run bench:services — what a service VIP costs. In one run, between containers on a simulated host:
// iperf3 throughput and TCP connect latency through the VIP versus straight to a backend. Connect latency
// goes through a 3-backend service (each connection is balanced); throughput through a 1-backend service,
// since iperf3's control and data connections must reach the same server. Needs root; cleans up.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { startTestHost, within, type TestHost } from '../testkit/host.js';
import { summarise } from './stats.js';
import { PROBER, Prober, SERVER } from './probe.js';

const CONNECTS = Number(process.env['BENCH_SERVICES_CONNECTS'] ?? 1000);
const ROUNDS = Number(process.env['BENCH_SERVICES_ROUNDS'] ?? 3);
const T = '/api/v1/tenants/default';
const bg: ChildProcess[] = [];
const ms = (n: number) => `${n.toFixed(3)} ms`;

async function api(h: TestHost, m: string, p: string, b?: unknown) {
  const r = await h.api(m, p, b);
  if (r.status >= 300) throw new Error(`${m} ${p}: ${JSON.stringify(r.json)}`);
  return r.json;
}

async function iperf(h: TestHost, ip: string): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    const r = await h.exec(`${h.tag}-app`, ['iperf3', '-c', ip, '-t', '3', '-J'], { timeoutMs: 20_000 });
    const out = JSON.parse(r.stdout || '{}');
    if (typeof out.error === 'string' && attempt < 20) {
      await new Promise((res) => setTimeout(res, 250));
      continue;
    }
    return out.end.sum_received.bits_per_second / 1e9;
  }
}

const h = await startTestHost('bs');
try {
  await api(h, 'POST', `${T}/networks`, { name: 'bench', subnet: '10.41.0.0/24' });
  await api(h, 'POST', `${T}/groups`, { name: 'solo', network: 'bench' });
  await api(h, 'POST', `${T}/groups`, { name: 'db', network: 'bench' });
  await api(h, 'POST', `${T}/groups`, { name: 'app', network: 'bench' });
  const lb = await api(h, 'POST', `${T}/services`, { name: 'lb', network: 'bench', selector: { tier: 'db' }, ports: [{ port: 80, targetPort: 5202, protocol: 'TCP' }] });
  const one = await api(h, 'POST', `${T}/services`, { name: 'one', network: 'bench', selector: { group: 'solo' }, ports: [{ port: 5201, targetPort: 5201, protocol: 'TCP' }] });
  await within(5000, async () => existsSync(join(h.cniConfDir, 'weft-default-app.conflist')));
  const add = async (name: string, group: string, labels: Record<string, string> = {}) => {
    const netns = await h.container(name);
    const patch = { args: { cni: { labels: Object.entries(labels).map(([key, value]) => ({ key, value })) } } };
    const r = await h.cni('ADD', { conflist: `weft-default-${group}`, containerId: name, netns, patch });
    if (r.code !== 0) throw new Error(r.stdout);
    return { netns, ip: r.json.ips[0].address.split('/')[0] as string };
  };
  writeFileSync(join(h.dir, 'prober.js'), PROBER);
  writeFileSync(join(h.dir, 'server.js'), SERVER);
  const backends = [await add('db1', 'solo', { tier: 'db' }), await add('db2', 'db', { tier: 'db' }), await add('db3', 'db', { tier: 'db' })];
  const app = await add('app', 'app');
  for (const b of backends) bg.push(spawn('nsenter', [`--net=${b.netns}`, process.execPath, join(h.dir, 'server.js'), '5202', '5203'], { stdio: 'ignore' }));
  bg.push(spawn('ip', ['netns', 'exec', `${h.tag}-db1`, 'iperf3', '-s'], { stdio: 'ignore' }));
  const prober = new Prober(app.netns, join(h.dir, 'prober.js'), bg);
  const direct = backends[0]!.ip;
  if (await within(5000, async () => (await prober.probe(lb.vip, 80, 200)) !== undefined) < 0) throw new Error('the VIP does not answer');

  // Interleaved, so drift on the machine hits both sides alike.
  const viaVip: number[] = [];
  const straight: number[] = [];
  for (let i = 0; i < CONNECTS; i++) {
    const t0 = performance.now();
    const a = await prober.probe(lb.vip, 80, 1000);
    if (a === undefined && process.env['BENCH_DEBUG']) console.log(`lost after ${(performance.now() - t0).toFixed(1)} ms`);
    const b = await prober.probe(direct, 5203, 1000);
    if (a !== undefined) viaVip.push(a);
    if (b !== undefined) straight.push(b);
  }
  if (process.env['BENCH_DEBUG']) {
    const l = (await h.exec(`${h.tag}-t1`, ['conntrack', '-L', '-d', lb.vip])).stdout.split('\n');
    console.log(`entries to the VIP: ${l.length}; not DNATed:\n${l.filter((x) => x.includes(`src=${lb.vip} dst=`)).slice(0, 10).join('\n')}`);
  }
  const gVip: number[] = [];
  const gDirect: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    gDirect.push(await iperf(h, direct));
    gVip.push(await iperf(h, one.vip));
  }
  const med = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)] as number;
  const cv = summarise(viaVip);
  const cd = summarise(straight);
  const date = new Date().toISOString().slice(0, 10);
  console.log(`### bench:services — ${date}, ${cpus().length} × ${cpus()[0]?.model.trim()}, Node ${process.version}\n`);
  console.log('| path | iperf3 app → backend (median of ' + ROUNDS + ' × 3 s) | TCP connect p50 / p99 (' + CONNECTS + ' each, interleaved) |');
  console.log('| --- | --- | --- |');
  console.log(`| straight to a backend | ${med(gDirect).toFixed(2)} Gbit/s | ${ms(cd.p50)} / ${ms(cd.p99)} |`);
  console.log(`| through the VIP | ${med(gVip).toFixed(2)} Gbit/s | ${ms(cv.p50)} / ${ms(cv.p99)} |`);
  console.log(`\n| measure | result | target |\n| --- | --- | --- |`);
  console.log(`| throughput through the VIP ÷ straight | ${(med(gVip) / med(gDirect)).toFixed(2)}× | ≥ 0.9× |`);
  console.log(`| connect speed through the VIP (straight p50 ÷ VIP p50) | ${(cd.p50 / cv.p50).toFixed(2)}× | ≥ 0.9× |`);
  console.log(`| connections lost | VIP ${CONNECTS - viaVip.length}, straight ${CONNECTS - straight.length} | 0 |`);
} finally {
  for (const p of bg) p.kill('SIGKILL');
  await h.cleanup();
}
