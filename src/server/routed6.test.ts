import { test } from 'node:test';
import assert from 'node:assert/strict';
import { testApi, type TestApi } from './testkit.js';

/** Routed networks with IPv6 (issue 19): IPv6 blocks paired with the IPv4 ones, hosts' IPv6 underlay addresses. */

async function ok(api: TestApi, method: string, url: string, body?: unknown, token?: string): Promise<any> {
  const r = await api.call(method, url, body, {}, token);
  assert.ok(r.status < 300, `${method} ${url}: ${r.status} ${JSON.stringify(r.json)}`);
  return r.json;
}

let seq = 0;
const endpoint = (api: TestApi, host: string, extra: Record<string, unknown> = {}, network = 'fabric') =>
  api.call('POST', '/api/v1/endpoints', { tenant: 'default', network, containerId: `c${seq++}`, host, ifname: 'eth0', netns: '/run/netns/x', ...extra });

/** A routed /24 in /28 blocks (16 of them), with a /64 beside it: /68 IPv6 blocks. */
async function routedApi(): Promise<TestApi> {
  const api = await testApi();
  await ok(api, 'POST', '/api/v1/tenants/default/networks', { name: 'fabric', subnet: '10.20.0.0/24', subnet6: 'fd00:20::/64', encap: 'routed', blockSize: 28 });
  return api;
}

test("a routed dual-stack network: each endpoint's IPv6 address lies in the IPv6 block paired with its IPv4 block", async () => {
  const api = await routedApi();
  const net = await ok(api, 'GET', '/api/v1/tenants/default/networks/fabric');
  assert.deepEqual([net.subnet6, net.gateway6, net.blockSize], ['fd00:20::/64', 'fd00:20::1', 28]);
  const a = (await endpoint(api, 'h1')).json;
  assert.deepEqual([a.ip, a.ip6, a.prefixLength6, a.gateway6], ['10.20.0.2', 'fd00:20::2', 64, 'fd00:20::1'], 'block 0 of each family (anycast and gateway taken)');
  const b = (await endpoint(api, 'h2')).json;
  assert.deepEqual([b.ip, b.ip6], ['10.20.0.16', 'fd00:20:0:0:1000::'], "h2's IPv4 block 1 (10.20.0.16/28) pairs with IPv6 block 1 (fd00:20:0:0:1000::/68)");
  assert.equal((await endpoint(api, 'h2')).json.ip6, 'fd00:20::1000:0:0:1', 'the next one in the same block');
  assert.equal((await endpoint(api, 'h1')).json.ip6, 'fd00:20::3');
});

test('a requested IPv6 address outside its IPv4 block\'s pair is refused naming ip6, and nothing is taken', async () => {
  const api = await routedApi();
  await endpoint(api, 'h1');
  const r = await endpoint(api, 'h2', { ip6: 'fd00:20::9' });
  assert.equal(r.status, 422, JSON.stringify(r.json));
  assert.equal(r.json.field, 'ip6');
  assert.match(r.json.detail, /^ip6: fd00:20::9 is not an address network default\/fabric's IPv6 block fd00:20:0:0:1000::\/68 \(paired with the IPv4 block of 10\.20\.0\.16\) may use/);
  // The refused request's IPv4 address went back with it: h2 still gets the first of block 1.
  const c = (await endpoint(api, 'h2', { ip6: 'fd00:20::1000:0:0:99' })).json;
  assert.deepEqual([c.ip, c.ip6], ['10.20.0.16', 'fd00:20::1000:0:0:99']);
});

test('a service VIP6 lies in the IPv6 block paired with its VIP', async () => {
  const api = await routedApi();
  await endpoint(api, 'h1');
  const svc = await ok(api, 'POST', '/api/v1/tenants/default/services', { name: 'web', network: 'fabric', selector: { group: 'x' }, ports: [{ port: 80, targetPort: 80, protocol: 'TCP' }] });
  assert.deepEqual([svc.vip, svc.vip6], ['10.20.0.16', 'fd00:20:0:0:1000::']);
});

test('routed subnet6s are checked: an IPv4 subnet beside it, blocks no smaller than the IPv4 ones, no range, no overlap in any tenant, no host inside', async () => {
  const api = await testApi();
  await ok(api, 'POST', '/api/v1/tenants', { name: 'blue' });
  await ok(api, 'PUT', '/api/v1/hosts/node1', { name: 'node1', vtepIp: '192.0.2.10', vtepIp6: 'fd99::10', agentVersion: '0.1.0' });
  await ok(api, 'POST', '/api/v1/tenants/default/networks', { name: 'fabric', subnet: '10.20.0.0/16', subnet6: 'fd00:20::/64', encap: 'routed' });
  const bad: Array<[string, Record<string, unknown>, string, RegExp]> = [
    ['default', { subnet6: 'fd00:30::/64', encap: 'routed' }, 'subnet', /needs an IPv4 subnet too/],
    ['default', { subnet: '10.30.0.0/16', subnet6: 'fd00:30::/120', encap: 'routed', blockSize: 26 }, 'subnet6', /gives \/130 blocks, no larger than the IPv4 ones; use a subnet6 of \/111 or larger/],
    ['default', { subnet: '10.30.0.0/16', subnet6: 'fd00:30::/112', encap: 'routed', blockSize: 26 }, 'subnet6', /gives \/122 blocks, no larger than the IPv4 ones/],
    ['blue', { subnet: '10.32.0.0/16', subnet6: 'fd00:ec2::/64', encap: 'routed' }, 'subnet6', /holds fd00:ec2::123, a cloud provider's metadata, DNS or time service/],
    ['default', { subnet: '10.30.0.0/16', subnet6: 'fd00:30::/64', encap: 'routed', ipRange6: 'fd00:30::10-fd00:30::ff' }, 'ipRange6', /paired with each endpoint's IPv4 block/],
    ['blue', { subnet: '10.31.0.0/16', subnet6: 'fd00:20:0:0:8000::/65', encap: 'routed' }, 'subnet6', /overlaps routed network default\/fabric \(fd00:20::\/64\)/],
    ['blue', { subnet: '10.31.0.0/16', subnet6: 'fd99::/64', encap: 'routed' }, 'subnet6', /holds host node1's IPv6 underlay address fd99::10/],
  ];
  for (const [tenant, body, field, why] of bad) {
    const r = await api.call('POST', `/api/v1/tenants/${tenant}/networks`, { name: 'bad', ...body });
    assert.ok(r.status >= 400 && r.status < 500, `${JSON.stringify(body)}: ${r.status} ${JSON.stringify(r.json)}`);
    assert.equal(r.json.field, field, JSON.stringify(r.json));
    assert.match(r.json.detail, why);
  }
  for (const t of ['default', 'blue']) assert.deepEqual((await ok(api, 'GET', `/api/v1/tenants/${t}/networks`)).items.map((n: any) => n.name), t === 'default' ? ['fabric'] : [], 'nothing refused was made');
  // An overlay network may reuse the routed subnet6 in another tenant (as with IPv4): it is not routed by the hosts.
  await ok(api, 'POST', '/api/v1/tenants/blue/networks', { name: 'vx', subnet: '10.20.5.0/24', subnet6: 'fd00:20::/64' });
});

test("a host's IPv6 underlay address: stored canonically, checked, never another host's or inside a routed subnet6, hidden from tenant users", async () => {
  const api = await testApi();
  await ok(api, 'POST', '/api/v1/tenants/default/networks', { name: 'fabric', subnet: '10.20.0.0/16', subnet6: 'fd00:20::/64', encap: 'routed' });
  const h = await ok(api, 'PUT', '/api/v1/hosts/node1', { name: 'node1', vtepIp: '192.0.2.10', vtepIp6: 'FD99:0:0::0010' });
  assert.equal(h.vtepIp6, 'fd99::10');
  const bad: Array<[string, RegExp]> = [
    ['nope', /not an IPv6 address/],
    ['192.0.2.9', /not an IPv6 address/],
    ['fe80::1', /no global \(2000::\/3\) or unique local/],
    ['ff02::1', /no global/],
    ['::1', /no global/],
    ['fd9f:5e3a:b17c:ffff::5', /no global/],
    ['fd99::10', /the IPv6 underlay address of host node1/],
    ['fd00:20::77', /inside routed network default\/fabric's subnet6 fd00:20::\/64/],
    ['x'.repeat(200), /./],
  ];
  for (const [v6, why] of bad) {
    const r = await api.call('PUT', '/api/v1/hosts/node2', { name: 'node2', vtepIp: '192.0.2.11', vtepIp6: v6 });
    assert.ok(r.status >= 400 && r.status < 500, `${v6}: ${r.status}`);
    assert.equal(r.json.field ?? (/vtepIp6/.test(r.json.detail) ? 'vtepIp6' : undefined), 'vtepIp6', `${v6}: ${JSON.stringify(r.json)}`);
    assert.match(r.json.detail, why, v6);
  }
  assert.equal((await api.call('GET', '/api/v1/hosts/node2')).status, 404, 'nothing refused was registered');
  await ok(api, 'PUT', '/api/v1/hosts/node2', { name: 'node2', vtepIp: '192.0.2.11' });
  assert.equal((await ok(api, 'GET', '/api/v1/hosts/node2')).vtepIp6, undefined, 'a host without one');
  await ok(api, 'POST', '/api/v1/users', { name: 'bob', role: 'tenant', tenants: ['default'] });
  const token = (await api.control.users.tokens.issue('admin', 'bob', 'test', null)).token;
  const seen = await ok(api, 'GET', '/api/v1/hosts/node1', undefined, token);
  assert.deepEqual([seen.vtepIp, seen.vtepIp6], [undefined, undefined], "a tenant user sees no host's underlay");
});

test('a Docker network is never mapped onto a routed network with IPv6 (Docker would configure its IPv6 on-link), naming the field', async () => {
  const api = await routedApi();
  const docker = await api.call('POST', '/api/v1/tenants/default/docker-networks', { name: 'd'.repeat(63), network: 'fabric', host: 'h1', pool: 'weft-0123' });
  assert.deepEqual([docker.status, docker.json.field], [422, 'network'], JSON.stringify(docker.json));
  assert.match(docker.json.detail, /routed network with IPv6; Docker configures IPv6 on-link/);
  assert.deepEqual((await ok(api, 'GET', '/api/v1/tenants/default/docker-networks')).items, []);
  await ok(api, 'POST', '/api/v1/tenants/default/networks', { name: 'four', subnet: '10.21.0.0/24', encap: 'routed' });
  await ok(api, 'POST', '/api/v1/tenants/default/docker-networks', { name: 'e'.repeat(63), network: 'four', host: 'h1', pool: 'weft-0124' });
});
