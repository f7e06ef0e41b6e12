// npm run bench:policy — what policy costs to store and per packet, and how fast it applies. First, on
// its own server (SQLite): 10,000 rules added one at a time through the API, the last 1,000 against the
// first 1,000 and the data directory's growth (BENCH_POLICY_ADDS, 0 to skip). Then, between two
// containers on a simulated host: iperf3 throughput and TCP connect latency with 0, 1,000, 10,000 and
// 50,000 rules in force (BENCH_POLICY_STEPS, `none` to skip); the time to apply each rule set; the time
// from a rule change to enforcement (50 changes); and the shared nft-rule-scaling anchor. Needs root for
// the second part; cleans up after itself.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { ProcessRunner } from '../exec/index.js';
import { startTestHost, within, type TestHost } from '../testkit/host.js';
import { http as apiCall, startServerProcess } from '../testkit/server.js';
import { summarise, ms } from './stats.js';
import { PROBER, Prober, SERVER } from './probe.js';
import { benchAgentPasses } from './policy-agent.js';

const STEPS_ENV = process.env['BENCH_POLICY_STEPS'] ?? '0,1000,10000,50000,agent';
// `agent`: the agent's passes at scale (policy-agent.ts), run after the adds.
const STEPS = STEPS_ENV === 'none' ? [] : STEPS_ENV.split(',').filter((s) => s !== 'agent').map(Number);
const ADDS = Number(process.env['BENCH_POLICY_ADDS'] ?? 10_000);
const CHANGES = Number(process.env['BENCH_POLICY_CHANGES'] ?? 50);
const PER_POLICY = 1000;
const T = '/api/v1/tenants/default';
const runner = new ProcessRunner();
const bg: ChildProcess[] = [];

/** Alternating allow/deny on consecutive ports, so every rule yields its own map entry. */
function bulkRules(k: number): Array<Record<string, unknown>> {
  return Array.from({ length: PER_POLICY }, (_, j) => {
    const i = k * PER_POLICY + j;
    return { id: `r${i}`, direction: 'in', protocol: 'tcp', ports: String(10000 + i), fromGroup: 'app', priority: 5, action: i % 2 ? 'allow' : 'deny' };
  });
}

async function api(h: TestHost, m: string, p: string, b?: unknown) {
  const r = await h.api(m, p, b);
  if (r.status >= 300) throw new Error(`${m} ${p}: ${JSON.stringify(r.json)}`);
  return r.json;
}

async function iperf(h: TestHost, dbIp: string): Promise<number> {
  const r = await h.exec(`${h.tag}-app`, ['iperf3', '-c', dbIp, '-p', '5201', '-t', '3', '-J'], { timeoutMs: 20_000 });
  return JSON.parse(r.stdout).end.sum_received.bits_per_second / 1e9;
}

const dirBytes = (dir: string): number => readdirSync(dir).reduce((n, f) => n + statSync(join(dir, f)).size, 0);

/** One rule add through the API on a kept-alive connection; its HTTP status. */
function addRule(url: URL, ca: string, token: string, agent: https.Agent, policy: string, i: number): Promise<number> {
  const body = JSON.stringify({ id: `r${i}`, protocol: 'tcp', ports: String(1 + (i % 60000)), fromCidr: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}/32`, priority: 1 + (i % 100) });
  return new Promise((resolve, reject) => {
    const req = https.request({ host: url.hostname, port: url.port, path: `${T}/policies/${policy}/rules`, method: 'POST', agent, ca,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * Rules added one at a time (what a script over `weft policy rule-add` does) to one policy on a fresh
 * SQLite server: the last 1,000 adds against the first 1,000 (the anchor, same run) and the data dir's growth.
 */
async function measureAdds(n: number): Promise<string[]> {
  const s = await startServerProcess();
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const url = new URL(s.url);
    const ca = readFileSync(s.caFile, 'utf8');
    for (const name of ['warm-up', 'adds']) {
      const made = await apiCall(s.url, s.token, 'POST', `${T}/policies`, { name });
      if (made.status !== 201) throw new Error(`create policy: ${JSON.stringify(made.json)}`);
    }
    // Not counted: the server's code paths compiled hot first, so the first adds are not flattered as slow.
    for (let i = 0; i < 500; i++) await addRule(url, ca, s.token, agent, 'warm-up', i);
    const size0 = dirBytes(s.dataDir);
    const times: number[] = [];
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      const status = await addRule(url, ca, s.token, agent, 'adds', i);
      if (status !== 201) throw new Error(`add r${i}: HTTP ${status}`);
      times.push(performance.now() - t0);
    }
    const grew = dirBytes(s.dataDir) - size0;
    const k = Math.min(1000, Math.floor(n / 2));
    const first = summarise(times.slice(0, k));
    const last = summarise(times.slice(-k));
    const total = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
    const ratio = total(times.slice(-k)) / total(times.slice(0, k));
    return [
      `| ${n.toLocaleString('en')} rules added one at a time (SQLite): last ${k.toLocaleString('en')} ÷ first ${k.toLocaleString('en')}, total time | ${ratio.toFixed(2)}× (${ms(total(times.slice(0, k)) / k)} → ${ms(total(times.slice(-k)) / k)} per add; p99 ${ms(first.p99)} → ${ms(last.p99)}) | ≤ 1.2× |`,
      `| data directory growth over those adds | ${(grew / 1e6).toFixed(1)} MB (${Math.round(grew / n)} bytes per add) | ≤ 50 MB |`,
    ];
  } finally {
    agent.destroy();
    await s.stop();
  }
}

const addRows = ADDS > 0 ? await measureAdds(ADDS) : [];
if (STEPS_ENV.split(',').includes('agent')) await benchAgentPasses();
if (STEPS.length === 0) {
  console.log(`### bench:policy (adds only) — ${new Date().toISOString().slice(0, 10)}, ${cpus().length} × ${cpus()[0]?.model.trim()}, Node ${process.version}\n`);
  console.log(`| measure | result | target |\n| --- | --- | --- |\n${addRows.join('\n')}`);
  process.exit(0);
}

const h = await startTestHost('bp', { agentArgs: (process.env['BENCH_AGENT_ARGS'] ?? '').split(' ').filter(Boolean) });
try {
  await api(h, 'POST', `${T}/networks`, { name: 'bench', subnet: '10.40.0.0/16' });
  await api(h, 'POST', `${T}/groups`, { name: 'app', network: 'bench' });
  await api(h, 'POST', `${T}/groups`, { name: 'db', network: 'bench' });
  await api(h, 'POST', `${T}/policies`, { name: 'base', rules: [
    { id: 'deny-tcp', protocol: 'tcp', action: 'deny' },
    { id: 'iperf', protocol: 'tcp', ports: '5201-5202', fromGroup: 'app', priority: 10 },
  ] });
  await api(h, 'POST', `${T}/policies`, { name: 'live', rules: [] });
  const maxK = Math.max(...STEPS) / PER_POLICY;
  for (let k = 0; k < maxK; k++) await api(h, 'POST', `${T}/policies`, { name: `bulk-${k}`, rules: bulkRules(k) });
  for (const n of STEPS) await api(h, 'POST', `${T}/policies`, { name: `marker-${n}`, rules: [{ id: 'm', protocol: 'tcp', ports: String(9000 + n / 1000), priority: 10 }] });
  await api(h, 'PATCH', `${T}/groups/db`, { policies: ['base', 'live'] });
  await within(5000, async () => existsSync(join(h.cniConfDir, 'weft-default-db.conflist')));

  const add = async (name: string, group: string) => {
    const netns = await h.container(name);
    const r = await h.cni('ADD', { conflist: `weft-default-${group}`, containerId: name, netns });
    if (r.code !== 0) throw new Error(r.stdout);
    return { netns, ip: r.json.ips[0].address.split('/')[0] as string };
  };
  const db = await add('db', 'db');
  const app = await add('app', 'app');
  writeFileSync(join(h.dir, 'prober.js'), PROBER);
  writeFileSync(join(h.dir, 'server.js'), SERVER);
  bg.push(spawn('ip', ['netns', 'exec', `${h.tag}-db`, 'iperf3', '-s', '-p', '5201'], { stdio: 'ignore' }));
  bg.push(spawn('nsenter', [`--net=${db.netns}`, process.execPath, join(h.dir, 'server.js'), '5202', '9500', ...STEPS.map((n) => String(9000 + n / 1000))], { stdio: 'ignore' }));
  const prober = new Prober(app.netns, join(h.dir, 'prober.js'), bg);
  await new Promise((r) => setTimeout(r, 500));

  const rows: string[] = [];
  let apply10k = NaN;
  let base = { gbps: NaN, connect: NaN };
  for (const n of STEPS) {
    const policies = ['base', 'live', ...Array.from({ length: n / PER_POLICY }, (_, k) => `bulk-${k}`), `marker-${n}`];
    const marker = 9000 + n / 1000;
    const t0 = performance.now();
    await api(h, 'PATCH', `${T}/groups/db`, { policies });
    let applied = NaN;
    for (let i = 0; i < 2000; i++) {
      if ((await prober.probe(db.ip, marker, 50)) !== undefined) { applied = performance.now() - t0; break; }
      await new Promise((r) => setTimeout(r, 10));
    }
    if (n === 10000) apply10k = applied;
    const gbps = await iperf(h, db.ip);
    const connects: number[] = [];
    for (let i = 0; i < 300; i++) {
      const c = await prober.probe(db.ip, 5202, 1000);
      if (c !== undefined) connects.push(c);
    }
    const c = summarise(connects);
    if (n === 0) base = { gbps, connect: c.p50 };
    const tbl = (await runner.run(['nsenter', `--net=/run/netns/${h.tag}-t1`, 'nft', '-j', 'list', 'table', 'inet', 'weft'], { allowFailure: true })).stdout;
    const entries = tbl ? JSON.parse(tbl).nftables.reduce((n: number, x: any) => n + (x.map && x.map.name !== 'cls' ? x.map.elem?.length ?? 0 : 0), 0) : 0;
    rows.push(`| ${n.toLocaleString('en')} | ${entries.toLocaleString('en')} | ${gbps.toFixed(2)} Gbit/s (${(gbps / base.gbps).toFixed(2)}×) | ${ms(c.p50)} / ${ms(c.p99)} (${(c.p50 / base.connect).toFixed(2)}×) | ${Number.isNaN(applied) ? '—' : ms(applied)} |`);
  }

  await api(h, 'PATCH', `${T}/groups/db`, { policies: ['base', 'live', ...Array.from({ length: 10 }, (_, k) => `bulk-${k}`), 'marker-10000'] });
  await new Promise((r) => setTimeout(r, 1500));
  const changes: number[] = [];
  const lost: string[] = [];
  for (let i = 0; i < CHANGES; i++) {
    const opening = i % 2 === 0;
    const t0 = performance.now();
    if (opening) await api(h, 'POST', `${T}/policies/live/rules`, { id: 'toggle', protocol: 'tcp', ports: '9500', priority: 10 });
    else await api(h, 'DELETE', `${T}/policies/live/rules/toggle`);
    let seen = false;
    while (performance.now() - t0 < 10_000) {
      const open = (await prober.probe(db.ip, 9500, 50)) !== undefined;
      if (open === opening) { changes.push(performance.now() - t0); seen = true; break; }
    }
    // A change not enforced within 10 s counts as 10 s (so it lands in the p99) and is reported.
    if (!seen) { changes.push(10_000); lost.push(`#${i} (${opening ? 'open' : 'close'})`); }
  }
  if (lost.length) console.log(`changes not enforced within 10 s: ${lost.join(', ')}`);
  const ch = summarise(changes);
  const date = new Date().toISOString().slice(0, 10);
  console.log(`### bench:policy — ${date}, ${cpus().length} × ${cpus()[0]?.model.trim()}, Node ${process.version}\n`);
  console.log('| rules in force | verdict-map entries | iperf3 app → db | TCP connect p50 / p99 | time to apply (PATCH → enforced) |');
  console.log('| --- | --- | --- | --- | --- |');
  for (const r of rows) console.log(r);
  console.log(`\n| measure | result | target |\n| --- | --- | --- |`);
  for (const r of addRows) console.log(r);
  console.log(`| 10,000 rules applied (group update → first packet allowed by the new set) | ${ms(apply10k)} | ≤ 2 s |`);
  console.log(`| rule change → enforced, ${changes.length} changes with 10,000 rules in force, p50 / p99 / max | ${ms(ch.p50)} / ${ms(ch.p99)} / ${ms(ch.max)} | p99 ≤ 1 s |`);
  const anchor = join(process.cwd(), '..', 'shared', 'anchors', 'nft-rule-scaling.sh');
  if (existsSync(anchor)) {
    const r = await runner.run(['bash', anchor, '5000'], { allowFailure: true, timeoutMs: 120_000 });
    console.log(`\nshared/anchors/nft-rule-scaling.sh 5000, same run:\n\n\`\`\`\n${r.stdout.trim()}\n\`\`\``);
  }
} finally {
  for (const p of bg) p.kill('SIGKILL');
  const all = readFileSync(join(h.dir, 'agent.log'), 'utf8');
  if (process.env['BENCH_AGENT_LOG']) writeFileSync(process.env['BENCH_AGENT_LOG'], all);
  const log = all.split('\n').filter((l) => /"level":(40|50)/.test(l));
  if (log.length) console.log(`\nagent warnings during the run (${log.length}):\n${log.slice(0, 5).join('\n')}`);
  await h.cleanup();
}
