import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { ProcessRunner, type RunResult } from '../exec/index.js';
import { contivTutorial, startTestHost, tutorialPods, within, type TestHost } from '../testkit/host.js';
import { startPodman, IMAGE, RUN_FLAGS, type Podman } from '../testkit/podman.js';
import { startDocker, type Docker } from '../testkit/docker.js';
import { WEFT_BIN } from '../testkit/server.js';

/**
 * `weft attach` / `weft detach` against the kernel, podman and dockerd (issue 17): an interface added to a
 * bare namespace, a running podman container and a running Docker container, with traffic, policy and
 * DNS on it; detach, and the container's end, release everything.
 */
const root = process.getuid?.() === 0;
const runner = new ProcessRunner();
let h: TestHost;
const bg: ChildProcess[] = [];
const pods = tutorialPods(() => h, bg);
let pm: Podman | undefined;
let docker: Docker | undefined;

before(async () => {
  if (!root) return;
  h = await startTestHost('att');
  await contivTutorial(h);
  for (const args of [['net', 'create', '-s', '10.1.3.0/24', 'side'], ['group', 'create', 'side', 'edge']]) {
    const r = await h.weft(args);
    assert.equal(r.code, 0, r.stderr);
  }
  assert.ok(await within(5000, async () => (await runner.run(['test', '-e', join(h.cniConfDir, 'weft-default-edge.conflist')], { allowFailure: true })).code === 0) >= 0);
});
after(async () => {
  for (const p of bg) p.kill('SIGKILL');
  await docker?.cleanup();
  await pm?.cleanup();
  await h?.cleanup();
});

/** `weft attach|detach ...` as root on the test host (its agent's socket), with extra environment. */
function weft(args: string[], env: Record<string, string> = {}): Promise<RunResult> {
  // Debian's docker client first (another `docker` may be earlier on PATH).
  const vars = Object.entries({ PATH: `/usr/bin:${process.env['PATH'] ?? ''}`, ...env }).map(([k, v]) => `${k}=${v}`);
  return runner.run(['env', ...vars, process.execPath, WEFT_BIN, ...args, '--run-dir', join(h.dir, 'run')], { allowFailure: true, timeoutMs: 90_000 });
}

const endpoints = async () => (await h.api('GET', '/api/v1/endpoints?tenant=default')).json.items as Array<{ id: string; ip: string; containerName?: string; attached?: unknown }>;

async function lookup(ns: string, name: string): Promise<string> {
  const r = await h.exec(ns, ['busybox', 'nslookup', '-type=a', name, '10.1.2.1'], { timeoutMs: 20_000 });
  return r.stdout + r.stderr;
}

test('a bare namespace gets an interface in group app: policy, DNS both ways, its own default route kept; detach removes it', { skip: !root && 'needs root' }, async () => {
  // srv named by its runtime (K8S_POD_NAME), so that DNS knows it.
  const added = await h.cni('ADD', { conflist: 'weft-default-db', containerId: 'srv', netns: await h.container('srv'), env: { CNI_ARGS: 'K8S_POD_NAME=srv' } });
  assert.equal(added.code, 0, added.stdout);
  pods.ip.set('srv', added.json.ips[0].address.split('/')[0]);
  await pods.listen('srv', 8888);
  await pods.listen('srv', 9999);
  const probe = pods.ns('probe');
  await h.container('probe');
  await runner.run(['ip', '-n', probe, 'route', 'add', 'blackhole', 'default']);
  const a = await weft(['attach', probe, '-n', 'contiv-net', '-g', 'app', '-o', 'json']);
  assert.equal(a.code, 0, a.stderr);
  const att = JSON.parse(a.stdout) as { ifname: string; ip: string; endpoint: string };
  assert.equal(att.ifname, 'eth1');
  const routes = (await h.exec(probe, ['ip', 'route', 'show', 'default'])).stdout;
  assert.match(routes, /blackhole default/, `the namespace's own default route stays: ${routes}`);
  assert.doesNotMatch(routes, /via 10\.1\.2\.1/);
  pods.ip.set('probe', att.ip);

  assert.ok(await within(5000, () => pods.reach('probe', 'srv', 8888)) >= 0, 'app → db:8888 is allowed by db-policy');
  assert.equal(await pods.reach('probe', 'srv', 9999), false, 'app → db:9999 is denied by db-policy');
  assert.match(await lookup(probe, 'srv.default.weft'), new RegExp(`Address: ${pods.ip.get('srv')!.replace(/\./g, '\\.')}`), 'the attached interface asks the tenant DNS');
  assert.match(await lookup(pods.ns('srv'), `${probe}.default.weft`), new RegExp(`Address: ${att.ip.replace(/\./g, '\\.')}`), 'others find it by its namespace name');

  // weft verify probes from the attached interface's own address, and agrees with the policy on it.
  const v = await h.api('POST', '/api/v1/tenants/default/verify', { flows: ['8888/tcp', '9999/tcp'], timeoutMs: 500 });
  assert.equal(v.status, 200, JSON.stringify(v.json).slice(0, 300));
  const fromProbe = (v.json.results as Array<{ from: string; to: string; flow: string; expected: boolean; observed: boolean }>).filter((r) => r.from === att.endpoint);
  assert.deepEqual(fromProbe.map((r) => [r.flow, r.expected, r.observed]).sort(), [['8888/tcp', true, true], ['9999/tcp', false, false]], JSON.stringify(v.json.results));
  assert.deepEqual(v.json.differ, [], 'packets and policy agree everywhere');

  const d = await weft(['detach', probe, '-n', 'contiv-net']);
  assert.equal(d.code, 0, d.stderr);
  assert.match(d.stdout, /^detached eth1 of namespace /);
  assert.notEqual((await h.exec(probe, ['ip', 'link', 'show', 'eth1'])).code, 0, 'the interface is gone');
  assert.deepEqual((await endpoints()).map((e) => e.containerName), ['srv'], 'its address is released; srv keeps its own');
});

test('a running podman container gets a second interface on another network; removing the container releases it', { skip: !root && 'needs root' }, async () => {
  pm = await startPodman(h.cniConfDir, [dirname(h.pluginPath)], h.hostNs);
  const web = await pm.run(['run', '-d', '--name', 'web', ...RUN_FLAGS, '--network', 'weft-default-db', IMAGE, 'sh', '-c', 'nc -ll -p 7777 -e /bin/cat']);
  assert.equal(web.code, 0, web.stderr);
  const a = await weft(['attach', 'web', '-n', 'side', '-g', 'edge', '-o', 'json'], pm.env);
  assert.equal(a.code, 0, a.stderr);
  const att = JSON.parse(a.stdout) as { ifname: string; ip: string };
  assert.equal(att.ifname, 'eth1', 'eth0 is podman\'s; the first free name is eth1');
  assert.match(att.ip, /^10\.1\.3\./);
  const route = await pm.run(['exec', 'web', 'ip', 'route', 'show', 'default']);
  assert.match(route.stdout, /via 10\.1\.2\.1 dev eth0/, `the container keeps its default route: ${route.stdout}`);

  const side = pods.ns('side1');
  const netns = await h.container('side1');
  const r = await h.cni('ADD', { conflist: 'weft-default-edge', containerId: 'side1', netns });
  assert.equal(r.code, 0, r.stdout);
  const echo = async () => (await h.exec(side, ['busybox', 'nc', '-w', '1', att.ip, '7777'], { input: 'hi\n' })).stdout.trim() === 'hi';
  assert.ok(await within(5000, echo) >= 0, 'a container of network side reaches web on its attached interface');
  assert.ok((await endpoints()).some((e) => e.ip === att.ip && e.containerName === 'web' && e.attached));

  const rm = await pm.run(['rm', '-f', '-t', '0', 'web']);
  assert.equal(rm.code, 0, rm.stderr);
  assert.ok(await within(20_000, async () => !(await endpoints()).some((e) => e.ip === att.ip)) >= 0, 'the agent released the attached interface once the container was gone');
});

test('a running Docker container gets an interface in group db; the policy holds on it; detach by --runtime docker', { skip: !root && 'needs root' }, async () => {
  docker = await startDocker(h.hostNs);
  const run = await docker.run(['run', '-d', '--name', 'dweb', '--network', 'none', 'bb', 'sh', '-c', 'nc -ll -p 8888 -e /bin/cat & nc -ll -p 9999 -e /bin/cat & wait']);
  assert.equal(run.code, 0, run.stderr);
  const env = { DOCKER_HOST: `unix://${docker.socket}` };
  const a = await weft(['attach', 'dweb', '--runtime', 'docker', '-n', 'contiv-net', '-g', 'db', '--default-route', '-o', 'json'], env);
  assert.equal(a.code, 0, a.stderr);
  const att = JSON.parse(a.stdout) as { ifname: string; ip: string };
  const route = await docker.run(['exec', 'dweb', 'ip', 'route', 'show', 'default']);
  assert.match(route.stdout, new RegExp(`via 10\\.1\\.2\\.1 dev ${att.ifname}`), `--default-route: ${route.stdout}`);

  await pods.run('client', 'app');
  pods.ip.set('dweb', att.ip);
  assert.ok(await within(5000, () => pods.reach('client', 'dweb', 8888)) >= 0, 'app → db:8888 reaches the Docker container');
  assert.equal(await pods.reach('client', 'dweb', 9999), false, 'db-policy denies 9999 on the attached interface too');

  const d = await weft(['detach', 'dweb', '--runtime', 'docker', '-n', 'contiv-net'], env);
  assert.equal(d.code, 0, d.stderr);
  assert.equal((await docker.run(['exec', 'dweb', 'ip', 'link', 'show', att.ifname])).code === 0, false, 'the interface left the container');
  assert.ok(!(await endpoints()).some((e) => e.ip === att.ip), 'its address is released');
  const again = await weft(['detach', 'dweb', '--runtime', 'docker', '-n', 'contiv-net'], env);
  assert.equal(again.code, 3, again.stderr);
});

test('attach refuses what it must not wire, naming why, and leaves nothing', { skip: !root && 'needs root' }, async () => {
  const before = (await endpoints()).length;
  const cases: Array<[string[], number, RegExp]> = [
    [['attach', `/run/netns/${h.hostNs}`, '-n', 'contiv-net'], 2, /network namespace of this host|refusing to wire/],
    [['attach', 'no-such-thing-anywhere', '-n', 'contiv-net'], 3, /no namespace or container no-such-thing-anywhere/],
    [['attach', '/proc/1/ns/net', '-n', 'contiv-net'], 2, /TARGET: \/proc\/1\/ns\/net dies with its process/],
  ];
  for (const [args, code, message] of cases) {
    const r = await weft(args);
    assert.match(r.stderr, message, args.join(' '));
    assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`);
  }
  assert.equal((await endpoints()).length, before, 'nothing was allocated');
  // The host namespace is the agent's own (it runs inside the test host): nothing was added there.
  assert.notEqual((await runner.run(['ip', '-n', h.hostNs, 'link', 'show', 'eth1'], { allowFailure: true })).code, 0);
});
