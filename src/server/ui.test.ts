import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { testApi, type TestApi } from './testkit.js';
import { MATRIX_GROUPS } from './routes/matrix.js';

// The web UI's server side (issue 16): its files served with a policy that lets nothing else run, and
// the policy matrix from explain's evaluator, kept to the caller's tenants, with bad input refused.

async function ok(api: TestApi, method: string, url: string, body?: unknown): Promise<any> {
  const r = await api.call(method, url, body);
  assert.ok(r.status < 300, `${method} ${url}: ${r.status} ${JSON.stringify(r.json)}`);
  return r.json;
}

/** Contiv's tutorial: db takes tcp only on 8888; app and web have no policy; idle has no endpoints. */
async function shop(api: TestApi): Promise<void> {
  await ok(api, 'POST', '/api/v1/tenants', { name: 'shop' });
  await ok(api, 'POST', '/api/v1/tenants/shop/networks', { name: 'net', subnet: '10.1.2.0/24' });
  await ok(api, 'POST', '/api/v1/tenants/shop/policies', { name: 'db-policy', rules: [
    { id: '1', direction: 'in', priority: 1, protocol: 'tcp', action: 'deny' },
    { id: '2', direction: 'in', priority: 10, protocol: 'tcp', ports: '8888', action: 'allow' },
  ] });
  for (const [g, p] of [['db', ['db-policy']], ['app', []], ['web', []], ['idle', []]] as const) await ok(api, 'POST', '/api/v1/tenants/shop/groups', { name: g, network: 'net', policies: p });
  for (const [id, group] of [['db-1', 'db'], ['db-2', 'db'], ['app-1', 'app'], ['web-1', 'web']] as const) {
    await ok(api, 'POST', '/api/v1/endpoints', { tenant: 'shop', network: 'net', group, containerId: id, containerName: id, host: 'h', ifname: 'eth0' });
  }
}

const verdicts = (m: any) => Object.fromEntries(m.groups.flatMap((a: any, i: number) => m.groups.map((b: any, j: number) => {
  const c = m.cells[i][j];
  return [`${a.name}>${b.name}`, c === null ? 'empty' : c.allowed ? 'allow' : `deny:${c.ingress?.policy}/${c.ingress?.rule?.id}`];
})));

test('the matrix says what explain says for each pair of groups, and follows a policy change', async () => {
  const api = await testApi();
  await shop(api);
  const m = await ok(api, 'GET', '/api/v1/tenants/shop/matrix?protocol=tcp&port=80');
  assert.deepEqual(m.groups.map((g: any) => [g.name, g.endpoints]), [['app', 1], ['db', 2], ['idle', 0], ['web', 1]]);
  const v = verdicts(m);
  assert.equal(v['app>db'], 'deny:db-policy/1');
  assert.equal(v['web>db'], 'deny:db-policy/1');
  assert.equal(v['db>app'], 'allow');
  assert.equal(v['app>idle'], 'empty', 'a group without endpoints has nothing to decide');
  assert.equal(v['idle>web'], 'empty');
  const e = await ok(api, 'GET', `/api/v1/tenants/shop/explain?from=app-1&to=${m.groups[1].representative.ip}&protocol=tcp&port=80`);
  assert.deepEqual(m.cells[0][1].ingress, e.ingress, 'the cell is explain\'s answer');
  assert.equal(verdicts(await ok(api, 'GET', '/api/v1/tenants/shop/matrix?port=8888'))['app>db'], 'allow', 'tcp by default; 8888 is allowed');
  assert.equal(verdicts(await ok(api, 'GET', '/api/v1/tenants/shop/matrix?protocol=udp&port=80'))['app>db'], 'allow');
  // A change through the API is in the next matrix (no cache between them).
  await ok(api, 'POST', '/api/v1/tenants/shop/policies/db-policy/rules', { id: '3', direction: 'in', priority: 20, protocol: 'tcp', ports: '80', fromGroup: 'app', action: 'allow' });
  const after = verdicts(await ok(api, 'GET', '/api/v1/tenants/shop/matrix?protocol=tcp&port=80'));
  assert.equal(after['app>db'], 'allow');
  assert.equal(after['web>db'], 'deny:db-policy/1');
  const some = await ok(api, 'GET', '/api/v1/tenants/shop/matrix?groups=web,db');
  assert.deepEqual(some.groups.map((g: any) => g.name), ['web', 'db'], 'the groups asked for, in that order');
});

test('members of a group the policy tells apart are asked about apart: a cell says so, with how many pairs get each answer', async () => {
  const api = await testApi();
  await shop(api);
  // db-1 and db-2 get 10.1.2.x addresses in order; a rule for the first one's address alone.
  const eps = (await ok(api, 'GET', '/api/v1/endpoints?tenant=shop')).items as Array<{ containerId: string; ip: string }>;
  const db1 = eps.find((e) => e.containerId === 'db-1')?.ip as string;
  await ok(api, 'POST', '/api/v1/tenants/shop/policies', { name: 'out', rules: [{ id: '1', direction: 'out', priority: 5, protocol: 'tcp', ports: '80', toCidr: `${db1}/32`, action: 'deny' }] });
  await ok(api, 'PUT', '/api/v1/tenants/shop/groups/app', { name: 'app', network: 'net', policies: ['out'] });
  const m = await ok(api, 'GET', '/api/v1/tenants/shop/matrix?groups=app,db,web&port=80');
  const cell = m.cells[0][1];
  assert.equal(cell.variants?.length, 2, JSON.stringify(cell));
  const says = cell.variants.map((v: any) => `${v.pairs} ${v.allowed ? 'allow' : 'deny'} ${v.to.name} ${v.egress?.policy ?? '-'}/${v.egress?.rule?.id ?? '-'} ${v.ingress?.policy}/${v.ingress?.rule?.id}`).sort();
  assert.deepEqual(says, ['1 deny db-1 out/1 db-policy/1', '1 deny db-2 -/- db-policy/1'], 'both denied, by different rules for each member');
  assert.equal(m.groups[1].classes, 2);
  assert.equal(m.cells[2][1].variants, undefined, 'web → db: one answer for both');
});

test('one matrix at a time per caller; the next is refused at once, not queued', async () => {
  const api = await testApi();
  await shop(api);
  const both = await Promise.all([api.call('GET', '/api/v1/tenants/shop/matrix'), api.call('GET', '/api/v1/tenants/shop/matrix')]);
  assert.deepEqual(both.map((r) => r.status).sort(), [200, 429], JSON.stringify(both.map((r) => r.json)));
  assert.equal(both.find((r) => r.status === 429)?.json.code, 'WEFT_BUSY');
  assert.equal((await api.call('GET', '/api/v1/tenants/shop/matrix')).status, 200, 'and answered once the first is done');
});

test('one matrix at a time per tenant: two users of one tenant cannot hold every slot; another tenant\'s is still computed', async () => {
  const api = await testApi();
  await shop(api);
  await ok(api, 'POST', '/api/v1/tenants', { name: 'other' });
  const tokens: string[] = [];
  for (const name of ['e1', 'e2']) {
    await ok(api, 'POST', '/api/v1/users', { name, role: 'tenant', tenants: ['shop'] });
    tokens.push((await api.control.users.tokens.issue('admin', name, 'test', null)).token);
  }
  const [a, b, other] = await Promise.all([
    api.call('GET', '/api/v1/tenants/shop/matrix', undefined, {}, tokens[0]),
    api.call('GET', '/api/v1/tenants/shop/matrix?port=80', undefined, {}, tokens[1]),
    api.call('GET', '/api/v1/tenants/other/matrix'),
  ]);
  assert.deepEqual([a, b].map((r) => r.status).sort(), [200, 429], JSON.stringify([a, b].map((r) => r.json)));
  assert.match(JSON.stringify([a, b].find((r) => r.status === 429)?.json), /a policy matrix of tenant shop is being computed already/);
  assert.equal(other.status, 200, 'the other tenant was not turned away');
});

test('the matrix refuses bad input naming the field, keeps tenants apart, and bounds its size', async () => {
  const api = await testApi();
  await shop(api);
  const bad: Array<[string, string]> = [
    ['protocol=tcpx', 'protocol'], ['port=70000', 'port'], ['port=-1', 'port'], ['groups=NOPE', 'groups'], ['groups=db,,app', 'groups'],
    ['groups=db,ghost', 'groups'], ['color=red', 'color'], [`groups=${Array.from({ length: MATRIX_GROUPS + 1 }, (_, i) => `g${i}`).join(',')}`, 'groups'],
  ];
  for (const [q, field] of bad) {
    const r = await api.call('GET', `/api/v1/tenants/shop/matrix?${q}`);
    assert.ok(r.status === 400 || r.status === 422, `${q}: ${r.status}`);
    assert.match(JSON.stringify(r.json), new RegExp(field), `${q}: the answer names ${field}: ${JSON.stringify(r.json)}`);
  }
  await ok(api, 'POST', '/api/v1/tenants', { name: 'rival' });
  await ok(api, 'POST', '/api/v1/users', { name: 'eve', role: 'tenant', tenants: ['rival'] });
  const eve = (await api.control.users.tokens.issue('admin', 'eve', 'test', null)).token;
  assert.equal((await api.call('GET', '/api/v1/tenants/shop/matrix', undefined, {}, eve)).status, 404, 'another tenant is not there');
  assert.deepEqual((await api.call('GET', '/api/v1/tenants/rival/matrix', undefined, {}, eve)).json.groups, []);
  assert.equal((await api.call('GET', '/api/v1/tenants/shop/matrix', undefined, {}, '')).status, 401);
  // Past MATRIX_GROUPS groups, the first by name and how many were left out.
  for (let i = 0; i < MATRIX_GROUPS; i++) await ok(api, 'POST', '/api/v1/tenants/shop/groups', { name: `g${String(i).padStart(2, '0')}`, network: 'net' });
  const big = await ok(api, 'GET', '/api/v1/tenants/shop/matrix');
  assert.equal(big.groups.length, MATRIX_GROUPS);
  assert.equal(big.truncated, 4);
  assert.equal(big.cells.length, MATRIX_GROUPS);
});

test('the UI is served with a policy that runs only its own scripts; only its files are served; the API stays behind tokens', async () => {
  const api = await testApi();
  const page = await api.app.inject({ method: 'GET', url: '/ui/' });
  assert.equal(page.statusCode, 200);
  assert.match(String(page.headers['content-type']), /^text\/html/);
  assert.match(page.body, /<script type="module" src="weft-ui.js">/);
  const csp = String(page.headers['content-security-policy']);
  for (const d of ["default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"]) assert.ok(csp.includes(d), `${d} in ${csp}`);
  assert.equal(page.headers['x-content-type-options'], 'nosniff');
  assert.equal((await api.app.inject({ method: 'GET', url: '/ui' })).headers.location, '/ui/');
  assert.equal((await api.app.inject({ method: 'GET', url: '/' })).headers.location, '/ui/');
  const js = await api.app.inject({ method: 'GET', url: '/ui/weft-ui.js' });
  assert.equal(js.statusCode, 200);
  assert.match(String(js.headers['content-type']), /^text\/javascript/);
  assert.equal((await api.app.inject({ method: 'GET', url: '/ui/app.css' })).statusCode, 200);
  assert.equal((await api.app.inject({ method: 'GET', url: '/ui/favicon.svg' })).statusCode, 200);
  const missing = await api.app.inject({ method: 'GET', url: '/ui/nothing.js' });
  assert.equal(missing.statusCode, 404);
  assert.ok(String(missing.headers['content-security-policy']).includes("default-src 'none'"), 'a 404 of the UI carries the policy too');
  assert.doesNotMatch(missing.body, /nothing\.js|\/dist\//, 'it does not echo the path or say where the server lives');
  for (const path of ['/ui/app.js', '/ui/logic.test.js', '/ui/app.js.map', '/ui/..%2Fserver%2Fapp.js', '/ui/%2e%2e/server/app.js', '/ui/../server/app.js', '/ui/nothing.js']) {
    const r = await api.app.inject({ method: 'GET', url: path });
    assert.equal(r.statusCode, 404, `${path}: ${r.statusCode}`);
  }
});

test('the UI\'s modules import only each other (nothing from node_modules goes into the page) and never parse markup', () => {
  const dir = fileURLToPath(new URL('../ui/', import.meta.url));
  const mods = readdirSync(dir).filter((f) => f.endsWith('.js') && !f.includes('.test.') && f !== 'weft-ui.js');
  assert.ok(mods.includes('app.js') && mods.includes('dom.js'), mods.join(', '));
  for (const f of mods) {
    const code = readFileSync(`${dir}${f}`, 'utf8');
    for (const m of code.matchAll(/(?:^|\n)\s*(?:(?:import|export)\b[^'"]*?from\s+|import\s+)'([^']+)'/g)) {
      assert.match(m[1] as string, /^\.\/[a-z-]+\.js$/, `${f} imports ${m[1]}: only ./name.js loads in the browser`);
      assert.ok(mods.includes((m[1] as string).slice(2)), `${f} imports ${m[1]}, which is not served`);
    }
    assert.doesNotMatch(code, /innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function|DOMParser|srcdoc|createContextualFragment|import\(/, `${f} must not turn text into markup or code`);
  }
  const linked = readFileSync(`${dir}weft-ui.js`, 'utf8');
  assert.doesNotMatch(linked, /(?:^|\n)\s*import\b|import\(|innerHTML|outerHTML|insertAdjacentHTML|document\.write|DOMParser|srcdoc|createContextualFragment/, 'the linked file loads nothing else and parses no markup');
  assert.ok(linked.length < 200_000, `the UI is ${linked.length} bytes`);
});
