// bench:policy's datapath part, one step at a time: attach a rule set to the two groups, wait until it
// is enforced, check every verdict the measurement relies on (probes and explain), then iperf3 and TCP
// connects with the agent running and again with it stopped, the agent's CPU during the iperf3, and
// what the kernel holds (chains, maps, elements).
import { readFileSync, writeFileSync } from 'node:fs';
import { ProcessRunner } from '../exec/index.js';
import type { TestHost } from '../testkit/host.js';
import { summarise } from './stats.js';
import type { Prober } from './probe.js';
import { CONNECT_PORT, DENIED_PORTS, IPERF_PORT, type Shape } from './policy-shapes.js';

const runner = new ProcessRunner();
const T = '/api/v1/tenants/default';

export interface Bed {
  h: TestHost;
  prober: Prober;
  ips: { app: string; db: string };
}

export interface StepResult {
  label: string;
  gbps: number;
  /** With the agent stopped (SIGSTOP) after it converged: what the datapath alone costs. */
  gbpsStopped: number;
  p50: number;
  p99: number;
  /** The agent's CPU (itself and the commands it ran) during the iperf3, in % of one core. */
  agentCpu: number;
  applyMs: number;
  chains: number;
  maps: number;
  elements: number;
}

export async function api(h: TestHost, m: string, p: string, b?: unknown): Promise<any> {
  const r = await h.api(m, p, b);
  if (r.status >= 300) throw new Error(`${m} ${p}: ${JSON.stringify(r.json)}`);
  return r.json;
}

async function iperf(h: TestHost, dbIp: string): Promise<number> {
  const r = await h.exec(`${h.tag}-app`, ['iperf3', '-c', dbIp, '-p', String(IPERF_PORT), '-t', '3', '-J'], { timeoutMs: 20_000 });
  if (r.code !== 0) throw new Error(`iperf3 to ${dbIp}:${IPERF_PORT} failed: the flow the bench measures is not allowed (${r.stdout.slice(0, 300)})`);
  return JSON.parse(r.stdout).end.sum_received.bits_per_second / 1e9;
}

/** CPU seconds of a process and its reaped children (the nft and ip commands the agent runs). */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return [11, 12, 13, 14].reduce((s, i) => s + Number(f[i]), 0) / 100;
}

function childrenOf(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(' ').filter(Boolean);
  } catch {
    return [];
  }
}

async function withAgentCpu<R>(h: TestHost, fn: () => Promise<R>): Promise<[R, number]> {
  const pid = h.agentPid() as number;
  const c0 = cpuSeconds(pid);
  const t0 = performance.now();
  const r = await fn();
  return [r, (100 * (cpuSeconds(pid) - c0)) / ((performance.now() - t0) / 1000)];
}

async function tableCounts(h: TestHost): Promise<{ chains: number; maps: number; elements: number }> {
  const r = await runner.run(['nsenter', `--net=/run/netns/${h.tag}-t1`, 'nft', '-j', 'list', 'table', 'inet', 'weft'], { allowFailure: true, timeoutMs: 120_000 });
  const items: any[] = r.code === 0 ? JSON.parse(r.stdout).nftables : [];
  const sets = items.filter((x) => x.map || x.set).map((x) => x.map ?? x.set);
  return { chains: items.filter((x) => x.chain).length, maps: sets.length, elements: sets.reduce((n, m) => n + (m.elem?.length ?? 0), 0) };
}

/** Every verdict the step relies on: explain names the expected rules, and real connects agree. */
async function checkVerdicts(b: Bed, flows: Shape['flows'], label: string): Promise<void> {
  for (const f of flows) {
    const e = await api(b.h, 'GET', `${T}/explain?from=${b.ips.app}&to=${b.ips.db}&protocol=tcp&port=${f.port}`);
    const got = [e.allowed, e.ingress?.rule?.id, e.egress?.rule?.id ?? undefined];
    const want = [f.allowed, f.ingress, f.egress];
    if (JSON.stringify(got) !== JSON.stringify(want)) throw new Error(`${label}: explain of tcp/${f.port} is ${JSON.stringify(got)}, the bench expects ${JSON.stringify(want)}`);
    if (f.port === IPERF_PORT) continue; // iperf3 itself fails when its flow is denied
    // A connect can only pass if the datapath lets it; it can fail for want of CPU (the kernel freeing the
    // last step's table, the server explaining 50,000 rules): an allowed port that fails is tried once
    // more with time to spare before the datapath is called broken.
    const open = (await b.prober.probe(b.ips.db, f.port, 300)) !== undefined || (f.allowed && (await b.prober.probe(b.ips.db, f.port, 3000)) !== undefined);
    if (open !== f.allowed) {
      // What the kernel held, for the post-mortem (the namespaces go with the bench).
      const t = await runner.run(['nsenter', `--net=/run/netns/${b.h.tag}-t1`, 'nft', 'list', 'table', 'inet', 'weft'], { allowFailure: true, timeoutMs: 120_000 });
      const file = `/tmp/weft-bench-policy-${process.pid}.nft`;
      const listening = await b.h.exec(`${b.h.tag}-db`, ['ss', '-ltn']);
      const again = (await b.prober.probe(b.ips.db, f.port, 3000)) !== undefined;
      writeFileSync(file, `# listening in db:\n# ${listening.stdout.split('\n').join('\n# ')}\n# probed again after the listing: ${again ? 'open' : 'closed'}\n${t.stdout}`);
      throw new Error(`${label}: tcp/${f.port} ${open ? 'passes' : 'fails'} but policy ${f.allowed ? 'allows' : 'denies'} it: the datapath is broken (the table is in ${file})`);
    }
  }
}

/** Seconds in a row the agent must be quiet before a step measures. */
const QUIET_SECONDS = 5;

/**
 * Attaches `db` and `app` policies plus a marker (an allow of tcp/`marker` both ways, priority 100),
 * times until the marker passes, then measures. Without a marker (no policy at all) it waits until a
 * port the base policy denied opens.
 */
export async function step(b: Bed, label: string, attach: { db: string[]; app: string[] }, flows: Shape['flows'], marker: number | undefined): Promise<StepResult> {
  const { h, prober } = b;
  const name = marker === undefined ? [] : [`marker-${marker}`];
  for (const n of name) {
    await api(h, 'POST', `${T}/policies`, { name: n, rules: [
      { id: 'in', protocol: 'tcp', ports: String(marker), priority: 100 },
      { id: 'out', direction: 'out', protocol: 'tcp', ports: String(marker), priority: 100 },
    ] });
  }
  // After a step with no policy every port is open, the marker too: its opening then says nothing, and
  // the rule set counts as enforced once a port it denies is closed as well (the verdict checks ran
  // before the new table was in: 'tcp/5203 passes but policy denies it').
  const openBefore = marker !== undefined && (await prober.probe(b.ips.db, marker, 50)) !== undefined;
  const denied = openBefore ? flows.find((f) => !f.allowed && f.port !== IPERF_PORT)?.port : undefined;
  const t0 = performance.now();
  await api(h, 'PATCH', `${T}/groups/app`, { policies: [...attach.app, ...name] });
  await api(h, 'PATCH', `${T}/groups/db`, { policies: [...attach.db, ...name] });
  const until = marker ?? (DENIED_PORTS[0] as number);
  const enforced = async () => (await prober.probe(b.ips.db, until, 50)) !== undefined && (denied === undefined || (await prober.probe(b.ips.db, denied, 50)) === undefined);
  let applyMs = NaN;
  for (let i = 0; i < 3000 && Number.isNaN(applyMs); i++) {
    if (await enforced()) applyMs = performance.now() - t0;
    else await new Promise((r) => setTimeout(r, 10));
  }
  if (Number.isNaN(applyMs)) throw new Error(`${label}: the rule set was not enforced within a minute`);
  await checkVerdicts(b, flows, label);
  // Steady state is what is measured: the passes a change set off (and explain's work on the server)
  // are over when the agent spends under 5 % of a core for QUIET_SECONDS seconds in a row; fewer let
  // its idle collection, 3 s after the last pass that did work (src/agent/idle-gc.ts), and the sweep
  // after it fall into the iperf3 below (16-32 % of a core at 50,000 rules when one quiet second sufficed).
  for (let i = 0, quiet = 0; i < 60 && quiet < QUIET_SECONDS; i++) {
    const [, cpu] = await withAgentCpu(h, () => new Promise((r) => setTimeout(r, 1000)));
    quiet = cpu < 5 ? quiet + 1 : 0;
  }
  const [gbps, agentCpu] = await withAgentCpu(h, () => iperf(h, b.ips.db));
  const connects: number[] = [];
  for (let i = 0; i < 300; i++) {
    const c = await prober.probe(b.ips.db, CONNECT_PORT, 1000);
    if (c === undefined) throw new Error(`${label}: a connect to the allowed tcp/${CONNECT_PORT} failed`);
    connects.push(c);
  }
  const pid = h.agentPid() as number;
  process.kill(pid, 'SIGSTOP');
  // A command the agent started (an nft listing) runs on when the agent stops: wait for it to end.
  for (let i = 0; i < 100 && childrenOf(pid).length > 0; i++) await new Promise((r) => setTimeout(r, 100));
  let gbpsStopped: number;
  try {
    gbpsStopped = await iperf(h, b.ips.db);
  } finally {
    process.kill(pid, 'SIGCONT');
  }
  const c = summarise(connects);
  return { label, gbps, gbpsStopped, p50: c.p50, p99: c.p99, agentCpu, applyMs, ...(await tableCounts(h)) };
}
