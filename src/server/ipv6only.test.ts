import { test } from 'node:test';
import assert from 'node:assert/strict';
import { testApi, type TestApi } from './testkit.js';
import { MemoryStore } from '../store/index.js';

// IPv6-only networks (issue 19): subnet6 alone. Endpoints get an IPv6 address and nothing of IPv4;
// everything that names an IPv4 address on such a network is refused with its field named.

async function ok(api: TestApi, method: string, url: string, body?: unknown): Promise<any> {
  const r = await api.call(method, url, body);
  assert.ok(r.status < 300, `${method} ${url}: ${r.status} ${JSON.stringify(r.json)}`);
  return r.json;
}

let seq = 0;
const endpoint = (api: TestApi, extra: Record<string, unknown> = {}, network = 'six', tenant = 'default') =>
  api.call('POST', '/api/v1/endpoints', { tenant, network, containerId: `c${seq++}`, host: 'h1', ifname: 'eth0', netns: '/run/netns/x', ...extra });

async function sixApi(store = new MemoryStore()): Promise<TestApi> {
  const api = await testApi({ store });
  await ok(api, 'POST', '/api/v1/tenants/default/networks', { name: 'six', subnet6: 'FD00:60::/64' });
  return api;
}

test('an IPv6-only network: no IPv4 field stored, each endpoint an IPv6 address, a MAC from it, and no IPv4 book', async () => {
  const store = new MemoryStore();
  const api = await sixApi(store);
  const net = await ok(api, 'GET', '/api/v1/tenants/default/networks/six');
  assert.deepEqual([net.subnet, net.gateway, net.ipRange, net.subnet6, net.gateway6], [undefined, undefined, undefined, 'fd00:60::/64', 'fd00:60::1']);
  const a = (await endpoint(api)).json;
  const b = (await endpoint(api)).json;
  assert.deepEqual([a.ip, a.prefixLength, a.gateway, a.ip6, a.prefixLength6, a.gateway6], [undefined, undefined, undefined, 'fd00:60::2', 64, 'fd00:60::1']);
  assert.equal(b.ip6, 'fd00:60::3');
  // 02:58 and the address's last 32 bits: distinct per address, never an IPv4-derived (02:57) one.
  assert.deepEqual([a.mac, b.mac], ['02:58:00:00:00:02', '02:58:00:00:00:03']);
  assert.deepEqual((await store.list('ipam/default/six')).entries.filter((e) => !e.key.includes('/v6')).map((e) => e.key), [], 'no IPv4 address book');
  // Released with its endpoint, and the same address again next.
  assert.equal((await api.call('DELETE', `/api/v1/endpoints/${a.id}`)).status, 204);
  assert.equal((await endpoint(api)).json.ip6, 'fd00:60::2');
  // A requested IPv6 address is taken; an IPv4 one is refused naming ip.
  assert.equal((await endpoint(api, { ip6: 'fd00:60::99' })).json.ip6, 'fd00:60::99');
  const far = await endpoint(api, { ip6: 'fd00:60::1:0:0:2' });
  assert.deepEqual([far.status, far.json.field], [422, 'ip6'], 'past the first 2^32 addresses: its MAC would be another\'s');
  assert.match(far.json.detail, /first 2\^32 addresses/);
  const four = await endpoint(api, { ip: '10.0.0.5' });
  assert.deepEqual([four.status, four.json.field], [422, 'ip'], JSON.stringify(four.json));
  assert.match(four.json.detail, /IPv6-only/);
});

test('bad IPv6-only input is refused with its field named, and makes nothing', async () => {
  const api = await testApi({});
  const cases: Array<[Record<string, unknown>, string, RegExp]> = [
    [{ name: 'x' }, 'subnet', /give subnet \(IPv4\), subnet6 \(IPv6\) or both/],
    [{ name: 'x', subnet6: 'fd00:61::/64', gateway: '10.0.0.1' }, 'gateway', /only a network with an IPv4 subnet/],
    [{ name: 'x', subnet6: 'fd00:61::/64', ipRange: '10.0.0.5-10.0.0.9' }, 'ipRange', /only a network with an IPv4 subnet/],
    [{ name: 'x', subnet6: 'fd00:61::/64', encap: 'routed' }, 'subnet', /needs an IPv4 subnet too \(its IPv6 blocks pair with its IPv4 blocks\)/],
    [{ name: 'x', subnet6: 'fd00:61::/64', encap: 'macvlan', parent: 'eth1' }, 'ipRange6', /a real segment's prefix; give the share of it Weft may hand out/],
    [{ name: 'x', subnet6: 'fd00:61::/64', ipRange6: 'fd00:61::1:0:0:0-fd00:61::1:0:0:9', encap: 'macvlan', parent: 'eth1' }, 'ipRange6', /first 2\^32 addresses of subnet6/],
    [{ name: 'x', gateway6: 'fd00:61::1' }, 'subnet', /give subnet \(IPv4\), subnet6 \(IPv6\) or both/],
    [{ name: 'x', subnet6: 'fd00:61::/64', ipRange6: 'fd00:61::1:0:0:0-fd00:61::1:0:0:9' }, 'ipRange6', /first 2\^32 addresses of subnet6/],
  ];
  for (const [body, field, re] of cases) {
    const r = await api.call('POST', '/api/v1/tenants/default/networks', body);
    assert.ok(r.status >= 400 && r.status < 500 && r.json.field === field && re.test(r.json.detail), `${JSON.stringify(body)}: ${r.status} ${JSON.stringify(r.json)}`);
  }
  assert.deepEqual((await ok(api, 'GET', '/api/v1/tenants/default/networks')).items, []);
});

test('on an IPv6-only network: a group ipPool, an IPv4 VIP and a Docker network mapping are refused naming the field; a service gets an IPv6 VIP alone', async () => {
  const api = await sixApi();
  const pool = await api.call('POST', '/api/v1/tenants/default/groups', { name: 'db', network: 'six', ipPool: '10.0.0.10-10.0.0.20' });
  assert.deepEqual([pool.status, pool.json.field], [422, 'ipPool'], JSON.stringify(pool.json));
  await ok(api, 'POST', '/api/v1/tenants/default/groups', { name: 'web', network: 'six' });
  const member = (await endpoint(api, { group: 'web' })).json;
  assert.deepEqual([member.group, member.ip, member.ip6], ['web', undefined, 'fd00:60::2']);
  // A service there has an IPv6 VIP alone; asking for an IPv4 one is refused.
  const v4vip = await api.call('POST', '/api/v1/tenants/default/services', { name: 's', network: 'six', vip: '10.0.0.9', selector: { group: 'web' }, ports: [{ port: 80, targetPort: 80, protocol: 'TCP' }] });
  assert.deepEqual([v4vip.status, v4vip.json.field], [422, 'vip'], JSON.stringify(v4vip.json));
  assert.deepEqual((await ok(api, 'GET', '/api/v1/tenants/default/services')).items, []);
  const svc = await ok(api, 'POST', '/api/v1/tenants/default/services', { name: 's', network: 'six', selector: { group: 'web' }, ports: [{ port: 80, targetPort: 80, protocol: 'TCP' }] });
  assert.deepEqual([svc.vip, svc.vip6], [undefined, 'fd00:60::3']);
  assert.equal((await api.call('DELETE', '/api/v1/tenants/default/services/s')).status, 204);
  assert.equal((await endpoint(api)).json.ip6, 'fd00:60::3', 'the VIP went back with its service');
  // Docker asks every network for an IPv4 pool: a Docker network is never mapped onto an IPv6-only one.
  const docker = await api.call('POST', '/api/v1/tenants/default/docker-networks', { name: 'd'.repeat(63), network: 'six', host: 'h1', pool: 'weft-0123' });
  assert.deepEqual([docker.status, docker.json.field], [422, 'network'], JSON.stringify(docker.json));
  assert.match(docker.json.detail, /IPv6-only/);
});

test('IPv6-only and dual-stack networks of one tenant may not overlap in subnet6; an update keeps what it omits', async () => {
  const api = await sixApi();
  const clash = await api.call('POST', '/api/v1/tenants/default/networks', { name: 'ds', subnet: '10.40.0.0/24', subnet6: 'fd00:60::/48' });
  assert.deepEqual([clash.status, clash.json.field], [409, 'subnet6']);
  await ok(api, 'POST', '/api/v1/tenants/default/networks', { name: 'ds', subnet: '10.40.0.0/24', subnet6: 'fd00:41::/64' });
  // An update of the IPv6-only network (its MTU) needs no subnet; adding an IPv4 subnet later is refused.
  const upd = await ok(api, 'PUT', '/api/v1/tenants/default/networks/six', { name: 'six', mtu: 1400 });
  assert.deepEqual([upd.subnet, upd.subnet6, upd.mtu], [undefined, 'fd00:60::/64', 1400]);
  const add4 = await api.call('PUT', '/api/v1/tenants/default/networks/six', { name: 'six', subnet: '10.41.0.0/24' });
  assert.deepEqual([add4.status, add4.json.code, add4.json.field], [422, 'WEFT_IMMUTABLE', 'subnet'], JSON.stringify(add4.json));
  // A dual-stack network's update may omit its IPv4 subnet too (kept).
  const ds = await ok(api, 'PUT', '/api/v1/tenants/default/networks/ds', { name: 'ds', mtu: 1400 });
  assert.deepEqual([ds.subnet, ds.gateway, ds.subnet6], ['10.40.0.0/24', '10.40.0.1', 'fd00:41::/64']);
});

test('explain and the matrix name an IPv6-only endpoint by its IPv6 address; an IPv4 address against it is refused', async () => {
  const api = await sixApi();
  await ok(api, 'POST', '/api/v1/tenants/default/groups', { name: 'web', network: 'six' });
  await ok(api, 'POST', '/api/v1/tenants/default/policies', { name: 'p', rules: [{ id: 'r1', direction: 'in', priority: 1, action: 'deny', protocol: 'tcp', ports: '22', fromGroup: 'web' }] });
  await ok(api, 'POST', '/api/v1/tenants/default/groups', { name: 'db', network: 'six', policies: ['p'] });
  const web = (await endpoint(api, { group: 'web', containerName: 'w1' })).json;
  const db = (await endpoint(api, { group: 'db', containerName: 'd1' })).json;
  const ssh = await ok(api, 'GET', '/api/v1/tenants/default/explain?from=w1&to=d1&protocol=tcp&port=22');
  assert.deepEqual([ssh.from.ip, ssh.to.ip, ssh.allowed], [web.ip6, db.ip6, false]);
  const http = await ok(api, 'GET', `/api/v1/tenants/default/explain?from=${web.ip6}&to=${db.ip6}&protocol=tcp&port=80`);
  assert.deepEqual([http.from.endpoint, http.to.endpoint, http.allowed], [web.id, db.id, true]);
  const mixed = await api.call('GET', '/api/v1/tenants/default/explain?from=192.0.2.1&to=d1&protocol=tcp&port=22');
  assert.deepEqual([mixed.status, mixed.json.field], [422, 'from'], JSON.stringify(mixed.json));
  const m = await ok(api, 'GET', '/api/v1/tenants/default/matrix?protocol=tcp&port=22');
  const names = m.groups.map((g: any) => g.name);
  const [i, j] = [names.indexOf('web'), names.indexOf('db')];
  assert.deepEqual([m.cells[i][j].allowed, m.cells[j][i].allowed], [false, true]);
  assert.equal(m.groups[i].representative.ip, web.ip6);
});
