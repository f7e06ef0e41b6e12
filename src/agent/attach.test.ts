import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { MemoryDatapath, names } from '../datapath/index.js';
import { handleCni } from '../plugins/cni/index.js';
import { runCli } from '../cli/program.js';
import type { Daemons } from '../cli/commands/daemon.js';
import { callAgent } from '../cli/commands/attach.js';
import { containerTarget, namespaceTarget } from '../cli/target.js';
import { parseAttachRequest } from '../model/index.js';
import { http, startServerProcess, type ServerProcess } from '../testkit/server.js';
import { inviteHost, within } from '../testkit/host.js';
import type { Agent } from './agent.js';
import { startMemoryAgent } from './testing.js';

/**
 * `weft attach` / `weft detach` without root: a real server process, a real agent in this process on the
 * in-memory datapath, and the CLI run in this process against the agent's socket. Namespaces are plain
 * files the memory datapath knows (the kernel's part is attach.e2e.test.ts).
 */
const log = pino({ level: process.env['WEFT_TEST_LOG'] ?? 'silent' });
let server: ServerProcess;
let dir: string;
let dp: MemoryDatapath;
let agent: Agent;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'weft-attach-unit-'));
  server = await startServerProcess();
  dp = new MemoryDatapath('a-');
  agent = await startMemoryAgent({
    serverUrl: server.url, invite: () => inviteHost(server.url, server.token, 'node1'), dir, dp, nsPrefix: 'a-', host: 'node1', resyncMs: 200, repairGraceMs: 0, log,
  });
  const ok = async (m: string, p: string, b?: unknown) => assert.ok((await http(server.url, server.token, m, p, b)).status < 300, `${m} ${p}`);
  await ok('POST', '/api/v1/tenants/default/networks', { name: 'net', subnet: '10.1.2.0/24' });
  await ok('POST', '/api/v1/tenants/default/groups', { name: 'db', network: 'net' });
  assert.ok(await within(5000, async () => agent.state.groups.has('default/db')) >= 0);
});

after(async () => {
  await agent?.stop();
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function namespace(name: string): string {
  const path = join(dir, 'netns', name);
  mkdirSync(join(dir, 'netns'), { recursive: true });
  writeFileSync(path, '');
  dp.addContainer(path);
  return path;
}

async function weft(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runCli([...argv, '--run-dir', join(dir, 'run')], { out: (t) => (out += t), err: (t) => (err += t), env: {} }, {} as Daemons);
  return { code, out, err };
}

const endpoints = async () => (await http(server.url, server.token, 'GET', '/api/v1/endpoints?tenant=default')).json.items as any[];

test('attach gives a namespace eth1, then eth2, on its subnet only unless asked; detach releases them', async () => {
  const path = namespace('probe');
  const a = await weft('attach', path, '-n', 'net', '-g', 'db', '-o', 'json');
  assert.equal(a.code, 0, a.err);
  const first = JSON.parse(a.out);
  assert.equal(first.ifname, 'eth1', 'the first free ethN from 1');
  assert.match(first.ip, /^10\.1\.2\./);
  assert.equal(dp.containers.get(path)?.get('eth1')?.gateway, undefined, 'no default route through an attached interface by default');
  const ep = (await endpoints()).find((e) => e.id === first.endpoint);
  assert.deepEqual([ep?.attached, ep?.group, ep?.containerName, ep?.containerId], [{ defaultRoute: false }, 'db', 'probe', `netns-${statSync(path).ino}`]);

  const b = await weft('attach', path, '-n', 'net', '--ip', '10.1.2.77', '--default-route');
  assert.equal(b.code, 0, b.err);
  assert.match(b.out, /^attached eth2 10\.1\.2\.77\/24 .* \(default route\)/);
  assert.equal(dp.containers.get(path)?.get('eth2')?.gateway, '10.1.2.1', '--default-route routes through it');

  const taken = await weft('attach', path, '-n', 'net', '--ifname', 'eth1');
  assert.equal(taken.code, 4, taken.err);
  assert.match(taken.err, /ifname: the target already has an interface eth1/);

  // By its endpoint id (what `weft endpoint ls` shows), whatever became of the target's name.
  const eth2 = (await endpoints()).find((e) => e.ifname === 'eth2' && e.attached);
  const one = await weft('detach', '--endpoint', eth2.id, '-n', 'net');
  assert.equal(one.code, 0, one.err);
  assert.match(one.out, new RegExp(`^detached eth2 of endpoint ${eth2.id} `));
  const runtimes = await weft('detach', '--endpoint', 'f'.repeat(16), '-n', 'net');
  assert.equal(runtimes.code, 3, runtimes.err);
  assert.match(runtimes.err, /is not an interface weft attach made on network default\/net on this host/);
  assert.deepEqual((await endpoints()).map((e) => e.ip), [first.ip], 'only eth2 was released');
  const rest = await weft('detach', path, '-n', 'net');
  assert.equal(rest.code, 0, rest.err);
  assert.equal((await endpoints()).length, 0);
  const again = await weft('detach', path, '-n', 'net');
  assert.equal(again.code, 3, 'nothing left to detach is not found');
  assert.match(again.err, /no interface of this target is attached to network default\/net/);
});

test("an attach never takes a runtime's interface over, nor a runtime an attached one", async () => {
  const path = namespace('mixed');
  const env = (ifname: string) => ({ CNI_COMMAND: 'ADD', CNI_CONTAINERID: `netns-${statSync(path).ino}`, CNI_NETNS: path, CNI_IFNAME: ifname, CNI_PATH: '/opt/cni/bin' });
  const conf = JSON.stringify({ cniVersion: '1.0.0', name: 'weft-default-db', type: 'weft', network: 'net', group: 'db' });
  const a = await weft('attach', path, '-n', 'net', '-o', 'json');
  assert.equal(a.code, 0, a.err);
  // The runtime's eth1 (its ADD for the same container id) is refused: the attached one stays.
  dp.containers.get(path)?.delete('eth1');
  const add = await handleCni(agent.cni, env('eth1'), conf);
  assert.notEqual(add.code, 0, add.stdout);
  assert.match(add.stdout, /interface eth1 of container .* was made by weft attach/);
  assert.deepEqual((await endpoints()).filter((e) => e.attached).map((e) => e.ip), [JSON.parse(a.out).ip]);
  // And a runtime's eth0, its interface gone for a moment, is not taken by an attach naming eth0.
  const rt = await handleCni(agent.cni, env('eth0'), conf);
  assert.equal(rt.code, 0, rt.stdout);
  dp.containers.get(path)?.delete('eth0');
  const over = await weft('attach', path, '-n', 'net', '--ifname', 'eth0');
  assert.equal(over.code, 4, over.err);
  assert.match(over.err, /is the container runtime's; nothing was released/);
  assert.ok((await endpoints()).some((e) => e.ifname === 'eth0' && e.attached === undefined), "the runtime's endpoint stands");
  const d = await weft('detach', path, '-n', 'net');
  assert.equal(d.code, 0, d.err);
  assert.match(d.out, /^detached eth1 /, "detach leaves the runtime's eth0");
  assert.equal(await handleCni(agent.cni, { ...env('eth0'), CNI_COMMAND: 'DEL' }, conf).then((r) => r.code), 0);
});

test('two attaches to one target at once get eth1 and eth2, each its own address', async () => {
  const path = namespace('twice');
  const [a, b] = await Promise.all([weft('attach', path, '-n', 'net', '-o', 'json'), weft('attach', path, '-n', 'net', '-o', 'json')]);
  assert.equal(a.code + b.code, 0, a.err + b.err);
  const got = [JSON.parse(a.out), JSON.parse(b.out)];
  assert.deepEqual(got.map((x) => x.ifname).sort(), ['eth1', 'eth2']);
  const mine = (await endpoints()).filter((e) => e.containerId === `netns-${statSync(path).ino}`);
  assert.deepEqual(mine.map((e) => e.ip).sort(), got.map((x) => x.ip).sort(), 'both endpoints stand, with the addresses reported');
  assert.equal((await weft('detach', path, '-n', 'net')).code, 0);
});

test("runtimes' GC leaves attached interfaces alone; the agent releases them when their namespace goes", async () => {
  const path = namespace('gone');
  const a = await weft('attach', path, '-n', 'net', '-g', 'db', '-o', 'json');
  assert.equal(a.code, 0, a.err);
  const gc = await handleCni(agent.cni, { CNI_COMMAND: 'GC', CNI_PATH: '/opt/cni/bin' },
    JSON.stringify({ cniVersion: '1.1.0', name: 'weft-default-db', type: 'weft', network: 'net', group: 'db', 'cni.dev/valid-attachments': [] }));
  assert.equal(gc.code, 0, gc.stdout);
  assert.equal((await endpoints()).length, 1, 'a GC of the scope listing nothing kept the attached interface');
  dp.removeContainer(path);
  assert.ok(await within(10_000, async () => (await endpoints()).length === 0) >= 0, 'released once its namespace is gone');
});

test('an attached interface whose veth vanished is released, never wired again (its path may name another namespace by now)', async () => {
  const path = namespace('remade');
  const a = await weft('attach', path, '-n', 'net', '-o', 'json');
  assert.equal(a.code, 0, a.err);
  const { endpoint } = JSON.parse(a.out) as { endpoint: string };
  const ns = [...dp.namespaces.entries()].find(([, n]) => n.links.has(names.endpointVeth(endpoint)));
  assert.ok(ns, 'the veth is on a tenant bridge');
  ns[1].links.delete(names.endpointVeth(endpoint));
  dp.containers.get(path)?.clear();
  assert.ok(await within(10_000, async () => !(await endpoints()).some((e) => e.id === endpoint)) >= 0, 'released');
  assert.equal(dp.containers.get(path)?.size, 0, 'nothing was wired into the namespace again');
});

test('bad input names the flag and changes nothing', async () => {
  const path = namespace('bad');
  const cases: Array<[string[], number, RegExp]> = [
    [['--ip', '10.1.2'], 2, /^--ip: "10\.1\.2" is not an IPv4 address/],
    [['--mac', '01:00:00:00:00:01'], 2, /^--mac: 01:00:00:00:00:01 is a multicast address/],
    [['--ifname', 'lo'], 2, /^--ifname: "lo" cannot be attached/],
    [['--ifname', 'a-name-too-long-for-linux'], 2, /^--ifname: .* is not an interface name/],
    [['--label', 'novalue'], 2, /^--label: 'novalue' is not KEY=VALUE/],
    [['--label', 'k=v v'], 2, /^--label k: "v v" is not a label value/],
    [['-g', 'Bad_Group'], 2, /^--group: "Bad_Group" is not a name/],
    [['-g', 'nope'], 2, /^group: group default\/nope does not exist/],
    [['--ip', '10.9.9.9'], 2, /10\.9\.9\.9/],
  ];
  for (const [flags, code, message] of cases) {
    const r = await weft('attach', path, '-n', 'net', ...flags);
    assert.equal(r.code, code, `${flags.join(' ')}: ${r.err}`);
    assert.match(r.err.replace(/^weft: /, ''), message, flags.join(' '));
  }
  const proc = await weft('attach', '/proc/self/ns/net', '-n', 'net');
  assert.equal(proc.code, 2);
  assert.match(proc.err, /TARGET: \/proc\/[0-9]+\/ns\/net dies with its process|TARGET: \/proc\/self\/ns\/net dies with its process/);
  // A link (to /proc/PID/ns/net, say) is refused by the agent; so is a folder link leading into /proc.
  symlinkSync('/proc/self/ns/net', join(dir, 'netns', 'link'));
  await assert.rejects(callAgent(join(dir, 'run', 'agent.sock'), 'attach', { tenant: 'default', network: 'net', netns: join(dir, 'netns', 'link'), containerId: 'x' }), /netns: .*\/link is a symbolic link/);
  symlinkSync('/proc/self/ns', join(dir, 'nsdir'));
  await assert.rejects(callAgent(join(dir, 'run', 'agent.sock'), 'attach', { tenant: 'default', network: 'net', netns: join(dir, 'nsdir', 'net'), containerId: 'x' }), /netns: .*\/nsdir\/net is a symbolic link/);
  const missing = await weft('attach', join(dir, 'netns', 'none'), '-n', 'net');
  assert.equal(missing.code, 3, missing.err);
  const noNet = await weft('attach', path, '-n', 'nonet');
  assert.notEqual(noNet.code, 0);
  assert.match(noNet.err, /network default\/nonet/);
  const noAgent = await runCli(['attach', path, '-n', 'net', '--run-dir', join(dir, 'nowhere')], { out: () => undefined, err: () => undefined, env: {} }, {} as Daemons);
  assert.equal(noAgent, 6, 'no agent socket: unavailable');
  assert.equal((await endpoints()).length, 0, 'nothing was allocated');
  assert.deepEqual([...(dp.containers.get(path)?.keys() ?? [])], [], 'nothing was wired');

  // The socket itself, as a hostile local caller might use it: every field checked again by the agent.
  const sock = join(dir, 'run', 'agent.sock');
  await assert.rejects(callAgent(sock, 'attach', { tenant: 'default', network: 'net', netns: path, containerId: 'x', extra: 1 } as never), /extra: unknown field/);
  await assert.rejects(callAgent(sock, 'attach', { tenant: 'default', network: 'net', netns: '/run/../proc/1/ns/net', containerId: 'x' }), /netns: .* holds "\.\."/);
  await assert.rejects(callAgent(sock, 'attach', { tenant: 'default', network: 'net', netns: path, containerId: '../x' }), /containerId: /);
  await assert.rejects(callAgent(sock, 'detach', { tenant: 'default', network: 'net' } as never), /containerId: give the target \(containerId\) or one endpoint, not both or neither/);
  await assert.rejects(callAgent(sock, 'detach', { tenant: 'default', network: 'net', containerId: 'x', endpoint: '0123456789abcdef' }), /not both or neither/);
  const badId = await weft('detach', '--endpoint', 'nothex', '-n', 'net');
  assert.equal(badId.code, 2);
  assert.match(badId.err, /--endpoint: "nothex" is not an endpoint id/);
  const neither = await weft('detach', '-n', 'net');
  assert.equal(neither.code, 2);
  assert.match(neither.err, /give TARGET or --endpoint ID/);
  assert.equal((await endpoints()).length, 0);
});

test("a container as podman's or docker's inspect shows it, and a namespace by name or path", () => {
  const running = JSON.stringify([{ Id: 'a'.repeat(64), Name: '/web', State: { Running: true }, NetworkSettings: { SandboxKey: '/var/run/docker/netns/abc' } }]);
  assert.deepEqual(containerTarget('docker', 'web', running), { netns: '/var/run/docker/netns/abc', containerId: 'a'.repeat(64), name: 'web', what: 'docker container web' });
  const stopped = JSON.stringify([{ Id: 'b'.repeat(64), Name: 'db', State: { Running: false, Status: 'exited' }, NetworkSettings: { SandboxKey: '' } }]);
  assert.throws(() => containerTarget('podman', 'db', stopped), /podman container db is not running \(exited\)/);
  const hostNet = JSON.stringify([{ Id: 'c'.repeat(64), Name: 'h', State: { Running: true }, NetworkSettings: { SandboxKey: '' } }]);
  assert.throws(() => containerTarget('podman', 'h', hostNet), /no network namespace of its own/);
  assert.throws(() => containerTarget('docker', 'x', 'not json'), /not JSON/);
  assert.equal(namespaceTarget('surely-no-such-namespace-here'), undefined);
  const path = namespace('byname');
  assert.equal(namespaceTarget(path)?.containerId, `netns-${statSync(path).ino}`);
  assert.throws(() => parseAttachRequest('{"tenant":"default","network":"net","netns":"/proc/7/ns/net","containerId":"x"}'), /pin the namespace first/);
});
