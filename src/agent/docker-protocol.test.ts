import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { MemoryDatapath } from '../datapath/index.js';
import { http as api, startServerProcess, type ServerProcess } from '../testkit/server.js';
import { inviteHost, within } from '../testkit/host.js';
import type { Agent } from './agent.js';
import { callDocker, createDockerNetwork, dockerId, dockerOk, dockerSocketIn, runContainer, startDockerTestAgent } from './docker/testing.js';

/**
 * Malformed and hostile plugin calls against a real agent (in-memory datapath) and a real server: each
 * gets 400 with `Err` naming the field, and changes nothing on the server or in the datapath.
 */
const log = pino({ level: process.env['WEFT_TEST_LOG'] ?? 'silent' });
const PREFIX = 'p-';
let server: ServerProcess;
let dir: string;
let dp: MemoryDatapath;
let agent: Agent;
let net: { networkId: string; poolId: string };
let ep: { endpointDocker: string; id: string };
let pendingPool: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'weft-docker-protocol-'));
  server = await startServerProcess();
  dp = new MemoryDatapath(PREFIX);
  agent = await startDockerTestAgent({
    serverUrl: server.url, invite: () => inviteHost(server.url, server.token, 'node1'), dir, dp, nsPrefix: PREFIX, host: 'node1', resyncMs: 60_000, repairGraceMs: 0, log,
  });
  assert.equal((await api(server.url, server.token, 'POST', '/api/v1/tenants/default/networks', { name: 'net', subnet: '10.1.2.0/24' })).status, 201);
  assert.ok(await within(5000, async () => agent.state.networks.has('default/net')) >= 0);
  net = await createDockerNetwork(dockerSocketIn(dir), { network: 'net' });
  ep = await runContainer(dockerSocketIn(dir), net);
  // A pool handed out and not yet bound to a network (Docker's --aux-address requests come on one).
  pendingPool = (await dockerOk(dockerSocketIn(dir), 'IpamDriver.RequestPool', { AddressSpace: 'weft', Pool: '10.1.2.0/24', SubPool: '', Options: {}, V6: false })).PoolID;
});

after(async () => {
  await agent?.stop();
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** What a call could change: the server's endpoints and Docker networks, and what reached the datapath. */
async function world(): Promise<string> {
  const eps = (await api(server.url, server.token, 'GET', '/api/v1/endpoints')).json.items.map((e: { id: string; ip: string; portMappings?: unknown }) => `${e.id} ${e.ip} ${JSON.stringify(e.portMappings ?? [])}`);
  const nets = (await api(server.url, server.token, 'GET', '/api/v1/tenants/default/docker-networks')).json.items.map((n: { name: string; pool?: string }) => `${n.name} ${n.pool}`);
  const ops = dp.journal.filter((l) => !/^(ensureTenant|ensureHost) /.test(l));
  return JSON.stringify({ eps: eps.sort(), nets: nets.sort(), ops });
}

const HEX = /^[a-f0-9]{64}$/;
const pool = (o: Record<string, unknown>) => ({ AddressSpace: 'weft', Pool: '', SubPool: '', Options: {}, V6: false, ...o });
const portmap = (m: Record<string, unknown>) => ({ NetworkID: '', EndpointID: '', Options: { 'com.docker.network.portmap': [{ Proto: 6, IP: '', Port: 80, HostIP: '', HostPort: 8080, HostPortEnd: 8080, ...m }] } });

test('every call, malformed: 400 with Err naming the field, and nothing changes', async () => {
  const N = net.networkId;
  const E = ep.endpointDocker;
  const cases: Array<[string, unknown, string | RegExp]> = [
    ['IpamDriver.RequestPool', 'not json{', /^weft: the request body is not JSON: /],
    ['IpamDriver.RequestPool', 'null', 'weft: body: Expected object'],
    ['IpamDriver.RequestPool', { AddressSpace: 'weft', Pool: '', SubPool: '', Options: {} }, 'weft: V6: Expected required property'],
    ['IpamDriver.RequestPool', pool({ Options: { tenant: 5 } }), 'weft: Options.tenant: Expected string'],
    ['IpamDriver.RequestPool', pool({ SubPool: '10.1.2.0/25' }), 'weft: SubPool: needs a Pool'],
    ['IpamDriver.RequestPool', pool({ Options: { network: '../../users' } }), /^weft: --ipam-opt network: '\.\.\/\.\.\/users' is not a Weft name/],
    ['IpamDriver.RequestPool', pool({ Options: { tenant: 'x'.repeat(64), network: 'net' } }), /^weft: --ipam-opt tenant: 'x{64}' is not a Weft name/],
    ['IpamDriver.ReleasePool', {}, 'weft: PoolID: Expected required property'],
    ['IpamDriver.RequestAddress', { PoolID: 7, Address: '', Options: null }, 'weft: PoolID: Expected string'],
    ['IpamDriver.RequestAddress', { PoolID: net.poolId, Address: '', Options: { RequestAddressType: 1 } }, 'weft: Options.RequestAddressType: Expected string'],
    ['IpamDriver.ReleaseAddress', { PoolID: net.poolId }, 'weft: Address: Expected required property'],
    ['NetworkDriver.CreateNetwork', { NetworkID: 'ABC', Options: null, IPv4Data: null, IPv6Data: null }, `weft: NetworkID: Expected string to match '${HEX.source}'`],
    ['NetworkDriver.CreateNetwork', { NetworkID: dockerId(), Options: null, IPv4Data: [{ Gateway: '10.1.2.1/24' }], IPv6Data: [] }, 'weft: IPv4Data.0.Pool: Expected required property'],
    ['NetworkDriver.CreateNetwork', { NetworkID: dockerId(), Options: { 'com.docker.network.generic': 'network=net' }, IPv4Data: [], IPv6Data: [] }, 'weft: Options.com.docker.network.generic: must be an object'],
    ['NetworkDriver.CreateNetwork', { NetworkID: dockerId(), Options: { 'com.docker.network.generic': { network: 'Net!' } }, IPv4Data: [], IPv6Data: [] }, /^weft: -o network: 'Net!' is not a Weft name/],
    ['NetworkDriver.DeleteNetwork', {}, 'weft: NetworkID: Expected required property'],
    ['NetworkDriver.CreateEndpoint', { NetworkID: N, EndpointID: dockerId(), Options: null }, 'weft: Interface: Expected required property'],
    ['NetworkDriver.CreateEndpoint', { NetworkID: N, EndpointID: dockerId(), Interface: { Address: 5 }, Options: null }, 'weft: Interface.Address: Expected string'],
    ['NetworkDriver.CreateEndpoint', { NetworkID: N, EndpointID: dockerId(), Interface: {}, Options: null }, 'weft: Interface.Address: missing (create the network with --ipam-driver weft)'],
    ['NetworkDriver.EndpointOperInfo', {}, 'weft: NetworkID: Expected required property'],
    ['NetworkDriver.Join', { NetworkID: N, EndpointID: E, Options: null }, 'weft: SandboxKey: Expected required property'],
    ['NetworkDriver.Leave', { NetworkID: N }, 'weft: EndpointID: Expected required property'],
    ['NetworkDriver.DeleteEndpoint', { NetworkID: N, EndpointID: `${E.slice(0, 63)}G` }, `weft: EndpointID: Expected string to match '${HEX.source}'`],
    ['NetworkDriver.ProgramExternalConnectivity', { NetworkID: N, EndpointID: E, Options: 'x' }, 'weft: Options: Expected object or null'],
    ['NetworkDriver.ProgramExternalConnectivity', { ...portmap({ Proto: 132 }), NetworkID: N, EndpointID: E }, 'weft: Options.com.docker.network.portmap.0.Proto: 132 is not tcp (6) or udp (17)'],
    ['NetworkDriver.ProgramExternalConnectivity', { ...portmap({ HostPort: 0 }), NetworkID: N, EndpointID: E }, 'weft: Options.com.docker.network.portmap.0: a host port is needed (weft does not pick one)'],
    ['NetworkDriver.ProgramExternalConnectivity', { ...portmap({ HostPortEnd: 8090 }), NetworkID: N, EndpointID: E }, 'weft: Options.com.docker.network.portmap.0: host port ranges are not supported'],
    ['NetworkDriver.RevokeExternalConnectivity', { NetworkID: '', EndpointID: E }, `weft: NetworkID: Expected string to match '${HEX.source}'`],
    // Session 52's probe: each of these was accepted (or a 500 naming the server's field).
    ['NetworkDriver.ProgramExternalConnectivity', { ...portmap({ HostIP: '127.0.0.1' }), NetworkID: N, EndpointID: E }, /^weft: Options\.com\.docker\.network\.portmap\.0\.HostIP: '127\.0\.0\.1': weft publishes a port on every address of the host, not on one; leave the address out \(-p 8080:80\)$/],
    ['NetworkDriver.ProgramExternalConnectivity', { NetworkID: N, EndpointID: E, Options: { 'com.docker.network.portmap': [null] } }, 'weft: Options.com.docker.network.portmap.0: must be an object'],
    ['NetworkDriver.ProgramExternalConnectivity', { NetworkID: N, EndpointID: E, Options: { 'com.docker.network.portmap': { Proto: 6 } } }, 'weft: Options.com.docker.network.portmap: must be a list of port bindings'],
    ['NetworkDriver.ProgramExternalConnectivity', { ...portmap({ HostPort: 70000 }), NetworkID: N, EndpointID: E }, 'weft: Options.com.docker.network.portmap.0.HostPort: 70000 is not a host port (1-65535)'],
    ['NetworkDriver.ProgramExternalConnectivity', { ...portmap({ Port: 80.5 }), NetworkID: N, EndpointID: E }, 'weft: Options.com.docker.network.portmap.0.Port: 80.5 is not a container port (1-65535)'],
    ['NetworkDriver.ProgramExternalConnectivity', { ...portmap({ HostPort: '8080' }), NetworkID: N, EndpointID: E }, 'weft: Options.com.docker.network.portmap.0.HostPort: "8080" is not a host port (1-65535)'],
    ['IpamDriver.RequestPool', pool({ Pool: 'garbage' }), /^weft: Pool: 'garbage' is not a CIDR/],
    ['IpamDriver.RequestPool', pool({ Pool: '10.1.2.5/24' }), /^weft: Pool: '10\.1\.2\.5\/24' has host bits set/],
    ['IpamDriver.RequestPool', pool({ Pool: '169.254.0.0/16' }), /^weft: Pool: 169\.254\.0\.0\/16 overlaps 169\.254\.0\.0\/16 \(link-local/],
    ['IpamDriver.RequestPool', pool({ Pool: 'fd00::/64' }), /^weft: Pool: 'fd00::\/64' /],
    ['IpamDriver.RequestPool', pool({ Pool: '10.1.2.0/24', SubPool: '10.1.2.0/25' }), /^weft: SubPool: weft does not take --ip-range from Docker/],
    ['IpamDriver.RequestPool', pool({ Options: { bogus: 'x' } }), 'weft: Options.bogus: unknown (weft takes --ipam-opt tenant= and --ipam-opt network=)'],
    ['IpamDriver.RequestAddress', { PoolID: pendingPool, Address: '10.1.2.77', Options: null }, "weft: Address: 10.1.2.77: weft does not take --aux-address; keep the address out of the Weft network's range instead (weft net create --ip-range FIRST-LAST)"],
    ['IpamDriver.RequestAddress', { PoolID: net.poolId, Address: 'garbage', Options: null }, "weft: Address: 'garbage' is not an IPv4 address"],
    ['NetworkDriver.ProgramExternalConnectivity', { ...portmap({ HostIP: '::' }), NetworkID: N, EndpointID: E }, /^weft: Options\.com\.docker\.network\.portmap: \[::\]:8080 asks for IPv6 only, but weft publishes a port on every address family of the endpoint \(it has 10\.1\.2\.\d+ too\); leave the address out \(-p 8080:80\)$/],
    ['NetworkDriver.CreateNetwork', { NetworkID: dockerId(), Options: { 'com.docker.network.generic': { network: 'net', group: null } }, IPv4Data: [{ Pool: '10.1.2.0/24' }], IPv6Data: [] }, 'weft: Options.com.docker.network.generic.group: must be a string (-o group=VALUE)'],
    ['NetworkDriver.CreateNetwork', { NetworkID: dockerId(), Options: { 'com.docker.network.generic': { network: 'net' } }, IPv4Data: [{ Pool: '10.1.2.0/24', Gateway: 'garbage' }], IPv6Data: [] }, "weft: IPv4Data.0.Gateway: 'garbage' is not an IPv4 address (ADDRESS/PREFIX)"],
    ['NetworkDriver.CreateNetwork', { NetworkID: dockerId(), Options: { 'com.docker.network.generic': { network: 'net' } }, IPv4Data: [{ Pool: '10.1.2.0/24' }, { Pool: '10.99.0.0/16' }], IPv6Data: [] }, 'weft: IPv4Data.1: weft networks have one IPv4 subnet (give --subnet once)'],
    ['NetworkDriver.CreateEndpoint', { NetworkID: N, EndpointID: dockerId(), Interface: { Address: '10.1.2.91/garbage' }, Options: null }, "weft: Interface.Address: '10.1.2.91/garbage' is not an IPv4 address (ADDRESS/PREFIX)"],
    ['NetworkDriver.CreateEndpoint', { NetworkID: N, EndpointID: dockerId(), Interface: { Address: '10.1.2.91/24', MacAddress: 'zz' }, Options: null }, "weft: Interface.MacAddress: 'zz' is not a MAC address (aa:bb:cc:dd:ee:ff)"],
  ];
  const before = await world();
  for (const [call, body, err] of cases) {
    const r = await callDocker(dockerSocketIn(dir), call, body);
    const what = `${call} ${typeof body === 'string' ? body : JSON.stringify(body)}`;
    assert.equal(r.status, 400, `${what}: ${JSON.stringify(r.json)}`);
    if (typeof err === 'string') assert.equal(r.json.Err, err, what);
    else assert.match(r.json.Err, err, what);
  }
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(await world(), before, 'no endpoint, Docker network, port or wiring changed');
});

test('hostile requests: a body over 1 MiB is refused (413, naming the body), other methods and unknown calls are refused; the plugin keeps serving', async () => {
  const before = await world();
  const huge = JSON.stringify(pool({ Options: { pad: 'x'.repeat(2 << 20) } }));
  // Answered, not dropped: a dropped connection left Docker with 'socket hang up' and no Err to show.
  const big = await callDocker(dockerSocketIn(dir), 'IpamDriver.RequestPool', huge);
  assert.equal(big.status, 413);
  assert.match(big.json.Err, /body: over 1048576 bytes/);
  const get = await new Promise<number>((resolve, reject) => {
    http.get({ socketPath: dockerSocketIn(dir), path: '/NetworkDriver.Join' }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    }).on('error', reject);
  });
  assert.equal(get, 405);
  const unknown = await callDocker(dockerSocketIn(dir), 'VolumeDriver.Mount', {});
  assert.deepEqual([unknown.status, unknown.json.Err], [404, '/VolumeDriver.Mount: not implemented by the weft plugin']);
  assert.equal(await world(), before);
  await dockerOk(dockerSocketIn(dir), 'NetworkDriver.Leave', { NetworkID: net.networkId, EndpointID: ep.endpointDocker });
});

test('a --gateway other than the Weft network\'s is refused at CreateNetwork, and nothing is made', async () => {
  const before = await world();
  const r = await callDocker(dockerSocketIn(dir), 'NetworkDriver.CreateNetwork', { NetworkID: dockerId(), Options: { 'com.docker.network.generic': { network: 'net' } }, IPv4Data: [{ Pool: '10.1.2.0/24', Gateway: '10.1.2.77/24' }], IPv6Data: [] });
  assert.notEqual(r.status, 200);
  assert.match(r.json.Err, /--gateway 10\.1\.2\.77 conflicts with network default\/net \(gateway 10\.1\.2\.1\)/);
  assert.equal(await world(), before);
});
