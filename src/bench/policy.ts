// npm run bench:policy — what policy costs to store and per packet, and how fast it applies. First, on
// its own server (SQLite): 10,000 rules added one at a time through the API, the last 1,000 against the
// first 1,000 and the data directory's growth (BENCH_POLICY_ADDS, 0 to skip). Then, between two
// containers on a simulated host, for each rule shape of policy-shapes.ts (BENCH_POLICY_SHAPES) at
// 10,000 and 50,000 rules (BENCH_POLICY_STEPS, `none` to skip): iperf3 throughput and TCP connect
// latency against an anchor with 1 rule measured before and after the shape in the same run, the same
// iperf3 with the agent stopped, the agent's CPU during it, the time to apply each rule set; then the
// time from a rule change to enforcement (50 changes, 10,000 mixed rules in force) and the shared
// nft-rule-scaling anchor. Needs root for the second part; cleans up after itself.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { ProcessRunner } from '../exec/index.js';
import { startTestHost, within } from '../testkit/host.js';
import { onInterrupt } from './interrupt.js';
import { http as apiCall, startServerProcess } from '../testkit/server.js';
import { summarise, ms } from './stats.js';
import { PROBER, Prober, SERVER } from './probe.js';
import { BASE_RULES, CONNECT_PORT, DENIED_PORTS, IPERF_PORT, SHAPES, makeShape, type Shape, type ShapeName } from './policy-shapes.js';
import { api, step, type Bed, type StepResult } from './policy-steps.js';
import { benchAgentPasses } from './policy-agent.js';

const STEPS_ENV = process.env['BENCH_POLICY_STEPS'] ?? '10000,50000,agent';
// `agent`: the agent's passes at scale (policy-agent.ts), run after the adds.
const STEPS = STEPS_ENV === 'none' ? [] : STEPS_ENV.split(',').filter((s) => s !== 'agent').map(Number);
const ADDS = Number(process.env['BENCH_POLICY_ADDS'] ?? 10_000);
const CHANGES = Number(process.env['BENCH_POLICY_CHANGES'] ?? 50);
const SHAPE_LIST = (process.env['BENCH_POLICY_SHAPES'] ?? SHAPES.join(',')).split(',') as ShapeName[];
const T = '/api/v1/tenants/default';
const runner = new ProcessRunner();
const bg: ChildProcess[] = [];

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
  const offInterrupt = onInterrupt(() => s.stop());
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
    offInterrupt();
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
// Stopped halfway (Ctrl-C, SIGTERM): the probes' processes and the test host go as at the end.
onInterrupt(async () => {
  for (const p of bg) p.kill('SIGKILL');
  await h.cleanup();
});
try {
  await api(h, 'POST', `${T}/networks`, { name: 'bench', subnet: '10.40.0.0/16' });
  await api(h, 'POST', `${T}/groups`, { name: 'app', network: 'bench' });
  await api(h, 'POST', `${T}/groups`, { name: 'db', network: 'bench' });
  await api(h, 'POST', `${T}/policies`, { name: 'base', rules: BASE_RULES });
  await api(h, 'POST', `${T}/policies`, { name: 'anchor', rules: [{ id: 'allow-app', protocol: 'tcp', ports: `${IPERF_PORT}-${CONNECT_PORT}`, fromGroup: 'app', priority: 10 }] });
  await api(h, 'POST', `${T}/policies`, { name: 'live', rules: [{ id: 'out-9500', direction: 'out', protocol: 'tcp', ports: '9500', priority: 10 }] });
  await api(h, 'PATCH', `${T}/groups/db`, { policies: ['base'] });
  await within(5000, async () => existsSync(join(h.cniConfDir, 'weft-default-db.conflist')));

  const add = async (name: string, group: string) => {
    const netns = await h.container(name);
    const r = await h.cni('ADD', { conflist: `weft-default-${group}`, containerId: name, netns });
    if (r.code !== 0) throw new Error(r.stdout);
    return { netns, ip: r.json.ips[0].address.split('/')[0] as string };
  };
  const db = await add('db', 'db');
  const app = await add('app', 'app');
  const markers = Array.from({ length: 4 + SHAPE_LIST.length * (STEPS.length + 1) }, (_, i) => 9000 + i);
  writeFileSync(join(h.dir, 'prober.js'), PROBER);
  writeFileSync(join(h.dir, 'server.js'), SERVER);
  bg.push(spawn('ip', ['netns', 'exec', `${h.tag}-db`, 'iperf3', '-s', '-p', String(IPERF_PORT)], { stdio: 'ignore' }));
  bg.push(spawn('nsenter', [`--net=${db.netns}`, process.execPath, join(h.dir, 'server.js'), String(CONNECT_PORT), ...DENIED_PORTS.map(String), '9500', ...markers.map(String)], { stdio: 'ignore' }));
  const bed: Bed = { h, prober: new Prober(app.netns, join(h.dir, 'prober.js'), bg), ips: { app: app.ip, db: db.ip } };
  await new Promise((r) => setTimeout(r, 500));

  let marker = 0;
  const anchorFlows: Shape['flows'] = [
    ...[IPERF_PORT, CONNECT_PORT].map((port) => ({ port, allowed: true, ingress: 'allow-app', egress: undefined })),
    ...DENIED_PORTS.map((port) => ({ port, allowed: false, ingress: 'deny-tcp', egress: undefined })),
  ];
  const anchor = async () => {
    const r = await step(bed, 'anchor', { db: ['base', 'anchor'], app: [] }, anchorFlows, markers[marker++] as number);
    console.error(JSON.stringify(r));
    return r;
  };
  const results: Array<{ shape: string; n: number; r: StepResult; before: StepResult; after?: StepResult }> = [];
  // No policy at all (bridged traffic skips netfilter): what having any policy costs, for the record.
  const none = await step(bed, 'no policy', { db: [], app: [] }, [IPERF_PORT, CONNECT_PORT, ...DENIED_PORTS].map((port) => ({ port, allowed: true, ingress: undefined, egress: undefined })), undefined);
  console.error(JSON.stringify(none));
  const failed: string[] = [];
  let before = await anchor();
  const anchors = [before];
  for (const name of SHAPE_LIST) {
    const mine: typeof results = [];
    for (const n of STEPS) {
      const shape = makeShape(name, n, bed.ips);
      for (const p of shape.policies) await api(h, 'POST', `${T}/policies`, p);
      const names = shape.policies.map((p) => p.name);
      const attach = { db: ['base', ...names], app: shape.groups.includes('app') ? names : [] };
      try {
        const r = await step(bed, `${name} ${n}`, attach, shape.flows, markers[marker++] as number);
        console.error(JSON.stringify(r)); // as it comes: a later step that fails does not lose this one
        mine.push({ shape: name, n, before, r });
      } catch (e) {
        // A rule set the agent cannot enforce (in time) is a result too; the other shapes still run.
        failed.push(`${name} ${n}: ${(e as Error).message}`);
        console.error(failed[failed.length - 1]);
      }
      await api(h, 'PATCH', `${T}/groups/app`, { policies: [] });
      await api(h, 'PATCH', `${T}/groups/db`, { policies: ['base'] });
      for (const p of names) await api(h, 'DELETE', `${T}/policies/${p}`);
    }
    before = await anchor();
    anchors.push(before);
    for (const m of mine) results.push({ ...m, after: before });
  }

  const ch = CHANGES > 0 ? await measureChanges(bed, markers[marker++] as number) : undefined;
  printReport([none, ...anchors], results, addRows, ch);
  if (failed.length) console.log(`\nsteps that failed:\n${failed.map((f) => `- ${f}`).join('\n')}`);
  const anchorScript = join(process.cwd(), '..', 'shared', 'anchors', 'nft-rule-scaling.sh');
  if (existsSync(anchorScript) && process.env['BENCH_POLICY_ANCHOR'] !== 'none') {
    const r = await runner.run(['bash', anchorScript, '5000'], { allowFailure: true, timeoutMs: 120_000 });
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

/** Rule changes with 10,000 mixed rules in force: the toggled rule opens tcp/9500 into db. */
async function measureChanges(bed: Bed, marker: number): Promise<ReturnType<typeof summarise>> {
  const { h } = bed;
  const db = { ip: bed.ips.db };
  const mix = makeShape('mix', 10000, bed.ips);
  for (const p of mix.policies) await api(h, 'POST', `${T}/policies`, p);
  const mixNames = mix.policies.map((p) => p.name);
  await step(bed, 'mix 10000 (changes)', { db: ['base', ...mixNames, 'live'], app: [...mixNames, 'live'] }, mix.flows, marker);
  const changes: number[] = [];
  const lost: string[] = [];
  for (let i = 0; i < CHANGES; i++) {
    const opening = i % 2 === 0;
    const t0 = performance.now();
    if (opening) await api(h, 'POST', `${T}/policies/live/rules`, { id: 'toggle', protocol: 'tcp', ports: '9500', priority: 10 });
    else await api(h, 'DELETE', `${T}/policies/live/rules/toggle`);
    let seen = false;
    while (performance.now() - t0 < 10_000) {
      const open = (await bed.prober.probe(db.ip, 9500, 50)) !== undefined;
      if (open === opening) { changes.push(performance.now() - t0); seen = true; break; }
    }
    // A change not enforced within 10 s counts as 10 s (so it lands in the p99) and is reported.
    if (!seen) { changes.push(10_000); lost.push(`#${i} (${opening ? 'open' : 'close'})`); }
  }
  if (lost.length) console.log(`changes not enforced within 10 s: ${lost.join(', ')}`);
  return summarise(changes);
}

function printReport(anchors: StepResult[], results: Array<{ shape: string; n: number; r: StepResult; before: StepResult; after?: StepResult }>, adds: string[], ch: ReturnType<typeof summarise> | undefined): void {
  const x = (a: number, b: number) => `${(a / b).toFixed(2)}×`;
  console.log(`### bench:policy — ${new Date().toISOString().slice(0, 10)}, ${cpus().length} × ${cpus()[0]?.model.trim()}, Node ${process.version}\n`);
  console.log('No policy, then the anchors (db: deny tcp + 1 group rule allowing the flows), in run order: ' +
    anchors.map((a) => `${a.label}: ${a.gbps.toFixed(2)} Gbit/s (agent stopped ${a.gbpsStopped.toFixed(2)}), connect p50/p99 ${ms(a.p50)} / ${ms(a.p99)}, agent CPU ${a.agentCpu.toFixed(0)} %`).join('; ') + '\n');
  console.log('| shape | rules | chains / maps / elements | iperf3 (÷ anchor) | iperf3, agent stopped (÷ anchor stopped) | connect p50 / p99 (÷ anchor) | agent CPU during iperf3 | apply |');
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const { shape, n, r, before, after } of results) {
    const mean = (f: (s: StepResult) => number) => (f(before) + f(after ?? before)) / 2;
    console.log(`| ${shape} | ${n.toLocaleString('en')} | ${r.chains.toLocaleString('en')} / ${r.maps.toLocaleString('en')} / ${r.elements.toLocaleString('en')} | ${r.gbps.toFixed(2)} Gbit/s (${x(r.gbps, mean((s) => s.gbps))}) | ${r.gbpsStopped.toFixed(2)} Gbit/s (${x(r.gbpsStopped, mean((s) => s.gbpsStopped))}) | ${ms(r.p50)} / ${ms(r.p99)} (${x(r.p50, mean((s) => s.p50))} / ${x(r.p99, mean((s) => s.p99))}) | ${r.agentCpu.toFixed(0)} % | ${ms(r.applyMs)} |`);
  }
  console.log(`\n| measure | result | target |\n| --- | --- | --- |`);
  for (const r of adds) console.log(r);
  if (ch) console.log(`| rule change → enforced, ${ch.n} changes with 10,000 mixed rules in force, p50 / p99 / max | ${ms(ch.p50)} / ${ms(ch.p99)} / ${ms(ch.max)} | p99 ≤ 100 ms |`);
}
