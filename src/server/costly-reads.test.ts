import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { MemoryStore, type Store } from '../store/index.js';
import { perEndpointTenant, testApi } from './testkit.js';
import { EXPLAINS_EACH } from './routes/explain.js';
import { POLICY_PAIRS_DEFAULT } from '../model/index.js';
import { Engine } from '../policy/engine.js';

/**
 * A store whose listings answer a few ms later, as SQLite's and etcd's do: requests that read overlap, as
 * they do in a real server (the memory store answers within one turn, so nothing would ever be in flight
 * beside anything else).
 */
function slowListings(): Store {
  const store = new MemoryStore();
  return new Proxy(store, {
    get(target, key) {
      const v = Reflect.get(target, key) as unknown;
      if (typeof v !== 'function') return v;
      if (key !== 'list') return (v as (...a: unknown[]) => unknown).bind(target);
      return async (...a: unknown[]) => {
        await sleep(3);
        return (v as (...a: unknown[]) => unknown).apply(target, a);
      };
    },
  });
}

async function tenantUser(api: Awaited<ReturnType<typeof testApi>>, name: string, tenant = 'default'): Promise<string> {
  assert.equal((await api.call('POST', '/api/v1/users', { name, role: 'tenant', tenants: [tenant], password: `${name}-password-1` })).status, 201);
  const login = await api.call('POST', '/api/v1/login', { username: name, password: `${name}-password-1` }, {}, '');
  // Without a token of its own the call would go as the test's admin.
  assert.equal(typeof login.json.token, 'string', `${name} logged in: ${login.status} ${JSON.stringify(login.json)}`);
  return login.json.token as string;
}

test('explain: one user has at most EXPLAINS_EACH under way (429 beyond, naming why); another user is not held back by them', async () => {
  const api = await testApi({ store: slowListings() });
  assert.equal((await api.call('POST', '/api/v1/tenants/default/networks', { name: 'net', subnet: '10.8.0.0/24' })).status, 201);
  const eve = await tenantUser(api, 'eve');
  const bob = await tenantUser(api, 'bob');
  const url = '/api/v1/tenants/default/explain?from=10.8.0.2&to=10.8.0.3&protocol=tcp&port=80';
  const [flood, other] = await Promise.all([
    Promise.all(Array.from({ length: 10 }, () => api.call('GET', url, undefined, {}, eve))),
    sleep(1).then(() => api.call('GET', url, undefined, {}, bob)),
  ]);
  const by = (s: number) => flood.filter((a) => a.status === s);
  assert.equal(by(200).length, EXPLAINS_EACH, flood.map((a) => a.status).join(','));
  assert.equal(by(429).length, 10 - EXPLAINS_EACH);
  assert.ok(by(429).every((a) => a.json.code === 'WEFT_BUSY' && /explains under way/.test(a.json.detail)), JSON.stringify(by(429)[0]?.json));
  assert.equal(other.status, 200, 'the limit is per user');
  // Given back whatever the answer: eve may ask again, also after a refused question.
  assert.equal((await api.call('GET', '/api/v1/tenants/default/explain?from=nosuch&to=10.8.0.3&protocol=tcp', undefined, {}, eve)).status, 422);
  const again = await Promise.all(Array.from({ length: EXPLAINS_EACH }, () => api.call('GET', url, undefined, {}, eve)));
  assert.deepEqual(again.map((a) => a.status), Array(EXPLAINS_EACH).fill(200));
});

test('explain: the server has at most EXPLAINS_ALL under way, whoever asks, and one tenant at most EXPLAINS_TENANT', async () => {
  const { EXPLAINS_ALL, EXPLAINS_TENANT } = await import('./routes/explain.js');
  const api = await testApi({ store: slowListings() });
  const tenants = ['t0', 't1', 't2'];
  for (const t of tenants) {
    assert.equal((await api.call('POST', '/api/v1/tenants', { name: t })).status, 201);
    assert.equal((await api.call('POST', `/api/v1/tenants/${t}/networks`, { name: 'net', subnet: '10.8.0.0/24' })).status, 201);
  }
  const users: Array<{ token: string; tenant: string }> = [];
  // One after the other: logins at once from one address are throttled. Spread over three tenants, each
  // under its own cap.
  for (let i = 0; i < EXPLAINS_ALL + 2; i++) {
    const tenant = tenants[i % 3] as string;
    users.push({ token: await tenantUser(api, `u${i}`, tenant), tenant });
  }
  assert.ok((EXPLAINS_ALL + 2) / 3 <= EXPLAINS_TENANT);
  const url = (t: string) => `/api/v1/tenants/${t}/explain?from=10.8.0.2&to=10.8.0.3&protocol=tcp&port=80`;
  const answers = await Promise.all(users.map((u) => api.call('GET', url(u.tenant), undefined, {}, u.token)));
  assert.equal(answers.filter((a) => a.status === 200).length, EXPLAINS_ALL, answers.map((a) => `${a.status} ${a.json.detail ?? ''}`).join('\n'));
  assert.ok(answers.filter((a) => a.status === 429).every((a) => /as many explains as it takes/.test(a.json.detail)));
  // Many users of one tenant: that tenant's cap, and another tenant still asks.
  const one: string[] = [];
  for (let i = 0; i < EXPLAINS_TENANT + 2; i++) one.push(await tenantUser(api, `m${i}`, 't0'));
  const other = await tenantUser(api, 'other', 't1');
  const [many, theirs] = await Promise.all([Promise.all(one.map((token) => api.call('GET', url('t0'), undefined, {}, token))), api.call('GET', url('t1'), undefined, {}, other)]);
  assert.equal(many.filter((a) => a.status === 200).length, EXPLAINS_TENANT, many.map((a) => `${a.status} ${a.json.detail ?? ''}`).join('\n'));
  assert.ok(many.filter((a) => a.status === 429).every((a) => /tenant t0 has \d+ explains under way/.test(a.json.detail)));
  assert.equal(theirs.status, 200, 'another tenant is not held back');
});

test('explain: questions that make a tenant\'s evaluator, from several askers at once, hold the lane one at a time', async () => {
  const api = await testApi({ store: slowListings() });
  assert.equal((await api.call('POST', '/api/v1/tenants/default/networks', { name: 'net', subnet: '10.8.0.0/16' })).status, 201);
  // Enough distinct CIDRs that making the evaluator takes several slices (two policies: a body holds ~8,000).
  const rules = Array.from({ length: 9000 }, (_, i) => ({ id: `r${i}`, direction: 'in', action: 'allow', protocol: 'tcp', ports: String(1000 + (i % 50)), fromCidr: `10.${100 + (i >> 8)}.${i & 255}.1/32`, priority: 5 }));
  for (const [name, part] of [['p', rules.slice(0, 4500)], ['q', rules.slice(4500)]] as const) {
    const made = await api.call('POST', '/api/v1/tenants/default/policies', { name, rules: part });
    assert.equal(made.status, 201, JSON.stringify(made.json));
  }
  assert.equal((await api.call('POST', '/api/v1/tenants/default/groups', { name: 'db', network: 'net', policies: ['p', 'q'] })).status, 201);
  const db = await api.call('POST', '/api/v1/endpoints', { tenant: 'default', network: 'net', group: 'db', containerId: 'db1', host: 'h1', ifname: 'eth0' });
  assert.equal(db.status, 201);
  const users: string[] = [];
  for (let i = 0; i < 4; i++) users.push(await tenantUser(api, `c${i}`));
  const url = (port: number) => `/api/v1/tenants/default/explain?from=10.100.0.1&to=${db.json.ip}&protocol=tcp&port=${port}`;
  const answers = await Promise.all(users.flatMap((token, i) => [api.call('GET', url(1000 + i), undefined, {}, token), api.call('GET', url(2000 + i), undefined, {}, token)]));
  assert.deepEqual([...new Set(answers.map((a) => a.status))], [200], answers.map((a) => JSON.stringify(a.json)).join('\n'));
  assert.equal(api.app.lane.mostHolding, 1, 'never two questions in the lane at once (a builder waiting on its own build let a second in)');
  assert.equal(api.app.lane.queued, 0);
});

test('explain answers from the policy as stored now: a rule added, a policy detached, the tenant made again', async () => {
  const api = await testApi();
  const ok = async (r: Promise<{ status: number; json: any }>, status = 201) => {
    const x = await r;
    assert.equal(x.status, status, JSON.stringify(x.json));
    return x.json;
  };
  const setUp = async () => {
    await ok(api.call('POST', '/api/v1/tenants/t', { name: 't' }).then(async (x) => (x.status === 404 ? api.call('POST', '/api/v1/tenants', { name: 't' }) : x)));
    await ok(api.call('POST', '/api/v1/tenants/t/networks', { name: 'net', subnet: '10.8.0.0/24' }));
    await ok(api.call('POST', '/api/v1/tenants/t/groups', { name: 'db', network: 'net' }));
    await ok(api.call('POST', '/api/v1/tenants/t/policies', { name: 'p', rules: [{ id: 'allow-80', direction: 'in', action: 'allow', protocol: 'tcp', ports: '80', fromCidr: '10.8.0.0/24', priority: 5 }] }));
    await ok(api.call('POST', '/api/v1/endpoints', { tenant: 't', network: 'net', group: 'db', host: 'h1', containerId: 'c'.repeat(64), ifname: 'eth0', ip: '10.8.0.3' }));
    await ok(api.call('PATCH', '/api/v1/tenants/t/groups/db', { policies: ['p'] }), 200);
  };
  const ask = async (port: number) => {
    const x = await ok(api.call('GET', `/api/v1/tenants/t/explain?from=10.8.0.2&to=10.8.0.3&protocol=tcp&port=${port}`), 200);
    return `${x.allowed} ${x.ingress?.rule?.id ?? '-'}`;
  };
  await setUp();
  assert.equal(await ask(80), 'true allow-80');
  assert.equal(await ask(80), 'true allow-80', 'asked again: the kept evaluator');
  await ok(api.call('POST', '/api/v1/tenants/t/policies/p/rules', { id: 'deny-80', direction: 'in', action: 'deny', protocol: 'tcp', ports: '80', fromCidr: '10.8.0.2/32', priority: 9 }));
  assert.equal(await ask(80), 'false deny-80', 'a rule added is in the next answer');
  await ok(api.call('PATCH', '/api/v1/tenants/t/groups/db', { policies: [] }), 200);
  assert.equal(await ask(80), 'true -', 'a policy detached');
  // The tenant deleted and made again under its name, its first policy's name reused with other rules.
  await ok(api.call('DELETE', '/api/v1/endpoints/' + (await api.call('GET', '/api/v1/endpoints?tenant=t')).json.items[0].id), 204);
  for (const path of ['groups/db', 'policies/p', 'networks/net']) await ok(api.call('DELETE', `/api/v1/tenants/t/${path}`), 204);
  await ok(api.call('DELETE', '/api/v1/tenants/t'), 204);
  await setUp();
  assert.equal(await ask(80), 'true allow-80', 'the new tenant\'s policy, not a kept evaluator of the old one');
});

test('verify: one at a time per tenant even with no endpoint to probe (each compiles the whole policy); the slot is given back', async () => {
  const api = await testApi({ store: slowListings() });
  assert.equal((await api.call('POST', '/api/v1/tenants/default/networks', { name: 'net', subnet: '10.8.0.0/24' })).status, 201);
  const eve = await tenantUser(api, 'eve');
  const answers = await Promise.all(Array.from({ length: 6 }, () => api.call('POST', '/api/v1/tenants/default/verify', {}, {}, eve)));
  const by = (s: number) => answers.filter((a) => a.status === s);
  assert.equal(by(200).length, 1, answers.map((a) => `${a.status} ${a.json.code ?? ''}`).join(','));
  assert.equal(by(409).length, 5);
  assert.ok(by(409).every((a) => a.json.code === 'WEFT_IN_USE'));
  assert.equal((await api.call('POST', '/api/v1/tenants/default/verify', {}, {}, eve)).status, 200, 'the slot is given back');
});

test('verify: a tenant whose policy changed since its last compile waits COMPILE_SPACING times that compile (429 before any probe); an unchanged one answers from the kept compile', async () => {
  const { COMPILE_SPACING } = await import('./routes/verify.js');
  const api = await testApi();
  assert.equal((await api.call('POST', '/api/v1/tenants/default/networks', { name: 'net', subnet: '10.8.0.0/16' })).status, 201);
  const rules = Array.from({ length: 3000 }, (_, i) => ({ id: `r${i}`, direction: 'in', action: i % 2 ? 'allow' : 'deny', protocol: 'tcp', ports: String(1000 + (i % 500)), fromCidr: `10.${(i >> 8) & 255}.${i & 255}.0/24`, priority: 1 + (i % 90) }));
  assert.equal((await api.call('POST', '/api/v1/tenants/default/policies', { name: 'big', rules })).status, 201);
  assert.equal((await api.call('POST', '/api/v1/tenants/default/groups', { name: 'db', network: 'net', policies: ['big'] })).status, 201);
  const eve = await tenantUser(api, 'eve');
  const verify = () => api.call('POST', '/api/v1/tenants/default/verify', {}, {}, eve);
  const t0 = performance.now();
  assert.equal((await verify()).status, 200);
  const first = performance.now() - t0;
  assert.equal((await verify()).status, 200, 'unchanged: the kept compile, no wait');
  assert.equal((await api.call('POST', '/api/v1/tenants/default/policies/big/rules', { id: 'one-more', direction: 'in', action: 'allow', protocol: 'udp', ports: '53', fromCidr: '10.9.0.0/24' })).status, 201);
  const soon = await verify();
  // Only meaningful when the compile was long enough for the write between to fit inside the wait.
  if (first * COMPILE_SPACING > 200) {
    assert.equal(soon.status, 429, JSON.stringify(soon.json));
    assert.equal(soon.json.code, 'WEFT_BUSY');
    assert.match(soon.json.detail, /changed since its last verification, whose compile took \d+ ms; ask again in \d+ s/);
  }
});

test('verify: a policy past POLICY_PAIRS_DEFAULT is refused before any compile of its pairs or any probe, naming the pairs, and not compiled again', async (t) => {
  const api = await testApi();
  // 600 endpoints, each let in by a rule naming its own address on a port of its own: ~360,000 pairs.
  await perEndpointTenant(api, 600);
  const eve = await tenantUser(api, 'eve');
  let builds = 0;
  const build = Engine.build;
  t.mock.method(Engine, 'build', (...args: Parameters<typeof Engine.build>) => { builds++; return build(...args); });
  const r = await api.call('POST', '/api/v1/tenants/default/verify', {}, {}, eve);
  assert.equal(r.status, 413, JSON.stringify(r.json));
  assert.equal(r.json.code, 'WEFT_TOO_LARGE');
  assert.match(r.json.detail, /would make 3\d\d,\d{3} pairs of address classes .*; a verification compiles the whole tenant \(every group\) within 300,000/);
  assert.equal(POLICY_PAIRS_DEFAULT, 300_000);
  assert.equal(builds, 1);
  // Asked again for the same policy: the refusal again, without another compile.
  const again = await api.call('POST', '/api/v1/tenants/default/verify', {}, {}, eve);
  assert.deepEqual([again.status, again.json.detail], [413, r.json.detail]);
  assert.equal(builds, 1, 'no compile for a policy refused before');
});
