import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ApiError } from '../client/index.js';
import { WEFT_BIN, startServerProcess } from '../testkit/server.js';
import { ensureLocalJoin, type LocalJoinOptions } from './index.js';
import { put, tempRoot } from './testing.js';

const CA = '-----BEGIN CERTIFICATE-----\nlocal server CA\n-----END CERTIFICATE-----\n';

function setup(t: { after(fn: () => void): void }, mint: LocalJoinOptions['mint']): LocalJoinOptions & { data: string; state: string } {
  const root = tempRoot(t);
  const data = join(root, 'var/lib/weft');
  const state = join(data, 'agent');
  let clock = 0;
  return {
    server: 'https://127.0.0.1:9700', dataDir: data, stateDir: state, joinFile: join(state, 'join.token'), host: 'node1',
    data, state, ...(mint ? { mint } : {}), waitMs: 60_000, now: () => clock, sleep: async (ms) => void (clock += ms),
  };
}

function joined(o: { state: string; data: string }, ca = CA): void {
  put(o.data, 'ca.crt', CA);
  for (const f of ['agent.key', 'agent.crt']) put(o.state, f, f);
  put(o.state, 'ca.crt', ca);
}

test('an agent not joined yet gets a token from the local server, written 0600 where its --join-file reads it', async (t) => {
  const asked: string[] = [];
  const o = setup(t, async (host) => (asked.push(host), 'weftjoin1.fresh'));
  assert.deepEqual(await ensureLocalJoin(o), { done: 'token-written', host: 'node1' });
  assert.deepEqual(asked, ['node1']);
  assert.equal(readFileSync(o.joinFile, 'utf8'), 'weftjoin1.fresh\n');
  assert.equal(statSync(o.joinFile).mode & 0o777, 0o600);
});

test('an agent joined to this server keeps its certificate: no token is minted (as `weft up`)', async (t) => {
  const o = setup(t, async () => assert.fail('no token may be minted'));
  joined(o);
  writeFileSync(o.joinFile, 'weftjoin1.spent\n', { mode: 0o600 });
  assert.deepEqual(await ensureLocalJoin(o), { done: 'joined', host: 'node1' });
  assert.ok(!existsSync(o.joinFile));
});

test('a certificate from another CA (the server was set up again) is not a join: a new token is minted', async (t) => {
  const o = setup(t, async () => 'weftjoin1.again');
  joined(o, '-----BEGIN CERTIFICATE-----\nan older CA\n-----END CERTIFICATE-----\n');
  assert.equal((await ensureLocalJoin(o)).done, 'token-written');
});

test('while the server starts (no answer yet), it waits and asks again; past the wait it gives up saying how to join by hand', async (t) => {
  let calls = 0;
  const o = setup(t, async () => {
    if (++calls < 4) throw new ApiError(0, 'unreachable', 'cannot reach the weft server');
    return 'weftjoin1.late';
  });
  assert.equal((await ensureLocalJoin(o)).done, 'token-written');
  assert.equal(calls, 4);
  const never = setup(t, async () => {
    throw new ApiError(0, 'unreachable', 'cannot reach the weft server');
  });
  await assert.rejects(ensureLocalJoin({ ...never, waitMs: 5000 }), /could not get a join token .*weft host add node1/);
});

test('a host that joined before but lost its state is told to revoke it first; other refusals are not retried', async (t) => {
  const o = setup(t, async () => {
    throw new ApiError(409, 'WEFT_EXISTS', 'host node1 has already joined');
  });
  await assert.rejects(ensureLocalJoin(o), /weft host rm node1/);
  let calls = 0;
  const denied = setup(t, async () => {
    calls++;
    throw new ApiError(401, 'WEFT_UNAUTHENTICATED', 'bad token');
  });
  await assert.rejects(ensureLocalJoin(denied), /could not get a join token/);
  assert.equal(calls, 1);
});

test('without a minter given, the admin token and CA are read from the data dir; missing, it waits for the server to write them', async (t) => {
  const o = setup(t, undefined);
  await assert.rejects(ensureLocalJoin({ ...o, waitMs: 3000 }), /no .*admin\.token \(the server writes it at its first start\)/);
});

test('end to end: a real server, the local join, then a real agent joining with the token file; its next start needs no token', async (t) => {
  const server = await startServerProcess();
  t.after(() => server.stop());
  const dir = tempRoot(t);
  const o = { server: server.url, dataDir: server.dataDir, stateDir: join(dir, 'state'), joinFile: join(dir, 'state', 'join.token'), host: 'node1' };
  assert.equal((await ensureLocalJoin(o)).done, 'token-written');
  const agent = spawn(process.execPath, [WEFT_BIN, 'agent', '--server', server.url, '--state-dir', o.stateDir, '--join-file', o.joinFile, '--host', 'node1',
    '--datapath', 'memory', '--vtep-ip', '10.99.0.1', '--run-dir', join(dir, 'run'), '--cni-conf-dir', join(dir, 'net.d'), '--cni-bin-dir', join(dir, 'bin'),
    '--dns-upstream', 'none', '--docker-plugin', 'none', '--log-level', 'warn'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  agent.stdout.on('data', (d) => (out += d));
  agent.stderr.on('data', (d) => (out += d));
  const exited = new Promise((r) => agent.once('exit', r));
  t.after(async () => {
    agent.kill('SIGTERM');
    await exited;
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the agent did not start:\n${out}`)), 30_000);
    agent.stdout.on('data', () => out.includes('weft agent running') && (clearTimeout(timer), resolve()));
    agent.once('exit', (code) => (clearTimeout(timer), reject(new Error(`the agent exited ${code}:\n${out}`))));
  });
  assert.deepEqual(await ensureLocalJoin({ ...o, mint: async () => assert.fail('joined: no new token') }), { done: 'joined', host: 'node1' });
});
