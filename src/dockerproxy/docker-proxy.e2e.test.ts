import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { ProcessRunner } from '../exec/index.js';
import { startTestHost, within, type TestHost } from '../testkit/host.js';
import { startDocker, type Docker } from '../testkit/docker.js';
import { WEFT_BIN } from '../testkit/server.js';

/**
 * `weft docker-proxy` in front of a real dockerd, used by the real docker CLI: WEFT_* containers land on
 * Weft, streams (attach, exec, logs, events) pass, and an adapter written here (Powerstrip protocol v1)
 * changes, watches and refuses calls.
 */
const root = process.getuid?.() === 0;
const DRIVER = `weft-p${process.pid}`;
const runner = new ProcessRunner();
let h: TestHost;
let dk: Docker;
let proxy: ChildProcess | undefined;
let adapter: http.Server | undefined;
let proxySock = '';
const hookLog: Array<{ Type: string; Request: string; Code?: number }> = [];

async function weft(...args: string[]): Promise<void> {
  const r = await h.weft(args);
  assert.equal(r.code, 0, `weft ${args.join(' ')}: ${r.stderr}`);
}
const viaProxy = (args: string[], timeoutMs = 60_000) => runner.run(['/usr/bin/docker', '-H', `unix://${proxySock}`, ...args], { allowFailure: true, timeoutMs });
const endpoints = async (tenant: string) => (await h.api('GET', `/api/v1/endpoints?tenant=${tenant}`)).json.items as any[];

/** The test's adapter: labels every container `audited=yes`, refuses one labelled `forbidden`, logs every envelope. */
async function startAdapter(): Promise<string> {
  adapter = http.createServer((req, res) => {
    let text = '';
    req.on('data', (d) => (text += d));
    req.on('end', () => {
      const env = JSON.parse(text);
      hookLog.push({ Type: env.Type, Request: env.ClientRequest.Request, ...(env.ServerResponse ? { Code: env.ServerResponse.Code } : {}) });
      const reply = (o: unknown) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ PowerstripProtocolVersion: 1, ...o as object }));
      if (env.Type === 'post-hook') return reply({ ModifiedServerResponse: env.ServerResponse });
      const body = JSON.parse(env.ClientRequest.Body);
      if (body.Labels?.forbidden) return res.writeHead(403, { 'content-type': 'application/json' }).end('{"message":"the audit adapter forbids this container"}');
      body.Labels = { ...body.Labels, audited: 'yes' };
      reply({ ModifiedClientRequest: { ...env.ClientRequest, Body: JSON.stringify(body) } });
    });
  });
  await new Promise<void>((r) => adapter!.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(adapter.address() as { port: number }).port}/hook`;
}

before(async () => {
  if (!root) return;
  h = await startTestHost('dp', { agentArgs: ['--docker-plugin', `/run/docker/plugins/${DRIVER}.sock`, '--repair-grace', '2000'] });
  await weft('tenant', 'create', 'blue');
  await weft('net', 'create', '-t', 'blue', '-s', '10.1.2.0/24', '-g', '10.1.2.1', 'contiv-net');
  await weft('group', 'create', '-t', 'blue', 'contiv-net', 'db');
  await weft('group', 'create', '-t', 'blue', 'contiv-net', 'app');
  dk = await startDocker(h.hostNs);
  await h.stopAgent();
  await h.startAgent(['--docker-api', dk.socket]);
  const url = await startAdapter();
  const config = join(h.dir, 'adapters.yml');
  writeFileSync(config, `endpoints:\n  "POST /*/containers/create":\n    pre: [weft, audit]\n  "POST /*/containers/*/start":\n    post: [audit]\nadapters:\n  audit: ${url}\n`);
  proxySock = join(h.dir, 'proxy.sock');
  proxy = spawn(process.execPath, [WEFT_BIN, 'docker-proxy', '--listen', proxySock, '--docker', `unix://${dk.socket}`, '--driver', DRIVER, '--config', config, '--group', '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  assert.ok(await within(10_000, async () => (await viaProxy(['version', '--format', '{{.Server.Version}}'], 5000)).code === 0, 200) >= 0, 'the proxy serves Docker');
});
after(async () => {
  if (proxy?.pid && proxy.exitCode === null) {
    const gone = new Promise((r) => proxy!.once('exit', r));
    process.kill(proxy.pid, 'SIGTERM');
    await gone;
  }
  await new Promise((r) => (adapter ? adapter.close(r) : r(undefined)));
  await dk?.cleanup();
  await h?.cleanup();
  rmSync(`/run/docker/plugins/${DRIVER}.sock`, { force: true });
});

test('docker run -e WEFT_* through the proxy lands on Weft; attached runs, exec, logs and events stream through it', { skip: !root && 'needs root' }, async () => {
  const db = await viaProxy(['run', '-d', '--name', 'db1', '-e', 'WEFT_TENANT=blue', '-e', 'WEFT_NETWORK=contiv-net', '-e', 'WEFT_GROUP=db', 'bb', 'nc', '-ll', '-p', '8888', '-e', '/bin/cat']);
  assert.equal(db.code, 0, db.stderr);
  const eps = await endpoints('blue');
  assert.equal(eps.length, 1, JSON.stringify(eps));
  assert.deepEqual([eps[0].network, eps[0].group], ['contiv-net', 'db']);
  const net = await dk.run(['network', 'inspect', 'weft.blue.contiv-net.db', '--format', '{{.Driver}} {{.IPAM.Driver}} {{index .Options "group"}}']);
  assert.equal(net.stdout.trim(), `${DRIVER} ${DRIVER} db`, 'the proxy made the Docker network of Weft\'s driver');
  const ip = (await dk.run(['inspect', 'db1', '--format', '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}'])).stdout.trim();
  assert.equal(ip, eps[0].ip);

  // Attached: the CLI's attach is an upgraded connection, spliced by the proxy; labels show the adapter ran.
  const app = await viaProxy(['run', '--rm', '--label', 'weft.tenant=blue', '-e', 'WEFT_GROUP=app', 'bb', 'sh', '-c', `echo hi | nc -w 2 ${ip} 8888`]);
  assert.equal(app.stdout.trim(), 'hi', `a WEFT_GROUP=app container reaches db1 through Weft: ${app.stderr}`);
  const exec = await viaProxy(['exec', 'db1', 'sh', '-c', 'echo from-exec; ip -4 -o addr show eth0']);
  assert.match(exec.stdout, /^from-exec\n.*inet 10\.1\.2\./, exec.stderr);
  const logs = await viaProxy(['logs', 'db1']);
  assert.equal(logs.code, 0, logs.stderr);
  const since = Math.floor(Date.now() / 1000) - 120;
  const events = await viaProxy(['events', '--since', String(since), '--until', String(Math.floor(Date.now() / 1000) + 1), '--filter', 'container=db1', '--format', '{{.Action}}']);
  assert.match(events.stdout, /^start$/m, `docker events streams through: ${events.stderr}`);
  const labels = await dk.run(['inspect', 'db1', '--format', '{{index .Config.Labels "audited"}}']);
  assert.equal(labels.stdout.trim(), 'yes', 'the test\'s pre-hook changed the create after the built-in one');
  assert.ok(hookLog.some((e) => e.Type === 'post-hook' && /\/containers\/[0-9a-f]+\/start$/.test(e.Request) && e.Code === 204), `the post-hook saw Docker's 204 to start: ${JSON.stringify(hookLog)}`);

  assert.equal((await viaProxy(['rm', '-f', 'db1'])).code, 0);
  assert.ok(await within(5000, async () => (await endpoints('blue')).length === 0) >= 0, 'docker rm through the proxy released the address');
});

test('refusals reach the docker CLI as Docker errors and change nothing', { skip: !root && 'needs root' }, async () => {
  const before = (await dk.run(['ps', '-aq'])).stdout;
  const nets = (await dk.run(['network', 'ls', '-q'])).stdout;
  const cases: Array<[string[], RegExp]> = [
    [['--label', 'forbidden=1'], /the audit adapter forbids this container/],
    [['-e', 'WEFT_TENANT=blue', '-e', 'WEFT_GROUP=../../x'], /WEFT_GROUP: '\.\.\/\.\.\/x' is not a Weft name/],
    [['-e', 'WEFT_TENANT=blue'], /WEFT_TENANT alone/],
    [['--network', 'host', '-e', 'WEFT_TENANT=blue', '-e', 'WEFT_GROUP=db'], /--network host was given too/],
    [['-e', 'WEFT_TENANT=nosuch', '-e', 'WEFT_NETWORK=contiv-net'], /nosuch/],
  ];
  for (const [flags, re] of cases) {
    const r = await viaProxy(['run', '-d', ...flags, 'bb', 'true']);
    assert.notEqual(r.code, 0, `${flags.join(' ')} should fail`);
    assert.match(r.stderr, re, flags.join(' '));
  }
  assert.equal((await dk.run(['ps', '-aq'])).stdout, before, 'no container was made');
  assert.equal((await dk.run(['network', 'ls', '-q'])).stdout, nets, 'no Docker network was made');
  assert.deepEqual(await endpoints('blue'), []);
});

test('containers without WEFT_* are Docker\'s business: unchanged', { skip: !root && 'needs root' }, async () => {
  const r = await viaProxy(['run', '--rm', 'bb', 'sh', '-c', 'ls /sys/class/net']);
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stdout, /eth0/, 'no Weft interface (this dockerd has no bridge: lo only)');
  assert.deepEqual(await endpoints('default'), []);
});

test('on a dual-stack Weft network the proxy makes the Docker network with IPv6: the container gets both addresses', { skip: !root && 'needs root' }, async () => {
  await weft('net', 'create', '-t', 'blue', '-s', '10.1.6.0/24', '--subnet6', 'fd00:1:6::/64', 'dual');
  await weft('group', 'create', '-t', 'blue', 'dual', 'web6');
  const r = await viaProxy(['run', '--rm', '-e', 'WEFT_TENANT=blue', '-e', 'WEFT_GROUP=web6', 'bb', 'sh', '-c', 'ip -o addr show eth0']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /inet 10\.1\.6\.\d+\/24/);
  assert.match(r.stdout, /inet6 fd00:1:6::[0-9a-f]+\/64/, `the IPv6 address too: ${r.stdout}`);
  const net = await dk.run(['network', 'inspect', 'weft.blue._.web6', '--format', '{{.EnableIPv6}} {{index .IPAM.Options "network"}}']);
  assert.equal(net.stdout.trim(), 'true dual');
  assert.ok(await within(5000, async () => (await endpoints('blue')).length === 0) >= 0, 'the --rm container\'s addresses went back');
});
