// npm run bench:dry-run — what a tenant's `weft apply --dry-run` of NetworkPolicies costs the server: the
// dry run compares every pair of the tenant's endpoints (up to 200) before and after, on the event loop.
// In-process (the server's test kit, a memory store), no root. Two hostile shapes, each on 200 endpoints:
//   alike    — 10 policies, each one rule from 4 ipBlocks (10.0.0.0/8 less 256 /32s) on 250 port ranges,
//              for every pod: every endpoint in one class (a helper's probe: 11.5 s for one such policy);
//   distinct — 10 policies of 20 rules, each from one endpoint's /32 on 50 port ranges of its own: every
//              endpoint a class of its own, 40,000 pairs of classes.
// For each: the dry run's time, the longest the event loop was held meanwhile (a 1 ms timer's worst
// lateness), then the same after the policies are applied (the comparison reads them back).
import { testApi } from '../server/testkit.js';
import { cpus } from 'node:os';

const ENDPOINTS = Number(process.env['BENCH_DRY_ENDPOINTS'] ?? 200);

type Api = Awaited<ReturnType<typeof testApi>>;

async function ok(api: Api, method: string, path: string, body?: unknown): Promise<any> {
  const r = await api.call(method, path, body);
  if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.json)}`);
  return r.json;
}

function alike(): object[] {
  const except = (k: number) => Array.from({ length: 256 }, (_, i) => `10.${k * 10 + 1 + (i >> 6)}.${i & 63}.${i}/32`);
  const from = [0, 1, 2, 3].map((k) => ({ ipBlock: { cidr: '10.0.0.0/8', except: except(k) } }));
  const ports = Array.from({ length: 250 }, (_, i) => ({ protocol: 'TCP', port: 1000 + i * 100, endPort: 1050 + i * 100 }));
  return Array.from({ length: 10 }, (_, k) => ({ podSelector: {}, ingress: [{ from, ports }], name: `alike${k}` }));
}

function distinct(ips: string[]): object[] {
  const rules = ips.map((ip, i) => ({ from: [{ ipBlock: { cidr: `${ip}/32` } }], ports: Array.from({ length: 50 }, (_, k) => ({ protocol: 'TCP', port: 1000 + k * 100 + i, endPort: 1030 + k * 100 + i })) }));
  const out: object[] = [];
  for (let k = 0; k * 20 < rules.length; k++) out.push({ podSelector: {}, ingress: rules.slice(k * 20, k * 20 + 20), name: `distinct${k}` });
  return out;
}

/** Runs `work`, watching the event loop: its time and the worst lateness of a 1 ms interval meanwhile. */
async function watched<T>(work: () => Promise<T>): Promise<{ ms: number; held: number; value: T }> {
  let worst = 0;
  let last = performance.now();
  const tick = setInterval(() => {
    const now = performance.now();
    worst = Math.max(worst, now - last - 1);
    last = now;
  }, 1);
  const t0 = performance.now();
  try {
    const value = await work();
    return { ms: performance.now() - t0, held: Math.max(worst, performance.now() - last - 1), value };
  } finally {
    clearInterval(tick);
  }
}

const rows: string[] = [];
for (const shape of ['alike', 'distinct'] as const) {
  const api = await testApi();
  const tenant = `dry-${shape}`;
  await ok(api, 'POST', '/api/v1/tenants', { name: tenant });
  await ok(api, 'POST', `/api/v1/tenants/${tenant}/networks`, { name: 'net', subnet: '10.200.0.0/16' });
  const ips: string[] = [];
  for (let i = 0; i < ENDPOINTS; i++) {
    ips.push((await ok(api, 'POST', '/api/v1/endpoints', { tenant, network: 'net', containerId: `c${i}`, host: 'h1', ifname: 'eth0', labels: { namespace: 'default' } })).ip);
  }
  const specs = shape === 'alike' ? alike() : distinct(ips);
  const documents = specs.map((s) => {
    const { name, ...spec } = s as { name: string };
    return { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name, namespace: 'default', tenant }, spec };
  });
  const dry = () => watched(() => ok(api, 'POST', '/api/v1/apply', { dryRun: true, documents }));
  const first = await dry();
  await ok(api, 'POST', '/api/v1/apply', { documents });
  const again = await dry();
  const total = (r: typeof first) => (r.value.flows as Array<{ total: number }>)[0]?.total ?? 0;
  const f = (x: number) => x.toFixed(0);
  rows.push(`| ${shape}: ${ENDPOINTS} endpoints, ${documents.length} policies | ${f(first.ms)} / ${f(first.held)} ms (${total(first)} runs) | ${f(again.ms)} / ${f(again.held)} ms (${total(again)} runs) |`);
  await api.app.close();
}
console.log(`### bench:dry-run — ${new Date().toISOString().slice(0, 10)}, ${cpus().length} × ${cpus()[0]?.model.trim()}, Node ${process.version}\n`);
console.log('| shape | dry run (new policies): time / event loop held | dry run of the same, applied: time / held |');
console.log('| --- | --- | --- |');
for (const r of rows) console.log(r);
process.exit(0);
