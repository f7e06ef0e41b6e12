import { test } from 'node:test';
import assert from 'node:assert/strict';
import { testApi, type TestApi } from './testkit.js';
import { MemoryStore } from '../store/index.js';

async function ok(api: TestApi, method: string, url: string, body?: unknown): Promise<any> {
  const r = await api.call(method, url, body);
  assert.ok(r.status < 300, `${method} ${url}: ${r.status} ${JSON.stringify(r.json)}`);
  return r.json;
}

let seq = 0;
const endpoint = (api: TestApi, extra: Record<string, unknown> = {}, network = 'ds', tenant = 'default') =>
  api.call('POST', '/api/v1/endpoints', { tenant, network, containerId: `c${seq++}`, host: 'h1', ifname: 'eth0', netns: '/run/netns/x', ...extra });

async function dualApi(store?: MemoryStore): Promise<TestApi> {
  const api = await testApi(store ? { store } : {});
  await ok(api, 'POST', '/api/v1/tenants/default/networks', { name: 'ds', subnet: '10.30.0.0/24', subnet6: 'FD00:30:0:0::/64' });
  return api;
}

test('a dual-stack network: its subnet6 stored canonically, gateway6 ::1, each endpoint an address of each family', async () => {
  const api = await dualApi();
  const net = await ok(api, 'GET', '/api/v1/tenants/default/networks/ds');
  assert.deepEqual([net.subnet6, net.gateway6, net.ipRange6], ['fd00:30::/64', 'fd00:30::1', undefined]);
  const a = (await endpoint(api)).json;
  const b = (await endpoint(api)).json;
  assert.deepEqual([a.ip, a.ip6, a.prefixLength6, a.gateway6], ['10.30.0.2', 'fd00:30::2', 64, 'fd00:30::1']);
  assert.equal(b.ip6, 'fd00:30::3');
  const got = await ok(api, 'GET', `/api/v1/endpoints/${a.id}`);
  assert.equal(got.ip6, 'fd00:30::2');
  const v4only = await ok(api, 'POST', '/api/v1/tenants/default/networks', { name: 'v4', subnet: '10.31.0.0/24' });
  assert.equal(v4only.subnet6, undefined);
  const c = (await endpoint(api, {}, 'v4')).json;
  assert.deepEqual([c.ip6, c.prefixLength6, c.gateway6], [undefined, undefined, undefined]);
});

test('IPv6 addresses go back with their endpoint, a requested one is checked, and replaces keeps both', async () => {
  const store = new MemoryStore();
  const api = await dualApi(store);
  const a = (await endpoint(api)).json;
  assert.equal((await api.call('DELETE', `/api/v1/endpoints/${a.id}`)).status, 204);
  assert.equal((await endpoint(api)).json.ip6, 'fd00:30::2', 'the released address is the lowest free again');
  const r = await endpoint(api, { ip6: 'fd00:30::2' });
  assert.deepEqual([r.status, r.json.field], [409, 'ip6']);
  const far = await endpoint(api, { ip6: 'fd00:30::ffff:ffff:ffff:fffe' });
  assert.equal(far.json.ip6, 'fd00:30::ffff:ffff:ffff:fffe', 'anywhere in the /64');
  const chunks = async () => (await store.list('ipam/default/ds/v6/')).entries.length;
  const before = await chunks();
  assert.equal((await api.call('DELETE', `/api/v1/endpoints/${far.json.id}`)).status, 204);
  assert.equal(await chunks(), before - 1, 'a chunk emptied again is deleted, so stored chunks stay bounded by the addresses in use');
  for (const [ip6, re] of [['fd00:31::5', /not an address network default\/ds may use/], ['fd00:30::1', /already in use/], ['10.30.0.9', /is not an IPv6 address/], ['fd00:30::', /not an address/]] as const) {
    const x = await endpoint(api, { ip6 });
    assert.ok(x.status >= 400 && x.json.field === 'ip6' && re.test(x.json.detail), `${ip6}: ${x.status} ${JSON.stringify(x.json)}`);
  }
  const v4 = await ok(api, 'POST', '/api/v1/tenants/default/networks', { name: 'v4', subnet: '10.31.0.0/24' });
  const refused = await endpoint(api, { ip6: 'fd00::9' }, v4.name);
  assert.deepEqual([refused.status, refused.json.field], [422, 'ip6']);
  const old = (await endpoint(api)).json;
  const next = (await endpoint(api, { replaces: old.id, ip6: old.ip6.toUpperCase() })).json;
  assert.deepEqual([next.ip, next.ip6], [old.ip, old.ip6], 'the same address in another spelling is the same address');
});

test('bad IPv6 network input is refused with its field named, and makes nothing', async () => {
  const api = await testApi();
  const cases: Array<[Record<string, unknown>, string, RegExp]> = [
    [{ subnet6: 'fd00::/129' }, 'subnet6', /prefix length/],
    [{ subnet6: 'fd00::/8' }, 'subnet6', /between \/16 and \/120/],
    [{ subnet6: 'fd00::/124' }, 'subnet6', /between \/16 and \/120/],
    [{ subnet6: 'fd00::1/64' }, 'subnet6', /host bits set/],
    [{ subnet6: '10.0.0.0/8' }, 'subnet6', /invalid IPv6/],
    [{ subnet6: 'fd00::/64', gateway6: 'fd01::1' }, 'gateway6', /not a usable address/],
    [{ subnet6: 'fd00::/64', gateway6: 'fd00::' }, 'gateway6', /not a usable address/],
    [{ subnet6: 'fd00::/64', gateway6: '10.0.0.1' }, 'gateway6', /not an IPv6 address/],
    [{ subnet6: 'fd00::/64', ipRange6: 'fd00::10-fd01::1' }, 'ipRange6', /not inside/],
    [{ gateway6: 'fd00::1' }, 'gateway6', /only a network with a subnet6/],
    [{ ipRange6: 'fd00::1-fd00::2' }, 'ipRange6', /only a network with a subnet6/],
    [{ subnet6: 'fd00::/64', encap: 'routed', ipRange6: 'fd00::10-fd00::ff' }, 'ipRange6', /paired with each endpoint's IPv4 block/],
    [{ subnet6: 'x'.repeat(300) }, 'subnet6', /./],
    [{ subnet6: 'fe80::/64' }, 'subnet6', /not a global unicast \(2000::\/3\) or unique local \(fc00::\/7\) prefix/],
    [{ subnet6: 'ff00::/16' }, 'subnet6', /not a global unicast/],
    [{ subnet6: '::/120' }, 'subnet6', /not a global unicast/],
    [{ subnet6: '::ffff:0:0/96' }, 'subnet6', /not a global unicast/],
    [{ subnet6: '4000::/16' }, 'subnet6', /not a global unicast/],
    // Where the hosts put their tenants' IPv6 uplinks: inside it, or around it.
    [{ subnet6: 'fd9f:5e3a:b17c:ffff::/120' }, 'subnet6', /meets fd9f:5e3a:b17c:ffff::\/64, where every host puts its tenants' IPv6 uplinks/],
    [{ subnet6: 'fd9f:5e3a::/32' }, 'subnet6', /meets fd9f:5e3a:b17c:ffff::\/64/],
  ];
  for (const [extra, field, re] of cases) {
    const r = await api.call('POST', '/api/v1/tenants/default/networks', { name: 'bad', subnet: '10.40.0.0/24', ...extra });
    assert.ok(r.status === 400 || r.status === 422, `${JSON.stringify(extra)}: ${r.status}`);
    assert.ok(r.json.field === field || (r.json.detail ?? '').includes(field), `${JSON.stringify(extra)}: ${JSON.stringify(r.json)}`);
    assert.match(r.json.detail, re, JSON.stringify(extra));
  }
  assert.equal((await api.call('GET', '/api/v1/tenants/default/networks/bad')).status, 404);
});

test('IPv6 subnets may not overlap inside a tenant, may across tenants, and are fixed', async () => {
  const api = await dualApi();
  const r = await api.call('POST', '/api/v1/tenants/default/networks', { name: 'other', subnet: '10.32.0.0/24', subnet6: 'fd00:30::/48' });
  assert.deepEqual([r.status, r.json.field], [409, 'subnet6']);
  await ok(api, 'POST', '/api/v1/tenants', { name: 'red' });
  await ok(api, 'POST', '/api/v1/tenants/red/networks', { name: 'ds', subnet: '10.30.0.0/24', subnet6: 'fd00:30::/64' });
  assert.equal((await endpoint(api, {}, 'ds', 'red')).json.ip6, 'fd00:30::2', 'the same addresses in another tenant');
  const change = await api.call('PUT', '/api/v1/tenants/default/networks/ds', { name: 'ds', subnet: '10.30.0.0/24', subnet6: 'fd00:99::/64' });
  assert.deepEqual([change.status, change.json.code, change.json.field], [422, 'WEFT_IMMUTABLE', 'subnet6']);
  const kept = await ok(api, 'PUT', '/api/v1/tenants/default/networks/ds', { name: 'ds', subnet: '10.30.0.0/24', mtu: 1400 });
  assert.deepEqual([kept.subnet6, kept.mtu], ['fd00:30::/64', 1400], 'an update that omits subnet6 keeps it');
  await ok(api, 'POST', '/api/v1/tenants/default/networks', { name: 'v4x', subnet: '10.33.0.0/24' });
  const late = await api.call('PUT', '/api/v1/tenants/default/networks/v4x', { name: 'v4x', subnet: '10.33.0.0/24', subnet6: 'fd00:33::/64' });
  assert.deepEqual([late.status, late.json.code, late.json.field], [422, 'WEFT_IMMUTABLE', 'subnet6'], 'a network does not become dual-stack after creation');
});

test('explain takes IPv6 addresses: an endpoint\'s is decided as its IPv4 one, another is elsewhere, two families are refused', async () => {
  const api = await dualApi();
  await ok(api, 'POST', '/api/v1/tenants/default/groups', { name: 'db', network: 'ds' });
  await ok(api, 'POST', '/api/v1/tenants/default/policies', { name: 'p', rules: [{ id: '1', protocol: 'tcp', action: 'deny' }, { id: '2', priority: 10, protocol: 'tcp', ports: '80', action: 'allow', fromCidr: '10.30.0.0/24' }] });
  await ok(api, 'PATCH', '/api/v1/tenants/default/groups/db', { policies: ['p'] });
  const db = (await endpoint(api, { group: 'db' })).json;
  const app = (await endpoint(api)).json;
  const ex = (from: string, to: string, port = 80) => api.call('GET', `/api/v1/tenants/default/explain?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}&protocol=tcp&port=${port}`);
  const v6 = await ex(app.ip6, db.ip6.toUpperCase());
  assert.equal(v6.status, 200, JSON.stringify(v6.json));
  assert.deepEqual([v6.json.from.ip, v6.json.to.ip, v6.json.to.endpoint, v6.json.allowed, v6.json.ingress.rule.id], [app.ip6, db.ip6, db.id, true, '2'], 'the CIDR rule on the IPv4 address decides for the endpoint\'s IPv6 too');
  const v4 = await ex(app.ip, db.ip);
  assert.deepEqual([v4.json.allowed, v4.json.ingress.rule.id], [true, '2'], 'the same verdict in IPv4');
  const stranger = await ex('fd00:30::99', db.ip6);
  assert.deepEqual([stranger.json.from.endpoint, stranger.json.allowed, stranger.json.ingress.rule.id], [null, false, '1'], 'an address of no endpoint is outside every CIDR');
  const named = await ex(app.id, db.ip6, 81);
  assert.deepEqual([named.json.from.ip, named.json.allowed], [app.ip6, false], 'an endpoint named beside an IPv6 address is shown by its IPv6 address');
  const mixed = await ex(app.ip, db.ip6);
  assert.deepEqual([mixed.status, mixed.json.field], [422, 'from'], 'the IPv4 side is named');
  await ok(api, 'POST', '/api/v1/tenants/default/networks', { name: 'v4', subnet: '10.31.0.0/24' });
  const four = (await endpoint(api, {}, 'v4')).json;
  const noSix = await ex(db.ip6, four.id);
  assert.deepEqual([noSix.status, noSix.json.field], [422, 'to'], 'an endpoint without IPv6 beside an IPv6 address');
});

test('a service on a dual-stack network gets an IPv6 VIP too (requested or the next free), gives it back, and is refused one elsewhere', async () => {
  const api = await dualApi();
  await endpoint(api);
  const svc = await ok(api, 'POST', '/api/v1/tenants/default/services', { name: 'web', network: 'ds', selector: { group: 'x' }, ports: [{ port: 80, targetPort: 8080, protocol: 'TCP' }] });
  assert.deepEqual([svc.vip, svc.vip6], ['10.30.0.3', 'fd00:30::3']);
  const asked = await ok(api, 'POST', '/api/v1/tenants/default/services', { name: 'db', network: 'ds', vip6: 'fd00:30::53', selector: { group: 'x' }, ports: [{ port: 53, targetPort: 53, protocol: 'UDP' }] });
  assert.equal(asked.vip6, 'fd00:30::53');
  const taken = await api.call('POST', '/api/v1/tenants/default/services', { name: 'dup', network: 'ds', vip6: 'fd00:30::53', selector: { group: 'x' }, ports: [{ port: 1, targetPort: 1, protocol: 'TCP' }] });
  assert.deepEqual([taken.status, taken.json.field], [409, 'vip6']);
  const moved = await api.call('PUT', '/api/v1/tenants/default/services/db', { name: 'db', network: 'ds', vip6: 'fd00:30::54', selector: { group: 'x' }, ports: [{ port: 53, targetPort: 53, protocol: 'UDP' }] });
  assert.deepEqual([moved.status, moved.json.field], [422, 'vip6']);
  const garbage = await api.call('PUT', '/api/v1/tenants/default/services/db', { name: 'db', network: 'ds', vip6: 'nonsense', selector: { group: 'x' }, ports: [{ port: 53, targetPort: 53, protocol: 'UDP' }] });
  assert.deepEqual([garbage.status, garbage.json.field], [400, 'vip6']);
  const same = await ok(api, 'PUT', '/api/v1/tenants/default/services/db', { name: 'db', network: 'ds', vip6: 'FD00:30::53', selector: { group: 'y' }, ports: [{ port: 53, targetPort: 53, protocol: 'UDP' }] });
  assert.deepEqual([same.vip6, same.selector], ['fd00:30::53', { group: 'y' }], 'an update naming the same VIP6 in another spelling keeps it');
  await ok(api, 'POST', '/api/v1/tenants/default/networks', { name: 'v4', subnet: '10.31.0.0/24' });
  const v4 = await api.call('POST', '/api/v1/tenants/default/services', { name: 'v4svc', network: 'v4', vip6: 'fd00::1', selector: { group: 'x' }, ports: [{ port: 1, targetPort: 1, protocol: 'TCP' }] });
  assert.deepEqual([v4.status, v4.json.field], [422, 'vip6']);
  assert.equal((await api.call('DELETE', '/api/v1/tenants/default/services/web')).status, 204);
  assert.equal((await endpoint(api)).json.ip6, 'fd00:30::3', 'the VIP6 went back with its service');
});

test('IPv6 CIDRs in rules select endpoints by their IPv6 address, deciding both families; bad or mixed ones are refused naming the field', async () => {
  const api = await dualApi();
  await ok(api, 'POST', '/api/v1/tenants/default/groups', { name: 'db', network: 'ds' });
  const db = (await endpoint(api, { group: 'db' })).json;
  const app = (await endpoint(api)).json;
  const other = (await endpoint(api)).json;
  await ok(api, 'POST', '/api/v1/tenants/default/policies', { name: 'p', rules: [
    { id: '1', protocol: 'tcp', action: 'deny' },
    { id: '2', priority: 10, protocol: 'tcp', ports: '80', action: 'allow', fromCidr: `${app.ip6}/128` },
    { id: '3', priority: 5, protocol: 'tcp', ports: '81', action: 'allow', fromCidr: 'FD00:30:0::/64' },
  ] });
  await ok(api, 'PATCH', '/api/v1/tenants/default/groups/db', { policies: ['p'] });
  const ex = (from: string, to: string, port = 80) => api.call('GET', `/api/v1/tenants/default/explain?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}&protocol=tcp&port=${port}`);
  for (const [from, to] of [[app.ip6, db.ip6], [app.ip, db.ip]]) {
    const r = await ex(from, to);
    assert.deepEqual([r.json.allowed, r.json.ingress.rule.id], [true, '2'], `${from} → ${to}: the /128 of app's IPv6 address decides, in both families`);
  }
  const o = await ex(other.ip6, db.ip6);
  assert.deepEqual([o.json.allowed, o.json.ingress.rule.id], [false, '1'], 'another endpoint is not in the /128');
  const wide = await ex(other.ip, db.ip, 81);
  assert.deepEqual([wide.json.allowed, wide.json.ingress.rule.id], [true, '3'], 'the /64 (any spelling) holds every endpoint of the network');
  // An address of no endpoint is decided by the IPv6 CIDRs it is in, per address as in IPv4 (outside
  // addresses reach a tenant by NAT66 and published ports).
  const stranger = await ex('fd00:30::99', db.ip6, 81);
  assert.deepEqual([stranger.json.allowed, stranger.json.ingress.rule.id], [true, '3'], 'an address of no endpoint inside the /64: the /64 decides');
  // NAT64's prefix is an outside address a rule may name (a container's DNS64 answers point there).
  await ok(api, 'POST', '/api/v1/tenants/default/policies/p/rules', { id: 'nat64', priority: 5, direction: 'in', protocol: 'tcp', ports: '82', action: 'allow', fromCidr: '64:FF9B::/96' });
  assert.equal((await ex('64:ff9b::a00:1', db.ip6, 82)).json.ingress.rule.id, 'nat64', 'kept in one spelling, deciding its addresses');
  const far = await ex('2001:db8::1', db.ip6, 81);
  assert.deepEqual([far.json.allowed, far.json.ingress.rule.id], [false, '1'], 'one in no IPv6 CIDR: only rules without a peer');
  const cases: Array<[Record<string, unknown>, string, RegExp]> = [
    [{ fromCidr: 'fd00::/129' }, 'fromCidr', /prefix length/],
    [{ fromCidr: 'fd00::1/64' }, 'fromCidr', /host bits/],
    [{ fromCidr: 'fd00::zz/64' }, 'fromCidr', /invalid IPv6 address/],
    [{ fromCidr: '::ffff:10.0.0.0/104' }, 'fromCidr', /mixes IPv4 and IPv6 notation/],
    [{ direction: 'out', toCidr: '10.0.0.0:80/8' }, 'toCidr', /./],
    [{ fromCidr: `${'f'.repeat(44)}/64` }, 'fromCidr', /./],
    [{ fromCidr: 'fe80::/10' }, 'fromCidr', /holds no global unicast/],
    [{ direction: 'out', toCidr: '::ffff:a00:0/104' }, 'toCidr', /holds no global unicast/],
    [{ fromCidr: 'ff02::1' }, 'fromCidr', /holds no global unicast/],
  ];
  for (const [extra, field, re] of cases) {
    const r = await api.call('POST', '/api/v1/tenants/default/policies/p/rules', { id: 'x', protocol: 'tcp', action: 'allow', ...extra });
    assert.ok(r.status === 400 || r.status === 422, JSON.stringify(r.json));
    assert.ok(String(r.json.field).endsWith(field), JSON.stringify(r.json));
    assert.match(r.json.detail ?? r.json.message, re, JSON.stringify(r.json));
  }
  assert.deepEqual((await ok(api, 'GET', '/api/v1/tenants/default/policies/p')).rules.map((r: { id: string }) => r.id), ['1', '2', '3', 'nat64'], 'refused rules change nothing');
  assert.equal((await ok(api, 'GET', '/api/v1/tenants/default/policies/p')).rules.find((r: { id: string }) => r.id === 'nat64').fromCidr, '64:ff9b::/96', 'stored in one spelling');
});

test("an endpoint's IPv6 address moves (Docker's --ip6) only before it is wired, never onto a taken one, and changes nothing when refused", async () => {
  const api = await dualApi();
  // A Docker IPAM reservation (no netns yet): the one kind of endpoint whose IPv6 address may move.
  const a = (await api.call('POST', '/api/v1/endpoints', { tenant: 'default', network: 'ds', containerId: `ipam-${seq++}`, host: 'h1', ifname: 'eth0' })).json;
  const unwired = (await api.call('POST', '/api/v1/endpoints', { tenant: 'default', network: 'ds', containerId: `c${seq++}`, host: 'h1', ifname: 'eth0' })).json;
  const moved = await ok(api, 'PATCH', `/api/v1/endpoints/${a.id}`, { ip6: 'FD00:30::99' });
  assert.deepEqual([moved.ip, moved.ip6, moved.mac], [a.ip, 'fd00:30::99', a.mac]);
  assert.equal((await endpoint(api)).json.ip6, a.ip6, 'the old IPv6 address went back');
  const b = (await endpoint(api)).json;
  for (const [body, id, field, re] of [
    [{ ip6: b.ip6 }, a.id, 'ip6', /already in use/],
    [{ ip6: 'fd00:31::5' }, a.id, 'ip6', /not an address/],
    [{ ip6: 'nope' }, a.id, 'ip6', /not an IPv6 address/],
    [{ ip6: 'fd00:30::77' }, b.id, 'ip6', /not an address reservation/],
    // A Docker container's endpoint has no netns either: still never moved (its container holds the address).
    [{ ip6: 'fd00:30::77' }, unwired.id, 'ip6', /not an address reservation/],
  ] as const) {
    const r = await api.call('PATCH', `/api/v1/endpoints/${id}`, body);
    assert.ok(r.status >= 400 && r.json.field === field && re.test(r.json.detail), `${JSON.stringify(body)}: ${r.status} ${JSON.stringify(r.json)}`);
  }
  assert.equal((await ok(api, 'GET', `/api/v1/endpoints/${a.id}`)).ip6, 'fd00:30::99', 'nothing changed by the refusals');
  const v4 = await ok(api, 'POST', '/api/v1/tenants/default/networks', { name: 'v4', subnet: '10.31.0.0/24' });
  const c = (await api.call('POST', '/api/v1/endpoints', { tenant: 'default', network: v4.name, containerId: `ipam-${seq++}`, host: 'h1', ifname: 'eth0' })).json;
  const none = await api.call('PATCH', `/api/v1/endpoints/${c.id}`, { ip6: 'fd00:30::5' });
  assert.deepEqual([none.status, none.json.field], [400, 'ip6']);
});
