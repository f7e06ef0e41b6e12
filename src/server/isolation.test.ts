import { test } from 'node:test';
import assert from 'node:assert/strict';
import { warningsOf } from '../client/index.js';
import { testApi, type TestApi } from './testkit.js';

async function ok(api: TestApi, method: string, url: string, body?: unknown, token?: string): Promise<{ json: any; headers: Record<string, unknown> }> {
  const r = await api.call(method, url, body, {}, token);
  assert.ok(r.status < 300, `${method} ${url}: ${r.status} ${JSON.stringify(r.json)}`);
  return r;
}

/** A user of `role` (in `tenants`) and a token for it. */
async function userToken(api: TestApi, name: string, role: 'tenant' | 'ops', tenants: string[] = []): Promise<string> {
  await ok(api, 'POST', '/api/v1/users', { name, role, ...(tenants.length ? { tenants } : {}) });
  return (await api.control.users.tokens.issue('admin', name, 'test', null)).token;
}

test('creating a group or network whose short conflist name another tenant has warns, naming the unambiguous name', async () => {
  const api = await testApi();
  for (const t of ['acme', 'acme-prod']) await ok(api, 'POST', '/api/v1/tenants', { name: t });
  await ok(api, 'POST', '/api/v1/tenants/acme/networks', { name: 'n1', subnet: '10.7.1.0/24' });
  await ok(api, 'POST', '/api/v1/tenants/acme-prod/networks', { name: 'n2', subnet: '10.7.2.0/24' });
  const first = await ok(api, 'POST', '/api/v1/tenants/acme/groups', { name: 'prod-db', network: 'n1' });
  assert.equal(first.headers['warning'], undefined, 'unambiguous: no warning');
  const second = await ok(api, 'POST', '/api/v1/tenants/acme-prod/groups', { name: 'db', network: 'n2' });
  const [w] = warningsOf(second.headers['warning'] as string);
  assert.match(w ?? '', /weft-acme-prod-db is ambiguous/);
  assert.match(w ?? '', /select this one as weft\.acme-prod\.db$/);
  // A network is as ambiguous as a group: acme/prod-n2 and acme-prod/n2 share weft-acme-prod-n2.
  const net = await ok(api, 'POST', '/api/v1/tenants/acme/networks', { name: 'prod-n2', subnet: '10.7.3.0/24' });
  assert.match(warningsOf(net.headers['warning'] as string)[0] ?? '', /weft-acme-prod-n2 is ambiguous.*weft\.acme\.prod-n2$/);
});

test('tenant users see hosts without their underlay address; admin, ops and the history keep it from them', async () => {
  const api = await testApi();
  await ok(api, 'POST', '/api/v1/tenants', { name: 'blue' });
  await ok(api, 'PUT', '/api/v1/hosts/node1', { name: 'node1', vtepIp: '192.0.2.10', agentVersion: '0.1.0' });
  const tenant = await userToken(api, 'bob', 'tenant', ['blue']);
  const ops = await userToken(api, 'olga', 'ops');
  const listed = (await ok(api, 'GET', '/api/v1/hosts', undefined, tenant)).json;
  assert.deepEqual(listed.items.map((h: any) => [h.name, h.state, h.vtepIp]), [['node1', 'up', undefined]]);
  const one = (await ok(api, 'GET', '/api/v1/hosts/node1', undefined, tenant)).json;
  assert.equal(one.name, 'node1');
  assert.ok(!('vtepIp' in one), 'no vtepIp field at all');
  assert.equal((await ok(api, 'GET', '/api/v1/hosts/node1', undefined, ops)).json.vtepIp, '192.0.2.10');
  assert.equal((await ok(api, 'GET', '/api/v1/hosts')).json.items[0].vtepIp, '192.0.2.10', 'admin (and agents) keep it');
  const history = await ok(api, 'GET', '/api/v1/history', undefined, tenant);
  assert.doesNotMatch(JSON.stringify(history.json), /192\.0\.2\.10/, 'nor does the history show it');
  assert.match(JSON.stringify((await ok(api, 'GET', '/api/v1/history', undefined, ops)).json), /192\.0\.2\.10/);
});

test('a Docker network ID or IPAM pool is mapped in one tenant only', async () => {
  const api = await testApi();
  const id = 'b'.repeat(63);
  for (const t of ['blue', 'red']) {
    await ok(api, 'POST', '/api/v1/tenants', { name: t });
    await ok(api, 'POST', `/api/v1/tenants/${t}/networks`, { name: 'net', subnet: '10.1.2.0/24' });
  }
  await ok(api, 'POST', '/api/v1/tenants/blue/docker-networks', { name: id, network: 'net', host: 'node1', pool: 'weft-0123' });
  const sameId = await api.call('POST', '/api/v1/tenants/red/docker-networks', { name: id, network: 'net', host: 'node1' });
  assert.deepEqual([sameId.status, sameId.json.code, sameId.json.field], [409, 'WEFT_EXISTS', 'name']);
  assert.doesNotMatch(sameId.json.detail, /blue/, 'the other tenant is not named');
  const samePool = await api.call('POST', '/api/v1/tenants/red/docker-networks', { name: 'c'.repeat(63), network: 'net', host: 'node1', pool: 'weft-0123' });
  assert.deepEqual([samePool.status, samePool.json.field], [409, 'pool']);
  assert.equal((await ok(api, 'GET', '/api/v1/tenants/red/docker-networks')).json.items.length, 0, 'nothing was written');
  await ok(api, 'PUT', `/api/v1/tenants/blue/docker-networks/${id}`, { name: id, network: 'net', host: 'node1', pool: 'weft-0123' });
});

test('only admin and ops users make a macvlan network (its containers sit on the hosts\' own segment); a tenant user still uses one', async () => {
  const api = await testApi();
  await ok(api, 'POST', '/api/v1/tenants', { name: 'blue' });
  const tenant = await userToken(api, 'bob', 'tenant', ['blue']);
  const lan = { name: 'lan', subnet: '192.168.50.0/24', gateway: '192.168.50.1', encap: 'macvlan', parent: 'eth1' };
  const refused = await api.call('POST', '/api/v1/tenants/blue/networks', lan, {}, tenant);
  assert.equal(refused.status, 403, JSON.stringify(refused.json));
  assert.match(refused.json.detail, /encap: user bob \(role tenant\) may not make or change a macvlan or routed network/);
  const viaParent = await api.call('POST', '/api/v1/tenants/blue/networks', { name: 'sneaky', subnet: '192.168.51.0/24', parent: 'eth0' }, {}, tenant);
  assert.equal(viaParent.status, 403, 'naming a parent is asking for macvlan');
  const { name: _, ...spec } = lan;
  const applied = await api.call('POST', '/api/v1/apply', { documents: [{ kind: 'Network', metadata: { name: 'lan', tenant: 'blue' }, spec }] }, {}, tenant);
  assert.equal(applied.status, 403, JSON.stringify(applied.json));
  assert.match(applied.json.detail, /documents\.0\.spec\.encap: /);
  assert.equal((await ok(api, 'GET', '/api/v1/tenants/blue/networks', undefined, tenant)).json.items.length, 0, 'nothing was made');
  const ops = await userToken(api, 'olga', 'ops');
  const made = (await ok(api, 'POST', '/api/v1/tenants/blue/networks', lan, ops)).json;
  assert.deepEqual([made.encap, made.parent, made.encrypt], ['macvlan', 'eth1', false]);
  await ok(api, 'POST', '/api/v1/tenants/blue/groups', { name: 'db', network: 'lan' }, tenant);
  const svc = await api.call('POST', '/api/v1/tenants/blue/services', { name: 's', network: 'lan', selector: { group: 'db' }, ports: [{ port: 80, targetPort: 8080, protocol: 'TCP' }] }, {}, tenant);
  assert.equal(svc.status, 422, JSON.stringify(svc.json));
  assert.match(svc.json.detail, /network: blue\/lan is a macvlan network/);
  const bad = await api.call('POST', '/api/v1/tenants/blue/networks', { ...lan, name: 'x', subnet: '192.168.52.0/24', gateway: '192.168.52.1', parent: 'eth1; rm -rf /' });
  assert.deepEqual([bad.status, bad.json.field], [400, 'parent'], 'a parent is an interface name');
  const own = await api.call('POST', '/api/v1/tenants/blue/networks', { ...lan, name: 'x', subnet: '192.168.52.0/24', gateway: '192.168.52.1', parent: 'wb10001' });
  assert.equal(own.status, 422, 'a parent is never one of Weft\'s own links');
  assert.match(own.json.detail, /parent: wb10001 is one of Weft's own links/);
  // A tenant user changes nothing of it either (its ipRange is the operator's share of the segment).
  const patched = await api.call('PATCH', '/api/v1/tenants/blue/networks/lan', { ipRange: '192.168.50.2-192.168.50.254' }, {}, tenant);
  assert.equal(patched.status, 403, JSON.stringify(patched.json));
});

test("a macvlan network's endpoints: the MAC from the address, no published ports, never a host's address, only inside its ipRange", async () => {
  const api = await testApi();
  await ok(api, 'POST', '/api/v1/tenants/default/networks', { name: 'lan', subnet: '192.168.50.0/24', gateway: '192.168.50.1', ipRange: '192.168.50.100-192.168.50.199', encap: 'macvlan', parent: 'eth1' });
  await ok(api, 'PUT', '/api/v1/hosts/node1', { name: 'node1', vtepIp: '192.168.50.150', agentVersion: '0.1.0' });
  const ep = (extra: Record<string, unknown>) => api.call('POST', '/api/v1/endpoints', { tenant: 'default', network: 'lan', containerId: `c${Math.random().toString(16).slice(2)}`, host: 'node1', ifname: 'eth0', netns: '/run/netns/x', ...extra });
  const cases: Array<[Record<string, unknown>, string, RegExp]> = [
    [{ mac: '02:00:00:00:00:01' }, 'mac', /takes? the MAC derived from their address/],
    [{ portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }] }, 'portMappings', /no host port to publish through/],
    [{ ip: '192.168.50.150' }, 'ip', /host node1's own address/],
    [{ ip: '192.168.50.20' }, 'ip', /192\.168\.50\.20/],
  ];
  for (const [extra, field, message] of cases) {
    const r = await ep(extra);
    assert.ok(r.status >= 400 && r.status < 500, `${JSON.stringify(extra)}: ${r.status}`);
    assert.equal(r.json.field, field, JSON.stringify(r.json));
    assert.match(r.json.detail, message);
  }
  const made = await ep({ ip: '192.168.50.120' });
  assert.equal(made.status, 201, JSON.stringify(made.json));
  assert.equal(made.json.mac, '02:57:c0:a8:32:78', 'the MAC derived from the address');
  const pool = await api.call('POST', '/api/v1/tenants/default/groups', { name: 'g', network: 'lan', ipPool: '192.168.50.10-192.168.50.20' });
  assert.ok(pool.status < 300, 'a pool is checked when it is used');
  const pooled = await ep({ group: 'g' });
  assert.equal(pooled.json.field, 'ipPool', JSON.stringify(pooled.json));
  assert.match(pooled.json.detail, /outside macvlan network lan's ipRange/);
});

test('a tenant user\'s create warns alike whether or not a tenant it cannot see holds the twin name (no existence oracle)', async () => {
  const api = await testApi();
  for (const t of ['acme', 'acme-payroll']) await ok(api, 'POST', '/api/v1/tenants', { name: t });
  await ok(api, 'POST', '/api/v1/tenants/acme-payroll/networks', { name: 'ledger', subnet: '10.7.1.0/24' });
  const mallory = await userToken(api, 'mallory', 'tenant', ['acme']);
  const held = await ok(api, 'POST', '/api/v1/tenants/acme/networks', { name: 'payroll-ledger', subnet: '10.7.2.0/24' }, mallory);
  const free = await ok(api, 'POST', '/api/v1/tenants/acme/networks', { name: 'payroll-nothere', subnet: '10.7.3.0/24' }, mallory);
  const [a, b] = [held, free].map((r) => (warningsOf(r.headers['warning'] as string)[0] ?? '').replace(/payroll-(ledger|nothere)/g, 'X'));
  assert.equal(a, b, 'the same notice for a held and a free twin');
  assert.match(a ?? '', /is not written by hosts if another tenant has .* weft\.acme\.X always selects this one/);
  assert.doesNotMatch(a ?? '', /is ambiguous/);
});
