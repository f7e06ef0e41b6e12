import { test } from 'node:test';
import assert from 'node:assert/strict';
import { handleDocker } from './handler.js';
import type { DockerHost } from './protocol.js';
import { genericOptions, portMapOf } from './protocol.js';

const NET = 'a'.repeat(64);
const EP = 'b'.repeat(64);
/** Records calls and answers fixed values: the handler's own logic is what is under test. */
function host(fail?: Error): DockerHost & { calls: string[] } {
  const calls: string[] = [];
  const ok = async (name: string) => {
    calls.push(name);
    if (fail) throw fail;
  };
  return {
    calls,
    requestPool: async () => { await ok('requestPool'); return { PoolID: 'p', Pool: '10.0.0.0/24', Data: {} }; },
    releasePool: () => ok('releasePool'),
    requestAddress: async () => { await ok('requestAddress'); return { Address: '10.0.0.2/24', Data: {} }; },
    releaseAddress: () => ok('releaseAddress'),
    createNetwork: () => ok('createNetwork'),
    deleteNetwork: () => ok('deleteNetwork'),
    createEndpoint: async () => { await ok('createEndpoint'); return {}; },
    deleteEndpoint: () => ok('deleteEndpoint'),
    join: async () => { await ok('join'); return { InterfaceName: { SrcName: 'wd1', DstPrefix: 'eth' }, Gateway: '10.0.0.1', StaticRoutes: [], DisableGatewayService: true }; },
    leave: () => ok('leave'),
    programExternalConnectivity: () => ok('program'),
    revokeExternalConnectivity: () => ok('revoke'),
  };
}

test('the handshake and capabilities are what libnetwork expects, with empty bodies', async () => {
  const h = host();
  assert.deepEqual(await handleDocker(h, '/Plugin.Activate', ''), { status: 200, body: { Implements: ['NetworkDriver', 'IpamDriver'] } });
  assert.deepEqual((await handleDocker(h, '/NetworkDriver.GetCapabilities', '')).body, { Scope: 'local', ConnectivityScope: 'global' });
  assert.deepEqual((await handleDocker(h, '/IpamDriver.GetDefaultAddressSpaces', '')).body, { LocalDefaultAddressSpace: 'weft', GlobalDefaultAddressSpace: 'weft' });
  assert.deepEqual((await handleDocker(h, '/NetworkDriver.EndpointOperInfo', JSON.stringify({ NetworkID: NET, EndpointID: EP }))).body, { Value: {} });
  assert.deepEqual(h.calls, []);
});

test("calls reach the host with their fields; answers keep Docker's shapes", async () => {
  const h = host();
  const join = await handleDocker(h, '/NetworkDriver.Join', `${JSON.stringify({ NetworkID: NET, EndpointID: EP, SandboxKey: '/var/run/docker/netns/x', Options: {} })}\n`);
  assert.deepEqual(join.body, { InterfaceName: { SrcName: 'wd1', DstPrefix: 'eth' }, Gateway: '10.0.0.1', StaticRoutes: [], DisableGatewayService: true });
  const addr = await handleDocker(h, '/IpamDriver.RequestAddress', JSON.stringify({ PoolID: 'p', Address: '', Options: null }));
  assert.deepEqual(addr.body, { Address: '10.0.0.2/24', Data: {} });
  assert.equal((await handleDocker(h, '/NetworkDriver.RevokeExternalConnectivity', JSON.stringify({ NetworkID: NET, EndpointID: EP }))).status, 200);
  assert.deepEqual(h.calls, ['join', 'requestAddress', 'revoke']);
});

test('malformed requests get 400 naming the field and reach nothing; failures are 500 with Err; unknown methods 404', async () => {
  const h = host();
  const bad: Array<[string, string, RegExp]> = [
    ['/NetworkDriver.Join', '{', /not JSON/],
    ['/NetworkDriver.Join', JSON.stringify({ NetworkID: 'short', EndpointID: EP, SandboxKey: '/x', Options: {} }), /^weft: NetworkID: /],
    ['/NetworkDriver.CreateEndpoint', JSON.stringify({ NetworkID: NET, EndpointID: EP, Options: {} }), /^weft: Interface: /],
    ['/IpamDriver.RequestPool', JSON.stringify({ AddressSpace: 'weft', Pool: '', SubPool: '', Options: {}, V6: 'no' }), /^weft: V6: /],
    // Inside `X | null` fields: the field within, not just the union.
    ['/IpamDriver.RequestPool', JSON.stringify({ AddressSpace: 'weft', Pool: '', SubPool: '', Options: { tenant: 5 }, V6: false }), /^weft: Options\.tenant: Expected string$/],
    ['/NetworkDriver.CreateNetwork', JSON.stringify({ NetworkID: NET, Options: null, IPv4Data: [{ Gateway: '10.0.0.1/24' }], IPv6Data: null }), /^weft: IPv4Data\.0\.Pool: Expected required property$/],
    ['/NetworkDriver.CreateNetwork', JSON.stringify({ NetworkID: NET, Options: null, IPv4Data: '10.0.0.0/24', IPv6Data: null }), /^weft: IPv4Data: Expected array or null$/],
  ];
  for (const [path, body, why] of bad) {
    const r = await handleDocker(h, path, body);
    assert.equal(r.status, 400, `${path} ${body}`);
    assert.match((r.body as { Err: string }).Err, why);
  }
  assert.deepEqual(h.calls, [], 'nothing reached the host');
  assert.throws(() => genericOptions({ 'com.docker.network.generic': 'x' }), /generic: must be an object/);
  assert.deepEqual(genericOptions({ 'com.docker.network.generic': { tenant: 'blue' } }), { tenant: 'blue' });
  const failing = await handleDocker(host(new Error('tenant nope not found')), '/NetworkDriver.DeleteNetwork', JSON.stringify({ NetworkID: NET }));
  assert.deepEqual(failing, { status: 500, body: { Err: 'weft: tenant nope not found' } });
  assert.equal((await handleDocker(h, '/VolumeDriver.Mount', '{}')).status, 404);
});

test('published ports: tcp and udp by IANA number, one host port each', () => {
  assert.deepEqual(portMapOf({ 'com.docker.network.portmap': [{ Proto: 6, Port: 80, HostPort: 8080, HostPortEnd: 8080 }, { Proto: 17, Port: 53, HostPort: 5353 }] }),
    [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }, { hostPort: 5353, containerPort: 53, protocol: 'udp' }]);
  assert.deepEqual(portMapOf(null), []);
  assert.throws(() => portMapOf({ 'com.docker.network.portmap': [{ Proto: 132, Port: 1, HostPort: 1 }] }), /Proto: 132 is not tcp/);
  assert.throws(() => portMapOf({ 'com.docker.network.portmap': [{ Proto: 6, Port: 80, HostPort: 0 }] }), /a host port is needed/);
  assert.throws(() => portMapOf({ 'com.docker.network.portmap': [{ Proto: 6, Port: 80, HostPort: 8080, HostPortEnd: 8090 }] }), /ranges are not supported/);
  // No address (-p 8080:80): every family. A family's wildcard stays that family (the agent checks it against
  // the endpoint's addresses); the same port bound in both families is every family.
  assert.deepEqual(portMapOf({ 'com.docker.network.portmap': [{ Proto: 6, Port: 80, HostPort: 8080, HostIP: '0.0.0.0' }, { Proto: 6, Port: 80, HostPort: 8080, HostIP: '::' }, { Proto: 6, Port: 81, HostPort: 8081, HostIP: '' }, { Proto: 17, Port: 53, HostPort: 53, HostIP: '0.0.0.0' }, { Proto: 17, Port: 54, HostPort: 54, HostIP: '::' }] }),
    [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }, { hostPort: 8081, containerPort: 81, protocol: 'tcp' }, { hostPort: 53, containerPort: 53, protocol: 'udp', family: 4 }, { hostPort: 54, containerPort: 54, protocol: 'udp', family: 6 }]);
  // One address of it is refused, not widened to all.
  for (const HostIP of ['127.0.0.1', '192.0.2.7', '::1']) {
    assert.throws(() => portMapOf({ 'com.docker.network.portmap': [{ Proto: 6, Port: 80, HostPort: 8080, HostIP }] }), /portmap\.0\.HostIP: '.*': weft publishes a port on every address of the host, not on one/, HostIP);
  }
});
