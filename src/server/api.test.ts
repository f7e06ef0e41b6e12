import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore } from '../store/index.js';
import { testApi, type TestApi } from './testkit.js';

const T = '/api/v1/tenants/default';

async function tutorial(api: TestApi): Promise<void> {
  const ok = async (m: string, u: string, b?: unknown) => {
    const r = await api.call(m, u, b);
    assert.ok(r.status < 300, `${m} ${u}: ${r.status} ${JSON.stringify(r.json)}`);
    return r.json;
  };
  await ok('POST', `${T}/networks`, { name: 'contiv-net', subnet: '10.1.2.0/24', gateway: '10.1.2.1' });
  await ok('POST', `${T}/policies`, { name: 'db-policy' });
  await ok('POST', `${T}/groups`, { name: 'db', network: 'contiv-net', policies: ['db-policy'] });
}

test('objects are created, listed with a revision, read with an ETag, and the list reflects them', async () => {
  const api = await testApi();
  await tutorial(api);
  const list = await api.call('GET', `${T}/networks`);
  assert.equal(list.status, 200);
  assert.equal(list.json.items[0].name, 'contiv-net');
  assert.equal(typeof list.json.revision, 'number');
  const one = await api.call('GET', `${T}/groups/db`);
  assert.equal(one.headers['etag'], `"${one.json.revision}"`);
  assert.deepEqual(one.json.policies, ['db-policy']);
  const again = await api.call('POST', `${T}/groups`, { name: 'db', network: 'contiv-net' });
  assert.equal(again.status, 409);
  assert.equal(again.json.code, 'WEFT_EXISTS');
});

test('bad input of every kind: precise 4xx naming the field, and the store is unchanged', async () => {
  const api = await testApi();
  await tutorial(api);
  const big = JSON.stringify({ name: 'x', subnet: '10.9.0.0/24', pad: 'x'.repeat(1024 * 1024) });
  const cases: Array<[string, string, unknown, number, string, string | undefined, Record<string, string>?]> = [
    ['POST', `${T}/networks`, '{"name": "n1", "subnet": ', 400, 'WEFT_MALFORMED', undefined],
    ['POST', `${T}/networks`, { name: 'n1', subnet: '10.9.0.0/24', color: 'red' }, 400, 'WEFT_UNKNOWN_FIELD', 'color'],
    ['POST', `${T}/groups`, { name: 'g1', network: 'contiv-net', labels: { 'Bad Key!': 'x' } }, 400, 'WEFT_INVALID_FIELD', 'labels.Bad Key!'],
    ['POST', `${T}/groups`, { name: 'g1', network: 'contiv-net', labels: { '': 'x' } }, 400, 'WEFT_INVALID_FIELD', 'labels.'],
    ['POST', `${T}/services`, { name: 's1', network: 'contiv-net', selector: { 'a b': 'x' }, ports: [{ port: 80, targetPort: 80, protocol: 'TCP' }] }, 400, 'WEFT_INVALID_FIELD', 'selector.a b'],
    ['POST', `${T}/networks`, { name: 'n1', subnet: '10.1.2.300/24' }, 400, 'WEFT_INVALID_FIELD', 'subnet'],
    ['POST', `${T}/networks`, { name: 'n1', subnet: '10.1.2.0/33' }, 400, 'WEFT_INVALID_FIELD', 'subnet'],
    ['POST', `${T}/networks`, { name: 'n1', subnet: '10.9.2.1/24' }, 400, 'WEFT_INVALID_FIELD', 'subnet'],
    ['POST', `${T}/networks`, { name: 'n1', subnet: '10.9.2.0/24', gateway: '10.9.3.1' }, 400, 'WEFT_INVALID_FIELD', 'gateway'],
    ['POST', `${T}/networks`, { name: 'Web', subnet: '10.9.2.0/24' }, 400, 'WEFT_INVALID_FIELD', 'name'],
    ['POST', `${T}/networks`, { name: 'web_net', subnet: '10.9.2.0/24' }, 400, 'WEFT_INVALID_FIELD', 'name'],
    ['POST', `${T}/networks`, { name: 'a'.repeat(64), subnet: '10.9.2.0/24' }, 400, 'WEFT_INVALID_FIELD', 'name'],
    ['POST', `${T}/networks`, { subnet: '10.9.2.0/24' }, 400, 'WEFT_INVALID_FIELD', 'name'],
    ['POST', `${T}/networks`, { name: 'other', subnet: '10.1.2.128/25' }, 409, 'WEFT_OVERLAP', 'subnet'],
    ['POST', `${T}/policies/db-policy/rules`, { id: '9', protocol: 'tcp', ports: '70000' }, 400, 'WEFT_INVALID_FIELD', 'ports'],
    ['POST', `${T}/policies/db-policy/rules`, { id: '9', protocol: 'tcp', ports: '80-70' }, 400, 'WEFT_INVALID_FIELD', 'ports'],
    ['POST', `${T}/policies/db-policy/rules`, { id: '9', priority: 0 }, 400, 'WEFT_INVALID_FIELD', 'priority'],
    ['POST', `${T}/policies/db-policy/rules`, { id: '9', priority: 101 }, 400, 'WEFT_INVALID_FIELD', 'priority'],
    ['POST', `${T}/policies/db-policy/rules`, { id: '9', protocol: 'foo' }, 400, 'WEFT_INVALID_FIELD', 'protocol'],
    ['POST', `${T}/policies/db-policy/rules`, { id: '9', direction: 'sideways' }, 400, 'WEFT_INVALID_FIELD', 'direction'],
    ['POST', `${T}/policies/db-policy/rules`, { id: '9', fromGroup: 'ghost' }, 422, 'WEFT_INVALID_REFERENCE', 'fromGroup'],
    ['POST', `${T}/groups`, { name: 'web', network: 'nowhere' }, 422, 'WEFT_INVALID_REFERENCE', 'network'],
    ['DELETE', `${T}/networks/contiv-net`, undefined, 409, 'WEFT_IN_USE', undefined],
    ['POST', `${T}/networks`, big, 413, 'WEFT_TOO_LARGE', undefined],
    ['PATCH', `${T}/groups/db`, { labels: { tier: 'db' } }, 412, 'WEFT_STALE_REVISION', undefined, { 'if-match': '1' }],
    ['PATCH', `${T}/groups/db`, { labels: { tier: 'db' } }, 400, 'WEFT_INVALID_FIELD', 'If-Match', { 'if-match': 'abc' }],
    ['GET', '/api/v1/tenants/Blue/networks', undefined, 400, 'WEFT_INVALID_FIELD', 'tenant'],
  ];
  const before = await api.control.store.revision();
  for (const [method, url, body, status, code, field, headers] of cases) {
    const r = await api.call(method, url, body, headers);
    const what = `${method} ${url} ${typeof body === 'string' ? body.slice(0, 40) : JSON.stringify(body)}`;
    assert.equal(r.status, status, `${what}: ${JSON.stringify(r.json)}`);
    assert.equal(r.headers['content-type'], 'application/problem+json; charset=utf-8', what);
    assert.equal(r.json.code, code, `${what}: ${r.json.detail}`);
    assert.equal(r.json.status, status);
    if (field !== undefined) {
      assert.equal(r.json.field, field, `${what}: ${r.json.detail}`);
      assert.match(r.json.detail, new RegExp(field.replace('.', '\\.')), `${what}: the detail names the field`);
    }
  }
  assert.equal(await api.control.store.revision(), before, 'no bad request changed the store');
  const del = await api.call('DELETE', `${T}/networks/contiv-net`);
  assert.match(del.json.detail, /group default\/db/);
});

test('If-Match with the current revision succeeds; PUT replaces; PATCH merges', async () => {
  const api = await testApi();
  await tutorial(api);
  const g = await api.call('GET', `${T}/groups/db`);
  const p = await api.call('PATCH', `${T}/groups/db`, { labels: { tier: 'db' } }, { 'if-match': `"${g.json.revision}"` });
  assert.equal(p.status, 200, JSON.stringify(p.json));
  assert.deepEqual([p.json.labels, p.json.policies], [{ tier: 'db' }, ['db-policy']]);
  const r = await api.call('PUT', `${T}/groups/db`, { name: 'db', network: 'contiv-net' });
  assert.deepEqual([r.json.labels, r.json.policies], [{}, []]);
  const mismatch = await api.call('PUT', `${T}/groups/db`, { name: 'other', network: 'contiv-net' });
  assert.equal(mismatch.json.field, 'name');
});

test('auth: no token is 401; a tenant user sees only its tenants; ops may not change global or users', async () => {
  const api = await testApi();
  assert.equal((await api.call('GET', '/api/v1/tenants', undefined, {}, '')).status, 401);
  assert.equal((await api.call('GET', '/api/v1/tenants', undefined, {}, 'weft_bogus')).json.code, 'WEFT_UNAUTHENTICATED');
  await api.call('POST', '/api/v1/tenants', { name: 'blue' });
  await api.call('POST', '/api/v1/tenants', { name: 'red' });
  await api.call('POST', '/api/v1/tenants/red/networks', { name: 'secret', subnet: '10.5.0.0/24' });
  assert.equal((await api.call('POST', '/api/v1/users', { name: 'bob', role: 'tenant', tenants: ['blue'], password: 'bob-password' })).status, 201);
  assert.equal((await api.call('POST', '/api/v1/users', { name: 'olga', role: 'ops', password: 'olga-password' })).status, 201);
  const login = await api.call('POST', '/api/v1/login', { username: 'bob', password: 'bob-password' }, {}, '');
  assert.equal(login.status, 200);
  const bob = login.json.token as string;
  assert.equal((await api.call('POST', '/api/v1/login', { username: 'bob', password: 'wrong-password' }, {}, '')).status, 401);
  const seen = await api.call('GET', '/api/v1/tenants', undefined, {}, bob);
  assert.deepEqual(seen.json.items.map((t: { name: string }) => t.name), ['blue']);
  assert.equal((await api.call('GET', '/api/v1/tenants/red/networks', undefined, {}, bob)).status, 404);
  assert.equal((await api.call('GET', '/api/v1/tenants/red/networks/secret', undefined, {}, bob)).status, 404);
  assert.equal((await api.call('POST', '/api/v1/tenants/blue/networks', { name: 'mine', subnet: '10.5.0.0/24' }, {}, bob)).status, 201);
  assert.equal((await api.call('POST', '/api/v1/tenants', { name: 'green' }, {}, bob)).status, 403);
  assert.equal((await api.call('GET', '/api/v1/users', undefined, {}, bob)).status, 403);
  const hist = await api.call('GET', '/api/v1/history', undefined, {}, bob);
  assert.ok(hist.json.items.length > 0);
  assert.ok(hist.json.items.every((c: { tenant?: string; kind: string }) => c.tenant === 'blue' || c.kind === 'global'), 'history is filtered');
  const olga = (await api.call('POST', '/api/v1/login', { username: 'olga', password: 'olga-password' }, {}, '')).json.token as string;
  assert.equal((await api.call('GET', '/api/v1/tenants/red/networks', undefined, {}, olga)).status, 200);
  assert.equal((await api.call('PATCH', '/api/v1/global', { mtu: 9000 }, {}, olga)).status, 403);
  assert.equal((await api.call('PATCH', '/api/v1/global', { mtu: 9000 })).status, 200);
  const users = await api.call('GET', '/api/v1/users');
  assert.ok(users.json.items.every((u: Record<string, unknown>) => !('passwordHash' in u)), 'password hashes never leave the server');
});

test('endpoint API answers what agents need; delete is idempotent and frees the address', async () => {
  const api = await testApi();
  await tutorial(api);
  const body = { tenant: 'default', network: 'contiv-net', group: 'db', containerId: 'abc123', host: 'node1', ifname: 'eth0' };
  const r = await api.call('POST', '/api/v1/endpoints', body);
  assert.equal(r.status, 201, JSON.stringify(r.json));
  assert.deepEqual([r.json.ip, r.json.prefixLength, r.json.gateway, r.json.mtu, r.json.vni], ['10.1.2.2', 24, '10.1.2.1', 1390, (await api.call('GET', '/api/v1/tenants/default/networks/contiv-net')).json.vni]);
  assert.match(r.json.mac, /^02:57:/);
  const bad = await api.call('POST', '/api/v1/endpoints', { ...body, containerId: 'x', ifname: 'a-very-long-ifname' });
  assert.deepEqual([bad.status, bad.json.field], [400, 'ifname']);
  assert.equal((await api.call('DELETE', `/api/v1/endpoints/${r.json.id}`)).status, 204);
  assert.equal((await api.call('DELETE', `/api/v1/endpoints/${r.json.id}`)).status, 204);
  assert.equal((await api.call('POST', '/api/v1/endpoints', { ...body, containerId: 'next' })).json.ip, '10.1.2.2');
});

test('openapi.json and healthz answer without a token; metrics need an admin or ops token (they count every tenant\'s requests)', async () => {
  const api = await testApi();
  const o = await api.call('GET', '/api/v1/openapi.json', undefined, {}, '');
  assert.equal(o.status, 200);
  for (const p of ['/api/v1/tenants/{tenant}/networks/{name}', '/api/v1/tenants/{tenant}/policies/{policy}/rules/{id}', '/api/v1/endpoints', '/api/v1/watch', '/api/v1/history', '/api/v1/users']) {
    assert.ok(o.json.paths[p], `openapi lists ${p}`);
  }
  assert.equal(o.json.paths['/api/v1/tenants/{tenant}/networks'].post.requestBody.content['application/json'].schema.additionalProperties, false);
  assert.equal((await api.call('GET', '/healthz', undefined, {}, '')).json.status, 'ok');
  await api.call('GET', '/api/v1/tenants');
  const m = await api.call('GET', '/metrics');
  assert.match(String(m.json), /weft_http_requests_total\{method="GET",route="\/api\/v1\/tenants",status="200"\} 1/);
  const none = await api.call('GET', '/metrics', undefined, {}, '');
  assert.equal(none.status, 401, JSON.stringify(none.json));
  for (const role of ['ops', 'tenant'] as const) {
    assert.equal((await api.call('POST', '/api/v1/users', { name: role, role, ...(role === 'tenant' ? { tenants: ['default'] } : {}), password: `${role}-password-1` })).status, 201);
    const token = (await api.call('POST', '/api/v1/login', { username: role, password: `${role}-password-1` }, {}, '')).json.token as string;
    const r = await api.call('GET', '/metrics', undefined, {}, token);
    assert.equal(r.status, role === 'ops' ? 200 : 403, `${role}: ${JSON.stringify(r.json).slice(0, 200)}`);
  }
});

test('metrics: on SQLite, the store\'s commit durations (weft_store_commit_duration_seconds), one per commit', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-metrics-'));
  const store = new SqliteStore(join(dir, 'weft.db'));
  const api = await testApi({ store });
  try {
    const before = store.commits;
    const t0 = performance.now();
    for (const name of ['m1', 'm2', 'm3']) assert.equal((await api.call('POST', '/api/v1/tenants', { name })).status, 201);
    const wall = (performance.now() - t0) / 1000;
    const m = String((await api.call('GET', '/metrics')).json);
    const count = Number(/^weft_store_commit_duration_seconds_count (\d+)$/m.exec(m)?.[1]);
    assert.ok(store.commits - before >= 3, 'three writes one after another: three commits at least');
    assert.equal(count, store.commits - before, `every commit since the app started is counted:\n${m.split('\n').filter((l) => l.includes('commit')).join('\n')}`);
    // Seconds, not milliseconds: the commits took no longer than the requests that waited for them.
    const sum = Number(/^weft_store_commit_duration_seconds_sum (\S+)$/m.exec(m)?.[1]);
    assert.ok(sum > 0 && sum <= wall, `the commits' ${sum} s within the requests' ${wall} s`);
    const memory = await testApi();
    try {
      const mm = String((await memory.call('GET', '/metrics')).json);
      assert.ok(!mm.includes('weft_store_commit_duration_seconds'), 'a store that does not time its commits shows no empty histogram');
    } finally {
      await memory.app.close();
    }
  } finally {
    await api.app.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('explain answers from the policy, and names bad input', async () => {
  const api = await testApi();
  await tutorial(api);
  await api.call('POST', `${T}/policies/db-policy/rules`, { id: '1', protocol: 'tcp', action: 'deny' });
  const mk = (containerId: string, group?: string) => api.call('POST', '/api/v1/endpoints', { tenant: 'default', network: 'contiv-net', ...(group ? { group } : {}), containerId, host: 'h', ifname: 'eth0' });
  await mk('db-1', 'db');
  await mk('app-1');
  const r = await api.call('GET', `${T}/explain?from=app-1&to=db&protocol=tcp&port=80`);
  assert.equal(r.status, 200, JSON.stringify(r.json));
  assert.deepEqual([r.json.allowed, r.json.egress.rule, r.json.ingress.rule.id], [false, null, '1']);
  const bad = await api.call('GET', `${T}/explain?from=ghost&to=db&protocol=tcp`);
  assert.deepEqual([bad.status, bad.json.field], [422, 'from']);
  const proto = await api.call('GET', `${T}/explain?from=app-1&to=db&protocol=sctpx`);
  assert.deepEqual([proto.status, proto.json.field], [400, 'protocol']);
});
