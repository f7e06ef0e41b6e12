import { test } from 'node:test';
import assert from 'node:assert/strict';
import { testApi } from './testkit.js';

test('changing your own password takes a login slot: a token holder cannot flood scrypt (or guess the current password) past --max-logins', async () => {
  const api = await testApi({ limits: { maxLogins: 2 } });
  assert.equal((await api.call('POST', '/api/v1/users', { name: 'eve', role: 'tenant', tenants: ['default'], password: 'eve-password-1' })).status, 201);
  const token = (await api.call('POST', '/api/v1/login', { username: 'eve', password: 'eve-password-1' }, {}, '')).json.token as string;
  const answers = await Promise.all(Array.from({ length: 12 }, () =>
    api.call('PATCH', '/api/v1/users/eve', { password: 'new-password-1', currentPassword: 'a-guess' }, {}, token)));
  const by = (s: number) => answers.filter((a) => a.status === s);
  // Before, all twelve ran their scrypt at once (403 each, none turned away).
  assert.ok(by(429).length >= 1, `some were turned away: ${answers.map((a) => a.status).join(',')}`);
  assert.ok(by(429).every((a) => a.json.code === 'WEFT_TOO_MANY_LOGINS'));
  assert.equal(by(403).length + by(429).length, 12);
  // Nothing changed: the old password still logs in.
  assert.equal((await api.call('POST', '/api/v1/login', { username: 'eve', password: 'eve-password-1' }, {}, '')).status, 200);
});

test('a login flood gets 429 at once beyond --max-logins instead of queueing behind scrypt', async () => {
  const api = await testApi({ limits: { maxLogins: 2 } });
  assert.equal((await api.call('POST', '/api/v1/users', { name: 'bob', role: 'ops', password: 'bob-password-1' })).status, 201);
  const answers = await Promise.all(Array.from({ length: 12 }, (_, i) =>
    api.call('POST', '/api/v1/login', { username: 'bob', password: i % 2 ? 'bob-password-1' : 'wrong-password' }, {}, '')));
  const by = (s: number) => answers.filter((a) => a.status === s);
  assert.ok(by(429).length >= 1, 'some were turned away');
  assert.ok(by(429).every((a) => a.json.code === 'WEFT_TOO_MANY_LOGINS' && /--max-logins 2/.test(a.json.detail)));
  assert.ok(by(200).length + by(401).length >= 2, 'as many as allowed were checked');
  assert.equal(answers.length, by(200).length + by(401).length + by(429).length);
  // Once the flood is over, logins work again.
  assert.equal((await api.call('POST', '/api/v1/login', { username: 'bob', password: 'bob-password-1' }, {}, '')).status, 200);
});

test('apply names no network of a tenant the user cannot see: the tenant is checked before the network\'s kind', async () => {
  const api = await testApi();
  assert.equal((await api.call('POST', '/api/v1/tenants', { name: 'b' })).status, 201);
  const made = await api.call('POST', '/api/v1/tenants/b/networks', { name: 'lan', subnet: '10.9.0.0/24', encap: 'routed' });
  assert.equal(made.status, 201, JSON.stringify(made.json));
  assert.equal((await api.call('POST', '/api/v1/users', { name: 'alice', role: 'tenant', tenants: ['default'], password: 'alice-password-1' })).status, 201);
  const token = (await api.call('POST', '/api/v1/login', { username: 'alice', password: 'alice-password-1' }, {}, '')).json.token as string;
  const apply = (name: string, tenant: string) => api.call('POST', '/api/v1/apply', { documents: [{ kind: 'Network', metadata: { name, tenant }, spec: { subnet: '10.9.0.0/24' } }] }, {}, token);
  // b's routed network once answered 403 ("may not make or change a macvlan or routed network"), a name
  // b does not have 404: which told alice that b exists and what lan is.
  const answers = [await apply('lan', 'b'), await apply('nope', 'b'), await apply('lan', 'zz')];
  assert.deepEqual(answers.map((a) => a.status), [404, 404, 404], JSON.stringify(answers.map((a) => a.json)));
  assert.equal(answers[0]?.json.field, 'documents.0.metadata.tenant');
});

test('explain and the matrix refuse a port past 65535 and a protocol number past 255, naming the field', async () => {
  const api = await testApi();
  assert.equal((await api.call('POST', '/api/v1/tenants/default/networks', { name: 'net', subnet: '10.8.0.0/24' })).status, 201);
  const bad = [
    ['/api/v1/tenants/default/explain?from=10.8.0.2&to=10.8.0.3&protocol=tcp&port=99999', 'port'],
    ['/api/v1/tenants/default/explain?from=10.8.0.2&to=10.8.0.3&protocol=999', 'protocol'],
    ['/api/v1/tenants/default/matrix?protocol=256', 'protocol'],
    ['/api/v1/flows?protocol=300', 'protocol'],
  ] as const;
  for (const [url, field] of bad) {
    const r = await api.call('GET', url);
    assert.equal(r.status, 400, `${url}: ${JSON.stringify(r.json)}`);
    assert.match(JSON.stringify(r.json), new RegExp(field), url);
  }
  const fine = await api.call('GET', '/api/v1/tenants/default/explain?from=10.8.0.2&to=10.8.0.3&protocol=tcp&port=65535');
  assert.equal(fine.status, 200, JSON.stringify(fine.json));
});

test('no network may take a special range: link-local (the tenants\' uplinks, where policy lets DNATed DNS by), loopback, multicast, 0/8', async () => {
  const api = await testApi();
  const cases = [
    ['169.254.5.0/24', 'vxlan', /169\.254\.5\.0\/24 overlaps 169\.254\.0\.0\/16 \(link-local/],
    ['169.254.0.0/16', 'routed', /link-local/],
    ['169.0.0.0/8', 'vxlan', /link-local/],
    ['127.1.0.0/16', 'vxlan', /loopback/],
    ['0.0.0.0/8', 'vxlan', /"this network"/],
    ['224.0.0.0/24', 'macvlan', /multicast/],
    ['240.1.0.0/16', 'vxlan', /reserved/],
  ] as const;
  for (const [subnet, encap, why] of cases) {
    const r = await api.call('POST', '/api/v1/tenants/default/networks', { name: 'n', subnet, encap, ...(encap === 'macvlan' ? { parent: 'eth1' } : {}) });
    assert.equal(r.status, 400, `${subnet}: ${JSON.stringify(r.json)}`);
    assert.equal(r.json.field, 'subnet', subnet);
    assert.match(String(r.json.detail), why, subnet);
  }
  assert.equal((await api.call('GET', '/api/v1/tenants/default/networks')).json.items.length, 0, 'nothing was made');
  // Next to them, ranges that look close stay open.
  for (const subnet of ['169.253.0.0/16', '169.255.0.0/16', '126.0.0.0/8', '10.0.0.0/8']) {
    const r = await api.call('POST', '/api/v1/tenants/default/networks', { name: `n${subnet.split('.')[0]}-${subnet.split('.')[1]}`, subnet });
    assert.equal(r.status, 201, `${subnet}: ${JSON.stringify(r.json)}`);
  }
});

test('registering a host whose body names another answers 400 naming the field, and registers nothing', async () => {
  const api = await testApi();
  const r = await api.call('PUT', '/api/v1/hosts/h1', { name: 'h2', vtepIp: '192.0.2.10', agentVersion: '0.1.0' });
  assert.equal(r.status, 400, JSON.stringify(r.json));
  assert.equal(r.json.field, 'name');
  assert.match(String(r.json.detail), /the body names 'h2' but the path names 'h1'/);
  for (const h of ['h1', 'h2']) assert.equal((await api.call('GET', `/api/v1/hosts/${h}`)).status, 404, h);
});

test('a body declared in a charset other than UTF-8, or as text, is refused with 415 and changes nothing', async () => {
  const api = await testApi();
  for (const type of ['application/json; charset=utf-16', 'application/json;charset="ISO-8859-1"', 'text/plain', 'application/json;charset=utf-8;charset=utf-16', 'application/json; charset=']) {
    const r = await api.call('POST', '/api/v1/tenants', { name: 'x' }, { 'content-type': type });
    assert.equal(r.status, 415, `${type}: ${JSON.stringify(r.json)}`);
    assert.equal(r.json.code, 'WEFT_UNSUPPORTED_MEDIA');
  }
  assert.equal((await api.call('GET', '/api/v1/tenants/x')).status, 404);
  for (const [i, type] of ['application/json; charset=UTF-8', 'application/json; charset=utf8', 'application/json', 'application/json; foo="a;charset=latin1"'].entries()) {
    const r = await api.call('POST', '/api/v1/tenants', { name: `y${i}` }, { 'content-type': type });
    assert.equal(r.status, 201, `${type}: ${JSON.stringify(r.json)}`);
  }
  // The parser still refuses a body that would poison prototypes.
  const poisoned = await api.call('POST', '/api/v1/tenants', '{"name":"z","__proto__":{"admin":true}}', { 'content-type': 'application/json' });
  assert.equal(poisoned.status, 400, JSON.stringify(poisoned.json));
  // ... and says which field holds the key (it used to say the body was not valid JSON).
  assert.deepEqual([poisoned.json.code, poisoned.json.field], ['WEFT_INVALID_FIELD', '__proto__'], JSON.stringify(poisoned.json));
  const nested = await api.call('POST', '/api/v1/tenants', '{"name":"z","labels":{"__proto__":"x"}}', { 'content-type': 'application/json' });
  assert.deepEqual([nested.status, nested.json.code, nested.json.field], [400, 'WEFT_INVALID_FIELD', 'labels.__proto__'], JSON.stringify(nested.json));
  // Text that is not JSON gets the parser's message; an empty body is still told it is empty.
  const broken = await api.call('POST', '/api/v1/tenants', '{"name": }', { 'content-type': 'application/json' });
  assert.equal(broken.status, 400);
  assert.equal(broken.json.code, 'WEFT_MALFORMED');
  assert.match(broken.json.detail, /not valid JSON: Unexpected token '\}'/, JSON.stringify(broken.json));
  const empty = await api.call('POST', '/api/v1/tenants', '', { 'content-type': 'application/json' });
  assert.match(empty.json.detail, /the body is empty/, JSON.stringify(empty.json));
  // A hostile body nested as deep as the body limit allows, the key at its bottom: named, at once.
  const depth = 250_000;
  const t0 = performance.now();
  const deep = await api.call('POST', '/api/v1/tenants', `{"name":"z","labels":${'['.repeat(depth)}{"__proto__":1}${']'.repeat(depth)}}`, { 'content-type': 'application/json' });
  assert.deepEqual([deep.status, deep.json.code], [400, 'WEFT_INVALID_FIELD']);
  assert.equal(deep.json.field, `labels.0.0.0.0.0.0.0.(${(depth - 10).toLocaleString('en-US')} levels).0.0.0.__proto__`, 'its middle left out');
  assert.ok(performance.now() - t0 < 10_000, `answered in ${Math.round(performance.now() - t0)} ms`);
  assert.equal((await api.call('GET', '/api/v1/tenants/z')).status, 404, 'nothing was made');
});

test('a tenant deleted and made again under its name is another customer: its users read none of the first one\'s history', async () => {
  const api = await testApi();
  const make = async (user: string) => {
    assert.equal((await api.call('POST', '/api/v1/users', { name: user, role: 'tenant', tenants: ['x'], password: `${user}-password-1` })).status, 201);
    return (await api.call('POST', '/api/v1/login', { username: user, password: `${user}-password-1` }, {}, '')).json.token as string;
  };
  assert.equal((await api.call('POST', '/api/v1/tenants', { name: 'x' })).status, 201);
  const alice = await make('alice');
  assert.equal((await api.call('POST', '/api/v1/tenants/x/networks', { name: 'payroll-db', subnet: '10.9.0.0/24' }, {}, alice)).status, 201);
  const before = await api.call('GET', '/api/v1/history?since=0', undefined, {}, alice);
  assert.ok(JSON.stringify(before.json.items).includes('payroll-db'), 'alice sees her own tenant\'s history');
  assert.equal((await api.call('DELETE', '/api/v1/tenants/x/networks/payroll-db')).status, 204);
  assert.equal((await api.call('DELETE', '/api/v1/users/alice')).status, 204);
  assert.equal((await api.call('DELETE', '/api/v1/tenants/x')).status, 204);
  assert.equal((await api.call('POST', '/api/v1/tenants', { name: 'x' })).status, 201);
  const bob = await make('bob');
  assert.equal((await api.call('POST', '/api/v1/tenants/x/networks', { name: 'mine', subnet: '10.9.0.0/24' }, {}, bob)).status, 201);
  const seen = await api.call('GET', '/api/v1/history?since=0', undefined, {}, bob);
  assert.equal(seen.status, 200);
  const text = JSON.stringify(seen.json.items);
  assert.doesNotMatch(text, /payroll-db|alice/, 'nothing of the first tenant x');
  assert.match(text, /"networks\/x\/mine"/, 'the present tenant\'s own history');
  // A limit counts what the caller sees: pages are read until it is reached.
  const one = await api.call('GET', '/api/v1/history?since=0&limit=1', undefined, {}, bob);
  assert.equal(one.json.items.length, 1, JSON.stringify(one.json));
  // Page by page from `next`, bob reads exactly what one read gives him: nothing skipped, nothing twice.
  const paged: string[] = [];
  let since = 0;
  for (let i = 0; i < 50; i++) {
    const r = await api.call('GET', `/api/v1/history?since=${since}&limit=1`, undefined, {}, bob);
    paged.push(...r.json.items.map((c: { revision: number; key: string }) => `${c.revision} ${c.key}`));
    if (r.json.next === undefined) break;
    since = r.json.next;
  }
  assert.deepEqual(paged, seen.json.items.map((c: { revision: number; key: string }) => `${c.revision} ${c.key}`));
});

test('a tenant user may not choose a VNI (which one is taken would tell it what other tenants hold); its network\'s own, applied back, is no choice', async () => {
  const api = await testApi();
  assert.equal((await api.call('POST', '/api/v1/tenants', { name: 'blue' })).status, 201);
  assert.equal((await api.call('POST', '/api/v1/tenants', { name: 'red' })).status, 201);
  assert.equal((await api.call('POST', '/api/v1/tenants/red/networks', { name: 'r', subnet: '10.1.0.0/24', vni: 12345 })).status, 201, 'an admin chooses');
  assert.equal((await api.call('POST', '/api/v1/users', { name: 'bob', role: 'tenant', tenants: ['blue'], password: 'bob-password-1' })).status, 201);
  const bob = (await api.call('POST', '/api/v1/login', { username: 'bob', password: 'bob-password-1' }, {}, '')).json.token as string;
  const taken = await api.call('POST', '/api/v1/tenants/blue/networks', { name: 'n', subnet: '10.1.0.0/24', vni: 12345 }, {}, bob);
  const free = await api.call('POST', '/api/v1/tenants/blue/networks', { name: 'n', subnet: '10.1.0.0/24', vni: 12346 }, {}, bob);
  assert.deepEqual([taken.status, free.status], [403, 403], 'alike for a taken and a free VNI');
  assert.equal(taken.json.field, 'vni');
  const applied = await api.call('POST', '/api/v1/apply', { documents: [{ kind: 'Network', metadata: { name: 'n', tenant: 'blue' }, spec: { subnet: '10.1.0.0/24', vni: 12346 } }] }, {}, bob);
  assert.equal(applied.status, 403, JSON.stringify(applied.json));
  assert.equal(applied.json.field, 'documents.0.spec.vni');
  const made = await api.call('POST', '/api/v1/tenants/blue/networks', { name: 'n', subnet: '10.1.0.0/24' }, {}, bob);
  assert.equal(made.status, 201, JSON.stringify(made.json));
  const back = await api.call('PUT', '/api/v1/tenants/blue/networks/n', { name: 'n', subnet: '10.1.0.0/24', vni: made.json.vni, mtu: 1400 }, {}, bob);
  assert.equal(back.status, 200, JSON.stringify(back.json));
});

test('only a tenant user has a list of tenants: an admin or ops user given one is refused naming tenants (it read as a limit it is not)', async () => {
  const api = await testApi();
  assert.equal((await api.call('POST', '/api/v1/tenants', { name: 'blue' })).status, 201);
  for (const role of ['ops', 'admin']) {
    const r = await api.call('POST', '/api/v1/users', { name: `u-${role}`, role, tenants: ['blue'], password: 'some-password-1' });
    assert.equal(r.status, 422, JSON.stringify(r.json));
    assert.equal(r.json.field, 'tenants');
  }
  // A tenant user made ops loses its list with the change.
  assert.equal((await api.call('POST', '/api/v1/users', { name: 'bob', role: 'tenant', tenants: ['blue'], password: 'bob-password-1' })).status, 201);
  const ops = await api.call('PATCH', '/api/v1/users/bob', { role: 'ops' });
  assert.equal(ops.status, 200, JSON.stringify(ops.json));
  assert.deepEqual(ops.json.tenants ?? [], []);
});

test('a host\'s agentVersion and tunnel error are printable text: every user (tenant users too) reads them in `weft host ls`', async () => {
  const api = await testApi();
  const wg = { mode: 'kernel', peers: 1, handshaken: 0, rxBytes: 0, txBytes: 0 };
  for (const bad of ['0.1\u001b]0;owned\u0007', '0.1\u001b[2J', 'csi\u009b31m', 'tab\there']) {
    const r = await api.call('PUT', '/api/v1/hosts/node1', { name: 'node1', vtepIp: '192.0.2.10', agentVersion: bad });
    assert.deepEqual([r.status, r.json.field], [400, 'agentVersion'], JSON.stringify(bad));
  }
  for (const bad of ['csi\u009b2J', 'osc\u009d0;t\u009c']) {
    const r = await api.call('PUT', '/api/v1/hosts/node1', { name: 'node1', vtepIp: '192.0.2.10', wireguard: { ...wg, error: bad } });
    assert.deepEqual([r.status, r.json.field], [400, 'wireguard.error'], JSON.stringify(bad));
  }
  assert.equal((await api.call('PUT', '/api/v1/hosts/node1', { name: 'node1', vtepIp: '192.0.2.10', agentVersion: '0.1.0-rc.1+g1234 (déploiement)', wireguard: { ...wg, error: 'handshake échoué' } })).status, 200);
});
