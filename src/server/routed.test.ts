import { test } from 'node:test';
import assert from 'node:assert/strict';
import { testApi, type TestApi } from './testkit.js';

async function ok(api: TestApi, method: string, url: string, body?: unknown, token?: string): Promise<any> {
  const r = await api.call(method, url, body, {}, token);
  assert.ok(r.status < 300, `${method} ${url}: ${r.status} ${JSON.stringify(r.json)}`);
  return r.json;
}

let seq = 0;
const endpoint = (api: TestApi, host: string, extra: Record<string, unknown> = {}, network = 'fabric') =>
  api.call('POST', '/api/v1/endpoints', { tenant: 'default', network, containerId: `c${seq++}`, host, ifname: 'eth0', netns: '/run/netns/x', ...extra });

/** A routed /24 in blocks of /28 (16 addresses: 14, 13 in the gateway's). */
async function routedApi(): Promise<TestApi> {
  const api = await testApi();
  await ok(api, 'POST', '/api/v1/tenants/default/networks', { name: 'fabric', subnet: '10.20.0.0/24', encap: 'routed', blockSize: 28 });
  return api;
}

test('a routed network: blocks of its hosts, each address from a block of its own host; a full block claims the next free one', async () => {
  const api = await routedApi();
  const net = await ok(api, 'GET', '/api/v1/tenants/default/networks/fabric');
  assert.deepEqual([net.encap, net.blockSize, net.encrypt, net.bgpPeers], ['routed', 28, false, undefined]);
  const a = [];
  for (let i = 0; i < 15; i++) a.push((await endpoint(api, 'h1')).json.ip);
  assert.deepEqual(a.slice(0, 3), ['10.20.0.2', '10.20.0.3', '10.20.0.4'], 'h1 takes the first block (.0 and the gateway .1 are reserved)');
  assert.equal(a[14], '10.20.0.16', 'the 15th address: block 0 is full (14 usable), the next block is claimed');
  const b = (await endpoint(api, 'h2')).json.ip;
  assert.equal(b, '10.20.0.32', 'h2 gets a block of its own, not the rest of h1\'s second block');
  assert.equal((await endpoint(api, 'h1')).json.ip, '10.20.0.17', 'h1 continues in its own block');
});

test('a requested address in another host\'s block is refused, naming the block and its host; in a free block it claims it', async () => {
  const api = await routedApi();
  await endpoint(api, 'h1');
  const r = await endpoint(api, 'h2', { ip: '10.20.0.9' });
  assert.equal(r.status, 422);
  assert.match(r.json.detail, /^ip: 10\.20\.0\.9 is in block 10\.20\.0\.0\/28 of routed network default\/fabric, which host h1 holds/);
  assert.equal(r.json.field, 'ip');
  assert.equal((await endpoint(api, 'h2', { ip: '10.20.0.100' })).json.ip, '10.20.0.100');
  assert.equal((await endpoint(api, 'h2')).json.ip, '10.20.0.96', 'h2\'s next address comes from the block it claimed');
  assert.equal((await endpoint(api, 'h3', { ip: '10.20.0.101' })).status, 422, 'and no one else may use it');
});

test('a block whose last endpoint went is free again for any host', async () => {
  const api = await routedApi();
  const e = (await endpoint(api, 'h1')).json;
  assert.equal((await endpoint(api, 'h2')).json.ip, '10.20.0.16');
  assert.equal((await api.call('DELETE', `/api/v1/endpoints/${e.id}`)).status, 204);
  assert.equal((await endpoint(api, 'h3')).json.ip, '10.20.0.2', 'h3 takes the emptied first block');
});

test('when every block is held, the error says by whom and what to change', async () => {
  const api = await testApi();
  await ok(api, 'POST', '/api/v1/tenants/default/networks', { name: 'small', subnet: '10.21.0.0/27', encap: 'routed', blockSize: 28 });
  assert.equal((await endpoint(api, 'h1', {}, 'small')).status, 201);
  assert.equal((await endpoint(api, 'h2', {}, 'small')).status, 201);
  const r = await endpoint(api, 'h3', {}, 'small');
  assert.equal(r.status, 409);
  assert.match(r.json.detail, /no free address in the blocks host h3 holds, and every other \/28 block it may use is held \(blocks held: host h1 1, host h2 1\); a smaller blockSize/);
});

test('a service VIP on a routed network holds a block no host routes', async () => {
  const api = await routedApi();
  await endpoint(api, 'h1');
  const svc = await ok(api, 'POST', '/api/v1/tenants/default/services', { name: 'web', network: 'fabric', selector: { group: 'x' }, ports: [{ port: 80, targetPort: 80, protocol: 'TCP' }] });
  assert.equal(svc.vip, '10.20.0.16', 'the VIP is in a block of its own');
  assert.equal((await endpoint(api, 'h2')).json.ip, '10.20.0.32', 'which no host then takes');
  const taken = await endpoint(api, 'h2', { ip: '10.20.0.20' });
  assert.match(taken.json.detail, /which the services \(VIPs\) hold/);
});

test('routed networks are checked: fields only with encap routed, block size, reserved and overlapping subnets, BGP peers and AS numbers', async () => {
  const api = await testApi();
  await ok(api, 'POST', '/api/v1/tenants', { name: 'blue' });
  await ok(api, 'PUT', '/api/v1/hosts/node1', { name: 'node1', vtepIp: '192.0.2.10', agentVersion: '0.1.0' });
  await ok(api, 'POST', '/api/v1/tenants/default/networks', { name: 'fabric', subnet: '10.20.0.0/16', encap: 'routed', bgpPeers: ['192.0.2.1'], bgpPeerAs: 64512 });
  await ok(api, 'POST', '/api/v1/tenants/default/networks', { name: 'lan', subnet: '192.168.50.0/24', encap: 'macvlan', parent: 'eth1' });
  const bad: Array<[Record<string, unknown>, string, RegExp]> = [
    [{ subnet: '10.30.0.0/24', blockSize: 26 }, 'blockSize', /only a network with encap routed has blockSize \(this one is vxlan\)/],
    [{ subnet: '10.30.0.0/24', bgpPeers: ['192.0.2.1'] }, 'bgpPeers', /only a network with encap routed/],
    [{ subnet: '10.30.0.0/24', encap: 'routed', blockSize: 20 }, 'blockSize', /\/20 is larger than the subnet/],
    [{ subnet: '10.30.0.0/24', encap: 'routed', encrypt: true }, 'encrypt', /no overlay to encrypt/],
    [{ subnet: '169.254.0.0/16', encap: 'routed' }, 'subnet', /link-local/],
    [{ subnet: '192.0.2.8/29', encap: 'routed' }, 'subnet', /holds host node1's address 192\.0\.2\.10/],
    [{ subnet: '192.0.2.0/30', encap: 'routed' }, 'subnet', /holds 192\.0\.2\.1, a BGP router of routed network default\/fabric/],
    [{ subnet: '224.1.0.0/16', encap: 'routed' }, 'subnet', /multicast/],
    [{ subnet: '100.64.1.0/24', encap: 'routed' }, 'subnet', /overlaps the cluster's tunnel range 100\.64\.0\.0\/16/],
    [{ subnet: '11.0.0.0/8', encap: 'routed', blockSize: 30 }, 'blockSize', /4194304 blocks; at most 16384 \(a block size of \/22 or larger\)/],
    [{ subnet: '10.30.0.0/24', encap: 'routed', bgpPeers: ['10.30.0.9'], bgpPeerAs: 1 }, 'bgpPeers.0', /inside the network's own subnet/],
    [{ subnet: '10.30.0.0/24', encap: 'routed', bgpPeers: ['192.0.2.7', '192.0.2.7'], bgpPeerAs: 1 }, 'bgpPeers.1', /listed twice/],
    [{ subnet: '10.30.0.0/24', encap: 'routed', bgpPeers: ['nope'], bgpPeerAs: 1 }, 'bgpPeers.0', /not an IPv4 address/],
    [{ subnet: '10.30.0.0/24', encap: 'routed', bgpPeers: ['192.0.2.7'] }, 'bgpPeerAs', /needs the routers' AS/],
    [{ subnet: '10.30.0.0/24', encap: 'routed', bgpPeerAs: 5 }, 'bgpPeerAs', /no bgpPeers/],
    [{ subnet: '10.30.0.0/24', encap: 'routed', bgpPeers: ['192.0.2.7'], bgpPeerAs: 64513 }, 'bgpPeerAs', /both in AS 64513; hosts speak eBGP only/],
    [{ subnet: '10.30.0.0/24', encap: 'routed', bgpPeers: ['192.0.2.1'], bgpPeerAs: 65000 }, 'bgpPeerAs', /BGP router 192\.0\.2\.1 is also routed network default\/fabric's/],
    [{ subnet: '10.30.0.0/24', encap: 'routed', bgpPeerAs: 0 }, 'bgpPeerAs', /must be >= 1/],
  ];
  for (const [i, [body, field, why]] of bad.entries()) {
    const r = await api.call('POST', '/api/v1/tenants/default/networks', { name: `bad${i}`, ...body });
    // A value no network may have is 400 (the special ranges are refused for every encapsulation); one a routed network may not have, 422.
    const anyNetwork = body['bgpPeerAs'] === 0 || ['169.254.0.0/16', '224.1.0.0/16'].includes(String(body['subnet']));
    assert.equal(r.status, anyNetwork ? 400 : 422, `${JSON.stringify(body)}: ${JSON.stringify(r.json)}`);
    assert.equal(r.json.field, field, JSON.stringify(r.json));
    assert.match(r.json.detail, why);
  }
  const overlap = await api.call('POST', '/api/v1/tenants/blue/networks', { name: 'mine', subnet: '10.20.5.0/24', encap: 'routed' });
  assert.equal(overlap.status, 409);
  assert.match(overlap.json.detail, /overlaps routed network default\/fabric \(10\.20\.0\.0\/16\): routed subnets share the hosts' routing table/);
  await ok(api, 'POST', '/api/v1/tenants/blue/networks', { name: 'vx', subnet: '10.20.5.0/24' });
  const names = [];
  for (const t of ['default', 'blue']) names.push(...(await ok(api, 'GET', `/api/v1/tenants/${t}/networks`)).items.map((n: any) => n.name));
  assert.deepEqual(names.sort(), ['fabric', 'lan', 'vx'], 'nothing refused was made');
  const onSegment = await api.call('POST', '/api/v1/tenants/blue/networks', { name: 'onseg', subnet: '192.168.50.0/25', encap: 'routed' });
  assert.equal(onSegment.status, 409, 'a routed subnet on a macvlan segment, in another tenant');
  assert.match(onSegment.json.detail, /overlaps macvlan network default\/lan .*machines on a real segment/);
  const mv = await api.call('POST', '/api/v1/tenants/blue/networks', { name: 'seg', subnet: '10.20.9.0/24', encap: 'macvlan', parent: 'eth1' });
  assert.equal(mv.status, 409, 'nor a macvlan network inside a routed subnet');
  assert.match(mv.json.detail, /overlaps routed network default\/fabric/);
  const immut = await api.call('PATCH', '/api/v1/tenants/default/networks/fabric', { blockSize: 24 });
  assert.equal(immut.status, 422);
  assert.deepEqual([immut.json.code, immut.json.field], ['WEFT_IMMUTABLE', 'blockSize']);
  const peers = await ok(api, 'PATCH', '/api/v1/tenants/default/networks/fabric', { bgpPeers: ['192.0.2.1', '192.0.2.2'] });
  assert.deepEqual([peers.bgpPeers, peers.bgpPeerAs, peers.bgpLocalAs], [['192.0.2.1', '192.0.2.2'], 64512, 64513], 'peers may change; the AS numbers are kept');
});

test('only admin and ops users make or change a routed network; a tenant user still uses one', async () => {
  const api = await testApi();
  await ok(api, 'POST', '/api/v1/tenants', { name: 'blue' });
  await ok(api, 'POST', '/api/v1/users', { name: 'bob', role: 'tenant', tenants: ['blue'] });
  const token = (await api.control.users.tokens.issue('admin', 'bob', 'test', null)).token;
  const refused = await api.call('POST', '/api/v1/tenants/blue/networks', { name: 'r', subnet: '10.40.0.0/24', encap: 'routed' }, {}, token);
  assert.equal(refused.status, 403);
  assert.match(refused.json.detail, /may not make or change a macvlan or routed network/);
  await ok(api, 'POST', '/api/v1/tenants/blue/networks', { name: 'r', subnet: '10.40.0.0/24', encap: 'routed' });
  const patch = await api.call('PATCH', '/api/v1/tenants/blue/networks/r', { mtu: 1400 }, {}, token);
  assert.equal(patch.status, 403, 'a change of an operator\'s routed network too');
  const peers = await api.call('PATCH', '/api/v1/tenants/blue/networks/r', { bgpPeers: ['192.0.2.9'], bgpPeerAs: 1 }, {}, token);
  assert.equal(peers.status, 403);
  const e = await api.call('POST', '/api/v1/endpoints', { tenant: 'blue', network: 'r', containerId: 'x1', host: 'h1', ifname: 'eth0', netns: '/run/netns/x' });
  assert.equal(e.status, 201);
});
