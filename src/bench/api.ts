// npm run bench:api — endpoint allocations per second through the HTTPS API on SQLite, made as an agent
// makes them (a joined host on mTLS), watch fan-out, what a TLS handshake costs, and a whole CLI call
// (`weft tenant ls`) beside its anchors (`node -e 0`, curl). BENCH_PARTS=alloc,fanout,handshake,explain,cli picks parts;
// BENCH_OPEN_RATES (default 3000,5000) the offered rates of the open-loop allocation rows, BENCH_OPEN_COUNT
// (default 15000) their length, BENCH_CROWD_OPEN_RATE (default 5000) the crowded network's open loop.
// Starts its own `weft server` process (SQLite in a temporary directory) and stops it by pid at the end.
import https from 'node:https';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { WEFT_BIN, startServerProcess, writeServerLog } from '../testkit/server.js';
import { createCsr } from '../pki/index.js';
import { median, summarise, ms } from './stats.js';
import { Anchor } from './scale-anchor.js';
import { cpuSeconds, mib, rssBytes } from './procstat.js';
import { LeanPool } from './lean-https.js';
import { explainRows } from './api-explain.js';
import { cLoadRows, clientRows } from './api-cload.js';

const ENDPOINTS = Number(process.env['BENCH_ENDPOINTS'] ?? 10_000);
const CLIENTS = Number(process.env['BENCH_CLIENTS'] ?? 32);
const WATCHERS = Number(process.env['BENCH_WATCHERS'] ?? 100);
const WRITES = Number(process.env['BENCH_WATCH_WRITES'] ?? 200);
const WARMUP = Number(process.env['BENCH_WARMUP'] ?? 2_000);

const CLI_CALLS = Number(process.env['BENCH_CLI_CALLS'] ?? 20);
const HANDSHAKES = Number(process.env['BENCH_HANDSHAKES'] ?? 200);

/** Who calls: a bearer token (people, watchers) or a host's certificate (agents). */
type Caller = { token: string } | { cert: string; key: string };
let ca = '';
let agent: https.Agent | undefined;
/** The bench host's join (asHost): once a run. */
let joined: Promise<Caller> | undefined;

function call(url: URL, method: string, path: string, who: Caller, body?: unknown, via: https.Agent | false | undefined = agent): Promise<{ status: number; body: string }> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = https.request({ host: url.hostname, port: url.port, path, method, agent: via, ca, ...('cert' in who ? { cert: who.cert, key: who.key } : {}),
      headers: { ...('token' in who ? { authorization: `Bearer ${who.token}` } : {}), ...(payload !== undefined ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}) } }, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (data += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: data }));
    });
    req.on('error', reject);
    req.end(payload);
  });
}
const post = (url: URL, path: string, who: Caller, body: unknown) => call(url, 'POST', path, who, body);

/** The bench joins as host `bench-host`, as an agent does: a join token, a CSR, its own certificate. */
async function joinHost(url: URL, admin: Caller): Promise<Caller> {
  const invite = await post(url, '/api/v1/hosts/bench-host/join-token', admin, {});
  const { csrPem, keyPem } = await createCsr('host:bench-host');
  const joined = await post(url, '/api/v1/join', { token: '' }, { token: JSON.parse(invite.body).token, csr: csrPem });
  if (joined.status !== 200) throw new Error(`join failed: ${joined.body}`);
  return { cert: JSON.parse(joined.body).certificate, key: keyPem };
}

/** `count` endpoint creates on network `net` from CLIENTS concurrent clients (closed loop). */
/** `subnet` undefined: an IPv6-only network (subnet6 alone). */
async function createNetwork(url: URL, admin: Caller, net: string, subnet: string | undefined, subnet6?: string): Promise<void> {
  const created = await post(url, '/api/v1/tenants/default/networks', admin, { name: net, ...(subnet ? { subnet } : {}), ...(subnet6 ? { subnet6 } : {}) });
  if (created.status !== 201) throw new Error(`network create failed: ${created.body}`);
}

/**
 * A histogram of the server's /metrics: cumulative counts by upper bound (seconds), summed over the series
 * whose labels `pick` takes. Absent is an error, not "none": a row of zeros would say nothing was slow.
 */
async function histogram(url: URL, admin: Caller, name: string, pick: (labels: string) => boolean = () => true): Promise<Map<string, number>> {
  const r = await call(url, 'GET', '/metrics', admin);
  const out = new Map<string, number>();
  for (const m of r.body.matchAll(new RegExp(`^${name}_bucket\\{([^}]*)\\} (\\d+)$`, 'gm'))) {
    const labels = m[1] ?? '';
    const le = /le="([^"]+)"/.exec(labels)?.[1];
    if (le !== undefined && pick(labels)) out.set(le, (out.get(le) ?? 0) + Number(m[2]));
  }
  if (r.status !== 200 || !out.has('+Inf')) throw new Error(`/metrics (HTTP ${r.status}) has no ${name}`);
  return out;
}

/** The store's commit durations. */
const commitBuckets = (url: URL, admin: Caller) => histogram(url, admin, 'weft_store_commit_duration_seconds');

/** The server's major collections (prom-client's default metrics): the stalls a loop's tail is made of. */
const majorCollections = async (url: URL, admin: Caller) => (await histogram(url, admin, 'weft_nodejs_gc_duration_seconds', (l) => l.includes('kind="major"'))).get('+Inf') ?? 0;

/** The server's own latency of endpoint POSTs. */
const postBuckets = (url: URL, admin: Caller) => histogram(url, admin, 'weft_http_request_duration_seconds', (l) => l.includes('method="POST"') && /route="[^"]*\/endpoints"/.test(l));

/** Commits between two scrapes: how many, how many took longer than 10 and 20 ms. */
function commitRow(before: Map<string, number>, after: Map<string, number>): string {
  const d = (le: string) => (after.get(le) ?? 0) - (before.get(le) ?? 0);
  const all = d('+Inf');
  return `${all} / ${all - d('0.01')} / ${all - d('0.02')}`;
}

/** Sends one allocation request (its body) and answers the server's reply: over node:https or a LeanPool. */
type Send = (body: unknown) => Promise<{ status: number; body: string }>;
const allocation = (net: string, i: number) => ({ tenant: 'default', network: net, containerId: `${net}-${i}`, host: 'bench-host', ifname: 'eth0' });

async function allocations(url: URL, admin: Caller, send: Send, net: string, subnet: string | undefined, count: number, subnet6?: string, prepare?: () => Promise<void>) {
  await createNetwork(url, admin, net, subnet, subnet6);
  await prepare?.();
  const latencies: number[] = [];
  const ips = new Set<string>();
  const ips6 = new Set<string>();
  let next = 0;
  let failures = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: CLIENTS }, async () => {
    while (next < count) {
      const i = next++;
      const s = performance.now();
      const r = await send(allocation(net, i));
      latencies.push(performance.now() - s);
      if (r.status === 201) {
        const ep = JSON.parse(r.body) as { ip?: string; ip6?: string };
        if (ep.ip) ips.add(ep.ip);
        if (ep.ip6) ips6.add(ep.ip6);
      } else failures++;
    }
  }));
  const seconds = (performance.now() - t0) / 1000;
  return { rate: count / seconds, seconds, lat: summarise(latencies), distinct: ips.size, distinct6: ips6.size, failures, ips };
}

/** Allocations of each kind (plain, publishing a host port) in publishedPorts. */
const PORTED = 300;

/**
 * Plain allocations and ones publishing a host port, interleaved, one at a time, at whatever the cluster
 * holds by then: a published port is checked against the host's other publishers, which was a listing of
 * every endpoint of the cluster (docs/decisions.md, session 46).
 */
async function publishedPorts(url: URL, admin: Caller, send: Send) {
  await createNetwork(url, admin, 'ported', '10.76.0.0/20');
  const listed = await call(url, 'GET', '/api/v1/endpoints', admin);
  const endpoints = (JSON.parse(listed.body) as { items: unknown[] }).items.length;
  const plain: number[] = [];
  const ported: number[] = [];
  let failures = 0;
  for (let i = 0; i < 2 * PORTED; i++) {
    const withPort = i % 2 === 1;
    const body = { ...allocation('ported', i), ...(withPort ? { portMappings: [{ hostPort: 20_000 + i, containerPort: 80, protocol: 'tcp' }] } : {}) };
    const s = performance.now();
    const r = await send(body);
    (withPort ? ported : plain).push(performance.now() - s);
    if (r.status !== 201) failures++;
  }
  return { endpoints, plain: summarise(plain), ported: summarise(ported), failures };
}

/** The crowded tenant's shape: CROWD groups, CROWD_POOLS of them with an ipPool of 8 addresses in the network. */
const CROWD = 500;
const CROWD_POOLS = 100;
/** Pool i of network 10.B.0.0/18 (B: 72): .120-.127 or .248-.255 of 10.B.(i ÷ 2), scattered through where allocations land. */
const crowdPool = (i: number, b = 72) => {
  const at = `10.${b}.${i >> 1}.${(i % 2) * 128 + 120}`;
  return { text: `${at}-10.${b}.${i >> 1}.${(i % 2) * 128 + 127}`, third: i >> 1, first: (i % 2) * 128 + 120 };
};

/**
 * Groups in the tenant whose allocations are measured: an allocation subtracts its network's group pools,
 * so it once read every group of the tenant (docs/benchmarks.md, bench:api session 44).
 */
async function crowd(url: URL, admin: Caller, net: string, b = 72): Promise<void> {
  for (let i = 0; i < CROWD; i++) {
    const body = { name: `${net}-g${i}`, network: net, labels: { app: `a${i}` }, ...(i < CROWD_POOLS ? { ipPool: crowdPool(i, b).text } : {}) };
    const r = await post(url, '/api/v1/tenants/default/groups', admin, body);
    if (r.status !== 201) throw new Error(`group create failed: ${r.body}`);
  }
}

/** How many of `ips` lie in one of the crowd's pools (a plain member must never get one). */
function inCrowdPools(ips: Iterable<string>): number {
  const pools = new Set(Array.from({ length: CROWD_POOLS }, (_, i) => `${crowdPool(i).third}/${crowdPool(i).first}`));
  let n = 0;
  for (const ip of ips) {
    const [, , c = '', d = ''] = ip.split('.');
    if (pools.has(`${c}/${Number(d) - (Number(d) % 8)}`)) n++;
  }
  return n;
}

/**
 * Open loop: request i is due at i ÷ `rate` seconds whatever the earlier ones are doing, and its latency
 * counts from when it was due (a request waiting for a free connection waits on the clock): the latency
 * at a given offered rate, which a closed loop at saturation does not show (coordinated omission).
 */
async function openLoop(url: URL, admin: Caller, connect: () => Promise<Send>, net: string, subnet: string, rate: number, count: number, prepare?: () => Promise<void>) {
  await createNetwork(url, admin, net, subnet);
  await prepare?.();
  const send = await connect();
  /** Per answered request: when it was due (ms after the start) and its latency. */
  const answered: Array<[number, number]> = [];
  const pending: Array<Promise<void>> = [];
  let failures = 0;
  const wall0 = Date.now();
  const t0 = performance.now();
  for (let i = 0; i < count;) {
    const now = performance.now();
    for (; i < count && t0 + (i * 1000) / rate <= now; i++) {
      const due = t0 + (i * 1000) / rate;
      pending.push(send(allocation(net, i))
        .then((r) => { answered.push([due - t0, performance.now() - due]); if (r.status !== 201) failures++; }, () => { failures++; }));
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  await Promise.all(pending);
  const seconds = (performance.now() - t0) / 1000;
  // BENCH_DUMP_LAT: [due, latency] per request, and the wall clock at t0 (to lay beside the server's
  // --trace-gc lines, BENCH_SERVER_LOG).
  if (process.env['BENCH_DUMP_LAT']) writeFileSync(`${process.env['BENCH_DUMP_LAT']}-${net}.json`, JSON.stringify({ t0Wall: wall0, answered }));
  const latencies = answered.map(([, l]) => l);
  return { achieved: count / seconds, lat: summarise(latencies), failures, over10: latencies.filter((l) => l > 10).length };
}

/** Offered rates for the open-loop rows (BENCH_OPEN_RATES, `none` to skip). */
const OPEN_RATES = (process.env['BENCH_OPEN_RATES'] ?? '3000,5000').split(',').filter((r) => r !== 'none').map(Number);
/** 3 s at 5,000 /s: long enough to hold the server's major collections as often as they come (1.2 s did not, session 49). */
const OPEN_COUNT = Number(process.env['BENCH_OPEN_COUNT'] ?? 15_000);
/** The crowded network's open loop (its /18 holds 15,581 addresses outside the pools). */
const CROWD_OPEN_RATE = Number(process.env['BENCH_CROWD_OPEN_RATE'] ?? 5_000);
/**
 * The open loops' connections: enough that none of their requests waits for a free one (the rows count
 * those that did). At 5,000 /s and a few ms each, ~30 are in flight on average: with the closed loop's 32,
 * a burst queued in this client, the server's handling saw 28 requests over 10 ms where the client saw
 * 3,142 (session 50). The hosts a server serves each have their own connection.
 */
const OPEN_CLIENTS = Number(process.env['BENCH_OPEN_CLIENTS'] ?? 256);

/** Opens `n` watch streams; resolves each revision's arrival time at the last watcher. */
async function fanout(url: URL, admin: Caller & { token: string }) {
  const arrivals = new Map<number, number[]>();
  const sockets: import('node:http').ClientRequest[] = [];
  const watchAgent = new https.Agent({ keepAlive: false, maxSockets: Infinity, ca });
  await Promise.all(Array.from({ length: WATCHERS }, () => new Promise<void>((resolve, reject) => {
    const req = https.get({ host: url.hostname, port: url.port, path: '/api/v1/watch', agent: watchAgent, headers: { authorization: `Bearer ${admin.token}` } }, (res) => {
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        const now = performance.now();
        buf += d;
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = JSON.parse(buf.slice(0, nl));
          buf = buf.slice(nl + 1);
          if (line.op === 'bookmark') continue;
          const a = arrivals.get(line.revision) ?? [];
          a.push(now);
          arrivals.set(line.revision, a);
        }
      });
      resolve();
    });
    req.on('error', reject);
    sockets.push(req);
  })));
  const sent = new Map<number, number>();
  for (let i = 0; i < WRITES; i++) {
    const s = performance.now();
    const r = await post(url, '/api/v1/tenants', admin, { name: `fan-${i}` });
    const rev = JSON.parse(r.body).revision as number;
    sent.set(rev, s);
    await new Promise((res) => setTimeout(res, 5));
  }
  await new Promise((res) => setTimeout(res, 500));
  const latencies: number[] = [];
  let incomplete = 0;
  for (const [rev, s] of sent) {
    const a = arrivals.get(rev) ?? [];
    if (a.length < WATCHERS) incomplete++;
    else latencies.push(Math.max(...a) - s);
  }
  for (const req of sockets) req.destroy();
  return { lat: summarise(latencies), incomplete };
}

/** One GET /healthz on a fresh TLS connection each time, versus over one kept-alive connection. */
async function handshakes(url: URL, admin: Caller) {
  const fresh: number[] = [];
  const reused: number[] = [];
  const keep = new https.Agent({ keepAlive: true, maxSockets: 1, ca });
  await call(url, 'GET', '/healthz', admin, undefined, keep);
  for (let i = 0; i < HANDSHAKES; i++) {
    let s = performance.now();
    await call(url, 'GET', '/healthz', admin, undefined, false);
    fresh.push(performance.now() - s);
    s = performance.now();
    await call(url, 'GET', '/healthz', admin, undefined, keep);
    reused.push(performance.now() - s);
  }
  keep.destroy();
  return { fresh: summarise(fresh), reused: summarise(reused) };
}

/** Runs argv to completion and returns its wall time in ms; a failure stops the bench (a figure of a failing call means nothing). */
function timed(argv: readonly string[], env: NodeJS.ProcessEnv): number {
  const [cmd = '', ...args] = argv;
  const s = performance.now();
  execFileSync(cmd, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
  return performance.now() - s;
}

/**
 * A whole `weft tenant ls` process (Node start, module loading, config, TLS handshake, one request, the
 * table), interleaved with its anchors in the same run: Node's own floor (`node -e 0`) and curl of the
 * same URL with the same CA and token (one process, one handshake, one request, no Node). Also the same
 * call run from the modules tsc emitted (dist/bin/cli.js, ~30 ES modules), which the bundle replaces.
 */
function cliCalls(url: string, token: string, caFile: string, dir: string) {
  const home = join(dir, 'cli-home');
  mkdirSync(home, { recursive: true });
  // The token reaches curl in a 0600 file, never on its command line (visible in `ps`).
  const header = join(dir, 'cli-auth-header');
  writeFileSync(header, `authorization: Bearer ${token}\n`, { mode: 0o600 });
  const env = { PATH: process.env['PATH'] ?? '', HOME: home, WEFT_SERVER: url, WEFT_TOKEN: token, WEFT_CA: caFile };
  // As a user's shell runs it: weft.cjs's first lines start Node (with --use-openssl-ca). Also `node
  // weft.cjs`, what this row measured until those lines carried a flag (and what tests run).
  const weft = [WEFT_BIN, 'tenant', 'ls'];
  const viaNode = [process.execPath, WEFT_BIN, 'tenant', 'ls'];
  const modules = [process.execPath, join(dirname(WEFT_BIN), 'cli.js'), 'tenant', 'ls'];
  const node = [process.execPath, '-e', '0'];
  const curl = ['curl', '--silent', '--fail', '--cacert', caFile, '--header', `@${header}`, `${url}/api/v1/tenants`];
  const hasCurl = (() => {
    try {
      timed(['curl', '--version'], env);
      return true;
    } catch {
      return false;
    }
  })();
  timed(weft, env); // the first call reads the files from disk; the rest measure a warm page cache, as a user's second call would
  timed(modules, env);
  const times = { weft: [] as number[], viaNode: [] as number[], modules: [] as number[], node: [] as number[], curl: [] as number[] };
  for (let i = 0; i < CLI_CALLS; i++) {
    times.node.push(timed(node, env));
    times.weft.push(timed(weft, env));
    times.viaNode.push(timed(viaNode, env));
    times.modules.push(timed(modules, env));
    if (hasCurl) times.curl.push(timed(curl, env));
  }
  return { weft: summarise(times.weft), viaNode: summarise(times.viaNode), modules: summarise(times.modules), node: summarise(times.node), curl: hasCurl ? summarise(times.curl) : undefined };
}

function cliRows(cli: ReturnType<typeof cliCalls>): string[] {
  return [
    `| anchor: \`node -e 0\` start-up, p50 / p99 (${cli.node.n}, interleaved) | ${ms(cli.node.p50)} / ${ms(cli.node.p99)} | (anchor) |`,
    `| anchor: \`curl\` GET /api/v1/tenants, same CA and token, p50 / p99 | ${cli.curl ? `${ms(cli.curl.p50)} / ${ms(cli.curl.p99)}` : 'curl not installed'} | (anchor) |`,
    `| a whole \`weft tenant ls\` process, run as a program (Node start + bundle + handshake + request + table), p50 / p99 | ${ms(cli.weft.p50)} / ${ms(cli.weft.p99)} | ≤ 150 ms |`,
    `| \`weft tenant ls\` ÷ \`node -e 0\`, p50 | ${(cli.weft.p50 / cli.node.p50).toFixed(2)}× | (recorded) |`,
    `| the same call as \`node dist/bin/weft.cjs tenant ls\` (no flag: Node parses its built-in roots), p50 / p99 | ${ms(cli.viaNode.p50)} / ${ms(cli.viaNode.p99)} | (recorded) |`,
    `| the same call from the unbundled modules (\`node dist/bin/cli.js tenant ls\`), p50 / p99 | ${ms(cli.modules.p50)} / ${ms(cli.modules.p99)} | (recorded) |`,
  ];
}

/** BENCH_PARTS=cli runs only the CLI rows (a minute instead of several); default: every part. */
const PARTS = new Set((process.env['BENCH_PARTS'] ?? 'alloc,dual,fanout,handshake,explain,cli').split(','));

const srv = await startServerProcess({ args: ['--log-level', 'error'] });
const serverPid = srv.proc.pid ?? NaN;
try {
  const url = new URL(srv.url);
  ca = readFileSync(srv.caFile, 'utf8');
  agent = new https.Agent({ keepAlive: true, maxSockets: CLIENTS, ca });
  const admin = { token: srv.token };
  const rows: string[] = [];
  if (PARTS.has('alloc')) rows.push(...(await allocationRows(url, admin)));
  if (PARTS.has('clients')) rows.push(...(await clientsRows(url, admin)));
  if (PARTS.has('dual')) rows.push(...(await dualRows(url, admin)));
  if (PARTS.has('fanout')) rows.push(...(await fanoutRows(url, admin)));
  if (PARTS.has('handshake')) rows.push(...(await handshakeRows(url, admin)));
  if (PARTS.has('explain')) rows.push(...(await explainRows((method, path, token, body) => call(url, method, path, token ? { token } : { token: '' }, body), srv.token)));
  if (PARTS.has('cli')) rows.push(...cliRows(cliCalls(srv.url, srv.token, srv.caFile, srv.dataDir)));
  const date = new Date().toISOString().slice(0, 10);
  console.log(`### bench:api — ${date}, ${cpus().length} × ${cpus()[0]?.model.trim()}, Node ${process.version}, load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}\n`);
  console.log('| measure | result | target |');
  console.log('| --- | --- | --- |');
  for (const r of rows) console.log(r);
} finally {
  agent?.destroy();
  await srv.stop();
  // BENCH_SERVER_LOG: the server's output (with WEFT_SERVER_NODE_ARGS=--trace-gc, its collections). It
  // begins with the admin token the first start prints: the owner's eyes only.
  if (process.env['BENCH_SERVER_LOG']) writeServerLog(srv, process.env['BENCH_SERVER_LOG']);
}

/** Joins as the bench host (once) and opens CLIENTS lean connections with its certificate; `lean` allocates over them. */
async function asHost(url: URL, admin: Caller): Promise<{ host: { cert: string; key: string }; pool: LeanPool; lean: Send }> {
  // Joined once a run: a host that has joined gets no second join token (each part asked for one, so
  // parts after the first failed with "token: is required").
  const host = await (joined ??= joinHost(url, admin));
  if (!('cert' in host)) throw new Error('the bench host has no certificate');
  const pool = await LeanPool.open(url, CLIENTS, { ca, cert: host.cert, key: host.key });
  return { host, pool, lean: (body) => pool.request('POST', '/api/v1/endpoints', body) };
}

async function allocationRows(url: URL, admin: Caller): Promise<string[]> {
  const { host, pool, lean } = await asHost(url, admin);
  try {
    const viaNode: Send = (body) => post(url, '/api/v1/endpoints', host, body);
    // A cold server's first requests wait for V8 to compile the hot paths; measure that once, separately,
    // then measure the steady state the targets are about.
    const cold = await allocations(url, admin, lean, 'warmup', '10.63.0.0/20', WARMUP);
    // The server's own CPU per allocation: what a change to its code costs or saves, much less swayed by
    // whatever else runs on the machine than the rate is.
    const commits0 = await commitBuckets(url, admin);
    const cpu0 = cpuSeconds(serverPid);
    const a = await allocations(url, admin, lean, 'bench', '10.64.0.0/18', ENDPOINTS);
    const cpuPer = ((cpuSeconds(serverPid) - cpu0) * 1e6) / ENDPOINTS;
    const commits = commitRow(commits0, await commitBuckets(url, admin));
    const n = await allocations(url, admin, viaNode, 'bench-node', '10.68.0.0/18', ENDPOINTS);
    /**
     * An open loop's two rows. Where a late request waited: in the server's handling (its own histogram),
     * or before or after it; and whether this client's event loop lagged (it shares the two cores).
     */
    const openRows = async (what: string, net: string, subnet: string, rate: number, target: string, prepare?: () => Promise<void>) => {
      const posts0 = await postBuckets(url, admin);
      // Enabled once the loop's connections are open (opening 256 blocks this client for ~0.3 s).
      const lag = monitorEventLoopDelay({ resolution: 1 });
      // Opened as the loop starts: connections idle longer than the server's keep-alive timeout are closed by it.
      let openPool: LeanPool | undefined;
      const connect = async (): Promise<Send> => {
        const p = openPool = await LeanPool.open(url, OPEN_CLIENTS, { ca, cert: host.cert, key: host.key });
        lag.enable();
        return (body) => p.request('POST', '/api/v1/endpoints', body);
      };
      const majors0 = await majorCollections(url, admin);
      const o = await openLoop(url, admin, connect, net, subnet, rate, OPEN_COUNT, prepare).finally(() => openPool?.close());
      lag.disable();
      const posts1 = await postBuckets(url, admin);
      const majors = (await majorCollections(url, admin)) - majors0;
      const over = (le: string) => ((posts1.get('+Inf') ?? 0) - (posts0.get('+Inf') ?? 0)) - ((posts1.get(le) ?? 0) - (posts0.get(le) ?? 0));
      return [
        `| open loop${what}: ${OPEN_COUNT} allocations offered at ${rate} /s (latency from when each was due), achieved / p50 / p99 / max / failures | ${o.achieved.toFixed(0)} /s / ${ms(o.lat.p50)} / ${ms(o.lat.p99)} / ${ms(o.lat.max)} / ${o.failures} | ${target} |`,
        `| the same, over 10 ms: seen by the client / in the server's handling (weft_http_request_duration_seconds); waited for one of the ${OPEN_CLIENTS} connections; the server's major collections; the client's event-loop delay p99 / max | ${o.over10} / ${over('0.01')}; ${openPool?.waited ?? 0}; ${majors}; ${ms(lag.percentile(99) / 1e6)} / ${ms(lag.max / 1e6)} | (where the tail is) |`,
      ];
    };
    const open: string[] = [];
    for (const [k, rate] of OPEN_RATES.entries()) {
      open.push(...(await openRows('', `open${k}`, `10.${65 + k}.0.0/16`, rate, rate <= 3000 ? 'p99 ≤ 20 ms (#11)' : 'p99 ≤ 10 ms (#13)')));
    }
    // The C client's loops (and the anchor's with it) where the lean client's open loops ran: BENCH_C_CLIENT=0 leaves them out.
    const cRows = process.env['BENCH_C_CLIENT'] === '0' ? [] : await cLoadRows({
      url, ca, host, serverPid, network: (name, subnet) => createNetwork(url, admin, name, subnet),
      closedCount: ENDPOINTS, closedConns: CLIENTS, openCount: OPEN_COUNT, openConns: OPEN_CLIENTS, openRate: Number(process.env['BENCH_C_OPEN_RATE'] ?? 5000),
    });
    const crowded = await allocations(url, admin, lean, 'crowd', '10.72.0.0/18', ENDPOINTS, undefined, () => crowd(url, admin, 'crowd'));
    // The same open loop where the 500 groups and 100 pools are (its own network, pools at the same places).
    const crowdOpen = OPEN_RATES.length === 0 ? [] : await openRows(` in a network like the next row's (${CROWD} groups, ${CROWD_POOLS} pools)`, 'crowd-open', '10.80.0.0/16', CROWD_OPEN_RATE, 'p99 ≤ 10 ms (#13)', () => crowd(url, admin, 'crowd-open', 80));
    const ported = await publishedPorts(url, admin, lean);
    const anchor = await anchorPosts();
    return [
      `| endpoint allocations, ${ENDPOINTS} via HTTPS as a joined host (mTLS), ${CLIENTS} concurrent clients (lean client), SQLite, after warm-up | ${a.rate.toFixed(0)} /s (${a.seconds.toFixed(2)} s) | ≥ 3,000 /s |`,
      `| allocation latency p50 / p99 / max | ${ms(a.lat.p50)} / ${ms(a.lat.p99)} / ${ms(a.lat.max)} | p99 ≤ 20 ms |`,
      `| server CPU (user + system, all its threads) per allocation | ${cpuPer.toFixed(0)} µs | — |`,
      `| the store's commits during those allocations: all / over 10 ms / over 20 ms (weft_store_commit_duration_seconds) | ${commits} | — |`,
      `| the same ${ENDPOINTS} allocations from node:https clients (the client takes ~2× the CPU), rate / p50 / p99 / failures | ${n.rate.toFixed(0)} /s / ${ms(n.lat.p50)} / ${ms(n.lat.p99)} / ${n.failures} | (recorded) |`,
      `| cold start: first ${WARMUP} allocations on a fresh server, rate / p99 / max | ${cold.rate.toFixed(0)} /s / ${ms(cold.lat.p99)} / ${ms(cold.lat.max)} | (not a target) |`,
      `| distinct addresses / failures | ${a.distinct} / ${a.failures} | ${ENDPOINTS} / 0 |`,
      `| anchor: the same POSTs to a trivial Node HTTPS server (no framework, no store, no client certificate), lean client, ${CLIENTS} concurrent | ${anchor.lean.rate.toFixed(0)} /s, p50 / p99 ${ms(anchor.lean.lat.p50)} / ${ms(anchor.lean.lat.p99)} | (anchor) |`,
      `| anchor, node:https clients | ${anchor.node.rate.toFixed(0)} /s, p50 / p99 ${ms(anchor.node.lat.p50)} / ${ms(anchor.node.lat.p99)} | (anchor) |`,
      `| allocations ÷ anchor (rate), lean / node:https | ${(a.rate / anchor.lean.rate).toFixed(2)}× / ${(n.rate / anchor.node.rate).toFixed(2)}× | — |`,
      ...open,
      ...cRows,
      ...crowdOpen,
      `| the same ${ENDPOINTS} allocations (lean client) in a network of a tenant with ${CROWD} groups, ${CROWD_POOLS} of them with an ipPool of 8 addresses scattered through where the allocations land: rate / p50 / p99 | ${crowded.rate.toFixed(0)} /s / ${ms(crowded.lat.p50)} / ${ms(crowded.lat.p99)} | ≥ 5,000 /s, p99 ≤ 10 ms (#13) |`,
      `| the same: distinct addresses / failures / addresses inside a group's pool | ${crowded.distinct} / ${crowded.failures} / ${inCrowdPools(crowded.ips)} | ${ENDPOINTS} / 0 / 0 |`,
      `| one at a time, with ${ported.endpoints.toLocaleString('en')} endpoints in the cluster: an allocation publishing a host port ÷ a plain one, p50 (${ported.plain.p50.toFixed(2)} / ${ported.ported.p50.toFixed(2)} ms; ${PORTED} of each, interleaved) / failures | ${(ported.ported.p50 / ported.plain.p50).toFixed(2)}× / ${ported.failures} | ≤ 1.5× / 0 (#13: no cost in proportion to the cluster) |`,
      `| the server's peak resident memory after these rows (VmHWM; its old generation may grow 4× its live size before a major collection: --heap-growing-percent=300) | ${mib(rssBytes(serverPid, 'VmHWM'))} | (recorded) |`,
    ];
  } finally {
    pool.close();
  }
}

/** BENCH_PARTS=clients (not in the default parts): the lean and the C client alternated (api-cload.ts). */
async function clientsRows(url: URL, admin: Caller): Promise<string[]> {
  const { host, pool, lean } = await asHost(url, admin);
  try {
    await allocations(url, admin, lean, 'ab-warmup', '10.62.0.0/20', WARMUP);
    return await clientRows({
      url, ca, host, serverPid, network: (name, subnet) => createNetwork(url, admin, name, subnet),
      closedCount: ENDPOINTS, closedConns: CLIENTS,
    }, (net, subnet) => allocations(url, admin, lean, net, subnet, ENDPOINTS), Number(process.env['BENCH_AB_ROUNDS'] ?? 3));
  } finally {
    pool.close();
  }
}

/** What the same clients, concurrency and request cost against the most trivial HTTPS server on this machine. */
/**
 * Issue 19: allocations on an IPv6-only /64 and on a dual-stack network (a /16 and a /64: each endpoint
 * takes an address of each family in one transaction) against an IPv4-only /16, in rounds on fresh
 * networks whose order rotates (the machine's drift falls on all alike), after their own warm-up. The
 * ratios are medians of per-round ratios.
 */
async function dualRows(url: URL, admin: Caller): Promise<string[]> {
  const { host, pool, lean } = await asHost(url, admin);
  const rounds = Number(process.env['BENCH_DUAL_ROUNDS'] ?? 6);
  const count = Number(process.env['BENCH_DUAL_COUNT'] ?? 5000);
  try {
    await allocations(url, admin, lean, 'dwarm4', '10.100.0.0/16', WARMUP);
    await allocations(url, admin, lean, 'dwarm6', '10.101.0.0/16', WARMUP, 'fd00:101::/64');
    await allocations(url, admin, lean, 'dwarmo', undefined, WARMUP, 'fd00:102::/64');
    const v4: Array<Awaited<ReturnType<typeof allocations>>> = [];
    const v6: typeof v4 = [];
    const only: typeof v4 = [];
    for (let r = 0; r < rounds; r++) {
      const runs = [
        async () => v4.push(await allocations(url, admin, lean, `d4r${r}`, `10.${110 + r}.0.0/16`, count)),
        async () => v6.push(await allocations(url, admin, lean, `d6r${r}`, `10.${130 + r}.0.0/16`, count, `fd00:${130 + r}::/64`)),
        async () => only.push(await allocations(url, admin, lean, `dor${r}`, undefined, count, `fd00:${150 + r}::/64`)),
      ];
      for (let k = 0; k < runs.length; k++) await (runs[(r + k) % runs.length] as () => Promise<number>)();
    }
    const ratio = median(v6.map((x, i) => x.rate / (v4[i] as typeof x).rate));
    const ratioOnly = median(only.map((x, i) => x.rate / (v4[i] as typeof x).rate));
    const mid = (xs: typeof v4) => xs.slice().sort((a, b) => a.rate - b.rate)[Math.floor(xs.length / 2)] as typeof xs[number];
    const [m4, m6, mo] = [mid(v4), mid(v6), mid(only)];
    const bad = [...v4, ...v6, ...only].reduce((n, x) => n + x.failures, 0) + [...v6, ...only].filter((x) => x.distinct6 !== count).length + only.filter((x) => x.distinct !== 0).length;
    return [
      `| allocations, IPv4 /16 (median round of ${rounds} × ${count}, 32 lean clients), rate / p50 / p99 | ${m4.rate.toFixed(0)} /s / ${ms(m4.lat.p50)} / ${ms(m4.lat.p99)} | (anchor) |`,
      `| allocations, IPv6-only /64, rate / p50 / p99 | ${mo.rate.toFixed(0)} /s / ${ms(mo.lat.p50)} / ${ms(mo.lat.p99)} | — |`,
      `| IPv6-only /64 ÷ IPv4 /16 (median of per-round ratios) | **${ratioOnly.toFixed(2)}×** | ≥ 0.90× (#19) |`,
      `| allocations, dual stack /16 + /64 (an address of each family per endpoint), rate / p50 / p99 | ${m6.rate.toFixed(0)} /s / ${ms(m6.lat.p50)} / ${ms(m6.lat.p99)} | — |`,
      `| dual stack ÷ IPv4 (median of per-round ratios) | **${ratio.toFixed(2)}×** | — |`,
      `| failures, rounds whose IPv6 addresses were not all distinct (or IPv6-only ones with an IPv4 address) | ${bad} | 0 |`,
    ];
  } finally {
    pool.close();
  }
}

async function anchorPosts(): Promise<Record<'lean' | 'node', { rate: number; lat: ReturnType<typeof summarise> }>> {
  const anchor = await Anchor.start();
  const via = new https.Agent({ keepAlive: true, maxSockets: CLIENTS, ca: anchor.ca });
  const url = new URL(anchor.url);
  const pool = await LeanPool.open(url, CLIENTS, { ca: anchor.ca });
  // call() passes the module's `ca` with each request: the anchor's while it runs.
  const saved = ca;
  ca = anchor.ca;
  try {
    const run = async (send: Send) => {
      const latencies: number[] = [];
      let next = 0;
      const count = WARMUP + ENDPOINTS;
      let t0 = performance.now();
      await Promise.all(Array.from({ length: CLIENTS }, async () => {
        while (next < count) {
          const i = next++;
          // The first WARMUP requests warm the anchor as the warm-up network warmed the server.
          if (i === WARMUP) t0 = performance.now();
          const s = performance.now();
          const r = await send(allocation('anchor', i));
          if (i >= WARMUP) latencies.push(performance.now() - s);
          if (r.status !== 201) throw new Error(`the anchor answered ${r.status}`);
        }
      }));
      return { rate: ENDPOINTS / ((performance.now() - t0) / 1000), lat: summarise(latencies) };
    };
    return {
      lean: await run((body) => pool.request('POST', '/echo', body)),
      node: await run((body) => call(url, 'POST', '/echo', { token: '' }, body, via)),
    };
  } finally {
    ca = saved;
    pool.close();
    via.destroy();
    await anchor.stop();
  }
}

async function fanoutRows(url: URL, admin: Caller & { token: string }): Promise<string[]> {
  const f = await fanout(url, admin);
  return [
    `| watch fan-out to ${WATCHERS} watchers over TLS, write → last watcher, p50 / p99 / max (${f.lat.n} writes) | ${ms(f.lat.p50)} / ${ms(f.lat.p99)} / ${ms(f.lat.max)} | p99 ≤ 50 ms |`,
    `| writes not seen by every watcher | ${f.incomplete} | 0 |`,
  ];
}

async function handshakeRows(url: URL, admin: Caller): Promise<string[]> {
  const hs = await handshakes(url, admin);
  return [
    `| GET /healthz on a fresh TLS connection (handshake + request), p50 / p99 (${HANDSHAKES}) | ${ms(hs.fresh.p50)} / ${ms(hs.fresh.p99)} | (recorded) |`,
    `| GET /healthz on a reused connection, p50 / p99 | ${ms(hs.reused.p50)} / ${ms(hs.reused.p99)} | (recorded) |`,
    `| TLS handshake cost (fresh − reused, p50) | ${ms(hs.fresh.p50 - hs.reused.p50)} | (recorded) |`,
  ];
}
