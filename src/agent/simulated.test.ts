import { withOverrides } from '../exec/argv.js';
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { http, runWeft, startServerProcess, WEFT_BIN, type ServerProcess } from '../testkit/server.js';
import { inviteHost, within } from '../testkit/host.js';

/** `weft agent --datapath memory`: a host simulated without root, for tests and scale runs of the control plane. */
const dir = mkdtempSync(join(tmpdir(), 'weft-sim-'));
let server: ServerProcess | undefined;
after(async () => {
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const agentArgs = (host: string, extra: string[]) => withOverrides(['agent', '--host', host, '--state-dir', join(dir, host, 'state'), '--run-dir', join(dir, host, 'run'),
  '--cni-conf-dir', join(dir, host, 'net.d'), '--cni-bin-dir', join(dir, host, 'bin'), '--docker-plugin', 'none', '--dns-upstream', 'none'], extra);

test('an unknown --datapath, or memory without --vtep-ip, is refused by name before anything starts', async () => {
  const bad = await runWeft([...agentArgs('x1', ['--datapath', 'nope', '--server', 'https://127.0.0.1:9', '--join', 'x'])], {});
  assert.equal(bad.code, 2, bad.stderr);
  assert.match(bad.stderr, /--datapath: 'nope' is not one of linux, memory/);
  const noVtep = await runWeft([...agentArgs('x2', ['--datapath', 'memory', '--server', 'https://127.0.0.1:9', '--join', 'x'])], {});
  assert.equal(noVtep.code, 2, noVtep.stderr);
  assert.match(noVtep.stderr, /--vtep-ip: needed with --datapath memory/);
  assert.ok(!existsSync(join(dir, 'x1', 'state')) && !existsSync(join(dir, 'x2', 'state')), 'nothing was made');
});

test('a simulated host joins, registers, writes conflists and installs the plugin; SIGTERM stops it cleanly', async () => {
  server = await startServerProcess();
  const s = server;
  const join1 = await inviteHost(s.url, s.token, 'sim1');
  const agent = spawn(process.execPath, [WEFT_BIN, ...agentArgs('sim1', ['--datapath', 'memory', '--vtep-ip', '192.0.2.77', '--server', s.url, '--join', join1, '--log-level', 'warn'])],
    { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  agent.stderr?.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((r) => agent.on('exit', (code) => r(code)));
  try {
    assert.ok(await within(10_000, async () => (await http(s.url, s.token, 'GET', '/api/v1/hosts/sim1')).json?.state === 'up') >= 0, `registered: ${stderr}`);
    assert.equal((await http(s.url, s.token, 'GET', '/api/v1/hosts/sim1')).json.vtepIp, '192.0.2.77');
    assert.equal((await http(s.url, s.token, 'POST', '/api/v1/tenants/default/networks', { name: 'net', subnet: '10.7.0.0/24' })).status, 201);
    assert.ok(await within(5000, async () => existsSync(join(dir, 'sim1', 'net.d', 'weft-default-net.conflist'))) >= 0, 'the conflist is written');
    assert.ok(existsSync(join(dir, 'sim1', 'bin', 'weft')), 'the plugin is installed');
  } finally {
    agent.kill('SIGTERM');
  }
  assert.equal(await exited, 0, stderr);
});
