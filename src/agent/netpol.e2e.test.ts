import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import type { AdminNetworkPolicy, AnpRule, AnpSubject, NetpolProtocol, NetworkPolicy } from '../model/index.js';
import { startLab, type Lab } from '../testkit/lab.js';
import { startPodman, IMAGE, RUN_FLAGS, type Podman } from '../testkit/podman.js';
import { within } from '../testkit/host.js';
import { ECHO_SERVER, PROBER, ProbePorts } from '../testkit/echo.js';
import { adminVerdict, netpolVerdict, type OracleAdmin, type OracleNamespace, type OraclePod } from '../testkit/netpol-oracle.js';

// Kubernetes NetworkPolicy's truth table with real packets (issue 15): namespaces x, y, z, pods a, b, c in
// each (labels pod=NAME), spread over two hosts, each serving TCP and UDP on 80 and 81 under upstream's
// port names. For each policy set, every ordered pair is probed on every (protocol, port): 72 pairs × 4,
// and the result must equal the oracle (src/testkit/netpol-oracle.ts), which is written apart from the
// compiler. Policies go in as Kubernetes YAML documents through POST /apply, as `weft apply -f` sends them.
// The pods' network is dual-stack: every cell is probed over IPv4 and over IPv6 (a pod is one endpoint:
// an ipBlock covering either of its addresses covers it in both families, the oracle's `also`).

const root = process.getuid?.() === 0;
let lab: Lab | undefined;
const bg: ChildProcess[] = [];
/** Each pod's echo server, and the file its errors go to. */
const servers = new Map<string, { proc: ChildProcess; err: string }>();
/** UDP source ports new in the run for each round (see testkit/echo.ts: conntrack would pass a reused one). */
const ports = new ProbePorts();
const podmans: Podman[] = [];
const dir = mkdtempSync(join(tmpdir(), 'weft-netpol-'));
after(async () => {
  for (const p of bg) p.kill('SIGKILL');
  // Podman's containers go first: their DEL needs the agents.
  for (const p of podmans) await p.cleanup();
  await lab?.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

const NS = ['x', 'y', 'z'];
const POD = ['a', 'b', 'c'];
const FLOWS: Array<[NetpolProtocol, number]> = [['TCP', 80], ['TCP', 81], ['UDP', 80], ['UDP', 81]];
const namespaces: OracleNamespace[] = NS.map((n) => ({ name: n, labels: { ns: n } }));
const PORTS = Object.fromEntries(FLOWS.map(([p, port]) => [`serve-${port}-${p.toLowerCase()}`, { port, protocol: p }]));

// SCTP by raw socket (these kernels have no SCTP module, so no SCTP socket; python3 is in the setup):
// `send DST PORT,PORT` sends one INIT per port, checksummed (CRC32c) as conntrack checks it; `listen
// SECONDS READYFILE N` makes READYFILE once its socket is open, then prints "SOURCE DPORT" for each SCTP
// packet that arrives, until N distinct ones came or SECONDS passed.
const SCTP_PROBE = String.raw`import socket, struct, sys, time, select
def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF
def init(sport, dport, tag):
    pkt = struct.pack('!HHII', sport, dport, 0, 0) + struct.pack('!BBHIIHHI', 1, 0, 20, tag, 65535, 1, 1, tag)
    return pkt[:8] + struct.pack('<I', crc32c(pkt)) + pkt[12:]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 132)
if sys.argv[1] == 'send':
    for i, dport in enumerate(sys.argv[3].split(',')):
        s.sendto(init(40000 + i, int(dport), 1000 + i), (sys.argv[2], 0))
else:
    open(sys.argv[3], 'w').close()
    end = time.time() + float(sys.argv[2])
    seen = set()
    while time.time() < end and len(seen) < int(sys.argv[4]):
        r, _, _ = select.select([s], [], [], max(0, end - time.time()))
        if not r: break
        data, addr = s.recvfrom(2048)
        ihl = (data[0] & 15) * 4
        port = struct.unpack('!HH', data[ihl:ihl + 4])[1]
        seen.add((addr[0], port))
        print(addr[0], port, flush=True)
`;

interface Pod extends OraclePod { ip6: string; netns: string; host: number; id: string; podman: boolean }

/** A pod as the oracle sees it in one family: its address of that family, the other as `also`. */
const inFamily = (p: Pod, family: 4 | 6): OraclePod => (family === 6 ? { ...p, ip: p.ip6, also: [p.ip] } : { ...p, also: [p.ip6] });

const np = (namespace: string, name: string, spec: NetworkPolicy['spec']): NetworkPolicy => ({ namespace, name, spec });
const anp = (name: string, priority: number, subject: AnpSubject, ingress: AnpRule[] = [], egress: AnpRule[] = []): AdminNetworkPolicy => ({ name, priority, subject, ingress, egress });

/** `relabel`: a pod's labels changed (PATCH, as `weft ep label`) for the case, and put back after it. */
interface Case { name: string; policies: NetworkPolicy[]; admin?: OracleAdmin; namespaces?: OracleNamespace[]; relabel?: { pod: string; labels: Record<string, string> } }

/** The documents POST /apply takes for a case's objects. */
function documentsOf(c: Case): unknown[] {
  const meta = (name: string, extra: object = {}) => ({ name, tenant: 'k8s', ...extra });
  const toRules = (rules: readonly AnpRule[], key: 'from' | 'to') => rules.map((r) => ({ ...(r.name ? { name: r.name } : {}), action: r.action, [key]: r.peers, ...(r.ports ? { ports: r.ports } : {}) }));
  return [
    ...(c.namespaces ?? namespaces).map((n) => ({ apiVersion: 'v1', kind: 'Namespace', metadata: meta(n.name, { labels: n.labels }) })),
    ...c.policies.map((p) => ({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: meta(p.name, { namespace: p.namespace }), spec: p.spec })),
    ...(c.admin?.anps ?? []).map((a) => ({ apiVersion: 'policy.networking.k8s.io/v1alpha1', kind: 'AdminNetworkPolicy', metadata: meta(a.name), spec: { priority: a.priority, subject: a.subject, ingress: toRules(a.ingress, 'from'), egress: toRules(a.egress, 'to') } })),
    ...(c.admin?.banp ? [{ apiVersion: 'policy.networking.k8s.io/v1alpha1', kind: 'BaselineAdminNetworkPolicy', metadata: meta('default'), spec: { subject: c.admin.banp.subject, ingress: toRules(c.admin.banp.ingress, 'from'), egress: toRules(c.admin.banp.egress, 'to') } }] : []),
  ];
}
const keyOf = (d: any) => `${d.kind}/${d.metadata.namespace ?? ''}/${d.metadata.name}`;

/** Probes every ordered pair on every flow in one family, all sources at once; the cells that differ from the oracle. */
async function mismatches(l: Lab, pods: Pod[], c: Case, family: 4 | 6 = 4): Promise<{ diff: string[]; allowed: number }> {
  const diff: string[] = [];
  let allowed = 0;
  const nss = c.namespaces ?? namespaces;
  // The UDP source ports of this round: the same for every source (their addresses differ), new in the run.
  const from = ports.take((pods.length - 1) * FLOWS.length);
  await Promise.all(pods.map(async (src) => {
    const targets = pods.filter((d) => d !== src).flatMap((dst) => FLOWS.map(([proto, port]) => ({ dst, proto, port })));
    const r = await l.exec(basename(src.netns), [process.execPath, join(dir, 'prober.js'), JSON.stringify(targets.map((t) => [family === 6 ? t.dst.ip6 : t.dst.ip, t.proto.toLowerCase(), t.port])), '800', String(from)], { timeoutMs: 15_000 });
    assert.equal(r.code, 0, `prober in ${src.namespace}/${src.name}: ${r.stderr}`);
    const got = JSON.parse(r.stdout) as boolean[];
    // A pod whose server is gone drops everything sent to it: say so, not 128 cells that differ.
    for (const [name, x] of servers) assert.ok(x.proc.exitCode === null && x.proc.signalCode === null, `the echo server of ${name} exited (${x.proc.exitCode ?? x.proc.signalCode}): ${readFileSync(x.err, 'utf8').slice(-500)}`);
    targets.forEach((t, i) => {
      const [a, b] = [{ pod: inFamily(src, family) }, { pod: inFamily(t.dst, family) }];
      const want = (c.admin ? adminVerdict(c.admin, c.policies, nss, a, b, t.proto, t.port) : netpolVerdict(c.policies, nss, a, b, t.proto, t.port)).allowed;
      if (want) allowed++;
      if (got[i] !== want) diff.push(`IPv${family} ${src.namespace}/${src.name} > ${t.dst.namespace}/${t.dst.name} ${t.proto}/${t.port}: packets ${got[i] ? 'pass' : 'drop'}, upstream ${want ? 'allows' : 'denies'}`);
    });
  }));
  return { diff: diff.sort(), allowed };
}

/** Applies exactly a case's objects (the last case's others deleted) and waits until the packets agree with the oracle (policy reaches both hosts). */
async function converge(l: Lab, pods: Pod[], c: Case, last: unknown[]): Promise<{ diff: string[]; allowed: number; ms: number; docs: unknown[] }> {
  const docs = documentsOf(c);
  const now = new Set(docs.map(keyOf));
  const gone = last.filter((d) => !now.has(keyOf(d)));
  if (gone.length > 0) assert.equal((await l.api('POST', '/api/v1/apply', { delete: true, documents: gone })).status, 200);
  const r = await l.api('POST', '/api/v1/apply', { documents: docs });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  // The relabelled pod's labels before the change, to put back after (pods is replaced below).
  let original: Record<string, string | null> = {};
  if (c.relabel) {
    const { pod, labels } = c.relabel;
    const target = pods.find((p) => `${p.namespace}/${p.name}` === pod) as Pod;
    original = Object.fromEntries(Object.keys(labels).map((k) => [k, target.labels[k] ?? null]));
    const put = await l.api('PATCH', `/api/v1/endpoints/${target.id}`, { labels });
    assert.equal(put.status, 200, JSON.stringify(put.json));
    pods = pods.map((p) => (p === target ? { ...p, labels: { ...p.labels, ...labels } } : p));
  }
  const t0 = Date.now();
  const both = async () => {
    const [m4, m6] = [await mismatches(l, pods, c, 4), await mismatches(l, pods, c, 6)];
    return { diff: [...m4.diff, ...m6.diff], allowed: m4.allowed + m6.allowed };
  };
  let m = await both();
  while (m.diff.length > 0 && Date.now() - t0 < 10_000) {
    await new Promise((res) => setTimeout(res, 500));
    m = await both();
  }
  if (c.relabel) {
    const target = pods.find((p) => `${p.namespace}/${p.name}` === c.relabel?.pod) as Pod;
    assert.equal((await l.api('PATCH', `/api/v1/endpoints/${target.id}`, { labels: original })).status, 200);
  }
  return { ...m, ms: Date.now() - t0, docs };
}

const ns = (n: string) => ({ matchLabels: { ns: n } });
const pod = (p: string) => ({ matchLabels: { pod: p } });
const CASES: Case[] = [
  { name: 'no policy', policies: [] },
  { name: 'deny all ingress in x', policies: [np('x', 'deny-ingress', { podSelector: {}, policyTypes: ['Ingress'] })] },
  { name: 'allow from the same namespace only, in y', policies: [np('y', 'same-ns', { podSelector: {}, ingress: [{ from: [{ podSelector: {} }] }] })] },
  { name: 'x/a from a namespace by label (ns=z)', policies: [np('x', 'from-z', { podSelector: pod('a'), ingress: [{ from: [{ namespaceSelector: ns('z') }] }] })] },
  { name: 'x/a from y/b only (pod AND namespace), TCP 80', policies: [np('x', 'a-from-yb', { podSelector: pod('a'), ingress: [{ from: [{ namespaceSelector: ns('y'), podSelector: pod('b') }], ports: [{ protocol: 'TCP', port: 80 }] }] })] },
  { name: 'x/a from namespace y or pod b of x (two peers)', policies: [np('x', 'a-from-y-or-b', { podSelector: pod('a'), ingress: [{ from: [{ namespaceSelector: ns('y') }, { podSelector: pod('b') }] }] })] },
  { name: 'named port on ingress: z serves serve-81-tcp only', policies: [np('z', 'named-in', { podSelector: {}, ingress: [{ ports: [{ port: 'serve-81-tcp' }] }] })] },
  { name: 'y sends only to serve-81-udp of pods (a named port on egress)', policies: [np('y', 'egress-named', { podSelector: {}, policyTypes: ['Egress'], egress: [{ to: [{ namespaceSelector: {} }], ports: [{ protocol: 'UDP', port: 'serve-81-udp' }] }] })] },
  { name: 'egress denied but DNS (UDP 53) from x', policies: [np('x', 'dns-only', { podSelector: {}, policyTypes: ['Egress'], egress: [{ ports: [{ protocol: 'UDP', port: 53 }] }] })] },
  { name: 'z/c: the pods network except x/b, ports 80-81 (endPort); a second policy allows x/b again; UDP from z (protocol only)', policies: [
    np('z', 'c-block', { podSelector: pod('c'), ingress: [{ from: [{ ipBlock: { cidr: '10.4.0.0/24', except: ['EXCEPT'] } }], ports: [{ protocol: 'TCP', port: 80, endPort: 81 }] }] }),
    np('z', 'c-again', { podSelector: { matchExpressions: [{ key: 'pod', operator: 'In', values: ['c'] }] }, ingress: [{ from: [{ namespaceSelector: ns('x'), podSelector: pod('b') }], ports: [{ protocol: 'TCP', port: 81 }] }] }),
    np('z', 'c-own', { podSelector: pod('c'), ingress: [{ from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'z' } } }], ports: [{ protocol: 'UDP' }] }] }),
  ] },
  { name: "x/a from the pods' IPv6 prefix but x/b's IPv6 address (an IPv6 ipBlock: it covers the pods in both families, x/b in neither)", policies: [
    np('x', 'a-block6', { podSelector: pod('a'), ingress: [{ from: [{ ipBlock: { cidr: 'fd00:4::/64', except: ['EXCEPT6'] } }] }] }),
  ] },
  { name: 'a namespace label changes: z joins ns=y (x/a from y, by label)', policies: [np('x', 'from-y', { podSelector: pod('a'), ingress: [{ from: [{ namespaceSelector: ns('y') }] }] })], namespaces: [{ name: 'x', labels: { ns: 'x' } }, { name: 'y', labels: { ns: 'y' } }, { name: 'z', labels: { ns: 'y' } }] },
  { name: 'AdminNetworkPolicy over NetworkPolicy: deny y into x at 10, allow y/b at 5, Pass z to NetworkPolicy; baseline denies x/c ingress', policies: [np('x', 'deny-ingress', { podSelector: {}, policyTypes: ['Ingress'] })], admin: {
    anps: [
      anp('deny-y', 10, { namespaces: ns('x') }, [{ action: 'Deny', peers: [{ namespaces: ns('y') }] }]),
      anp('allow-yb', 5, { namespaces: ns('x') }, [{ action: 'Allow', peers: [{ pods: { namespaceSelector: ns('y'), podSelector: pod('b') } }], ports: [{ portNumber: { protocol: 'TCP', port: 80 } }, { namedPort: 'serve-81-udp' }] }]),
      anp('pass-z', 1, { namespaces: {} }, [{ action: 'Pass', peers: [{ namespaces: ns('z') }] }, { action: 'Allow', peers: [{ namespaces: ns('z') }], ports: [{ portRange: { protocol: 'UDP', start: 80, end: 81 } }] }]),
    ],
    banp: { subject: { pods: { namespaceSelector: {}, podSelector: pod('c') } }, ingress: [{ action: 'Deny', peers: [{ namespaces: {} }] }], egress: [] },
  } },
  { name: "AdminNetworkPolicy networks in IPv6: x sends to the pods' IPv6 prefix only UDP 81 (it covers the pods in both families)", policies: [], admin: {
    anps: [anp('x-six', 3, { namespaces: ns('x') }, [], [
      { action: 'Allow', peers: [{ networks: ['fd00:4::/64'] }], ports: [{ portNumber: { protocol: 'UDP', port: 81 } }] },
      { action: 'Deny', peers: [{ networks: ['fd00:4::/64'] }] },
    ])],
  } },
  { name: "a pod's labels change: z/b (podman) relabelled pod=a, which z's policy isolates to x", relabel: { pod: 'z/b', labels: { pod: 'a' } }, policies: [np('z', 'a-from-x', { podSelector: pod('a'), ingress: [{ from: [{ namespaceSelector: ns('x') }] }] })] },
  { name: 'all the NetworkPolicies at once (stacked)', policies: [] },
];

test('NetworkPolicy truth table with real packets across two hosts, over IPv4 and IPv6: every cell as upstream decides it', { skip: !root && 'needs root', timeout: 480_000 }, async () => {
  // Drift repair slowed to minutes: the verify step breaks a host's table behind its agent's back.
  lab = await startLab('netpol', 2, { agentArgs: ['--resync', '600000'] });
  const l = lab;
  writeFileSync(join(dir, 'server.js'), ECHO_SERVER);
  writeFileSync(join(dir, 'prober.js'), PROBER);
  const setup = [
    { kind: 'Tenant', metadata: { name: 'k8s' } },
    { kind: 'Network', metadata: { name: 'pods', tenant: 'k8s' }, spec: { subnet: '10.4.0.0/24', subnet6: 'fd00:4::/64' } },
  ];
  const r = await l.api('POST', '/api/v1/apply', { documents: setup });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  for (const x of l.hosts) assert.ok(await within(5000, async () => existsSync(join(x.dir, 'net.d', 'weft-k8s-pods.conflist'))) >= 0);
  // The pods of x and y are lab namespaces given to the plugin as a runtime would; those of z are podman
  // containers, their namespace and labels passed as podman users do: CNI_ARGS in podman's environment.
  for (const h of l.hosts) podmans.push(await startPodman(join(h.dir, 'net.d'), [join(h.dir, 'bin')], h.ns));
  const pods: Pod[] = [];
  const portLabels = Object.entries(PORTS).map(([k, v]) => ({ key: `port.weft.io/${k}`, value: v.protocol === 'TCP' ? String(v.port) : `udp-${v.port}` }));
  for (const [i, ns] of NS.entries()) {
    for (const [j, name] of POD.entries()) {
      const host = (i * 3 + j) % 2;
      const labels = [{ key: 'pod', value: name }, ...portLabels];
      let netns: string;
      let ip: string;
      if (ns === 'z') {
        const env = { CNI_ARGS: `K8S_POD_NAMESPACE=${ns};WEFT_LABELS=${labels.map((x) => `${x.key}:${x.value}`).join(',')}` };
        const run = await podmans[host]!.run(['run', '-d', '--name', `${ns}-${name}`, ...RUN_FLAGS, '--network', 'weft-k8s-pods', IMAGE, 'sleep', '3600'], { env });
        assert.equal(run.code, 0, run.stderr);
        const inspect = await podmans[host]!.run(['inspect', `${ns}-${name}`, '--format', '{{.NetworkSettings.SandboxKey}} {{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}']);
        [netns = '', ip = ''] = inspect.stdout.trim().split(' ');
        assert.match(netns, /^\/run\/netns\//, inspect.stdout);
      } else {
        netns = await l.container(`${ns}${name}`);
        const add = await l.hosts[host]!.cni('ADD', { conflist: 'weft-k8s-pods', containerId: `${ns}${name}`, netns, env: { CNI_ARGS: `K8S_POD_NAMESPACE=${ns};K8S_POD_NAME=${name}` }, patch: { args: { cni: { labels } } } });
        assert.equal(add.code, 0, add.stdout);
        ip = add.json.ips[0].address.split('/')[0];
      }
      const ep = (await l.api('GET', '/api/v1/endpoints?tenant=k8s')).json.items.find((e: { ip: string }) => e.ip === ip);
      assert.ok(ep?.ip6, `${ns}/${name} has an endpoint at ${ip} with an IPv6 address`);
      assert.deepEqual([ep.labels.namespace, ep.labels.pod, ep.labels['port.weft.io/serve-81-udp']], [ns, name, 'udp-81'], `${ns}/${name}: its namespace and labels came through`);
      pods.push({ namespace: ns, name, labels: { pod: name }, ip, ip6: ep.ip6, ports: PORTS, netns, host, id: ep.id, podman: ns === 'z' });
      const err = join(dir, `server-${ns}-${name}.err`);
      const fd = openSync(err, 'w');
      const proc = spawn('nsenter', [`--net=${netns}`, process.execPath, join(dir, 'server.js'), '80', '81'], { stdio: ['ignore', 'ignore', fd] });
      closeSync(fd);
      bg.push(proc);
      servers.set(`${ns}/${name}`, { proc, err });
    }
  }
  await new Promise((res) => setTimeout(res, 1000));
  // The except is x/b's own address.
  const xb = pods.find((p) => p.namespace === 'x' && p.name === 'b') as Pod;
  const cases = JSON.parse(JSON.stringify(CASES).replaceAll('EXCEPT6', `${xb.ip6}/128`).replaceAll('EXCEPT', `${xb.ip}/32`)) as Case[];
  // The last: every NetworkPolicy of the cases before it, where each has its own name.
  const stacked = cases.slice(0, -1).filter((c) => !c.admin && !c.namespaces && !c.relabel).flatMap((c) => c.policies);
  (cases[cases.length - 1] as Case).policies = stacked.filter((p, i) => stacked.findIndex((q) => q.namespace === p.namespace && q.name === p.name) === i);
  let last: unknown[] = [];
  const summary: string[] = [];
  for (const c of cases) {
    const m = await converge(l, pods, c, last);
    summary.push(`${c.name}: ${m.allowed}/576 cells allowed (IPv4 and IPv6), agreed after ${m.ms} ms`);
    assert.deepEqual(m.diff, [], `${c.name}: ${m.diff.length} cells differ`);
    last = m.docs;
  }
  // SCTP ports: x/a takes SCTP on port 80 only. INITs to 80 and 81 from x/b and z/b (a podman pod, on
  // the other host) arrive at x/a on both ports without the policy, and only on 80 with it.
  writeFileSync(join(dir, 'sctp.py'), SCTP_PROBE);
  const at = (ns: string, name: string) => pods.find((p) => p.namespace === ns && p.name === name) as Pod;
  const [xa, senders] = [at('x', 'a'), [at('x', 'b'), at('z', 'b')]];
  let tries = 0;
  const sctpArrivals = async () => {
    // The senders start once the listener's socket is open (under load python3 takes a while to start:
    // a fixed head start let the INITs of the second sender arrive after the listener had gone).
    const ready = join(dir, `sctp-ready-${tries++}`);
    const listening = l.exec(basename(xa.netns), ['python3', join(dir, 'sctp.py'), 'listen', '3', ready, String(senders.length * 2)], { timeoutMs: 20_000 });
    assert.ok((await within(10_000, async () => existsSync(ready), 20)) >= 0, 'the SCTP listener started');
    const sent = await Promise.all(senders.map((s) => l.exec(basename(s.netns), ['python3', join(dir, 'sctp.py'), 'send', xa.ip, '80,81'])));
    for (const x of sent) assert.equal(x.code, 0, x.stderr);
    const got = await listening;
    assert.equal(got.code, 0, got.stderr);
    const names = new Map(pods.map((p) => [p.ip, `${p.namespace}/${p.name}`]));
    return [...new Set(got.stdout.trim().split('\n').filter(Boolean).map((line) => { const [ip, port] = line.split(' '); return `${names.get(ip as string)}:${port}`; }))].sort();
  };
  assert.equal((await l.api('POST', '/api/v1/apply', { delete: true, documents: last })).status, 200);
  const open = ['x/b:80', 'x/b:81', 'z/b:80', 'z/b:81'];
  let sctp = await sctpArrivals();
  for (const t1 = Date.now(); JSON.stringify(sctp) !== JSON.stringify(open) && Date.now() - t1 < 10_000;) sctp = await sctpArrivals();
  assert.deepEqual(sctp, open, 'without a policy, SCTP reaches x/a on every port');
  const sctpPolicy = { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: 'sctp-80', namespace: 'x', tenant: 'k8s' }, spec: { podSelector: pod('a'), ingress: [{ ports: [{ protocol: 'SCTP', port: 80 }] }] } };
  assert.equal((await l.api('POST', '/api/v1/apply', { documents: [sctpPolicy] })).status, 200);
  const t1 = Date.now();
  const only80 = ['x/b:80', 'z/b:80'];
  for (sctp = await sctpArrivals(); JSON.stringify(sctp) !== JSON.stringify(only80) && Date.now() - t1 < 10_000;) sctp = await sctpArrivals();
  summary.push(`SCTP port 80 only into x/a: ${sctp.join(', ')} arrived, ${Date.now() - t1} ms`);
  assert.deepEqual(sctp, only80, 'with the policy, only port 80');
  assert.equal((await l.api('POST', '/api/v1/apply', { delete: true, documents: [sctpPolicy] })).status, 200);

  // Audit mode: deny-all ingress into x applied with --audit. Nothing is dropped (the matrix of no
  // policy), and what it would drop went through each host's audit chain, counted.
  const deny = { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: 'deny-audit', namespace: 'x', tenant: 'k8s' }, spec: { podSelector: {}, policyTypes: ['Ingress'] } };
  assert.equal((await l.api('POST', '/api/v1/apply', { audit: true, documents: [deny] })).status, 200);
  const t0 = Date.now();
  const id = (await l.api('GET', '/api/v1/tenants/k8s')).json.id as number;
  const counted = async () => {
    let n = 0;
    for (const h of [0, 1]) {
      const r = await l.exec(`${l.tag}${h + 1}-t${id}`, ['nft', 'list', 'chain', 'inet', 'weft', 'audit']);
      n += Number(/counter packets (\d+)/.exec(r.stdout)?.[1] ?? 0);
    }
    return n;
  };
  assert.ok(await within(10_000, async () => (await l.exec(`${l.tag}1-t${id}`, ['nft', 'list', 'chain', 'inet', 'weft', 'audit'])).code === 0) >= 0, 'the audit chain is in place');
  const m = await mismatches(l, pods, { name: 'audit', policies: [] });
  summary.push(`deny all ingress in x, audit mode: ${m.allowed}/288 cells allowed, ${await counted()} would-be drops counted, ${Date.now() - t0} ms`);
  assert.deepEqual(m.diff, [], 'audit mode drops nothing');
  assert.ok((await counted()) >= 48, 'the 96 cells into x (TCP: first packets; UDP: each datagram) were counted as would-be drops');
  // weft verify: every pod probes every other from its own host, beside what the policy says. With the
  // stacked policies the packets agree everywhere; then host 1's forward chain is flushed behind its
  // agent's back (its drift repair is slowed to minutes here) and verify names exactly what now passes.
  const all = (cases[cases.length - 1] as Case).policies;
  assert.equal((await l.api('POST', '/api/v1/apply', { delete: true, documents: [deny] })).status, 200);
  const want = await converge(l, pods, { name: 'stacked', policies: all }, []);
  assert.deepEqual(want.diff, []);
  const flows = FLOWS.map(([p, port]) => `${port}/${p.toLowerCase()}`);
  const v = await l.api('POST', '/api/v1/tenants/k8s/verify', { flows, timeoutMs: 1000 });
  assert.equal(v.status, 200, JSON.stringify(v.json).slice(0, 500));
  summary.push(`weft verify, ${v.json.results.length} probes from 2 hosts: ${v.json.ms} ms, ${v.json.differ.length} differ`);
  assert.equal(v.json.results.length, 288);
  const byIp = new Map(pods.map((p) => [p.ip, p]));
  const ipOfId = new Map(v.json.endpoints.map((e: { id: string; ip: string }) => [e.id, e.ip]));
  // The policy side first: a wrong expectation would otherwise show as a cell the packets got "wrong".
  for (const r of v.json.results) {
    const [a, b] = [byIp.get(ipOfId.get(r.from) as string) as Pod, byIp.get(ipOfId.get(r.to) as string) as Pod];
    const [port, proto] = r.flow.split('/');
    assert.equal(r.expected, netpolVerdict(all, namespaces, { pod: a }, { pod: b }, proto.toUpperCase(), Number(port)).allowed, `the policy side agrees with the oracle: ${r.from} > ${r.to} ${r.flow}`);
  }
  if (v.json.differ.length > 0) {
    // What conntrack held for each differing cell on both hosts (an entry left by earlier traffic passes a datagram).
    for (const d of v.json.differ) {
      const [port, proto] = d.flow.split('/');
      for (const h of [1, 2]) {
        const ct = await l.exec(`${l.tag}${h}-t${id}`, ['conntrack', '-L', '-p', proto, '-s', ipOfId.get(d.from) as string, '-d', ipOfId.get(d.to) as string, '--dport', port]);
        console.error(`verify differs: ${JSON.stringify(d)}; host ${h} conntrack: ${ct.stdout.trim() || '(none)'}`);
      }
    }
  }
  assert.deepEqual([v.json.differ, v.json.missing, v.json.errors], [[], [], []]);
  const broken = await l.exec(`${l.tag}1-t${id}`, ['nft', 'flush', 'chain', 'inet', 'weft', 'forward']);
  assert.equal(broken.code, 0, broken.stderr);
  const after = await l.api('POST', '/api/v1/tenants/k8s/verify', { flows, timeoutMs: 1000 });
  const onHost1 = (eid: string) => (byIp.get(ipOfId.get(eid) as string) as Pod).host === 0;
  summary.push(`weft verify after host 1's forward chain was flushed: ${after.json.differ.length} cells differ, ${after.json.ms} ms`);
  assert.ok(after.json.differ.length > 0, 'the broken host is found');
  for (const d of after.json.differ) assert.ok(d.observed && !d.expected && (onHost1(d.from) || onHost1(d.to)), `only what host 1 should block passes: ${JSON.stringify(d)}`);
  console.log(summary.join('\n'));
  const counts = summary.slice(0, cases.length).map((s) => Number(/: (\d+)\/576/.exec(s)?.[1]));
  assert.equal(counts[0], 576, 'no policy: everything passes, in both families');
  assert.ok(counts.slice(1).every((n) => n < 576), `each policy set denies something: ${counts.join(', ')}`);
});
