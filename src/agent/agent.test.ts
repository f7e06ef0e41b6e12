import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pino } from 'pino';
import { MemoryDatapath, names } from '../datapath/index.js';
import { handleCni } from '../plugins/cni/index.js';
import { endpointId } from '../model/index.js';
import { http, startServerProcess, type ServerProcess } from '../testkit/server.js';
import { inviteHost, within } from '../testkit/host.js';
import type { Agent } from './agent.js';
import { startMemoryAgent } from './testing.js';
import { loadCredentials } from './identity.js';
import { ApiError, Client } from '../client/index.js';

/**
 * The agent's logic without root: a real server process (no privileges needed), a real agent in this
 * process joined with its own host certificate, and the in-memory datapath in place of the kernel. The
 * datapath enforces what the agent relies on the kernel for (see MemoryDatapath), and journals every call.
 */
const log = pino({ level: process.env['WEFT_TEST_LOG'] ?? 'silent' });
let server: ServerProcess;
let dir: string;
let dp: MemoryDatapath;
let agent: Agent;
const PREFIX = 'u-';

const startAgent = (): Promise<Agent> => startMemoryAgent({
  serverUrl: server.url, invite: () => inviteHost(server.url, server.token, 'node1'), dir, dp, nsPrefix: PREFIX, host: 'node1', resyncMs: 200, repairGraceMs: 0, log,
});

const api = async (method: string, path: string, body?: unknown) => {
  const r = await http(server.url, server.token, method, path, body);
  assert.ok(r.status < 300, `${method} ${path}: ${r.status} ${JSON.stringify(r.json)}`);
  return r.json;
};

let bridge = '';
before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'weft-agent-unit-'));
  server = await startServerProcess();
  dp = new MemoryDatapath(PREFIX);
  agent = await startAgent();
  // The bridge is named by the network's VNI, which the server picks at random in its range.
  bridge = `wb${(await api('POST', '/api/v1/tenants/default/networks', { name: 'net', subnet: '10.1.2.0/24' })).vni as number}`;
  await api('POST', '/api/v1/tenants/default/groups', { name: 'app', network: 'net' });
  await api('POST', '/api/v1/tenants/default/policies', { name: 'only-app', rules: [
    { id: 'r1', priority: 10, direction: 'in', action: 'allow', protocol: 'tcp', ports: '5432', fromGroup: 'app' }, { id: 'r2', priority: 1, direction: 'in', action: 'deny' },
  ] });
  await api('POST', '/api/v1/tenants/default/groups', { name: 'db', network: 'net', policies: ['only-app'] });
  assert.ok(await within(5000, async () => agent.state.groups.has('default/app')) >= 0, 'the agent sees the groups');
});

after(async () => {
  await agent?.stop();
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** A container's namespace path: a real file (the CNI layer checks CNI_NETNS exists) that the memory datapath knows. */
function netnsOf(container: string): string {
  const path = join(dir, 'netns', container);
  if (!existsSync(path)) {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, '');
  }
  return path;
}
const conf = (group: string, extra: Record<string, unknown> = {}) => JSON.stringify({ cniVersion: '1.0.0', name: `weft-default-${group}`, type: 'weft', network: 'net', group, ...extra });
function cni(command: string, container: string, group = 'db', extra: Record<string, unknown> = {}) {
  const env = { CNI_COMMAND: command, CNI_CONTAINERID: container, CNI_NETNS: netnsOf(container), CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin' };
  return handleCni(agent.cni, env, conf(group, extra));
}
async function added(container: string, group = 'db'): Promise<{ ip: string; id: string }> {
  dp.addContainer(netnsOf(container));
  const r = await cni('ADD', container, group);
  assert.equal(r.code, 0, r.stdout);
  const ip = (JSON.parse(r.stdout) as { ips: Array<{ address: string }> }).ips[0]?.address.split('/')[0] as string;
  return { ip, id: endpointId(container, 'eth0') };
}
const tenantNs = () => names.tenantNs(PREFIX, agent.state.tenants.get('default')?.id as number);
const since = (mark: number) => dp.journal.slice(mark).map((l) => l.split(' ')[0]);

test('ADD: allocated, the tenant converged with the new address in its policy (fail closed), then wired; the result says so', async () => {
  let seen = '';
  dp.onAttach = (a, ns) => (seen = !ns?.table.includes(a.ip as string) ? `table without ${a.ip}: ${ns?.table}`
    : !ns.guard.includes(`"${a.veth}" . ${a.ip} . ${a.mac}`) ? `bridge table does not admit ${a.veth}: ${ns.guard}` : 'policy had it');
  // No resync may run meanwhile: its own convergence would be in the journal.
  const { mark, ip, id } = await agent.reconciler.withoutResync(async () => ({ mark: dp.journal.length, ...await added('c1') }));
  dp.onAttach = undefined;
  assert.equal(seen, 'policy had it', 'the address was in the tenant\'s table before the container had its interface');
  assert.deepEqual(since(mark).filter((op) => op !== 'ensureHost'), ['ensureTenant', 'attach']);
  const eth0 = dp.containers.get(netnsOf('c1'))?.get('eth0');
  assert.deepEqual([eth0?.ip, eth0?.prefixLength, eth0?.gateway], [ip, 24, '10.1.2.1']);
  assert.equal(dp.namespaces.get(tenantNs())?.links.get(names.endpointVeth(id))?.bridge, bridge);
  assert.equal((await cni('CHECK', 'c1')).code, 0, 'CHECK passes');
});

test('ADD in a tenant whose shape the endpoint does not change: only its port is admitted before it is wired', async () => {
  await api('POST', '/api/v1/tenants', { name: 'plain' });
  await api('POST', '/api/v1/tenants/plain/networks', { name: 'net', subnet: '10.1.2.0/24' });
  assert.ok(await within(5000, async () => agent.state.networks.has('plain/net')) >= 0);
  const add = async (c: string) => {
    dp.addContainer(netnsOf(c));
    const r = await handleCni(agent.cni, { CNI_COMMAND: 'ADD', CNI_CONTAINERID: c, CNI_NETNS: netnsOf(c), CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin' },
      JSON.stringify({ cniVersion: '1.0.0', name: 'weft.plain.net', type: 'weft', tenant: 'plain', network: 'net' }));
    assert.equal(r.code, 0, r.stdout);
  };
  await add('p1');
  let admitted = '';
  dp.onAttach = (a, ns) => (admitted = ns?.guard.includes(`"${a.veth}" . ${a.ip}`) ? 'yes' : `no: ${ns?.guard}`);
  const mark = dp.journal.length;
  await add('p2');
  dp.onAttach = undefined;
  assert.equal(admitted, 'yes');
  assert.deepEqual(since(mark).filter((op) => op === 'admit' || op === 'attach').slice(0, 2), ['admit', 'attach'], 'the fast path: no full convergence, one admit');
});

test('ADD whose wiring fails on a bare container: one full convergence of the tenant, then wired', async () => {
  dp.fail('attach', new Error('simulated: the tenant drifted since its last convergence'));
  const mark = dp.journal.length;
  await added('c2');
  assert.match(since(mark).filter((op) => op !== 'ensureHost').join(' '), /^(ensureTenant )*attach( ensureTenant)+ attach( ensureTenant)*$/, 'a failed wiring, a full convergence, the wiring again (resync passes may run around them)');
});

test('ADD that cannot wire releases the address it was given and leaves nothing behind', async () => {
  dp.addContainer(netnsOf('c3'));
  dp.containers.get(netnsOf('c3'))?.set('eth0', { ip: '192.0.2.9', prefixLength: 24, gateway: '192.0.2.1', mac: '02:00:00:00:00:09' });
  const before = (await api('GET', '/api/v1/endpoints')).items.length;
  const r = await cni('ADD', 'c3');
  assert.equal(r.code, 1);
  assert.match(JSON.parse(r.stdout).msg, /internal error/);
  assert.equal((await api('GET', '/api/v1/endpoints')).items.length, before, 'the address went back');
  assert.equal(dp.namespaces.get(tenantNs())?.links.has(names.endpointVeth(endpointId('c3', 'eth0'))), false, 'no veth left');
});

test('ADD into the host\'s own namespace is refused and changes nothing on the server', async () => {
  const before = (await api('GET', '/api/v1/endpoints')).items.length;
  const env = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'evil', CNI_NETNS: '/proc/self/ns/net', CNI_IFNAME: 'eth9', CNI_PATH: '/opt/cni/bin' };
  const r = await handleCni(agent.cni, env, conf('db'));
  assert.equal(r.code, 1);
  assert.match(JSON.parse(r.stdout).msg, /netns: \/proc\/self\/ns\/net is the network namespace of this host/);
  assert.equal((await api('GET', '/api/v1/endpoints')).items.length, before);
});

test('DEL releases, unwires and forgets the address\'s connections; DEL again and DEL of a stranger succeed', async () => {
  const { ip, id } = await added('c4');
  assert.equal((await cni('DEL', 'c4')).code, 0);
  const ns = dp.namespaces.get(tenantNs());
  assert.equal(ns?.links.has(names.endpointVeth(id)), false, 'veth gone');
  assert.equal(dp.containers.get(netnsOf('c4'))?.has('eth0'), false, 'the container lost its end with the pair');
  assert.ok(ns?.forgotten.includes(ip), 'conntrack entries of the address forgotten');
  assert.equal((await http(server.url, server.token, 'GET', `/api/v1/endpoints/${id}`)).status, 404);
  assert.equal((await cni('DEL', 'c4')).code, 0, 'DEL is idempotent');
  assert.equal((await cni('DEL', 'never-added')).code, 0);
});

test('ADD and DEL of an id whose endpoint is on another host: ADD refused naming that host, DEL succeeds, the endpoint untouched', async () => {
  const theirs = await api('POST', '/api/v1/endpoints', { tenant: 'default', network: 'net', group: 'db', containerId: 'elsewhere', host: 'node2', ifname: 'eth0', netns: '/run/netns/x', labels: {} });
  assert.ok(await within(5000, async () => agent.state.endpoints.has(theirs.id)) >= 0, 'the agent sees node2\'s endpoint');
  dp.addContainer(netnsOf('elsewhere'));
  const add = await cni('ADD', 'elsewhere');
  assert.equal(add.code, 1, add.stdout);
  assert.equal(JSON.parse(add.stdout).code, 7, add.stdout);
  assert.match(JSON.parse(add.stdout).msg, /already exists on host node2, not on this host node1; nothing was released/);
  const del = await cni('DEL', 'elsewhere');
  assert.deepEqual([del.code, del.stdout], [0, ''], 'DEL succeeds: this host holds nothing of it');
  const still = await http(server.url, server.token, 'GET', `/api/v1/endpoints/${theirs.id}`);
  assert.deepEqual([still.status, still.json.host, still.json.ip], [200, 'node2', theirs.ip], 'node2\'s endpoint and address are untouched');
  // And the server refuses node1's certificate the release itself (a token carries no host: it cannot tell).
  const asNode1 = new Client({ servers: [server.url], token: undefined, tls: loadCredentials(join(dir, 'state'), 'node1') as NonNullable<ReturnType<typeof loadCredentials>> });
  await assert.rejects(asNode1.request('DELETE', `/api/v1/endpoints/${theirs.id}`), (e: ApiError) => e.status === 403 && /the host of endpoint .* is node2, not node1/.test(e.message));
  asNode1.close();
  await api('DELETE', `/api/v1/endpoints/${theirs.id}`);
});

test('CHECK names what drifted: the host side off its bridge, the container without its address', async () => {
  const { id } = await added('c5');
  // Held off: a resync would repair the drift before CHECK looks.
  await agent.reconciler.withoutResync(async () => {
    const veth = dp.namespaces.get(tenantNs())?.links.get(names.endpointVeth(id));
    assert.ok(veth);
    delete veth.bridge;
    assert.match(JSON.parse((await cni('CHECK', 'c5')).stdout).msg, new RegExp(`is not on bridge ${bridge}`));
    veth.bridge = bridge;
    const eth0 = dp.containers.get(netnsOf('c5'))?.get('eth0') as { ip: string };
    const was = eth0.ip;
    eth0.ip = '10.9.9.9';
    assert.match(JSON.parse((await cni('CHECK', 'c5')).stdout).msg, /lacks 10\.1\.2\.\d+\/24/);
    eth0.ip = was;
  });
});

test('GC releases only what the runtime no longer lists, in its own scope', async () => {
  const keep = await added('g1');
  const gone = await added('g2');
  const other = await added('g3', 'app');
  // The same group through its other conflist (`weft.T.G`): another CNI network to the runtime, whose GC
  // of `weft-default-db` lists only that network's attachments.
  dp.addContainer(netnsOf('g4'));
  assert.equal((await cni('ADD', 'g4', 'db', { name: 'weft.default.db' })).code, 0);
  const sibling = { id: endpointId('g4', 'eth0') };
  assert.equal((await api('GET', `/api/v1/endpoints/${sibling.id}`)).cniNetwork, 'weft.default.db', 'the endpoint records the CNI network it came through');
  const r = await handleCni(agent.cni, { CNI_COMMAND: 'GC', CNI_PATH: '/opt/cni/bin' },
    JSON.stringify({ cniVersion: '1.1.0', name: 'weft-default-db', type: 'weft', network: 'net', group: 'db', 'cni.dev/valid-attachments': [{ containerID: 'g1', ifname: 'eth0' }] }));
  assert.equal(r.code, 0, r.stdout);
  const left = new Set((await api('GET', '/api/v1/endpoints')).items.map((e: { id: string }) => e.id));
  assert.ok(left.has(keep.id) && left.has(other.id), 'listed, and of another group: kept');
  assert.ok(left.has(sibling.id), 'made through the group\'s other conflist: not in this GC\'s scope, kept');
  assert.ok(!left.has(gone.id), 'unlisted in scope: released');
});

test('GC scope: the longest conflist name Weft writes is recorded; a server that does not know the field gets the endpoint without it', async () => {
  const T = 't'.repeat(63);
  const G = 'g'.repeat(63);
  await api('POST', '/api/v1/tenants', { name: T });
  await api('POST', `/api/v1/tenants/${T}/networks`, { name: 'net', subnet: '10.9.2.0/24' });
  await api('POST', `/api/v1/tenants/${T}/groups`, { name: G, network: 'net' });
  assert.ok(await within(5000, async () => agent.state.groups.has(`${T}/${G}`)) >= 0);
  const add = (container: string) => {
    dp.addContainer(netnsOf(container));
    const env = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: container, CNI_NETNS: netnsOf(container), CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin' };
    return handleCni(agent.cni, env, JSON.stringify({ cniVersion: '1.0.0', name: `weft.${T}.${G}`, type: 'weft', tenant: T, network: 'net', group: G }));
  };
  const r = await add('long1');
  assert.equal(r.code, 0, r.stdout);
  assert.equal((await api('GET', `/api/v1/endpoints/${endpointId('long1', 'eth0')}`)).cniNetwork, `weft.${T}.${G}`);
  // A server older than the agent refuses the field, as its schema refuses any unknown one.
  const request = agent.client.request.bind(agent.client);
  const asked: unknown[] = [];
  agent.client.request = (async (method: string, path: string, body?: unknown, opts?: Parameters<Client['request']>[3]) => {
    asked.push(body);
    if (method === 'POST' && path === '/api/v1/endpoints' && typeof body === 'object' && body !== null && 'cniNetwork' in body) {
      throw new ApiError(400, 'WEFT_UNKNOWN_FIELD', 'cniNetwork: unknown field', 'cniNetwork');
    }
    return request(method, path, body, opts);
  }) as typeof agent.client.request;
  try {
    const old = await add('long2');
    assert.equal(old.code, 0, old.stdout);
  } finally {
    agent.client.request = request;
  }
  const made = await api('GET', `/api/v1/endpoints/${endpointId('long2', 'eth0')}`);
  assert.deepEqual([made.containerId, made.cniNetwork], ['long2', undefined], 'made without the field');
  assert.ok(asked.some((b) => typeof b === 'object' && b !== null && !('cniNetwork' in b) && (b as { containerId?: string }).containerId === 'long2'), 'asked again without it');
});

test('maintenance: a vanished veth is wired again as ADD wired it; a gone container is released; a record nobody sealed is never wired', async () => {
  await api('POST', '/api/v1/tenants/default/services', { name: 'svc', network: 'net', selector: { group: 'db' }, ports: [{ port: 80, targetPort: 8080, protocol: 'TCP' }] });
  const a = await added('m1');
  const ns = dp.namespaces.get(tenantNs());
  dp.deleteLink(tenantNs(), names.endpointVeth(a.id));
  assert.ok(await within(5000, async () => ns?.links.has(names.endpointVeth(a.id)) === true) >= 0, 'repaired');
  assert.ok(dp.journal.some((l) => l.startsWith(`attach ${tenantNs()} ${names.endpointVeth(a.id)} ${netnsOf('m1')} eth0`)));
  const b = await added('m2');
  dp.removeContainer(netnsOf('m2'));
  assert.ok(await within(5000, async () => (await http(server.url, server.token, 'GET', `/api/v1/endpoints/${b.id}`)).status === 404) >= 0, 'released');
  // Written through the API (an admin, or a stolen credential), pointing at the host: never wired.
  dp.addContainer(netnsOf('forged'));
  const forged = await api('POST', '/api/v1/endpoints', { tenant: 'default', network: 'net', containerId: 'forged', host: 'node1', ifname: 'eth0', netns: netnsOf('forged'), labels: {} });
  const mark = dp.journal.length;
  await new Promise((r) => setTimeout(r, 800));
  assert.ok(!dp.journal.slice(mark).some((l) => l.includes(names.endpointVeth(forged.id))), 'not sealed by this agent: never wired');
});

test('restart: a new agent on the same host keeps every wired endpoint, its WireGuard key, and repairs with the same seal key', async () => {
  const a = await added('r1');
  const key = (await api('GET', '/api/v1/hosts/node1')).wgPublicKey as string;
  assert.equal(key, agent.wgPublicKey, 'the registration carries the public key');
  await agent.stop();
  const mark = dp.journal.length;
  agent = await startAgent();
  await within(3000, async () => dp.journal.slice(mark).some((l) => l.startsWith('ensureHost')));
  assert.ok(!dp.journal.slice(mark).some((l) => l.startsWith('unwire')), 'nothing unwired by a restart');
  assert.equal((await api('GET', '/api/v1/hosts/node1')).wgPublicKey, key, 'the same key after a restart');
  dp.deleteLink(tenantNs(), names.endpointVeth(a.id));
  assert.ok(await within(5000, async () => dp.namespaces.get(tenantNs())?.links.has(names.endpointVeth(a.id)) === true) >= 0, 'the new agent repairs what the old one sealed');
});

test('encryption: the tunnel comes up with the host\'s tunnel address, a rotation request gives a new key, and the tunnel goes when encryption is off', async () => {
  await api('PATCH', '/api/v1/global', { encryption: 'wireguard' });
  const me = await api('GET', '/api/v1/hosts/node1');
  assert.ok(await within(5000, async () => dp.tunnel?.address === me.tunnelIp) >= 0, `the tunnel is up on ${me.tunnelIp}`);
  assert.ok(await within(12_000, async () => (await api('GET', '/api/v1/hosts/node1')).wireguard?.mode === 'kernel', 200) >= 0, 'the heartbeat reports the tunnel');
  const old = agent.wgPublicKey;
  const mark = dp.journal.length;
  await api('POST', '/api/v1/hosts/node1/rotate-key');
  assert.ok(await within(5000, async () => (await api('GET', '/api/v1/hosts/node1')).wgPublicKey !== old, 100) >= 0, 'a new public key is published at once');
  assert.notEqual(agent.wgPublicKey, old);
  assert.ok(await within(3000, async () => dp.journal.slice(mark).some((l) => l.startsWith('ensureTunnel'))) >= 0, 'and the tunnel converged again');
  const key = agent.wgPublicKey;
  await agent.stop();
  agent = await startAgent();
  assert.equal(agent.wgPublicKey, key, 'a restart neither rotates again nor goes back to the old key');
  await api('PATCH', '/api/v1/global', { encryption: 'none' });
  assert.ok(await within(5000, async () => dp.tunnel === undefined) >= 0, 'encryption off: no tunnel');
});
