import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { MemoryDatapath, names } from '../datapath/index.js';
import { http, startServerProcess, type ServerProcess } from '../testkit/server.js';
import { inviteHost, within } from '../testkit/host.js';
import type { Agent } from './agent.js';
import { createDockerNetwork, dockerOk, dockerSocketIn, fakeDockerApi, runContainer, startDockerTestAgent, type DockerContainers } from './docker/testing.js';

/**
 * The collector and endpoint naming, which need Docker's API: first an agent without it (the collector
 * must do nothing, whatever it finds), then the same host's agent restarted with a fake of Docker's API
 * on a unix socket (`GET /networks/{id}`, all the agent asks Docker). Full resyncs every 200 ms run the
 * collector; an endpoint is collected only once older than the grace.
 */
const log = pino({ level: process.env['WEFT_TEST_LOG'] ?? 'silent' });
const PREFIX = 'c-';
const GRACE_MS = 1000;
let server: ServerProcess;
let dir: string;
let dp: MemoryDatapath;
let agent: Agent | undefined;
let fake: Awaited<ReturnType<typeof fakeDockerApi>> | undefined;
/** What the fake Docker lists: network ID → its containers. */
const dockerSees: DockerContainers = new Map();

const start = async (dockerApi?: string) => {
  agent = await startDockerTestAgent({
    serverUrl: server.url, invite: () => inviteHost(server.url, server.token, 'node1'), dir, dp, nsPrefix: PREFIX, host: 'node1', resyncMs: 200,
    repairGraceMs: GRACE_MS, log, ...(dockerApi ? { dockerApi } : {}),
  });
};
const socket = () => dockerSocketIn(dir);
const exists = async (id: string) => (await http(server.url, server.token, 'GET', `/api/v1/endpoints/${id}`)).status === 200;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Waits past the grace and through several full resyncs (each converges the host side once). */
async function severalResyncs(): Promise<void> {
  const mark = dp.journal.length;
  await sleep(GRACE_MS + 1000);
  assert.ok(dp.journal.slice(mark).filter((l) => l.startsWith('ensureHost')).length >= 3, 'the agent kept resyncing meanwhile');
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'weft-docker-collect-'));
  server = await startServerProcess();
  dp = new MemoryDatapath(PREFIX);
  await start();
  const r = await http(server.url, server.token, 'POST', '/api/v1/tenants/default/networks', { name: 'net', subnet: '10.1.2.0/24' });
  assert.equal(r.status, 201, JSON.stringify(r.json));
  assert.ok(await within(5000, async () => agent?.state.networks.has('default/net') === true) >= 0);
});

after(async () => {
  await agent?.stop();
  await fake?.close();
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

let kept: { networkId: string; poolId: string };
let gone: { id: string; veth: string };
let reservation: string;

test('without Docker\'s API the collector releases nothing: not an endpoint Docker never heard of, not an unclaimed reservation', async () => {
  kept = await createDockerNetwork(socket(), { network: 'net' });
  const a = await runContainer(socket(), kept);
  gone = { id: a.id, veth: names.endpointVeth(a.id) };
  const addr = await dockerOk(socket(), 'IpamDriver.RequestAddress', { PoolID: kept.poolId, Address: '', Options: {} });
  reservation = (await http(server.url, server.token, 'GET', '/api/v1/endpoints')).json.items.find((e: { ip: string }) => `${e.ip}/24` === addr.Address).id;
  await severalResyncs();
  assert.ok(await exists(gone.id), 'the endpoint stays');
  assert.ok(await exists(reservation), 'the reservation stays');
});

test('with Docker\'s API: what Docker no longer lists is released with its veth, once older than the grace; what it lists is kept and named', async () => {
  await agent?.stop();
  fake = await fakeDockerApi(join(dir, 'docker.sock'), dockerSees);
  dockerSees.set(kept.networkId, {});
  await start(join(dir, 'docker.sock'));
  const listed = await runContainer(socket(), kept);
  dockerSees.set(kept.networkId, { ['c'.repeat(64)]: { Name: '/web1', EndpointID: listed.endpointDocker } });
  const fresh = await runContainer(socket(), kept);
  const born = Date.parse((await http(server.url, server.token, 'GET', `/api/v1/endpoints/${fresh.id}`)).json.createdAt);
  assert.ok(await within(5000, async () => !(await exists(gone.id)) && !(await exists(reservation))) >= 0, 'the old endpoint and the reservation were released');
  const tenantNs = names.tenantNs(PREFIX, agent?.state.tenants.get('default')?.id as number);
  assert.ok(await within(2000, async () => dp.namespaces.get(tenantNs)?.links.has(gone.veth) === false) >= 0, 'the veth went with it');
  assert.ok(await within(5000, async () => !(await exists(fresh.id)), 20) >= 0, 'an endpoint Docker does not list is released');
  assert.ok(Date.now() - born >= GRACE_MS, `but not before the grace (CreateEndpoint may still be at work): ${Date.now() - born} ms`);
  assert.ok(await exists(listed.id), 'the listed endpoint is kept');
  const named = async () => (await http(server.url, server.token, 'GET', `/api/v1/endpoints/${listed.id}`)).json.containerName === 'web1';
  assert.ok(await within(5000, named) >= 0, 'named after its container, from Docker\'s API');
});

test('a network Docker no longer has frees its endpoints; an API that fails proves nothing and frees none', async () => {
  const other = await createDockerNetwork(socket(), { network: 'net' });
  const orphan = await runContainer(socket(), other);
  assert.ok(await within(GRACE_MS + 5000, async () => !(await exists(orphan.id))) >= 0, 'Docker answers 404 for the network: nothing of it is live');
  assert.ok(fake);
  fake.failWith = 500;
  const unlisted = await runContainer(socket(), kept);
  await severalResyncs();
  assert.ok(await exists(unlisted.id), 'kept while Docker\'s API fails');
  fake.failWith = undefined;
  assert.ok(await within(5000, async () => !(await exists(unlisted.id))) >= 0, 'released once Docker answers again');
});
