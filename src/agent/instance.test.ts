import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { MemoryDatapath } from '../datapath/index.js';
import { endpointId } from '../model/index.js';
import { handleCni } from '../plugins/cni/index.js';
import { within } from '../testkit/host.js';
import { WEFT_BIN, http, runWeft, type ServerProcess, startServerProcess } from '../testkit/server.js';
import type { Agent } from './agent.js';
import { startMemoryAgent } from './testing.js';

/**
 * Two agents given one host name, both on a user token (which may register any name): a real server
 * process, real agents in this process on the in-memory datapath (each its own "machine": its own state
 * dir and containers), and one real `weft agent` process for what an operator sees.
 */
const log = pino({ level: process.env['WEFT_TEST_LOG'] ?? 'silent' });
const HOST = 'twin';
/** Above the agents' 10 s heartbeat, or a live agent would count as silent between two beats. */
const GRACE_MS = 12_000;
let server: ServerProcess;
let root: string;
const running = new Set<Agent>();

const machine = (name: string) => ({ dir: join(root, name), prefix: `${name.slice(0, 1)}-`, dp: new MemoryDatapath(`${name.slice(0, 1)}-`) });
type Machine = ReturnType<typeof machine>;
const start = async (m: Machine): Promise<Agent> => {
  const a = await startMemoryAgent({
    serverUrl: server.url, invite: () => Promise.reject(new Error('runs on a token')), token: { token: server.token, ca: readFileSync(server.caFile, 'utf8') },
    dir: m.dir, dp: m.dp, nsPrefix: m.prefix, host: HOST, resyncMs: 200, repairGraceMs: 0, log,
  });
  running.add(a);
  return a;
};
const refusal = (m: Machine) => start(m).then(() => undefined, (e: Error) => e);
const endpointGone = async (id: string) => (await http(server.url, server.token, 'GET', `/api/v1/endpoints/${id}`)).status === 404;
let first: Machine;
let second: Machine;

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'weft-instance-'));
  server = await startServerProcess({ args: ['--host-grace', String(GRACE_MS)] });
  assert.equal((await http(server.url, server.token, 'POST', '/api/v1/tenants/default/networks', { name: 'net', subnet: '10.9.0.0/24' })).status, 201);
  first = machine('first');
  second = machine('second');
});

after(async () => {
  for (const a of running) await a.stop();
  await server?.stop();
  rmSync(root, { recursive: true, force: true });
});

test('a second agent under a live host\'s name is refused, naming the host, and the first one\'s endpoints stay', async () => {
  const a = await start(first);
  assert.ok(await within(5000, async () => a.state.networks.has('default/net')) >= 0, 'the first agent sees the network');
  const netns = join(first.dir, 'netns-c1');
  writeFileSync(netns, '');
  first.dp.addContainer(netns);
  const env = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_NETNS: netns, CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin' };
  const added = await handleCni(a.cni, env, JSON.stringify({ cniVersion: '1.0.0', name: 'weft.default.net', type: 'weft', network: 'net' }));
  assert.equal(added.code, 0, added.stdout);
  const id = endpointId('c1', 'eth0');

  const refused = await refusal(second);
  // Ten resync passes of the second agent, had it started: it would release c1, a container it cannot find.
  await new Promise((r) => setTimeout(r, 2000));
  assert.equal(await endpointGone(id), false, 'the first agent\'s endpoint is still there');
  assert.ok(refused, 'the second agent did not start');
  assert.match(refused.message, /name: host twin is registered by another agent instance, last heard from \d+ s ago/);
  assert.match(refused.message, /weft host rm twin/, 'and says what to do about it');
  assert.equal((refused as { status?: number; code?: string }).status, 409);
  assert.equal((refused as { code?: string }).code, 'WEFT_IN_USE');
});

test('the `weft agent` command refused so exits 4 (conflict) with the reason on stderr', async () => {
  const dir = join(root, 'third');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'token'), server.token, { mode: 0o600 });
  const r = await runWeft(['agent', '--server', server.url, '--token-file', join(dir, 'token'), '--ca', server.caFile, '--host', HOST, '--datapath', 'memory',
    '--state-dir', join(dir, 'state'), '--run-dir', join(dir, 'run'), '--cni-conf-dir', join(dir, 'net.d'), '--cni-bin-dir', join(dir, 'bin'), '--netns-prefix', 'c-',
    '--vtep-ip', '192.0.2.3', '--dns-upstream', 'none', '--docker-plugin', 'none', '--log-level', 'warn'], {}, undefined, 20_000);
  assert.equal(r.code, 4, `${WEFT_BIN} agent: ${r.stderr}`);
  assert.match(r.stderr, /host twin is registered by another agent instance/);
});

test('registrations without an instance (the API, older agents) still refresh the host and take nothing over', async () => {
  const put = await http(server.url, server.token, 'PUT', `/api/v1/hosts/${HOST}`, { name: HOST, vtepIp: '192.0.2.1' });
  assert.equal(put.status, 200, JSON.stringify(put.json));
  assert.ok(put.json.instance, 'the recorded instance is kept');
  assert.ok(await refusal(second), 'the second agent is still refused');
});

test('once the first agent is silent past the grace period, another instance takes the name over (a reinstalled host); the first is refused then', async () => {
  for (const a of running) await a.stop();
  running.clear();
  const t0 = Date.now();
  let b: Agent | undefined;
  assert.ok(await within(GRACE_MS + 15_000, async () => (b = await start(second).catch(() => undefined)) !== undefined, 250) >= 0, 'the second agent started');
  assert.ok(Date.now() - t0 >= GRACE_MS - 500, `not before the grace period (${Date.now() - t0} ms)`);
  const back = await refusal(first);
  assert.match(String(back?.message), /host twin is registered by another agent instance/, 'the old instance, back, is refused');
});

test('a running agent whose host name another instance now holds releases nothing of that host', async () => {
  const b = [...running][0] as Agent;
  // The record is replaced under the running agent (as after a partition past the grace period).
  assert.equal((await http(server.url, server.token, 'DELETE', `/api/v1/hosts/${HOST}`)).status, 204);
  const put = await http(server.url, server.token, 'PUT', `/api/v1/hosts/${HOST}`, { name: HOST, vtepIp: '192.0.2.1', instance: 'c'.repeat(32) });
  assert.equal(put.status, 200, JSON.stringify(put.json));
  assert.ok(await within(5000, async () => b.state.hosts.get(HOST)?.instance === put.json.instance) >= 0, 'the running agent sees the new instance');
  // A container of the new instance, which this agent's machine does not have.
  const ep = await http(server.url, server.token, 'POST', '/api/v1/endpoints', { tenant: 'default', network: 'net', containerId: 'c3', host: HOST, ifname: 'eth0', netns: '/run/netns/elsewhere' });
  assert.equal(ep.status, 201, JSON.stringify(ep.json));
  await new Promise((r) => setTimeout(r, 2000));
  assert.equal(await endpointGone(ep.json.id), false, 'ten resync passes later, the endpoint is still there');
  assert.ok(b.state.endpoints.has(ep.json.id), 'and the running agent has it in its desired state: it saw it and left it alone');
});
