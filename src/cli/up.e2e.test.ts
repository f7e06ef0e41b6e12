import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProcessRunner } from '../exec/index.js';
import { WEFT_BIN } from '../testkit/server.js';
import { summarize } from '../pki/index.js';

/**
 * `weft up` as the README's first command runs it, inside a network namespace of the test's own (so its
 * tenant namespaces, uplinks and host table never touch this machine's): the server makes its CA, the
 * agent joins its own server and keeps its certificate in DATA_DIR/agent/, and a restart reuses it.
 */
const root = process.getuid?.() === 0;
const runner = new ProcessRunner();
const tag = `up${process.pid % 100000}`;
const dir = mkdtempSync(join(tmpdir(), 'weft-up-'));
let child: ChildProcess | undefined;

after(async () => {
  await stop();
  for (const ns of (await runner.run(['ip', 'netns', 'list'], { allowFailure: true })).stdout.split('\n').map((l) => l.split(' ')[0] ?? '')) {
    if (ns.startsWith(tag)) await runner.run(['ip', 'netns', 'del', ns], { allowFailure: true });
  }
  rmSync(dir, { recursive: true, force: true });
});

async function stop(): Promise<void> {
  const c = child;
  if (!c || c.exitCode !== null || c.signalCode !== null) return;
  const exited = new Promise((r) => c.once('exit', r));
  c.kill('SIGTERM');
  await exited;
}

/** Starts `weft up` in the test's namespace and returns the server URL once the agent runs. */
async function up(): Promise<string> {
  const argv = [`--net=/run/netns/${tag}-host`, process.execPath, WEFT_BIN, 'up', '--data-dir', join(dir, 'data'), '--listen', '127.0.0.1:0',
    '--run-dir', join(dir, 'run'), '--cni-conf-dir', join(dir, 'net.d'), '--cni-bin-dir', join(dir, 'bin'), '--netns-prefix', `${tag}-`,
    '--docker-plugin', 'none', '--dns-upstream', 'none', '--vtep-ip', '192.0.2.1', '--log-level', 'warn'];
  const c = spawn('nsenter', argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  child = c;
  let out = '';
  c.stdout.on('data', (d) => (out += d));
  c.stderr.on('data', (d) => (out += d));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`weft up did not start:\n${out}`)), 20_000);
    c.stdout.on('data', () => out.includes('weft agent running') && (clearTimeout(timer), resolve()));
    c.on('exit', (code) => (clearTimeout(timer), reject(new Error(`weft up exited ${code}:\n${out}`))));
  });
  return /listening on (https:\/\/\S+)/.exec(out)?.[1] as string;
}

test('weft up: HTTPS with its own CA, its agent joined with its own certificate, reused after a restart', { skip: !root && 'needs root' }, async () => {
  await runner.run(['ip', 'netns', 'add', `${tag}-host`]);
  await runner.run(['ip', '-n', `${tag}-host`, 'link', 'set', 'lo', 'up']);
  await runner.run(['ip', '-n', `${tag}-host`, 'addr', 'add', '192.0.2.1/24', 'dev', 'lo']);
  const data = join(dir, 'data');
  // Ask the server from inside its namespace, as its local admin would.
  const weft = (args: string[]) => runner.run(['env', `HOME=${dir}`, `WEFT_SERVER=${url}`, `WEFT_TOKEN_FILE=${join(data, 'admin.token')}`, `WEFT_CA=${join(data, 'ca.crt')}`,
    'nsenter', `--net=/run/netns/${tag}-host`, process.execPath, WEFT_BIN, ...args], { allowFailure: true });
  let url = await up();
  assert.match(url, /^https:\/\/127\.0\.0\.1:\d+$/);
  for (const f of ['server.key', 'agent/agent.key', 'admin.token']) assert.equal(statSync(join(data, f)).mode & 0o777, 0o600, f);
  const cert = readFileSync(join(data, 'agent', 'agent.crt'), 'utf8');
  assert.equal(readFileSync(join(data, 'agent', 'ca.crt'), 'utf8').trim(), readFileSync(join(data, 'ca.crt'), 'utf8').trim());
  const hosts = await weft(['host', 'ls', '-o', 'json']);
  assert.equal(hosts.code, 0, hosts.stderr);
  const [me] = JSON.parse(hosts.stdout);
  assert.equal(me.state, 'up');
  assert.equal(me.identity.state, 'joined');
  assert.equal(`host:${me.name}`, summarize(cert).commonName);
  const plain = await weft(['tenant', 'ls', '--server', url.replace('https:', 'http:')]);
  assert.equal(plain.code, 2, 'the CLI refuses plain HTTP');

  await stop();
  url = await up();
  assert.equal(readFileSync(join(data, 'agent', 'agent.crt'), 'utf8'), cert, 'a restart keeps the certificate (no new join)');
  assert.equal((await weft(['host', 'ls', '-q'])).stdout.trim(), me.name);
});
