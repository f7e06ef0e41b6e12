import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { MemoryDatapath, names } from '../datapath/index.js';
import { endpointId } from '../model/index.js';
import { http, startServerProcess, type ServerProcess } from '../testkit/server.js';
import { inviteHost, within } from '../testkit/host.js';
import type { Agent } from './agent.js';
import type { DockerBackend } from './docker/index.js';
import { GATEWAY_REQUEST, callDocker, createDockerNetwork, dockerId, dockerOk, dockerSocketIn, runContainer, startDockerTestAgent } from './docker/testing.js';

/**
 * Docker's driver flows without root: a real server process, a real agent in this process on the
 * in-memory datapath, and the plugin called over its unix socket with the JSON libnetwork sends, in the
 * order it sends it. The resync is long, so between steps only the driver's own calls and the watch
 * converge a tenant. Group `db` has a policy with a deny rule, so every address in it is named in the
tenant's nft table (what fail closed is checked by).
 */
const log = pino({ level: process.env['WEFT_TEST_LOG'] ?? 'silent' });
const PREFIX = 'd-';
let server: ServerProcess;
let dir: string;
let dp: MemoryDatapath;
let agent: Agent;

const api = async (method: string, path: string, body?: unknown) => {
  const r = await http(server.url, server.token, method, path, body);
  assert.ok(r.status < 300, `${method} ${path}: ${r.status} ${JSON.stringify(r.json)}`);
  return r.json;
};
const socket = () => dockerSocketIn(dir);
const docker = (call: string, body: unknown) => dockerOk(socket(), call, body);
const createNetwork = (generic: Record<string, string>, pool = '', ipamOpts: Record<string, string> = {}) => createDockerNetwork(socket(), generic, pool, ipamOpts);
const run = (n: { networkId: string; poolId: string }) => runContainer(socket(), n);

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'weft-docker-flows-'));
  server = await startServerProcess();
  dp = new MemoryDatapath(PREFIX);
  agent = await startDockerTestAgent({
    serverUrl: server.url, invite: () => inviteHost(server.url, server.token, 'node1'), dir, dp, nsPrefix: PREFIX, host: 'node1', resyncMs: 60_000, repairGraceMs: 0, log,
  });
  await api('POST', '/api/v1/tenants', { name: 'blue' });
  await api('POST', '/api/v1/tenants/blue/networks', { name: 'net', subnet: '10.1.2.0/24' });
  await api('POST', '/api/v1/tenants/blue/networks', { name: 'other', subnet: '10.1.3.0/24' });
  await api('POST', '/api/v1/tenants/blue/groups', { name: 'app', network: 'net' });
  await api('POST', '/api/v1/tenants/blue/policies', { name: 'only-app', rules: [
    { id: 'r1', priority: 10, direction: 'in', action: 'allow', protocol: 'tcp', ports: '5432', fromGroup: 'app' }, { id: 'r2', priority: 1, direction: 'in', action: 'deny' },
  ] });
  await api('POST', '/api/v1/tenants/blue/groups', { name: 'db', network: 'net', policies: ['only-app'] });
  assert.ok(await within(5000, async () => agent.state.groups.has('blue/db')) >= 0, 'the agent sees the group');
});

after(async () => {
  await agent?.stop();
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const mapping = async (networkId: string) => (await api('GET', '/api/v1/tenants/blue/docker-networks')).items.find((m: { name: string }) => m.name === networkId.slice(0, 63));
const endpoint = async (id: string) => (await http(server.url, server.token, 'GET', `/api/v1/endpoints/${id}`)).json;
const tenantNs = () => names.tenantNs(PREFIX, agent.state.tenants.get('blue')?.id as number);

test('-o network=: RequestPool holds a pool pending, CreateNetwork claims it on the server, and its addresses come from the Weft network', async () => {
  const n = await createNetwork({ tenant: 'blue', network: 'net', group: 'db' });
  assert.equal(n.pool, '0.0.0.0/0', 'the pool is not known before CreateNetwork names the network');
  assert.equal(n.gateway, '0.0.0.0/0');
  const m = await mapping(n.networkId);
  assert.deepEqual([m?.network, m?.group, m?.host, m?.pool], ['net', 'db', 'node1', n.poolId], 'the pending pool was claimed by the mapping');
  assert.deepEqual(await docker('IpamDriver.RequestAddress', { PoolID: n.poolId, Address: '', Options: GATEWAY_REQUEST }), { Address: '10.1.2.1/24', Data: {} }, 'the gateway is the Weft network\'s now');
  const addr = await docker('IpamDriver.RequestAddress', { PoolID: n.poolId, Address: '', Options: {} });
  assert.match(addr.Address, /^10\.1\.2\.\d+\/24$/);
  await docker('IpamDriver.ReleaseAddress', { PoolID: n.poolId, Address: addr.Address.split('/')[0] });
  assert.equal((await api('GET', '/api/v1/endpoints?tenant=blue')).items.length, 0, 'ReleaseAddress of an unclaimed reservation gave the address back');
  await docker('NetworkDriver.DeleteNetwork', { NetworkID: n.networkId });
  await docker('IpamDriver.ReleasePool', { PoolID: n.poolId });
  assert.equal(await mapping(n.networkId), undefined, 'the mapping went with the network');
  await docker('NetworkDriver.DeleteNetwork', { NetworkID: n.networkId });
});

test('--ipam-opt names the network at RequestPool: its pool is the subnet, and CreateNetwork claims it before an older unnamed pool of the same CIDR', async () => {
  const older = await docker('IpamDriver.RequestPool', { AddressSpace: 'weft', Pool: '10.1.2.0/24', SubPool: '', Options: {}, V6: false });
  const named = await createNetwork({ tenant: 'blue', network: 'net' }, '', { tenant: 'blue', network: 'net' });
  assert.deepEqual([named.pool, named.gateway], ['10.1.2.0/24', '10.1.2.1/24']);
  assert.equal((await mapping(named.networkId))?.pool, named.poolId, 'the named pool, not the older one');
  const second = dockerId();
  await docker('NetworkDriver.CreateNetwork', { NetworkID: second, Options: { 'com.docker.network.generic': { tenant: 'blue', network: 'net' } }, IPv4Data: [{ Pool: '10.1.2.0/24' }], IPv6Data: [] });
  assert.equal((await mapping(second))?.pool, older.PoolID, 'the older pool of the same CIDR went to the next network');
  const conflict = await callDocker(socket(), 'IpamDriver.RequestPool', { AddressSpace: 'weft', Pool: '10.9.0.0/24', SubPool: '', Options: { tenant: 'blue', network: 'net' }, V6: false });
  assert.deepEqual([conflict.status, conflict.json.Err], [500, 'weft: --subnet 10.9.0.0/24 conflicts with network blue/net (10.1.2.0/24)']);
  for (const id of [named.networkId, second]) await docker('NetworkDriver.DeleteNetwork', { NetworkID: id });
});

test('RequestAddress reserves the address; CreateEndpoint makes it the endpoint in one step: competing claims for it fail throughout', async () => {
  const n = await createNetwork({ tenant: 'blue', group: 'db' });
  const addr = await docker('IpamDriver.RequestAddress', { PoolID: n.poolId, Address: '10.1.2.77', Options: {} });
  assert.equal(addr.Address, '10.1.2.77/24', 'the address Docker asked for (--ip)');
  const placeholder = (await api('GET', '/api/v1/endpoints?tenant=blue')).items.find((e: { ip: string }) => e.ip === '10.1.2.77');
  assert.match(placeholder?.containerId ?? '', /^ipam-/, 'reserved on the server as a placeholder');
  let done = false;
  const answers: number[] = [];
  const claim = async (k: number) => {
    for (let i = 0; !done; i++) {
      const r = await http(server.url, server.token, 'POST', '/api/v1/endpoints', { tenant: 'blue', network: 'net', containerId: `thief-${k}-${i}`, host: 'node2', ifname: 'eth0', ip: '10.1.2.77', labels: {} });
      answers.push(r.status);
    }
  };
  const thieves = [0, 1, 2, 3, 4, 5, 6, 7].map(claim);
  const e = dockerId();
  const created = await docker('NetworkDriver.CreateEndpoint', { NetworkID: n.networkId, EndpointID: e, Interface: { Address: addr.Address, AddressIPv6: '', MacAddress: '' }, Options: {} });
  done = true;
  await Promise.all(thieves);
  assert.ok(answers.length >= 8, `competing claims were made (${answers.length})`);
  assert.deepEqual([...new Set(answers)], [409], 'every competing claim was refused: the address was never free');
  const held = (await api('GET', '/api/v1/endpoints?tenant=blue')).items.filter((x: { ip: string }) => x.ip === '10.1.2.77');
  assert.deepEqual(held.map((x: { id: string; containerId: string }) => [x.id, x.containerId]), [[endpointId(e, 'eth0'), e]], 'the placeholder became the endpoint');
  const history = (await api('GET', `/api/v1/history?since=${placeholder.revision - 1}`)).items as Array<{ revision: number; op: string; object?: { id?: string } }>;
  const gone = history.find((c) => c.op === 'delete' && c.object?.id === placeholder.id);
  const made = history.find((c) => c.op === 'put' && c.object?.id === endpointId(e, 'eth0'));
  assert.ok(gone && gone.revision === made?.revision, `one write: the placeholder went as the endpoint came (${gone?.revision}, ${made?.revision})`);
  assert.equal(created.Interface.MacAddress, held[0].mac, 'Docker is told the MAC Weft chose (it gave none)');
  const withMac = await docker('NetworkDriver.CreateEndpoint', { NetworkID: n.networkId, EndpointID: dockerId(), Interface: { Address: '10.1.2.78/24', MacAddress: '02:AA:BB:CC:DD:EE' }, Options: {} });
  assert.deepEqual(withMac, {}, 'a MAC Docker set is not answered again (libnetwork refuses a changed field)');
  assert.equal((await api('GET', '/api/v1/endpoints?tenant=blue')).items.find((x: { ip: string }) => x.ip === '10.1.2.78')?.mac, '02:aa:bb:cc:dd:ee');
});

test('fail closed: the new address is in the tenant\'s nft table when CreateEndpoint returns, before Docker can use it', async () => {
  const n = await createNetwork({ tenant: 'blue', group: 'db' });
  const backend = (agent as unknown as { docker: DockerBackend }).docker;
  const original = backend.createEndpoint.bind(backend);
  let tableAtReturn = '';
  backend.createEndpoint = async (r) => {
    const answer = await original(r);
    tableAtReturn = dp.namespaces.get(tenantNs())?.table ?? '';
    return answer;
  };
  try {
    // An address with no reservation (a network on Docker's default IPAM with --subnet): only CreateEndpoint can protect it.
    assert.doesNotMatch(dp.namespaces.get(tenantNs())?.table ?? '', /10\.1\.2\.200\b/);
    await docker('NetworkDriver.CreateEndpoint', { NetworkID: n.networkId, EndpointID: dockerId(), Interface: { Address: '10.1.2.200/24' }, Options: {} });
  } finally {
    delete (backend as Partial<DockerBackend>).createEndpoint;
  }
  assert.match(tableAtReturn, /10\.1\.2\.200\b/, 'the address was in the table as the answer went to Docker');
});

test('Join wires the endpoint through attachOuter onto its network\'s bridge, hairpin only once the tenant has services; never one of another network', async () => {
  const n = await createNetwork({ tenant: 'blue', group: 'db' });
  const mark = dp.journal.length;
  const a = await run(n);
  const outer = `wd${a.endpointDocker.slice(0, 12)}`;
  assert.deepEqual(a.joined, { InterfaceName: { SrcName: outer, DstPrefix: 'eth' }, Gateway: '10.1.2.1', StaticRoutes: [], DisableGatewayService: true });
  const veth = names.endpointVeth(a.id);
  const vni = (await endpoint(a.id)).vni as number;
  assert.ok(dp.journal.slice(mark).includes(`attachOuter ${tenantNs()} ${veth} ${outer}`), dp.journal.slice(mark).join('\n'));
  assert.deepEqual(dp.namespaces.get(tenantNs())?.links.get(veth), { kind: 'veth', bridge: names.bridge(vni), hairpin: false });

  await api('POST', '/api/v1/tenants/blue/services', { name: 'svc', network: 'net', selector: { group: 'db' }, ports: [{ port: 80, targetPort: 8080, protocol: 'TCP' }] });
  assert.ok(await within(5000, async () => agent.state.services.has('blue/svc')) >= 0);
  const b = await run(n);
  assert.equal(dp.namespaces.get(tenantNs())?.links.get(names.endpointVeth(b.id))?.hairpin, true, 'a service backend may reach itself through its VIP');
  assert.equal(dp.namespaces.get(tenantNs())?.links.get(veth)?.hairpin, true, 'and the port wired before the service was converged to it');
  await api('DELETE', '/api/v1/tenants/blue/services/svc');

  const elsewhere = await createNetwork({ tenant: 'blue', network: 'other' });
  const cross = await callDocker(socket(), 'NetworkDriver.Join', { NetworkID: elsewhere.networkId, EndpointID: a.endpointDocker, SandboxKey: '/x', Options: null });
  assert.deepEqual([cross.status, cross.json.Err], [500, `weft: endpoint ${a.id} is not on network blue/other`]);
});

test('ProgramExternalConnectivity records the published ports and the host table DNATs them; Revoke takes them back', async () => {
  const n = await createNetwork({ tenant: 'blue', group: 'db' });
  const a = await run(n);
  const portmap = [{ Proto: 6, IP: '', Port: 8888, HostIP: '', HostPort: 18081, HostPortEnd: 18081 }];
  await docker('NetworkDriver.ProgramExternalConnectivity', { NetworkID: n.networkId, EndpointID: a.endpointDocker, Options: { 'com.docker.network.portmap': portmap, 'com.docker.network.endpoint.exposedports': [{ Proto: 6, Port: 8888 }] } });
  assert.deepEqual((await endpoint(a.id)).portMappings, [{ hostPort: 18081, containerPort: 8888, protocol: 'tcp' }]);
  assert.match(dp.host.table, /tcp \. 18081 : 169\.254\.[0-9.]+[,\s]/, 'in the host table\'s published ports as the call returns');
  await docker('NetworkDriver.RevokeExternalConnectivity', { NetworkID: n.networkId, EndpointID: a.endpointDocker });
  assert.deepEqual((await endpoint(a.id)).portMappings ?? [], []);
  assert.doesNotMatch(dp.host.table, /18081/);
});

test('Leave keeps the wiring; DeleteEndpoint answers at once and releases in the background: address, veth and connections', async () => {
  const n = await createNetwork({ tenant: 'blue', group: 'db' });
  const a = await run(n);
  const veth = names.endpointVeth(a.id);
  await docker('NetworkDriver.Leave', { NetworkID: n.networkId, EndpointID: a.endpointDocker });
  assert.ok(dp.namespaces.get(tenantNs())?.links.has(veth), 'Leave removes nothing (DeleteEndpoint follows)');
  assert.deepEqual(await docker('NetworkDriver.DeleteEndpoint', { NetworkID: n.networkId, EndpointID: a.endpointDocker }), {});
  assert.ok(await within(5000, async () => (await http(server.url, server.token, 'GET', `/api/v1/endpoints/${a.id}`)).status === 404) >= 0, 'released on the server');
  assert.ok(await within(2000, async () => !dp.namespaces.get(tenantNs())?.links.has(veth)) >= 0, 'the veth is gone');
  assert.ok(dp.namespaces.get(tenantNs())?.forgotten.includes(a.ip), 'its connections were forgotten');
  const before = (await api('GET', '/api/v1/endpoints')).items.length;
  assert.deepEqual(await docker('NetworkDriver.DeleteEndpoint', { NetworkID: n.networkId, EndpointID: a.endpointDocker }), {}, 'again: nothing to do');
  await new Promise((r) => setTimeout(r, 200));
  assert.equal((await api('GET', '/api/v1/endpoints')).items.length, before);
});
