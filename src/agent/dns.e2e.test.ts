import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { startTestHost, within, type TestHost } from '../testkit/host.js';

const root = process.getuid?.() === 0;
let h: TestHost;
let upstream: ChildProcess | undefined;
const UPSTREAM_PORT = 5399;

const ns = (n: string) => `${h.tag}-${n}`;
async function run(name: string, conflist: string): Promise<any> {
  const netns = await h.container(name);
  const r = await h.cni('ADD', { conflist, containerId: name, netns, env: { CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAME=${name}` } });
  assert.equal(r.code, 0, r.stdout);
  return r.json;
}
/** busybox nslookup against the container's gateway: the addresses it printed, or the error it reported. */
async function lookup(from: string, name: string, server: string): Promise<string> {
  const r = await h.exec(ns(from), ['busybox', 'nslookup', '-type=a', name, server], { timeoutMs: 20_000 });
  const err = /can't find [^:]*: (\S+)/.exec(r.stdout + r.stderr)?.[1];
  if (err) return err;
  const answers = r.stdout.split('\n').slice(2).filter((l) => l.startsWith('Address')).map((l) => l.replace(/^Address[^:]*:\s*/, '').trim());
  return answers.join(',') || `nothing: ${r.stdout}${r.stderr}`;
}

before(async () => {
  if (!root) return;
  h = await startTestHost('dn');
  const steps = [
    ['net', 'create', '-s', '10.1.2.0/24', '-g', '10.1.2.1', 'contiv-net'],
    ['group', 'create', 'contiv-net', 'db'],
    ['service', 'create', '-s', 'contiv-net', '-l', 'group=db', '-p', '80:8888:TCP', '--ip', '10.1.2.200', 'dbsvc'],
    ['tenant', 'create', 'blue'],
    ['net', 'create', '-t', 'blue', '-s', '10.1.2.0/24', '-g', '10.1.2.1', 'contiv-net'],
  ];
  for (const args of steps) {
    const r = await h.weft(args);
    assert.equal(r.code, 0, `weft ${args.join(' ')}: ${r.stderr}`);
  }
  assert.ok(await within(5000, async () => existsSync(join(h.cniConfDir, 'weft-blue-contiv-net.conflist'))) >= 0);
  // A real upstream server in the test's host namespace, answering one outside name.
  upstream = spawn('nsenter', [`--net=/run/netns/${h.hostNs}`, 'dnsmasq', '--keep-in-foreground', '--no-resolv', '--no-hosts', '--bind-interfaces',
    '--listen-address=127.0.0.1', `--port=${UPSTREAM_PORT}`, '--address=/outside.example/192.0.2.55', '--local=/example/', '--pid-file=', '--log-facility=-'], { stdio: 'ignore' });
});
after(async () => {
  upstream?.kill('SIGKILL');
  await h?.cleanup();
});

test('containers resolve services and containers of their tenant, never of another; other names go upstream', { skip: !root && 'needs root' }, async () => {
  const db = await run('db1', 'weft-default-db');
  assert.deepEqual(db.dns, { nameservers: ['10.1.2.1'], search: ['default.weft'] }, 'the CNI result names the resolver and search domain');
  await run('app1', 'weft-default-contiv-net');
  await run('spy', 'weft-blue-contiv-net');
  const dbIp = db.ips[0].address.split('/')[0];

  assert.ok(await within(3000, async () => (await lookup('app1', 'dbsvc', '10.1.2.1')) === '10.1.2.200') >= 0, 'dbsvc resolves to its VIP');
  assert.equal(await lookup('app1', 'dbsvc.default.weft', '10.1.2.1'), '10.1.2.200');
  assert.equal(await lookup('app1', 'db1', '10.1.2.1'), dbIp, 'containers resolve by name');
  assert.equal(await lookup('app1', 'DB1.Default.Weft', '10.1.2.1'), dbIp, 'case does not matter');
  assert.equal(await lookup('app1', 'nothing.default.weft', '10.1.2.1'), 'NXDOMAIN');
  // The same question from tenant blue, on the same gateway address: nothing.
  assert.equal(await lookup('spy', 'dbsvc.default.weft', '10.1.2.1'), 'NXDOMAIN', "another tenant's service");
  assert.equal(await lookup('spy', 'db1.default.weft', '10.1.2.1'), 'NXDOMAIN', "another tenant's container");
  assert.equal(await lookup('spy', 'dbsvc', '10.1.2.1'), 'REFUSED', 'a bare name unknown in blue goes upstream, and there is none');

  // A deny-by-default tenant still reaches its DNS.
  assert.equal((await h.api('PATCH', '/api/v1/tenants/blue', { defaultAction: 'deny' })).status, 200);
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(await lookup('spy', 'nothing.blue.weft', '10.1.2.1'), 'NXDOMAIN', 'answered in a deny-by-default tenant');

  // Outside names: refused at once without an upstream; with one, forwarded.
  assert.equal(await lookup('app1', 'outside.example', '10.1.2.1'), 'REFUSED');
  await h.stopAgent();
  await h.startAgent(['--dns-upstream', `127.0.0.1:${UPSTREAM_PORT}`]);
  assert.ok(await within(5000, async () => (await lookup('app1', 'outside.example', '10.1.2.1')) === '192.0.2.55') >= 0, 'forwarded upstream');
  assert.equal(await lookup('app1', 'missing.example', '10.1.2.1'), 'NXDOMAIN', "upstream's NXDOMAIN comes back");
  assert.equal(await lookup('app1', 'db1', '10.1.2.1'), dbIp, 'own names still answered locally');

  // A dead first server: the next one answers.
  await h.stopAgent();
  await h.startAgent(['--dns-upstream', `127.0.0.1:9,127.0.0.1:${UPSTREAM_PORT}`]);
  assert.ok(await within(5000, async () => (await lookup('app1', 'outside.example', '10.1.2.1')) === '192.0.2.55') >= 0, 'the second upstream answered');

  // TCP too (a resolver retries over TCP after a truncated answer).
  const tcp = await h.exec(ns('app1'), ['sh', '-c', `printf '\\000\\044\\022\\064\\001\\000\\000\\001\\000\\000\\000\\000\\000\\000\\005dbsvc\\007default\\004weft\\000\\000\\001\\000\\001' | busybox nc -w 2 10.1.2.1 53 | od -An -tu1`]);
  const bytes = tcp.stdout.trim().split(/\s+/).map(Number);
  assert.deepEqual(bytes.slice(-4), [10, 1, 2, 200], `the TCP answer carries the VIP: ${tcp.stdout}`);

  // A name goes away with its container.
  const del = await h.cni('DEL', { conflist: 'weft-default-db', containerId: 'db1', netns: `/run/netns/${ns('db1')}` });
  assert.equal(del.code, 0, del.stdout);
  assert.ok(await within(2000, async () => (await lookup('app1', 'db1.default.weft', '10.1.2.1')) === 'NXDOMAIN') >= 0, 'db1 is gone from DNS');
});
