// npm run bench:api — endpoint allocations per second through the HTTP API on SQLite, and watch fan-out.
// Starts its own `weft server` process (SQLite in a temporary directory) and stops it by pid at the end.
import http from 'node:http';
import { cpus } from 'node:os';
import { startServerProcess } from '../testkit/server.js';
import { summarise, ms } from './stats.js';

const ENDPOINTS = Number(process.env['BENCH_ENDPOINTS'] ?? 10_000);
const CLIENTS = Number(process.env['BENCH_CLIENTS'] ?? 32);
const WATCHERS = Number(process.env['BENCH_WATCHERS'] ?? 100);
const WRITES = Number(process.env['BENCH_WATCH_WRITES'] ?? 200);
const WARMUP = Number(process.env['BENCH_WARMUP'] ?? 2_000);

const agent = new http.Agent({ keepAlive: true, maxSockets: CLIENTS });

function post(url: URL, path: string, token: string, body: unknown): Promise<{ status: number; body: string }> {
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: url.hostname, port: url.port, path, method: 'POST', agent,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } }, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (data += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: data }));
    });
    req.on('error', reject);
    req.end(payload);
  });
}

/** `count` endpoint creates on network `net` from CLIENTS concurrent clients (closed loop). */
async function allocations(url: URL, token: string, net: string, subnet: string, count: number) {
  const created = await post(url, '/api/v1/tenants/default/networks', token, { name: net, subnet });
  if (created.status !== 201) throw new Error(`network create failed: ${created.body}`);
  const latencies: number[] = [];
  const ips = new Set<string>();
  let next = 0;
  let failures = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: CLIENTS }, async () => {
    while (next < count) {
      const i = next++;
      const s = performance.now();
      const r = await post(url, '/api/v1/endpoints', token, { tenant: 'default', network: net, containerId: `${net}-${i}`, host: 'bench-host', ifname: 'eth0' });
      latencies.push(performance.now() - s);
      if (r.status === 201) ips.add(JSON.parse(r.body).ip);
      else failures++;
    }
  }));
  const seconds = (performance.now() - t0) / 1000;
  return { rate: count / seconds, seconds, lat: summarise(latencies), distinct: ips.size, failures };
}

/** Opens `n` watch streams; resolves each revision's arrival time at the last watcher. */
async function fanout(url: URL, token: string) {
  const arrivals = new Map<number, number[]>();
  const sockets: http.ClientRequest[] = [];
  const watchAgent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
  await Promise.all(Array.from({ length: WATCHERS }, () => new Promise<void>((resolve, reject) => {
    const req = http.get({ host: url.hostname, port: url.port, path: '/api/v1/watch', agent: watchAgent, headers: { authorization: `Bearer ${token}` } }, (res) => {
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
    const r = await post(url, '/api/v1/tenants', token, { name: `fan-${i}` });
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

const srv = await startServerProcess({ args: ['--log-level', 'error'] });
try {
  const url = new URL(srv.url);
  // A cold server's first requests wait for V8 to compile the hot paths; measure that once, separately,
  // then measure the steady state the targets are about.
  const cold = await allocations(url, srv.token, 'warmup', '10.63.0.0/20', WARMUP);
  const a = await allocations(url, srv.token, 'bench', '10.64.0.0/18', ENDPOINTS);
  const f = await fanout(url, srv.token);
  const date = new Date().toISOString().slice(0, 10);
  console.log(`### bench:api — ${date}, ${cpus().length} × ${cpus()[0]?.model.trim()}, Node ${process.version}\n`);
  console.log('| measure | result | target |');
  console.log('| --- | --- | --- |');
  console.log(`| endpoint allocations, ${ENDPOINTS} via HTTP, ${CLIENTS} concurrent clients, SQLite, after warm-up | ${a.rate.toFixed(0)} /s (${a.seconds.toFixed(2)} s) | ≥ 3,000 /s |`);
  console.log(`| allocation latency p50 / p99 / max | ${ms(a.lat.p50)} / ${ms(a.lat.p99)} / ${ms(a.lat.max)} | p99 ≤ 20 ms |`);
  console.log(`| cold start: first ${WARMUP} allocations on a fresh server, rate / p99 / max | ${cold.rate.toFixed(0)} /s / ${ms(cold.lat.p99)} / ${ms(cold.lat.max)} | (not a target) |`);
  console.log(`| distinct addresses / failures | ${a.distinct} / ${a.failures} | ${ENDPOINTS} / 0 |`);
  console.log(`| watch fan-out to ${WATCHERS} watchers, write → last watcher, p50 / p99 / max (${f.lat.n} writes) | ${ms(f.lat.p50)} / ${ms(f.lat.p99)} / ${ms(f.lat.max)} | p99 ≤ 50 ms |`);
  console.log(`| writes not seen by every watcher | ${f.incomplete} | 0 |`);
} finally {
  agent.destroy();
  await srv.stop();
}
