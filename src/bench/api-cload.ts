import { Anchor } from './scale-anchor.js';
import { cpuSeconds } from './procstat.js';
import { haveHttpload, httpload, type LoadRun } from './httpload.js';
import { ms } from './stats.js';

/** What the rows need from bench:api: the server, the joined host's certificate, and a network maker. */
export interface CLoadContext {
  url: URL;
  ca: string;
  host: { cert: string; key: string };
  serverPid: number;
  network: (name: string, subnet: string) => Promise<void>;
  closedCount: number;
  closedConns: number;
  openCount: number;
  openConns: number;
  openRate: number;
}

const body = (net: string) => `{"tenant":"default","network":"${net}","containerId":"${net}-%d","host":"bench-host","ifname":"eth0"}`;

const latency = (r: LoadRun) => `${ms(r.lat.p50)} / ${ms(r.lat.p99)} / ${ms(r.lat.max)}`;

/**
 * bench:api's allocations from weft-httpload (httpload.c), beside the same loops against the trivial
 * anchor server with the same client: on two cores the Node lean client takes ~45 µs of CPU a request
 * that the server does not get, and its own event loop's lag is in each latency it reports.
 */
export async function cLoadRows(c: CLoadContext): Promise<string[]> {
  if (!haveHttpload()) return ['| allocations from the C load generator (weft-httpload) | not built: it needs libssl-dev (scripts/setup.sh installs it) | — |'];
  const target = { url: c.url, ca: c.ca, cert: c.host.cert, key: c.host.key };
  await c.network('c-closed', '10.90.0.0/18');
  const cpu0 = cpuSeconds(c.serverPid);
  const closed = await httpload(target, '/api/v1/endpoints', body('c-closed'), c.closedConns, c.closedCount, 0);
  const serverUs = ((cpuSeconds(c.serverPid) - cpu0) * 1e6) / c.closedCount;
  await c.network('c-open', '10.91.0.0/16');
  const open = await httpload(target, '/api/v1/endpoints', body('c-open'), c.openConns, c.openCount, c.openRate);
  const distinct = (r: LoadRun) => new Set(r.ips.filter((ip) => ip !== '-')).size;
  const anchor = await Anchor.start();
  let a: { closed: LoadRun; open: LoadRun };
  try {
    const at = { url: new URL(anchor.url), ca: anchor.ca };
    await httpload(at, '/echo', body('anchor'), c.closedConns, 2000, 0);
    a = {
      closed: await httpload(at, '/echo', body('anchor'), c.closedConns, c.closedCount, 0),
      open: await httpload(at, '/echo', body('anchor'), c.openConns, c.openCount, c.openRate),
    };
  } finally {
    await anchor.stop();
  }
  return [
    `| the same ${c.closedCount} allocations from a C client (weft-httpload: OpenSSL and epoll, mTLS), ${c.closedConns} connections, closed loop: rate, p50 / p99 / max; failures, distinct addresses | ${closed.rate.toFixed(0)} /s, ${latency(closed)}; ${closed.failed}, ${distinct(closed)} | ≥ 5,000 /s, p99 ≤ 10 ms (#13) |`,
    `| the same: the C client's CPU per request; the server's (all its threads) per allocation | ${closed.clientUs.toFixed(0)} µs; ${serverUs.toFixed(0)} µs | (recorded) |`,
    `| open loop from the C client: ${c.openCount} allocations offered at ${c.openRate} /s over ${c.openConns} connections (latency from when each was due), achieved / p50 / p99 / max; over 10 ms; waited for a connection; failures, distinct | ${open.rate.toFixed(0)} /s / ${latency(open)}; ${open.over10}; ${open.waited}; ${open.failed}, ${distinct(open)} | p99 ≤ 10 ms (#13) |`,
    `| anchor with the C client: the trivial HTTPS server, closed loop (${c.closedConns} connections): rate, p50 / p99 / max; open loop at ${c.openRate} /s: p50 / p99 / max; the client's CPU per request, closed / open | ${a.closed.rate.toFixed(0)} /s, ${latency(a.closed)}; ${latency(a.open)}; ${a.closed.clientUs.toFixed(0)} / ${a.open.clientUs.toFixed(0)} µs | (anchor) |`,
  ];
}

/** One closed loop of the lean client, as bench:api's `allocations` runs it: rate and latency. */
export type LeanLoop = (net: string, subnet: string) => Promise<{ rate: number; lat: { p50: number; p99: number } }>;

/**
 * BENCH_PARTS=clients: the lean client and the C client alternated on one server, `rounds` times each,
 * a fresh /18 each loop: does the client's CPU on the shared cores move the rate or the tail? With the
 * server's CPU per allocation and each client's own per request.
 */
export async function clientRows(c: Omit<CLoadContext, 'openCount' | 'openConns' | 'openRate'>, lean: LeanLoop, rounds: number): Promise<string[]> {
  if (!haveHttpload()) return ['| lean and C clients alternated | weft-httpload not built: it needs libssl-dev | — |'];
  const target = { url: c.url, ca: c.ca, cert: c.host.cert, key: c.host.key };
  const rows: string[] = [];
  const measured = async <T>(f: () => Promise<T>): Promise<[T, number, number]> => {
    const s0 = cpuSeconds(c.serverPid);
    const m0 = process.cpuUsage();
    const r = await f();
    const m = process.cpuUsage(m0);
    return [r, ((cpuSeconds(c.serverPid) - s0) * 1e6) / c.closedCount, (m.user + m.system) / c.closedCount];
  };
  for (let k = 0; k < rounds; k++) {
    const [l, ls, lc] = await measured(() => lean(`ab-lean-${k}`, `10.${92 + 2 * k}.0.0/18`));
    rows.push(`| round ${k + 1}, lean client (Node), ${c.closedConns} connections, ${c.closedCount} allocations: rate, p50 / p99; server CPU per allocation; client CPU per request | ${l.rate.toFixed(0)} /s, ${ms(l.lat.p50)} / ${ms(l.lat.p99)}; ${ls.toFixed(0)} µs; ${lc.toFixed(0)} µs | (A/B) |`);
    await c.network(`ab-c-${k}`, `10.${93 + 2 * k}.0.0/18`);
    const [r, rs] = await measured(() => httpload(target, '/api/v1/endpoints', body(`ab-c-${k}`), c.closedConns, c.closedCount, 0));
    rows.push(`| round ${k + 1}, C client (weft-httpload), the same | ${r.rate.toFixed(0)} /s, ${ms(r.lat.p50)} / ${ms(r.lat.p99)}; ${rs.toFixed(0)} µs; ${r.clientUs.toFixed(0)} µs | (A/B) |`);
  }
  return rows;
}
