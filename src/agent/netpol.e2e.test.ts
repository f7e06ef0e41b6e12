import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import type { NetpolProtocol, NetworkPolicy } from '../model/index.js';
import { startLab, type Lab } from '../testkit/lab.js';
import { within } from '../testkit/host.js';
import { netpolVerdict, type OracleNamespace, type OraclePod } from '../testkit/netpol-oracle.js';

// Kubernetes NetworkPolicy's truth table with real packets (issue 15): namespaces x, y, z, pods a, b, c in
// each (labels pod=NAME), spread over two hosts, each serving TCP and UDP on 80 and 81 under upstream's
// port names. For each policy set, every ordered pair is probed on every (protocol, port): 72 pairs × 4,
// and the result must equal the oracle (src/testkit/netpol-oracle.ts), which is written apart from the
// compiler. Policies go in as Kubernetes YAML documents through POST /apply, as `weft apply -f` sends them.

const root = process.getuid?.() === 0;
let lab: Lab | undefined;
const bg: ChildProcess[] = [];
const dir = mkdtempSync(join(tmpdir(), 'weft-netpol-'));
after(async () => {
  for (const p of bg) p.kill('SIGKILL');
  await lab?.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

const NS = ['x', 'y', 'z'];
const POD = ['a', 'b', 'c'];
const FLOWS: Array<[NetpolProtocol, number]> = [['TCP', 80], ['TCP', 81], ['UDP', 80], ['UDP', 81]];
const namespaces: OracleNamespace[] = NS.map((n) => ({ name: n, labels: { ns: n } }));
const PORTS = Object.fromEntries(FLOWS.map(([p, port]) => [`serve-${port}-${p.toLowerCase()}`, { port, protocol: p }]));

const SERVER = `const net=require('net'),dgram=require('dgram');for(const p of process.argv.slice(2).map(Number)){net.createServer(s=>s.pipe(s)).listen(p);const u=dgram.createSocket('udp4');u.on('message',(m,r)=>u.send(m,r.port,r.address));u.bind(p);}`;
const PROBER = `const net=require('net'),dgram=require('dgram');const t=JSON.parse(process.argv[2]);
Promise.all(t.map(([ip,proto,port])=>new Promise(res=>{const done=(ok)=>{clearTimeout(tm);try{s.destroy?s.destroy():s.close()}catch{};res(ok)};let s;const tm=setTimeout(()=>done(false),800);
if(proto==='tcp'){s=net.connect(port,ip,()=>s.write('x'));s.on('data',()=>done(true));s.on('error',()=>done(false));}
else{s=dgram.createSocket('udp4');s.on('message',()=>done(true));s.on('error',()=>done(false));s.send('x',port,ip);}}))).then(r=>console.log(JSON.stringify(r)));`;

interface Pod extends OraclePod { netns: string; host: number }

const np = (namespace: string, name: string, spec: NetworkPolicy['spec']): NetworkPolicy => ({ namespace, name, spec });
const docOf = (p: NetworkPolicy) => ({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: p.name, namespace: p.namespace, tenant: 'k8s' }, spec: p.spec });

/** Probes every ordered pair on every flow, all sources at once; the cells that differ from the oracle. */
async function mismatches(l: Lab, pods: Pod[], policies: NetworkPolicy[]): Promise<{ diff: string[]; allowed: number }> {
  const diff: string[] = [];
  let allowed = 0;
  await Promise.all(pods.map(async (src) => {
    const targets = pods.filter((d) => d !== src).flatMap((dst) => FLOWS.map(([proto, port]) => ({ dst, proto, port })));
    const r = await l.exec(basename(src.netns), [process.execPath, join(dir, 'prober.js'), JSON.stringify(targets.map((t) => [t.dst.ip, t.proto.toLowerCase(), t.port]))], { timeoutMs: 15_000 });
    assert.equal(r.code, 0, `prober in ${src.namespace}/${src.name}: ${r.stderr}`);
    const got = JSON.parse(r.stdout) as boolean[];
    targets.forEach((t, i) => {
      const want = netpolVerdict(policies, namespaces, { pod: src }, { pod: t.dst }, t.proto, t.port).allowed;
      if (want) allowed++;
      if (got[i] !== want) diff.push(`${src.namespace}/${src.name} > ${t.dst.namespace}/${t.dst.name} ${t.proto}/${t.port}: packets ${got[i] ? 'pass' : 'drop'}, upstream ${want ? 'allows' : 'denies'}`);
    });
  }));
  return { diff: diff.sort(), allowed };
}

/** Applies exactly `policies` (the last set's others deleted) and waits until the packets agree with the oracle (policy reaches both hosts). */
async function converge(l: Lab, pods: Pod[], policies: NetworkPolicy[], last: NetworkPolicy[]): Promise<{ diff: string[]; allowed: number; ms: number }> {
  const gone = last.filter((p) => !policies.some((q) => q.namespace === p.namespace && q.name === p.name));
  if (gone.length > 0) assert.equal((await l.api('POST', '/api/v1/apply', { delete: true, documents: gone.map(docOf) })).status, 200);
  if (policies.length > 0) {
    const r = await l.api('POST', '/api/v1/apply', { documents: policies.map(docOf) });
    assert.equal(r.status, 200, JSON.stringify(r.json));
  }
  const t0 = Date.now();
  let m = await mismatches(l, pods, policies);
  while (m.diff.length > 0 && Date.now() - t0 < 10_000) {
    await new Promise((r) => setTimeout(r, 500));
    m = await mismatches(l, pods, policies);
  }
  return { ...m, ms: Date.now() - t0 };
}

const CASES: Array<[string, NetworkPolicy[]]> = [
  ['no policy', []],
  ['deny all ingress in x', [np('x', 'deny-ingress', { podSelector: {}, policyTypes: ['Ingress'] })]],
  ['x/a from y/b only (AND), TCP 80', [np('x', 'a-from-yb', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } }, podSelector: { matchLabels: { pod: 'b' } } }], ports: [{ protocol: 'TCP', port: 80 }] }] })]],
  ['y sends only to serve-81-udp of pods (a named port on egress)', [np('y', 'egress-named', { podSelector: {}, policyTypes: ['Egress'], egress: [{ to: [{ namespaceSelector: {} }], ports: [{ protocol: 'UDP', port: 'serve-81-udp' }] }] })]],
  ['z/c from the pods network except one pod, ports 80-81 (ipBlock, except, endPort), plus z by name to z/c UDP', [
    np('z', 'c-block', { podSelector: { matchLabels: { pod: 'c' } }, ingress: [{ from: [{ ipBlock: { cidr: '10.4.0.0/24', except: ['EXCEPT'] } }], ports: [{ port: 80, endPort: 81 }] }] }),
    np('z', 'c-own', { podSelector: { matchExpressions: [{ key: 'pod', operator: 'In', values: ['c'] }] }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'z' } } }], ports: [{ protocol: 'UDP' }] }] }),
  ]],
  ['all of them at once', []],
];

test('NetworkPolicy truth table with real packets across two hosts: every cell as upstream decides it', { skip: !root && 'needs root', timeout: 300_000 }, async () => {
  lab = await startLab('netpol', 2);
  const l = lab;
  writeFileSync(join(dir, 'server.js'), SERVER);
  writeFileSync(join(dir, 'prober.js'), PROBER);
  const setup = [
    { kind: 'Tenant', metadata: { name: 'k8s' } },
    { kind: 'Network', metadata: { name: 'pods', tenant: 'k8s' }, spec: { subnet: '10.4.0.0/24' } },
    ...namespaces.map((n) => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: n.name, tenant: 'k8s', labels: n.labels } })),
  ];
  const r = await l.api('POST', '/api/v1/apply', { documents: setup });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  for (const x of l.hosts) assert.ok(await within(5000, async () => existsSync(join(x.dir, 'net.d', 'weft-k8s-pods.conflist'))) >= 0);
  const pods: Pod[] = [];
  for (const [i, ns] of NS.entries()) {
    for (const [j, name] of POD.entries()) {
      const host = (i * 3 + j) % 2;
      const netns = await l.container(`${ns}${name}`);
      const labels = [{ key: 'pod', value: name }, ...Object.entries(PORTS).map(([k, v]) => ({ key: `port.weft.io/${k}`, value: v.protocol === 'TCP' ? String(v.port) : `udp-${v.port}` }))];
      const add = await l.hosts[host]!.cni('ADD', { conflist: 'weft-k8s-pods', containerId: `${ns}${name}`, netns, env: { CNI_ARGS: `K8S_POD_NAMESPACE=${ns};K8S_POD_NAME=${name}` }, patch: { args: { cni: { labels } } } });
      assert.equal(add.code, 0, add.stdout);
      pods.push({ namespace: ns, name, labels: { pod: name }, ip: add.json.ips[0].address.split('/')[0], ports: PORTS, netns, host });
      bg.push(spawn('nsenter', [`--net=${netns}`, process.execPath, join(dir, 'server.js'), '80', '81'], { stdio: 'ignore' }));
    }
  }
  await new Promise((res) => setTimeout(res, 1000));
  // The except is x/b's own address.
  const xb = pods.find((p) => p.namespace === 'x' && p.name === 'b') as Pod;
  const cases = CASES.map(([name, ps]): [string, NetworkPolicy[]] => [name, JSON.parse(JSON.stringify(ps).replaceAll('EXCEPT', `${xb.ip}/32`)) as NetworkPolicy[]]);
  const everything = cases.flatMap(([, ps]) => ps);
  (cases[cases.length - 1] as [string, NetworkPolicy[]])[1] = everything;
  let last: NetworkPolicy[] = [];
  const summary: string[] = [];
  for (const [name, policies] of cases) {
    const m = await converge(l, pods, policies, last);
    summary.push(`${name}: ${m.allowed}/288 cells allowed, agreed after ${m.ms} ms`);
    assert.deepEqual(m.diff, [], `${name}: ${m.diff.length} cells differ`);
    last = policies;
  }
  console.log(summary.join('\n'));
  const counts = summary.map((s) => Number(/: (\d+)\/288/.exec(s)?.[1]));
  assert.equal(counts[0], 288, 'no policy: everything passes');
  assert.ok(counts.slice(1).every((n) => n > 0 && n < 288), `each policy set both allows and denies: ${counts.join(', ')}`);
});
