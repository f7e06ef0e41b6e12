// npm run bench:flows — what flow records cost (issue 16). One simulated host; its agent alternates
// between --flow-log off and on (restarted in between, same containers), and each round measures both
// modes in turn: TCP connects app → db from one source (weft-connloop, a C loop: the kernel's share of a
// connection is most of what it measures, so a per-connection cost shows), connects from SOURCES sources
// at once (each source gets its own per-source allowance, so together they reach the tenant's limit:
// the most records the kernel, weft-netwatch, the agent and the server ever handle, on the same two
// cores as the connects), iperf3 throughput app → db, and in a tenant without any policy (`plain`, whose
// bridged traffic skips IP netfilter, records or not, and whose bridge table logs it) iperf3 TCP, 64-byte
// UDP packets a second, TCP connects and UDP exchanges each from a new socket (the bridge table's paths
// for a new flow). Throughput is measured before the connects, whose records' handling could spill over. Each
// result is the median over rounds of the round's on ÷ off (a round's two modes run back to back, in turn
// first). Then, with records on, a follower of `GET /api/v1/flows` (as `weft flows --follow` opens it)
// times each denied connection from its first SYN until its record arrives. Needs root; cleans up.
import https from 'node:https';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startTestHost, within, type TestHost } from '../testkit/host.js';
import { summarise } from './stats.js';
import { cpuSeconds } from './procstat.js';
import { PROBER, Prober } from './probe.js';
import { onInterrupt } from './interrupt.js';

const ROUNDS = Number(process.env['BENCH_FLOWS_ROUNDS'] ?? 8);
/** How long each connect measurement runs, in seconds. */
const SECONDS = Number(process.env['BENCH_FLOWS_SECONDS'] ?? 1.5);
/** Sources connecting at once in the many-sources measurement (each its own endpoint of group app). */
const SOURCES = Number(process.env['BENCH_FLOWS_SOURCES'] ?? 32);
const DENIALS = Number(process.env['BENCH_FLOWS_DENIALS'] ?? 40);
/** `--flow-log-rate` for the rounds with records on (default: the agent's). */
const RATE = process.env['BENCH_FLOWS_RATE'];
const FREEZE = process.env['BENCH_FLOWS_FREEZE'] === '1';
const STRIP = process.env['BENCH_FLOWS_STRIP'];
const AA = process.env['BENCH_FLOWS_AA'] === '1';
const SETTLE_MS = 3000;
const T = '/api/v1/tenants/default';
const IPERF = 5201;
const OPEN = 5203;
/** Denied connections go to ports from here, one port each, so each record is known by its port. */
const DENIED_BASE = 6000;
const CONNLOOP = join(dirname(fileURLToPath(import.meta.url)), 'weft-connloop');
const bg: ChildProcess[] = [];

async function api(h: TestHost, m: string, p: string, b?: unknown) {
  const r = await h.api(m, p, b);
  if (r.status >= 300) throw new Error(`${m} ${p}: ${JSON.stringify(r.json)}`);
  return r.json;
}

/** iperf3 from one container to an address: TCP Gbit/s, or with `udp64` 64-byte UDP datagrams received a second (thousands). */
async function iperf(h: TestHost, ip: string, from: string, udp64 = false): Promise<number> {
  const extra = udp64 ? ['-u', '-b', '0', '-l', '64'] : [];
  for (let attempt = 0; ; attempt++) {
    const r = await h.exec(`${h.tag}-${from}`, ['iperf3', '-c', ip, '-p', String(IPERF), '-t', '3', '-J', ...extra], { timeoutMs: 20_000 });
    const out = JSON.parse(r.stdout || '{}');
    if (typeof out.error === 'string' && attempt < 20) {
      await new Promise((res) => setTimeout(res, 250));
      continue;
    }
    if (!out.end) throw new Error(`iperf3: ${r.stdout.slice(0, 300)}`);
    if (!udp64) return out.end.sum_received.bits_per_second / 1e9;
    const sum = out.end.sum as { packets: number; lost_packets: number; seconds: number };
    return (sum.packets - sum.lost_packets) / sum.seconds / 1000;
  }
}

/** Sequential connects (or UDP exchanges, each a new flow) from one container for SECONDS: a second, and p50/p99 in µs. */
async function connects(h: TestHost, from: string, ip: string, kind: 'connect' | 'udp' = 'connect'): Promise<{ rate: number; p50: number; p99: number; failed: number }> {
  const r = await h.exec(`${h.tag}-${from}`, [CONNLOOP, kind, ip, String(OPEN), String(SECONDS)], { timeoutMs: SECONDS * 1000 + 20_000 });
  const [n, failed, p50, p99] = r.stdout.trim().split(' ').map(Number) as [number, number, number, number];
  if (r.code !== 0 || !(n > 0)) throw new Error(`weft-connloop in ${from}: ${r.stdout} ${r.stderr}`);
  // A connect not answered within 1 s (a SYN lost while the accept queue was full) is counted, not
  // timed (the caller refuses more than 1 % of a measure's connects: something is broken).
  return { rate: n / SECONDS, p50, p99, failed };
}
/** The agent restarted with flow records on or off, and its tenant table showing it. */
async function flowLog(h: TestHost, on: boolean): Promise<void> {
  await h.stopAgent();
  // BENCH_FLOWS_AA=1 (a diagnosis): records off in both modes, so the difference measured is the bench's own.
  const really = on && !AA;
  await h.startAgent(['--flow-log', really ? 'on' : 'off', ...(really && RATE ? ['--flow-log-rate', RATE] : [])]);
  if (AA) return;
  const has = async (ns: string, family: string) => (await h.exec(ns, ['nft', 'list', 'table', family, 'weft'])).stdout.includes('chain flows {');
  // The policy tenant logs in its inet table; the tenant without policy also in its bridge table (bridged).
  for (const [ns, family] of [[`${h.tag}-t1`, 'inet'], [`${h.tag}-t2`, 'inet'], [`${h.tag}-t2`, 'bridge']] as const) {
    if ((await within(20_000, async () => (await has(ns, family)) === on, 100)) < 0) throw new Error(`${ns}'s ${family} table did not ${on ? 'gain' : 'lose'} its flows chain`);
  }
  if (await has(`${h.tag}-t1`, 'bridge')) throw new Error('the policy tenant logs bridged connections twice');
  const brnf = (await h.exec(`${h.tag}-t2`, ['sysctl', '-n', 'net.bridge.bridge-nf-call-iptables'])).stdout.trim();
  if (brnf !== '0') throw new Error(`the tenant without policy has bridge-nf-call-iptables=${brnf}`);
}

/** A follower of the flow records (admin token), collecting each record's arrival time by its port. */
function follow(h: TestHost): { arrivals: Map<number, number>; close(): void } {
  const arrivals = new Map<number, number>();
  const req = https.get(`${h.server.url}/api/v1/flows?tenant=default&verdict=deny&follow=1&limit=1`, { ca: readFileSync(h.server.caFile), headers: { authorization: `Bearer ${h.server.token}` } }, (res) => {
    let partial = '';
    res.on('data', (d: Buffer) => {
      const lines = (partial + d.toString()).split('\n');
      partial = lines.pop() ?? '';
      for (const l of lines) {
        if (!l) continue;
        const port = (JSON.parse(l) as { dst: { port: number } }).dst.port;
        if (!arrivals.has(port)) arrivals.set(port, performance.now());
      }
    });
  });
  req.on('error', () => undefined);
  return { arrivals, close: () => req.destroy() };
}

const h = await startTestHost('bf');
// Stopped halfway (Ctrl-C, SIGTERM): the same cleanup as the end's.
onInterrupt(async () => {
  for (const p of bg) p.kill('SIGKILL');
  await h.cleanup();
});
try {
  await api(h, 'POST', `${T}/networks`, { name: 'bench', subnet: '10.42.0.0/24' });
  await api(h, 'POST', `${T}/policies`, { name: 'db-in', rules: [
    { id: 'deny', direction: 'in', priority: 1, protocol: 'tcp', action: 'deny' },
    { id: 'iperf', direction: 'in', priority: 10, protocol: 'tcp', ports: String(IPERF), action: 'allow' },
    { id: 'open', direction: 'in', priority: 10, protocol: 'tcp', ports: String(OPEN), action: 'allow' },
  ] });
  await api(h, 'POST', `${T}/groups`, { name: 'db', network: 'bench', policies: ['db-in'] });
  await api(h, 'POST', `${T}/groups`, { name: 'app', network: 'bench' });
  await within(5000, async () => existsSync(join(h.cniConfDir, 'weft-default-app.conflist')));
  const add = async (name: string, group: string) => {
    const netns = await h.container(name);
    const r = await h.cni('ADD', { conflist: `weft-default-${group}`, containerId: name, netns });
    if (r.code !== 0) throw new Error(r.stdout);
    return { netns, ip: r.json.ips[0].address.split('/')[0] as string };
  };
  writeFileSync(join(h.dir, 'prober.js'), PROBER);
  const db = await add('db', 'db');
  const app = await add('app', 'app');
  // The other sources: endpoints of app, each connecting from its own address.
  const sources = ['app'];
  for (let i = 1; i < SOURCES; i++) {
    await add(`s${i}`, 'app');
    sources.push(`s${i}`);
  }
  bg.push(spawn('ip', ['netns', 'exec', `${h.tag}-db`, CONNLOOP, 'serve', String(OPEN)], { stdio: 'ignore' }));
  bg.push(spawn('ip', ['netns', 'exec', `${h.tag}-db`, 'iperf3', '-s', '-p', String(IPERF)], { stdio: 'ignore' }));
  // A tenant without policy: its bridged traffic skips IP netfilter; its records come from the guard table.
  await api(h, 'POST', '/api/v1/tenants', { name: 'plain' });
  await api(h, 'POST', '/api/v1/tenants/plain/networks', { name: 'flat', subnet: '10.43.0.0/24' });
  await api(h, 'POST', '/api/v1/tenants/plain/groups', { name: 'all', network: 'flat' });
  await within(5000, async () => existsSync(join(h.cniConfDir, 'weft-plain-all.conflist')));
  const plain = async (name: string) => {
    const r = await h.cni('ADD', { conflist: 'weft-plain-all', containerId: name, netns: await h.container(name) });
    if (r.code !== 0) throw new Error(r.stdout);
    return r.json.ips[0].address.split('/')[0] as string;
  };
  await plain('p1');
  const p2 = await plain('p2');
  bg.push(spawn('ip', ['netns', 'exec', `${h.tag}-p2`, 'iperf3', '-s', '-p', String(IPERF)], { stdio: 'ignore' }));
  bg.push(spawn('ip', ['netns', 'exec', `${h.tag}-p2`, CONNLOOP, 'serve', String(OPEN)], { stdio: 'ignore' }));
  bg.push(spawn('ip', ['netns', 'exec', `${h.tag}-p2`, CONNLOOP, 'serve-udp', String(OPEN)], { stdio: 'ignore' }));
  const prober = new Prober(app.netns, join(h.dir, 'prober.js'), bg);
  if (await within(5000, async () => (await prober.probe(db.ip, OPEN, 200)) !== undefined) < 0) throw new Error('db does not answer on the open port');

  const measures = ['one source', 'many sources', 'iperf', 'plain tcp', 'plain udp64', 'plain connects', 'plain udp flows'] as const;
  type Measure = (typeof measures)[number];
  const got: Record<Measure, Record<'off' | 'on', number[]>> = Object.fromEntries(measures.map((m) => [m, { off: [], on: [] }])) as never;
  const latency: Record<'off' | 'on', Array<{ p50: number; p99: number }>> = { off: [], on: [] };
  const failed = { off: 0, on: 0 };
  /** Cores' worth of CPU the agent (with its helpers) and the server used from the connects' start until a second after. */
  const cpu: Record<'off' | 'on', number[]> = { off: [], on: [] };
  const weftCpu = () => {
    const agent = h.agentPid();
    const helpers = agent ? readFileSync(`/proc/${agent}/task/${agent}/children`, 'utf8').trim().split(' ').filter(Boolean).map(Number) : [];
    return [agent, h.server.proc.pid, ...helpers].reduce((a: number, pid) => a + (pid ? cpuSeconds(pid) || 0 : 0), 0);
  };
  const visible: number[] = [];
  let missed = 0;
  let denial = 0;
  for (let round = 0; round < ROUNDS; round++) {
    // Each round both ways, in turn first: what a restart or the machine's drift does falls on both alike.
    for (const mode of round % 2 === 0 ? (['off', 'on'] as const) : (['on', 'off'] as const)) {
      await flowLog(h, mode === 'on');
      // The agent's start-up work (its first sync, compiles, collections) is not what is measured.
      await new Promise((res) => setTimeout(res, SETTLE_MS));
      // Each mode's connects start from an empty conntrack table.
      await h.exec(`${h.tag}-t1`, ['conntrack', '-F']);
      // BENCH_FLOWS_FREEZE=1 (a diagnosis): the agent stopped (SIGSTOP) during the measures, in both modes,
      // so what is left is the kernel's and the helper's part.
      const frozen = FREEZE ? h.agentPid() : undefined;
      if (frozen) process.kill(frozen, 'SIGSTOP');
      // BENCH_FLOWS_STRIP (a diagnosis, with FREEZE): the flows chain emptied or deleted by hand while the agent cannot repair it.
      if (frozen && mode === 'on' && STRIP?.startsWith('rule:')) {
        // rule:WORDS deletes the flows chain's rules whose text contains WORDS (by handle).
        const listed = await h.exec(`${h.tag}-t1`, ['nft', '-a', 'list', 'chain', 'inet', 'weft', 'flows']);
        for (const line of listed.stdout.split('\n').filter((l) => l.includes(STRIP.slice(5)) && /# handle \d+/.test(l))) {
          await h.exec(`${h.tag}-t1`, ['nft', 'delete', 'rule', 'inet', 'weft', 'flows', 'handle', /# handle (\d+)/.exec(line)?.[1] as string]);
        }
      } else if (frozen && mode === 'on' && STRIP) await h.exec(`${h.tag}-t1`, ['nft', STRIP === 'delete' ? 'delete' : 'flush', 'chain', 'inet', 'weft', 'flows']);
      let cpu0 = 0;
      let t0 = 0;
      try {
        // Throughput first: what the connects' records cost the agent and server afterwards falls on the
        // connects, not on the next measure.
        got.iperf[mode].push(await iperf(h, db.ip, 'app'));
        got['plain tcp'][mode].push(await iperf(h, p2, 'p1'));
        got['plain udp64'][mode].push(await iperf(h, p2, 'p1', true));
        cpu0 = weftCpu();
        t0 = performance.now();
        const one = await connects(h, 'app', db.ip);
        got['one source'][mode].push(one.rate);
        latency[mode].push(one);
        const many = await Promise.all(sources.map((src) => connects(h, src, db.ip)));
        got['many sources'][mode].push(many.reduce((a, x) => a + x.rate, 0));
        // The bridge table's paths for new flows: each connect a SYN, each exchange a new UDP 5-tuple.
        const pc = await connects(h, 'p1', p2);
        got['plain connects'][mode].push(pc.rate);
        const pu = await connects(h, 'p1', p2, 'udp');
        got['plain udp flows'][mode].push(pu.rate);
        const lost = one.failed + pc.failed + pu.failed + many.reduce((a, x) => a + x.failed, 0);
        const made = (one.rate + pc.rate + pu.rate + many.reduce((a, x) => a + x.rate, 0)) * SECONDS;
        if (lost > made / 100) throw new Error(`${mode}: ${lost} of ${made + lost} connects to the allowed tcp/${OPEN} were not answered within 1 s`);
        failed[mode] += lost;
      } finally {
        if (frozen) process.kill(frozen, 'SIGCONT');
      }
      // And a second more, for the records of the last connects to be handled.
      await new Promise((res) => setTimeout(res, 1000));
      cpu[mode].push((weftCpu() - cpu0) / ((performance.now() - t0) / 1000));
      console.error(`round ${round + 1}/${ROUNDS} ${mode}: ${measures.map((m) => `${m} ${got[m][mode].at(-1)?.toFixed(2)}`).join(', ')}`);
    }
  }
  // Then the records' delay, apart from the rates above (measured in the same loop, this phase's follower
  // and denied connections fell only on the rounds with records on: an A/A run, records off in both
  // modes, showed 0.85× from that alone). Denied connections, 4 a second (under the per-source limit),
  // each to its own port.
  await flowLog(h, true);
  for (let round = 0; round < ROUNDS; round++) {
    const f = follow(h);
    await new Promise((res) => setTimeout(res, 500));
    const sent = new Map<number, number>();
    for (let i = 0; i < DENIALS; i++) {
      const port = DENIED_BASE + (denial++ % 1000);
      sent.set(port, performance.now());
      if ((await prober.probe(db.ip, port, 250)) !== undefined) throw new Error(`tcp/${port} was not denied`);
    }
    await new Promise((res) => setTimeout(res, 2000));
    f.close();
    for (const [port, t0] of sent) {
      const at = f.arrivals.get(port);
      if (at === undefined) missed++;
      else visible.push(at - t0);
    }
  }
  const med = (xs: number[]) => {
    const s = [...xs].sort((x, y) => x - y);
    const m = s.length >> 1;
    return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
  };
  const ratios = (m: Measure) => got[m].on.map((on, i) => on / (got[m].off[i] as number));
  const v = summarise(visible);
  const ms = (n: number) => `${n.toFixed(3)} ms`;
  const us = (xs: number[]) => `${med(xs).toFixed(1)} µs`;
  const unit: Record<Measure, (n: number) => string> = {
    'one source': (n) => `${n.toFixed(0)} /s`,
    'many sources': (n) => `${n.toFixed(0)} /s`,
    iperf: (n) => `${n.toFixed(2)} Gbit/s`,
    'plain tcp': (n) => `${n.toFixed(2)} Gbit/s`,
    'plain udp64': (n) => `${n.toFixed(0)} k packets/s`,
    'plain connects': (n) => `${n.toFixed(0)} /s`,
    'plain udp flows': (n) => `${n.toFixed(0)} /s`,
  };
  const what: Record<Measure, string> = {
    'one source': `TCP connects app → db, one source, sequential (weft-connloop, ${SECONDS} s)`,
    'many sources': `TCP connects → db from ${SOURCES} sources at once (the tenant's record limit reached)`,
    iperf: 'iperf3 TCP app → db',
    'plain tcp': 'iperf3 TCP in a tenant without policy (bridged)',
    'plain udp64': 'iperf3 64-byte UDP in a tenant without policy (bridged), received',
    'plain connects': `TCP connects in a tenant without policy (bridged), one source, sequential`,
    'plain udp flows': `UDP exchanges in a tenant without policy (bridged), each from a new socket (a new flow), one source, sequential`,
  };
  console.log(`### bench:flows — ${new Date().toISOString().slice(0, 10)}, ${cpus().length} × ${cpus()[0]?.model.trim()}, Node ${process.version}${AA ? ' — A/A (records off in both modes)' : ''}${FREEZE ? ' — agent frozen during the measures' : ''}${STRIP ? ` — flows chain: ${STRIP}` : ''}\n`);
  console.log(`Medians of ${ROUNDS} rounds; on ÷ off is the median of each round's ratio (its two modes back to back), with the lowest and highest.\n`);
  console.log('| measure | records off | records on | on ÷ off [range] | target |\n| --- | --- | --- | --- | --- |');
  for (const m of measures) {
    const r = ratios(m);
    console.log(`| ${what[m]} | ${unit[m](med(got[m].off))} | ${unit[m](med(got[m].on))} | **${med(r).toFixed(2)}×** [${Math.min(...r).toFixed(2)}–${Math.max(...r).toFixed(2)}] | ≥ 0.95× |`);
  }
  console.log(`| one source's connect time, p50 / p99 (median of rounds) | ${us(latency.off.map((x) => x.p50))} / ${us(latency.off.map((x) => x.p99))} | ${us(latency.on.map((x) => x.p50))} / ${us(latency.on.map((x) => x.p99))} | | |`);
  console.log(`| CPU of the agent (with weft-netwatch, weft-nftd) and the server during the connects, cores (median of rounds) | ${med(cpu.off).toFixed(2)} | ${med(cpu.on).toFixed(2)} | | |`);
  console.log(`| connects not answered within 1 s (not timed) | ${failed.off} | ${failed.on} | | |`);
  console.log(`| a denied connection in \`weft flows --follow\` (from its first SYN), p50 / p99 / max, of ${visible.length + missed} | | ${ms(v.p50)} / ${ms(v.p99)} / ${ms(v.max)} | | p99 ≤ 1 s |`);
  console.log(`| denied connections whose record never came | | ${missed} | | 0 |`);
} finally {
  for (const p of bg) p.kill('SIGKILL');
  await h.cleanup();
}
