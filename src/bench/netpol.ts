// npm run bench:netpol — issue 15: from `weft apply` of the upstream NetworkPolicy case set to every cell
// enforced, on one host. Namespaces x, y, z × pods a, b, c (labels pod=NAME), each serving TCP 80 and 81;
// a long-lived prober in every pod probes all 144 TCP cells at once (100 ms timeout) in rounds, and the
// time is from the POST /apply to the end of the first round whose every cell is what the oracle
// (src/testkit/netpol-oracle.ts) says, then the same back after deleting them; then `weft verify` of the
// 9 × 9 × 4 matrix, timed whole (the API call). Needs root; cleans up.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { NetworkPolicy } from '../model/index.js';
import { startTestHost, within, type TestHost } from '../testkit/host.js';
import { netpolVerdict, type OracleNamespace, type OraclePod } from '../testkit/netpol-oracle.js';

const REPEATS = Number(process.env['BENCH_NETPOL_REPEATS'] ?? 5);
const TIMEOUT_MS = 100;
const bg: ChildProcess[] = [];
const NS = ['x', 'y', 'z'];
const POD = ['a', 'b', 'c'];
const namespaces: OracleNamespace[] = NS.map((n) => ({ name: n, labels: { ns: n } }));

/** "ID IP PORT TIMEOUT_MS" in, "ID 1" or "ID 0" out, each line on its own: many probes at once. */
const PROBER = `const net=require('net');require('readline').createInterface({input:process.stdin}).on('line',l=>{const[id,ip,port,to]=l.split(' ');let done=false;const end=(ok)=>{if(done)return;done=true;clearTimeout(tm);s.destroy();console.log(id+' '+(ok?1:0))};const s=net.connect(+port,ip);const tm=setTimeout(()=>end(false),+to);s.on('connect',()=>end(true));s.on('error',()=>end(false))});`;
const SERVER = `const net=require('net');for(const p of process.argv.slice(2))net.createServer(s=>s.on('error',()=>{}).resume()).listen(+p);`;

class Prober {
  private readonly p: ChildProcess;
  private readonly waiting = new Map<number, (ok: boolean) => void>();
  private next = 0;
  constructor(netns: string, script: string) {
    this.p = spawn('nsenter', [`--net=${netns}`, process.execPath, script], { stdio: ['pipe', 'pipe', 'ignore'] });
    bg.push(this.p);
    createInterface({ input: this.p.stdout! }).on('line', (l) => {
      const [id, ok] = l.split(' ');
      this.waiting.get(Number(id))?.(ok === '1');
      this.waiting.delete(Number(id));
    });
  }
  probe(ip: string, port: number): Promise<boolean> {
    const id = this.next++;
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      this.p.stdin!.write(`${id} ${ip} ${port} ${TIMEOUT_MS}\n`);
    });
  }
}

interface Pod extends OraclePod { prober: Prober }

const np = (namespace: string, name: string, spec: NetworkPolicy['spec']): NetworkPolicy => ({ namespace, name, spec });
const ns = (n: string) => ({ matchLabels: { ns: n } });
const pod = (p: string) => ({ matchLabels: { pod: p } });
/** The upstream cases of netpol.e2e at once (stacked), as one file would hold them. */
const POLICIES: NetworkPolicy[] = [
  np('x', 'deny-ingress', { podSelector: {}, policyTypes: ['Ingress'] }),
  np('y', 'same-ns', { podSelector: {}, ingress: [{ from: [{ podSelector: {} }] }] }),
  np('x', 'from-z', { podSelector: pod('a'), ingress: [{ from: [{ namespaceSelector: ns('z') }] }] }),
  np('x', 'a-from-yb', { podSelector: pod('a'), ingress: [{ from: [{ namespaceSelector: ns('y'), podSelector: pod('b') }], ports: [{ protocol: 'TCP', port: 80 }] }] }),
  np('x', 'a-from-y-or-b', { podSelector: pod('a'), ingress: [{ from: [{ namespaceSelector: ns('y') }, { podSelector: pod('b') }] }] }),
  np('z', 'named-in', { podSelector: {}, ingress: [{ ports: [{ port: 'serve-81-tcp' }] }] }),
  np('y', 'egress-named', { podSelector: {}, policyTypes: ['Egress'], egress: [{ to: [{ namespaceSelector: {} }], ports: [{ protocol: 'UDP', port: 'serve-81-udp' }] }] }),
  np('z', 'c-block', { podSelector: pod('c'), ingress: [{ from: [{ ipBlock: { cidr: '10.5.0.0/24', except: ['10.5.0.250/32'] } }], ports: [{ protocol: 'TCP', port: 80, endPort: 81 }] }] }),
  np('z', 'c-own', { podSelector: pod('c'), ingress: [{ from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'z' } } }], ports: [{ protocol: 'UDP' }] }] }),
];
const docsOf = (ps: NetworkPolicy[]) => ps.map((p) => ({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: p.name, namespace: p.namespace, tenant: 'k8s' }, spec: p.spec }));

/** One round: every TCP cell at once; the cells that differ from the oracle for `policies`. */
async function round(pods: Pod[], policies: NetworkPolicy[]): Promise<number> {
  const checks = pods.flatMap((src) => pods.filter((d) => d !== src).flatMap((dst) => [80, 81].map(async (port) => {
    const want = netpolVerdict(policies, namespaces, { pod: src }, { pod: dst }, 'TCP', port).allowed;
    return (await src.prober.probe(dst.ip, port)) === want ? 0 : 1;
  })));
  return (await Promise.all(checks)).reduce<number>((a, b) => a + b, 0);
}

/** From the apply to the end of the first round where every cell is right; and how long a round takes. */
async function timeTo(h: TestHost, pods: Pod[], body: unknown, policies: NetworkPolicy[]): Promise<{ ms: number; rounds: number }> {
  const t0 = performance.now();
  const r = await h.api('POST', '/api/v1/apply', body);
  if (r.status !== 200) throw new Error(`apply: ${JSON.stringify(r.json)}`);
  for (let rounds = 1; ; rounds++) {
    if ((await round(pods, policies)) === 0) return { ms: performance.now() - t0, rounds };
    if (performance.now() - t0 > 30_000) throw new Error('not enforced within 30 s');
  }
}

const h = await startTestHost('bn');
try {
  const setup = [
    { kind: 'Tenant', metadata: { name: 'k8s' } },
    { kind: 'Network', metadata: { name: 'pods', tenant: 'k8s' }, spec: { subnet: '10.5.0.0/24' } },
    ...namespaces.map((n) => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: n.name, tenant: 'k8s', labels: n.labels } })),
  ];
  if ((await h.api('POST', '/api/v1/apply', { documents: setup })).status !== 200) throw new Error('setup failed');
  if ((await within(5000, async () => existsSync(join(h.cniConfDir, 'weft-k8s-pods.conflist')))) < 0) throw new Error('no conflist');
  writeFileSync(join(h.dir, 'prober.js'), PROBER);
  writeFileSync(join(h.dir, 'server.js'), SERVER);
  const pods: Pod[] = [];
  const ports = { 'serve-80-tcp': { port: 80, protocol: 'TCP' as const }, 'serve-81-tcp': { port: 81, protocol: 'TCP' as const }, 'serve-80-udp': { port: 80, protocol: 'UDP' as const }, 'serve-81-udp': { port: 81, protocol: 'UDP' as const } };
  for (const n of NS) {
    for (const p of POD) {
      const netns = await h.container(`${n}${p}`);
      const labels = [{ key: 'pod', value: p }, ...Object.entries(ports).map(([k, v]) => ({ key: `port.weft.io/${k}`, value: v.protocol === 'TCP' ? String(v.port) : `udp-${v.port}` }))];
      const add = await h.cni('ADD', { conflist: 'weft-k8s-pods', containerId: `${n}${p}`, netns, env: { CNI_ARGS: `K8S_POD_NAMESPACE=${n};K8S_POD_NAME=${p}` }, patch: { args: { cni: { labels } } } });
      if (add.code !== 0) throw new Error(`ADD ${n}/${p}: ${add.stdout}`);
      bg.push(spawn('nsenter', [`--net=${netns}`, process.execPath, join(h.dir, 'server.js'), '80', '81'], { stdio: 'ignore' }));
      pods.push({ namespace: n, name: p, labels: { pod: p }, ip: add.json.ips[0].address.split('/')[0], ports, prober: new Prober(netns, join(h.dir, 'prober.js')) });
    }
  }
  await new Promise((r) => setTimeout(r, 1000));
  if ((await round(pods, [])) !== 0) throw new Error('without policies not every cell passes');
  const t0 = performance.now();
  for (let i = 0; i < 5; i++) await round(pods, []);
  const roundMs = (performance.now() - t0) / 5;
  const rows: string[] = [];
  const on: number[] = [];
  const off: number[] = [];
  for (let i = 0; i < REPEATS; i++) {
    const a = await timeTo(h, pods, { documents: docsOf(POLICIES) }, POLICIES);
    const b = await timeTo(h, pods, { delete: true, documents: docsOf(POLICIES) }, []);
    on.push(a.ms);
    off.push(b.ms);
    rows.push(`| ${i + 1} | ${a.ms.toFixed(0)} ms (${a.rounds} rounds) | ${b.ms.toFixed(0)} ms (${b.rounds} rounds) |`);
  }
  const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
  const med = (xs: number[]) => sorted(xs)[Math.floor(xs.length / 2)] as number;
  console.log(`\nbench:netpol — ${new Date().toISOString()}, ${cpus().length} × ${cpus()[0]?.model ?? '?'}, Node ${process.version}`);
  console.log(`${POLICIES.length} NetworkPolicies (the upstream cases at once) over 9 pods on one host; 144 TCP cells probed at once per round (${TIMEOUT_MS} ms timeout; a round without policy took ${roundMs.toFixed(0)} ms)\n`);
  console.log('| run | apply → every cell enforced | delete → every cell open again |\n| --- | --- | --- |');
  for (const r of rows) console.log(r);
  console.log(`\nmedian ${med(on).toFixed(0)} ms / ${med(off).toFixed(0)} ms, max ${Math.max(...on).toFixed(0)} ms / ${Math.max(...off).toFixed(0)} ms (target: ≤ 1,000 ms)`);
  // weft verify of the 9 × 9 × 4 matrix (TCP and UDP on 80 and 81), the stacked policies in force.
  const applied = await h.api('POST', '/api/v1/apply', { documents: docsOf(POLICIES) });
  if (applied.status !== 200) throw new Error('apply failed');
  await timeTo(h, pods, { documents: docsOf(POLICIES) }, POLICIES);
  const verifies: string[] = [];
  for (let i = 0; i < 3; i++) {
    const t1 = performance.now();
    const v = await h.api('POST', '/api/v1/tenants/k8s/verify', { flows: ['80/tcp', '81/tcp', '80/udp', '81/udp'], timeoutMs: 300 });
    if (v.status !== 200) throw new Error(`verify: ${JSON.stringify(v.json)}`);
    verifies.push(`${(performance.now() - t1).toFixed(0)} ms (${v.json.results.length} probes, ${v.json.differ.length} differ)`);
  }
  console.log(`\nweft verify, 9 × 9 × 4 (300 ms probe timeout), the stacked policies in force: ${verifies.join('; ')} (target: ≤ 10 s)`);
} finally {
  for (const p of bg) p.kill('SIGKILL');
  await h.cleanup();
}
