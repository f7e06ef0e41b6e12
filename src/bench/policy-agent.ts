// bench:policy's `agent` step (BENCH_POLICY_STEPS=agent, or in the default list): what the agent's passes
// cost with many rules in force. On a real agent (testkit host, product resync interval), with 0 rules (the
// anchor) and then BENCH_AGENT_RULES (50,000) rules of mixed shapes on `db`: the agent's CPU over two
// windows of BENCH_AGENT_IDLE_S (60) idle seconds (/proc/PID/stat, its own and its children's: the nft and
// ip it ran, and its drift watcher, which runs throughout), the time until drift is repaired (an nft chain
// deleted, the tenant table flushed, a bridge deleted), and rule change → enforced over
// BENCH_POLICY_CHANGES (50) changes, each from the API call until a probe connection sees the new verdict.
// BENCH_AGENT_SHAPE=nested: three rules in four are nested CIDR prefixes with their own port ranges
// (policy-shapes.ts), so nearly every class has its own verdict function: a table of tens of thousands
// of chains, each of which nft lists at every commit. BENCH_AGENT_SHAPE=nested-all: every rule one of
// those nested prefixes (bench:policy-compile's nested shape): the /8s shared by ~30 blocks each get
// profiles of more port ranges than a chain holds as rules, 11,400 of them in long patterns' maps, the
// shape whose every commit the kernel's validation of the table once cost ~87 ms (session 57).
// Needs root; removes everything it made.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { join } from 'node:path';
import { ProcessRunner } from '../exec/index.js';
import { startTestHost, within, type TestHost } from '../testkit/host.js';
import { writeServerLog } from '../testkit/server.js';
import { onInterrupt } from './interrupt.js';
import { nested } from './policy-shapes.js';
import { PROBER, Prober, SERVER } from './probe.js';
import { ms, summarise } from './stats.js';

const RULES = Number(process.env['BENCH_AGENT_RULES'] ?? 50_000);
const IDLE_S = Number(process.env['BENCH_AGENT_IDLE_S'] ?? 60);
const CHANGES = Number(process.env['BENCH_POLICY_CHANGES'] ?? 50);
const SHAPE = process.env['BENCH_AGENT_SHAPE'] ?? 'mixed';
/**
 * BENCH_AGENT_ONE=1: the rules in one policy (`bulk-0`) instead of fifty of 1,000, and each change a PUT of
 * one rule of it (`probed`): what a rule changed in a big policy costs (the hostile review of session 46;
 * bench:policy-compile's `one`). The 0-rule row changes the live policy as always.
 */
const ONE = process.env['BENCH_AGENT_ONE'] === '1';
const PER_POLICY = ONE ? Math.max(1, RULES) : 1000;

const T = '/api/v1/tenants/default';
/** Ports the policy leaves alone: iperf/connect (allowed), the changed rule's, a port the base denies. */
const ALLOWED = 5202;
const TOGGLED = 9500;
const DENIED = 9600;
/**
 * A port the rules from app name (mixedRule: ranges from 20000 to 40100, a deny among them at equal
 * priority, so it is closed): a rule without a peer here changes the functions of the pairs those rules
 * decide. In the mixed shape no rule with a peer names TOGGLED; in the nested one, some do.
 */
const OVERLAPPED = 20050;
/**
 * The spare ports (each change allows the next, beside the probed port's verdict, so no two states of the
 * live policy are alike): above every port a rule of either shape names (mixedRule's up to 60,009,
 * nested()'s up to ~59,100), so a spare port changes only what a rule of the column's kind on a port of
 * its own changes (db's side profile; the pairs from app in the last column).
 */
const SPARE = 61_000;
/** The rule of `bulk-0` the changes replace (ONE), as it stands between columns: on a port nothing probes. */
const PARKED = { id: 'probed', protocol: 'tcp', ports: String(SPARE - 1), priority: 10, action: 'deny' };
/**
 * The fourth column's ports (a new one every two changes: allowed, then denied): inside the nested rules'
 * port ranges (1,000-59,100) and among the mixed shape's /32-with-a-port rules (10,000-59,999, every fifth
 * port), below every rule that decides app → db (from app: 20,000-40,100; from 10.40.0.0/24: 40,000 on)
 * and every listed port above. In the nested shape ~40 rules with a peer name each, so every change gives
 * pairs profiles of content no earlier state had: the shape that costs a change most (the columns above
 * toggle one port, and every second state is one the kernel still holds).
 */
const FRESH = 10_700;
const freshPorts = () => Array.from({ length: Math.ceil(CHANGES / 2) }, (_, k) => FRESH + k);
let spare = SPARE;
/**
 * A probe of the toggled port waits this long for its connection (a dropped SYN is retried only after
 * 1 s, so a new probe is the next chance): the resolution of a change's time. Was 50 ms until session 15,
 * which put a 50-60 ms floor under every change (the 0-rule row).
 */
const PROBE_MS = 10;

/**
 * Rule i of mixed shapes, none touching the probed ports: distinct /32 sources with a port, overlapping
 * port ranges from a group, egress to /24s, UDP from the whole network, /24 sources inside the network.
 */
export function mixedRule(i: number): Record<string, unknown> {
  const action = i % 2 ? 'allow' : 'deny';
  const b = (i >> 8) & 255;
  const c = i & 255;
  switch (i % 5) {
    case 0: return { id: `r${i}`, protocol: 'tcp', ports: String(10000 + (i % 50000)), fromCidr: `10.${128 + (i >> 16)}.${b}.${c}/32`, priority: 5, action };
    case 1: { const p = 20000 + (i % 20000); return { id: `r${i}`, protocol: 'tcp', ports: `${p}-${p + 100}`, fromGroup: 'app', priority: 5, action }; }
    case 2: return { id: `r${i}`, direction: 'out', protocol: 'udp', ports: String(10000 + (i % 50000)), toCidr: `172.${16 + (i >> 16)}.${b}.0/24`, priority: 5, action };
    case 3: return { id: `r${i}`, protocol: 'udp', ports: String(10000 + (i % 50000)), fromNetwork: 'bench', priority: 5, action };
    default: { const p = 40000 + (i % 20000); return { id: `r${i}`, protocol: 'tcp', ports: `${p}-${p + 10}`, fromCidr: `10.40.${b}.0/24`, priority: 5, action }; }
  }
}

/** Rule i of the step's shape: mixedRule's, or (nested) one of mixedRule's then three nested prefixes, by turns. */
export function agentRule(i: number, shape: string = SHAPE): Record<string, unknown> {
  if (shape === 'nested-all') return { ...nested(i) };
  if (shape !== 'nested') return mixedRule(i);
  return i % 4 === 0 ? mixedRule(i >> 2) : { ...nested(i) };
}

/** Fields of /proc/PID/stat from field 3 on (the command name may hold spaces and parentheses). */
function statFields(pid: number | string): number[] {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ').map(Number);
}

/**
 * CPU seconds of a process so far: its own, and its children's: those it waited for (the nft and ip it
 * runs) and those still running (its drift watcher, which never exits while it is measured).
 */
export function cpuSeconds(pid: number, hz: number): { own: number; children: number } {
  // Fields 14-17 of proc(5) (utime, stime, cutime, cstime) are 11-14 counted from field 3; ppid is 1.
  const f = statFields(pid);
  const [ut, st, cut, cst] = [f[11], f[12], f[13], f[14]].map((x) => (x ?? NaN) / hz) as [number, number, number, number];
  let live = 0;
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p) || p === String(pid)) continue;
    try {
      const c = statFields(p);
      if (c[1] === pid) live += ((c[11] ?? 0) + (c[12] ?? 0)) / hz;
    } catch {
      // ended meanwhile: then it was waited for and counts in cutime
    }
  }
  return { own: ut + st, children: cut + cst + live };
}

interface Bench { h: TestHost; prober: Prober; dbIp: string; vni: number; hz: number }

async function api(h: TestHost, m: string, p: string, b?: unknown): Promise<unknown> {
  const r = await h.api(m, p, b);
  if (r.status >= 300) throw new Error(`${m} ${p}: ${JSON.stringify(r.json)}`);
  return r.json;
}

/**
 * Whether a connection to db:port is dropped. A prober starved of CPU (the machine busy with a big nft
 * write) wakes to its timer before the connect event and reads an open port as dropped, so a drop is
 * confirmed with a longer wait; an open port is never misread.
 */
async function dropped(b: Bench, port: number): Promise<boolean> {
  if ((await b.prober.probe(b.dbIp, port, 60)) !== undefined) return false;
  return (await b.prober.probe(b.dbIp, port, 1000)) === undefined;
}

/** Whether the base policy is enforced: the allowed port connects and the denied one does not. */
async function enforced(b: Bench): Promise<boolean> {
  const open = (await b.prober.probe(b.dbIp, ALLOWED, 1000)) !== undefined;
  return open && dropped(b, DENIED);
}

/** Attaches `n` rules (0: only the base) and waits until a marker rule among them is enforced. */
async function attach(b: Bench, n: number): Promise<number> {
  const policies = ['base', 'live', ...Array.from({ length: Math.ceil(n / PER_POLICY) }, (_, k) => `bulk-${k}`), `marker-${n}`];
  const t0 = performance.now();
  await api(b.h, 'PATCH', `${T}/groups/db`, { policies });
  // The marker alone is not proof for n = 0 (its port is open before any policy is attached).
  const waited = await within(120_000, async () => (await b.prober.probe(b.dbIp, 9000 + n / PER_POLICY, 60)) !== undefined && enforced(b), 20);
  if (waited < 0) throw new Error(`${n} rules not enforced within 120 s\n${await diagnose(b)}`);
  return performance.now() - t0;
}

interface Cpu { own: number; children: number }

/**
 * The agent's CPU over two idle windows of IDLE_S back to back: the first still pays for the attach (the
 * collection of a big compile's garbage: measured, a 0.5 s major GC about 40 s after a 50,000-rule
 * compile), the second is what a host pays while nothing happens.
 */
async function idleCpu(b: Bench): Promise<[Cpu, Cpu]> {
  const pid = b.h.agentPid();
  if (!pid) throw new Error('no agent pid');
  // Settle: the attach's own passes and the first full re-read after it are not idle work.
  await new Promise((r) => setTimeout(r, 5000));
  const at = [cpuSeconds(pid, b.hz)];
  for (let w = 0; w < 2; w++) {
    await new Promise((r) => setTimeout(r, IDLE_S * 1000));
    at.push(cpuSeconds(pid, b.hz));
  }
  const window = (a: Cpu, z: Cpu): Cpu => ({ own: (z.own - a.own) / IDLE_S, children: (z.children - a.children) / IDLE_S });
  const [a, m, z] = at as [Cpu, Cpu, Cpu];
  return [window(a, m), window(m, z)];
}

/** What the tenant namespace holds, for an error that says why a verdict is not what the bench expects. */
async function diagnose(b: Bench): Promise<string> {
  const tns = `${b.h.tag}-t1`;
  const sysctl = (await b.h.exec(tns, ['sysctl', 'net.bridge.bridge-nf-call-iptables'])).stdout.trim();
  const chain = async (name: string) => (await b.h.exec(tns, ['nft', 'list', 'chain', 'inet', 'weft', name])).stdout.trim();
  // The forward chain, the tcp stages it jumps to (tcp_lookups), and the side and high stages those jump to.
  const chains = [await chain('forward'), ...(await Promise.all(['tcp_lookups', 'tcp_high', 'tcp_side'].map(chain))).filter(Boolean)];
  const seen = [await b.prober.probe(b.dbIp, ALLOWED, 300), await b.prober.probe(b.dbIp, DENIED, 300)];
  return `${ALLOWED} and ${DENIED} connect in ${seen.join(', ')} ms; ${sysctl}\n${chains.join('\n')}`;
}

/** Time from doing `harm` in the tenant namespace until the base policy is enforced again (and connects). */
async function repair(b: Bench, harm: string[][]): Promise<number> {
  const tns = `${b.h.tag}-t1`;
  // The agent may still be busy with the previous repair's aftermath (a big table written twice).
  if ((await within(60_000, () => enforced(b), 200)) < 0) throw new Error(`not enforced before the drift: ${await diagnose(b)}`);
  const t0 = performance.now();
  for (const argv of harm) {
    const r = await b.h.exec(tns, argv);
    if (r.code !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr}`);
  }
  const took = await within(120_000, () => enforced(b), 20);
  return took < 0 ? Infinity : performance.now() - t0;
}

async function drift(b: Bench): Promise<number[]> {
  const chain = await repair(b, [['nft', 'flush', 'chain', 'inet', 'weft', 'forward'], ['nft', 'delete', 'chain', 'inet', 'weft', 'forward']]);
  const table = await repair(b, [['nft', 'flush', 'table', 'inet', 'weft']]);
  const bridge = await repair(b, [['ip', 'link', 'del', `wb${b.vni}`]]);
  return [chain, table, bridge];
}

/**
 * One API call on a kept-alive connection, as a client making several changes would: a new TLS
 * handshake per call (what testkit's http does) costs more here than the whole change on the agent.
 */
function keptAlive(h: TestHost, agent: https.Agent, method: string, path: string, body?: unknown): Promise<number> {
  const url = new URL(h.server.url);
  const data = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = https.request({ host: url.hostname, port: url.port, path, method, agent, ca: readFileSync(h.server.caFile, 'utf8'), headers: {
      authorization: `Bearer ${h.token}`, ...(data ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } : {}),
    } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(data);
  });
}

/**
 * Opens and closes the port `portAt(i)` names by turns, each change timed from the API call until a probe
 * sees its verdict (10 s counts as 10 s), and the API call alone. Each change replaces the live policy's
 * rules: that port allowed or denied, and the next spare port allowed, so no two states are alike; but
 * with one port toggled, the pairs' maps of every second state may still be in the kernel (the applier
 * sweeps them once changes pause): a new port every two changes (FRESH) writes them new. Without
 * `fromGroup` the rules have no peer (they change db's side profile, and the pairs whose rules with a
 * peer name those ports); with it, only the pairs from that group.
 */
async function changes(b: Bench, portAt: (i: number) => number, fromGroup?: string, inPolicy?: string): Promise<{ p50: number; p99: number; max: number; lost: number; api: number; apiMax: number; slowest: string }> {
  const times: number[] = [];
  /** Each change's wall-clock start (to find it in the agent's log, BENCH_AGENT_LOG), its time and its API call's. */
  const when: Array<[number, number, number]> = [];
  const calls: number[] = [];
  let lost = 0;
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
  const live = (rules: unknown[]) => ({ name: 'live', rules });
  let last = portAt(0);
  const rule = (id: string, ports: number, action: 'allow' | 'deny') => ({ id, protocol: 'tcp', ports: String(ports), priority: 10, action, ...(fromGroup ? { fromGroup } : {}) });
  try {
    // The connection is made before the first change is timed: its TLS handshake (~10 ms here) is the
    // client's, not the change's, and until session 61 it was counted in each column's first change.
    if ((await keptAlive(b.h, agent, 'GET', T)) !== 200) throw new Error('the tenant could not be read');
    for (let i = 0; i < CHANGES; i++) {
      const opening = i % 2 === 0;
      last = portAt(i);
      const wall = Date.now();
      const t0 = performance.now();
      const status = inPolicy
        ? await keptAlive(b.h, agent, 'PUT', `${T}/policies/${inPolicy}/rules/probed`, rule('probed', last, opening ? 'allow' : 'deny'))
        : await keptAlive(b.h, agent, 'PUT', `${T}/policies/live`, live([rule('probed', last, opening ? 'allow' : 'deny'), rule('spare', spare++, 'allow')]));
      if (status >= 300) throw new Error(`change ${i}: HTTP ${status}`);
      const call = performance.now() - t0;
      calls.push(call);
      let seen = false;
      let at = NaN;
      while (!seen && performance.now() - t0 < 10_000) {
        const p0 = performance.now();
        seen = opening ? (await b.prober.probe(b.dbIp, last, PROBE_MS)) !== undefined : (await b.prober.probe(b.dbIp, last, PROBE_MS)) === undefined;
        // An open port is seen when a probe's connection is answered (a fraction of a ms after it was
        // sent); a closed one when a probe's SYN was dropped, which is when it was sent, not when its
        // PROBE_MS of waiting ended (until session 60 those 10 ms were counted too). Either way the change
        // is seen by the first probe sent after it took effect: at most PROBE_MS late, both ways alike.
        at = (opening ? performance.now() : p0) - t0;
        // A closed reading counts from when it was first seen, once confirmed (see dropped()).
        if (seen && !opening) seen = (await b.prober.probe(b.dbIp, last, 1000)) === undefined;
        // One probe each PROBE_MS at most. A port still open answers at once, and probing it back to back
        // (a connection, the listener's accept and a flow record every fraction of a millisecond, three
        // node processes woken each time) took the cores the agent needed: until session 60 a closing
        // change's agent waited ~20 ms for a CPU in its plan and again in its write, and was the slow half.
        if (!seen) await new Promise((r) => setTimeout(r, Math.max(0, PROBE_MS - (performance.now() - p0))));
      }
      times.push(seen ? at : 10_000);
      when.push([wall, seen ? at : 10_000, call]);
      if (!seen) lost++;
    }
    const parked = inPolicy ? await keptAlive(b.h, agent, 'PUT', `${T}/policies/${inPolicy}/rules/probed`, PARKED) : await keptAlive(b.h, agent, 'PUT', `${T}/policies/live`, live([]));
    if (parked >= 300) throw new Error('the live policy could not be emptied');
    // Its write (~0.2 s at 50,000 rules) is not the next column's first change: the probed port closed again.
    if ((await within(10_000, () => dropped(b, last), 50)) < 0) throw new Error(`tcp/${last} still open after the live policy was emptied`);
  } finally {
    agent.destroy();
  }
  const slowest = [...when].sort((x, y) => y[1] - x[1]).slice(0, 3).map(([w, t, c]) => `${ms(t)} at ${new Date(w).toISOString().slice(11, 23)} (API call ${ms(c)})`).join(', ');
  const c = summarise(calls);
  return { ...summarise(times), lost, api: c.p50, apiMax: c.max, slowest };
}

async function setup(h: TestHost, bg: ChildProcess[]): Promise<Bench> {
  await api(h, 'POST', `${T}/networks`, { name: 'bench', subnet: '10.40.0.0/16' });
  for (const g of ['app', 'db']) await api(h, 'POST', `${T}/groups`, { name: g, network: 'bench' });
  await api(h, 'POST', `${T}/policies`, { name: 'base', rules: [
    { id: 'deny-tcp', protocol: 'tcp', action: 'deny' }, { id: 'open', protocol: 'tcp', ports: String(ALLOWED), fromGroup: 'app', priority: 10 },
  ] });
  await api(h, 'POST', `${T}/policies`, { name: 'live', rules: [] });
  for (let k = 0; k * PER_POLICY < RULES; k++) {
    await api(h, 'POST', `${T}/policies`, { name: `bulk-${k}`, rules: [...Array.from({ length: PER_POLICY }, (_, j) => agentRule(k * PER_POLICY + j)), ...(ONE ? [PARKED] : [])] });
  }
  for (const n of [0, RULES]) await api(h, 'POST', `${T}/policies`, { name: `marker-${n}`, rules: [{ id: 'm', protocol: 'tcp', ports: String(9000 + n / PER_POLICY), priority: 10 }] });
  if ((await within(10_000, async () => existsSync(join(h.cniConfDir, 'weft-default-db.conflist')))) < 0) throw new Error('no conflist');
  const add = async (name: string) => {
    const netns = await h.container(name);
    const r = await h.cni('ADD', { conflist: `weft-default-${name}`, containerId: name, netns });
    if (r.code !== 0) throw new Error(r.stdout);
    return { netns, ip: r.json.ips[0].address.split('/')[0] as string };
  };
  const db = await add('db');
  const app = await add('app');
  writeFileSync(join(h.dir, 'prober.js'), PROBER);
  writeFileSync(join(h.dir, 'server.js'), SERVER);
  const ports = [ALLOWED, TOGGLED, OVERLAPPED, DENIED, 9000, 9000 + RULES / PER_POLICY, ...freshPorts()].map(String);
  bg.push(spawn('nsenter', [`--net=${db.netns}`, process.execPath, join(h.dir, 'server.js'), ...ports], { stdio: 'ignore' }));
  const prober = new Prober(app.netns, join(h.dir, 'prober.js'), bg);
  const vni = ((await api(h, 'GET', `${T}/networks/bench`)) as { vni: number }).vni;
  const hz = Number((await new ProcessRunner().run(['getconf', 'CLK_TCK'])).stdout.trim()) || 100;
  await new Promise((r) => setTimeout(r, 500));
  return { h, prober, dbIp: db.ip, vni, hz };
}

interface Row { rules: number; apply: number; cpu: [Cpu, Cpu]; drift: number[]; change: Awaited<ReturnType<typeof changes>>; fresh: Awaited<ReturnType<typeof changes>>; overlapped: Awaited<ReturnType<typeof changes>>; fromGroup: Awaited<ReturnType<typeof changes>> }

const pct = (x: number) => `${(x * 100).toFixed(2)} %`;
const driftMs = (x: number) => (Number.isFinite(x) ? ms(x) : '> 120 s');

/** Runs the step and prints its table. */
export async function benchAgentPasses(): Promise<void> {
  if (SHAPE !== 'mixed' && SHAPE !== 'nested' && SHAPE !== 'nested-all') throw new Error(`BENCH_AGENT_SHAPE: '${SHAPE}' is not mixed, nested or nested-all`);
  // Each change allows a spare port of its own from 61,000 on: four columns, two rows.
  if (!(CHANGES >= 0 && CHANGES * 8 <= 65_535 - SPARE)) throw new Error(`BENCH_POLICY_CHANGES: ${CHANGES} is more than this step's ${Math.floor((65_535 - SPARE) / 8)}`);
  const bg: ChildProcess[] = [];
  // The product's resync interval (the testkit's 1 s is for tests), so idle cost is what a host pays.
  const words = (v: string | undefined) => (v ?? '').split(' ').filter(Boolean);
  const serverArgs = words(process.env['BENCH_SERVER_ARGS']);
  // One policy of 50,000 rules is one request of ~5 MB (the default limit is 1 MiB).
  if (ONE && !serverArgs.includes('--body-limit')) serverArgs.push('--body-limit', String(64 * 2 ** 20));
  const h = await startTestHost('pa', { agentArgs: words(process.env['BENCH_AGENT_ARGS'] ?? '--resync 2000'), ...(serverArgs.length ? { serverArgs } : {}) });
  // Stopped halfway (Ctrl-C, SIGTERM): what it started goes as at the end (a SIGTERM left the server,
  // the agent, its helpers and four namespaces behind).
  const offInterrupt = onInterrupt(async () => {
    for (const p of bg) p.kill('SIGKILL');
    await h.cleanup();
  });
  try {
    const b = await setup(h, bg);
    console.log(`\n#### the agent's passes (2 × ${IDLE_S} s idle; resync ${process.env['BENCH_AGENT_ARGS'] ?? '--resync 2000'}${ONE ? '; the rules in one policy, each change a PUT of one rule of it' : ''})\n`);
    console.log(`| rules in force (${SHAPE}) | chains in the tenant's table | apply (attach → enforced) | agent CPU idle, first window then second: own + children = total | drift repaired: chain deleted / table flushed / bridge deleted | rule change → enforced p50 / p99 / max: a rule without a peer (tcp/${TOGGLED}) | the same on a new port every two changes (tcp/${FRESH}..) | the same on a port rules from app name (tcp/${OVERLAPPED}) | the rule on tcp/${TOGGLED} from group app |`);
    console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
    // Each row as soon as it is measured: a later step that fails keeps the earlier ones.
    const slow: string[] = [];
    for (const n of [0, RULES]) {
      const apply = await attach(b, n);
      const listed = await b.h.exec(`${b.h.tag}-t1`, ['nft', 'list', 'chains', 'inet']);
      const chains = (listed.stdout.match(/^\tchain /gm) ?? []).length;
      const cpu = await idleCpu(b);
      const d = await drift(b);
      const where = ONE && n > 0 ? 'bulk-0' : undefined;
      const change = await changes(b, () => TOGGLED, undefined, where);
      const fresh = await changes(b, (i) => FRESH + (i >> 1), undefined, where);
      const overlapped = await changes(b, () => OVERLAPPED, undefined, where);
      const fromGroup = await changes(b, () => TOGGLED, 'app', where);
      const r: Row = { rules: n, apply, cpu, drift: d, change, fresh, overlapped, fromGroup };
      const cell = (c: Row['change']) => `${ms(c.p50)} / ${ms(c.p99)} / ${ms(c.max)} (API call p50 ${ms(c.api)}, max ${ms(c.apiMax)})${c.lost ? ` (${c.lost} not within 10 s)` : ''}`;
      slow.push(`${n.toLocaleString('en')} rules, slowest changes: without a peer ${change.slowest}; on new ports ${fresh.slowest}; on tcp/${OVERLAPPED} ${overlapped.slowest}; from app ${fromGroup.slowest}`);
      console.log(`| ${r.rules.toLocaleString('en')} | ${chains.toLocaleString('en')} | ${ms(r.apply)} | ${r.cpu.map((c) => `${pct(c.own)} + ${pct(c.children)} = **${pct(c.own + c.children)}**`).join('; ')} | ${r.drift.map(driftMs).join(' / ')} | ${cell(r.change)} | ${cell(r.fresh)} | ${cell(r.overlapped)} | ${cell(r.fromGroup)} |`);
    }
    console.log(`\n${slow.join('\n')}`);
  } finally {
    offInterrupt();
    for (const p of bg) p.kill('SIGKILL');
    const log = readFileSync(join(h.dir, 'agent.log'), 'utf8');
    if (process.env['BENCH_AGENT_LOG']) writeFileSync(process.env['BENCH_AGENT_LOG'], log);
    // The server's output (its log lines; with WEFT_SERVER_NODE_ARGS=--trace-gc, its collections among
    // them). It begins with the admin token the first start prints: the owner's eyes only.
    if (process.env['BENCH_SERVER_LOG']) writeServerLog(h.server, process.env['BENCH_SERVER_LOG']);
    warnings(log);
    await h.cleanup();
  }
}

/** The agent's warnings by message, and how long its slow policy compiles took (they block its event loop). */
function warnings(log: string): void {
  const lines = log.split('\n').filter((l) => /"level":(40|50)/.test(l)).map((l) => JSON.parse(l) as { msg: string; ms?: number });
  if (lines.length === 0) return;
  const byMsg = new Map<string, number>();
  for (const l of lines) byMsg.set(l.msg, (byMsg.get(l.msg) ?? 0) + 1);
  console.log(`\nagent warnings during the step: ${[...byMsg].map(([m, n]) => `${n} × "${m}"`).join(', ')}`);
  const compiles = summarise(lines.filter((l) => l.msg === 'policy compile was slow').map((l) => l.ms ?? NaN));
  if (compiles.n) console.log(`slow policy compiles: ${compiles.n}, p50 ${ms(compiles.p50)}, max ${ms(compiles.max)}`);
}
