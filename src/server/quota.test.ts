import { test } from 'node:test';
import assert from 'node:assert/strict';
import { testApi, type TestApi } from './testkit.js';

const T = '/api/v1/tenants/default';
const rules = (n: number, from = 0) => Array.from({ length: n }, (_, i) => ({ id: `r${from + i}`, protocol: 'tcp', ports: String(1000 + from + i) }));

/** A tenant-role user of `default` and its token. */
async function tenantUser(api: TestApi, name: string): Promise<string> {
  await api.control.users.create('admin', { name, role: 'tenant', tenants: ['default'] });
  return (await api.control.users.tokens.issue('admin', name, 'test', null)).token;
}

test('a user creating past --quota-objects gets 429 naming the limit and its flag, and nothing is written', async () => {
  const api = await testApi({ quota: { objects: 3, rules: 100 } });
  const bob = await tenantUser(api, 'bob');
  for (const name of ['a', 'b', 'c']) assert.equal((await api.call('POST', `${T}/netprofiles`, { name }, {}, bob)).status, 201);
  const r = await api.call('POST', `${T}/netprofiles`, { name: 'd' }, {}, bob);
  assert.equal(r.status, 429);
  assert.match(String(r.headers['content-type']), /^application\/problem\+json/);
  assert.deepEqual([r.json.code, r.json.field], ['WEFT_QUOTA_EXCEEDED', 'objects']);
  assert.match(r.json.detail, /user bob owns 3 objects .* limit of 3 \(--quota-objects 3\)/);
  assert.equal((await api.call('GET', `${T}/netprofiles`)).json.items.length, 3, 'the refused create wrote nothing');
  assert.equal((await api.call('DELETE', `${T}/netprofiles/a`, undefined, {}, bob)).status, 204);
  assert.equal((await api.call('POST', `${T}/netprofiles`, { name: 'd' }, {}, bob)).status, 201, 'a delete gives the quota back');
  for (let i = 0; i < 5; i++) assert.equal((await api.call('POST', `${T}/netprofiles`, { name: `adm${i}` })).status, 201, 'admins are counted, not limited');
});

test('a bulk rule add past --quota-rules is refused whole; rules belong to whoever added them', async () => {
  const api = await testApi({ quota: { objects: 100, rules: 5 } });
  const bob = await tenantUser(api, 'bob');
  const big = await api.call('POST', `${T}/policies`, { name: 'p', rules: rules(6) }, {}, bob);
  assert.equal(big.status, 429);
  assert.match(big.json.detail, /rules: user bob owns 0 rules and this would add 6, past the limit of 5 \(--quota-rules 5\)/);
  assert.equal((await api.call('GET', `${T}/policies/p`)).status, 404, 'neither the policy nor any rule was written');
  assert.deepEqual((await api.call('GET', '/api/v1/users/bob/quota', undefined, {}, bob)).json.used, { objects: 0, rules: 0 });
  assert.equal((await api.call('POST', `${T}/policies`, { name: 'p', rules: rules(4) }, {}, bob)).status, 201);
  // Rules bob adds to the admin's policy are bob's, so a shared policy is no way around the limit.
  await api.call('POST', `${T}/policies`, { name: 'shared' });
  assert.equal((await api.call('POST', `${T}/policies/shared/rules`, { id: 'x', protocol: 'tcp' }, {}, bob)).status, 201);
  const over = await api.call('POST', `${T}/policies/shared/rules`, { id: 'y', protocol: 'tcp' }, {}, bob);
  assert.deepEqual([over.status, over.json.field], [429, 'rules']);
  const put = await api.call('PUT', `${T}/policies/p`, { name: 'p', rules: rules(5) }, {}, bob);
  assert.equal(put.status, 429, 'a PUT that grows the rules is charged for the new ones');
  const shared = await api.call('GET', `${T}/policies/shared`);
  assert.deepEqual([shared.json.owner, shared.json.rules[0].owner], ['admin', 'bob']);
  assert.equal((await api.call('DELETE', `${T}/policies/shared`)).status, 204);
  assert.deepEqual((await api.call('GET', '/api/v1/users/bob/quota', undefined, {}, bob)).json.used, { objects: 1, rules: 4 }, "deleting the admin's policy gave bob his rule back");
  assert.equal((await api.call('DELETE', `${T}/policies/p/rules/r0`, undefined, {}, bob)).status, 204);
  assert.equal((await api.call('DELETE', `${T}/policies/p`)).status, 204);
  assert.deepEqual((await api.call('GET', '/api/v1/users/bob/quota', undefined, {}, bob)).json.used, { objects: 0, rules: 0 });
});

test('owners survive PUT and PATCH by other users; objects made before quotas belong to nobody', async () => {
  const api = await testApi();
  const bob = await tenantUser(api, 'bob');
  await api.call('POST', `${T}/policies`, { name: 'p', rules: rules(2) }, {}, bob);
  await api.call('PATCH', `${T}/policies/p`, { rules: [...rules(2), { id: 'more', protocol: 'udp' }] });
  const p = (await api.call('GET', `${T}/policies/p`)).json;
  assert.deepEqual([p.owner, ...p.rules.map((r: { owner: string }) => r.owner)], ['bob', 'bob', 'bob', 'admin']);
  const forged = await api.call('PUT', `${T}/policies/p`, { name: 'p', owner: 'admin' }, {}, bob);
  assert.deepEqual([forged.status, forged.json.field], [400, 'owner'], 'the owner cannot be set by a client');
  // A record from before quotas: no owner anywhere, and deleting it refunds no one.
  await api.control.store.transact('old', async (tx) => tx.put('netprofiles/default/legacy', { tenant: 'default', name: 'legacy', dscp: 0, createdAt: '', updatedAt: '' }));
  assert.equal((await api.call('DELETE', `${T}/netprofiles/legacy`, undefined, {}, bob)).status, 204);
  assert.deepEqual((await api.call('GET', '/api/v1/users/bob/quota', undefined, {}, bob)).json.used, { objects: 1, rules: 2 });
});

test('an admin sets a per-user override; only admins may, and users read only their own quota', async () => {
  const api = await testApi({ quota: { objects: 1, rules: 10 } });
  const bob = await tenantUser(api, 'bob');
  const eve = await tenantUser(api, 'eve');
  await api.call('POST', `${T}/netprofiles`, { name: 'a' }, {}, bob);
  assert.equal((await api.call('PUT', '/api/v1/users/bob/quota', { objects: 3 }, {}, bob)).status, 403);
  assert.equal((await api.call('GET', '/api/v1/users/bob/quota', undefined, {}, eve)).status, 403);
  assert.equal((await api.call('PUT', '/api/v1/users/nobody/quota', { objects: 3 })).status, 404);
  assert.deepEqual([(await api.call('PUT', '/api/v1/users/bob/quota', { objects: -1 })).json.field], ['objects']);
  const set = await api.call('PUT', '/api/v1/users/bob/quota', { objects: 2 });
  assert.deepEqual([set.status, set.json.limits, set.json.override, set.json.used.objects], [200, { objects: 2, rules: 10 }, { objects: 2 }, 1]);
  assert.equal((await api.call('POST', `${T}/netprofiles`, { name: 'b' }, {}, bob)).status, 201);
  const r = await api.call('POST', `${T}/netprofiles`, { name: 'c' }, {}, bob);
  assert.equal(r.status, 429);
  assert.match(r.json.detail, /limit of 2 \(the admin's override for bob; the server default is --quota-objects 1\)/);
  const back = await api.call('PUT', '/api/v1/users/bob/quota', {});
  assert.deepEqual([back.json.limits.objects, back.json.override], [1, {}], 'an empty override returns to the defaults');
  assert.equal((await api.call('GET', '/api/v1/users/admin/quota')).json.limited, false);
});
