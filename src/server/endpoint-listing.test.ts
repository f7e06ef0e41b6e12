import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStore } from '../store/index.js';
import { testApi, type TestApi } from './testkit.js';

/** A memory store that counts reads of the whole endpoint list. */
class CountingStore extends MemoryStore {
  endpointReads = 0;

  override list(prefix: string) {
    if (prefix === 'endpoints/') this.endpointReads++;
    return super.list(prefix);
  }
}

async function ok(api: TestApi, method: string, url: string, body?: unknown, token?: string): Promise<any> {
  const r = await api.call(method, url, body, {}, token);
  assert.ok(r.status < 300, `${method} ${url}: ${r.status} ${JSON.stringify(r.json)}`);
  return r.json;
}

/** Tenants blue and red, each with an endpoint on node1 and node2; a tenant user of blue and an ops user. */
async function cluster(store = new CountingStore()) {
  const api = await testApi({ store });
  for (const [t, subnet] of [['blue', '10.1.0.0/24'], ['red', '10.2.0.0/24']] as const) {
    await ok(api, 'POST', '/api/v1/tenants', { name: t });
    await ok(api, 'POST', `/api/v1/tenants/${t}/networks`, { name: 'net', subnet });
    for (const host of ['node1', 'node2']) {
      await ok(api, 'POST', '/api/v1/endpoints', { tenant: t, network: 'net', containerId: `${t}-${host}`, host, ifname: 'eth0' });
    }
  }
  const user = async (name: string, role: 'tenant' | 'ops', tenants?: string[]) => {
    await ok(api, 'POST', '/api/v1/users', { name, role, ...(tenants ? { tenants } : {}) });
    return (await api.control.users.tokens.issue('admin', name, 'test', null)).token;
  };
  return { api, store, bob: await user('bob', 'tenant', ['blue']), olga: await user('olga', 'ops') };
}

const names = (j: { items: Array<{ tenant: string; host: string }> }) => j.items.map((e) => `${e.tenant}@${e.host}`).sort();

test('endpoint listings: ?host= and ?tenant= filter, and a tenant user sees only its tenants even when an admin listed the same at the same revision', async () => {
  const { api, bob, olga } = await cluster();
  const all = await ok(api, 'GET', '/api/v1/endpoints');
  assert.deepEqual(names(all), ['blue@node1', 'blue@node2', 'red@node1', 'red@node2']);
  assert.deepEqual(names(await ok(api, 'GET', '/api/v1/endpoints?host=node1')), ['blue@node1', 'red@node1']);
  assert.deepEqual(names(await ok(api, 'GET', '/api/v1/endpoints?host=node1&tenant=red')), ['red@node1']);
  assert.deepEqual(names(await ok(api, 'GET', '/api/v1/endpoints?host=nowhere')), []);
  // Same revision, same query as the admin's: bob still gets only blue.
  const bobs = await ok(api, 'GET', '/api/v1/endpoints', undefined, bob);
  assert.deepEqual(names(bobs), ['blue@node1', 'blue@node2']);
  assert.equal(bobs.revision, all.revision);
  assert.deepEqual(names(await ok(api, 'GET', '/api/v1/endpoints?host=node1', undefined, bob)), ['blue@node1']);
  // Another tenant is refused as one that does not exist, as its own routes are.
  const theirs = await api.call('GET', '/api/v1/endpoints?tenant=red', undefined, {}, bob);
  const nowhere = await api.call('GET', '/api/v1/endpoints?tenant=nosuch', undefined, {}, bob);
  assert.deepEqual([theirs.status, nowhere.status], [404, 404]);
  assert.equal(JSON.stringify(theirs.json).replace(/red/g, 'X'), JSON.stringify(nowhere.json).replace(/nosuch/g, 'X'), 'the same answer');
  assert.deepEqual(names(await ok(api, 'GET', '/api/v1/endpoints?host=node2', undefined, olga)), ['blue@node2', 'red@node2']);
  const bad = await api.call('GET', '/api/v1/endpoints?host=NOT_A_NAME');
  assert.equal(bad.status, 400);
});

test('endpoint listings: a hundred at once cost at most two reads of the store; a write is seen by the next listing', async () => {
  const { api, store, bob } = await cluster();
  const before = store.endpointReads;
  const answers = await Promise.all(Array.from({ length: 100 }, (_, i) =>
    ok(api, 'GET', i % 3 === 0 ? '/api/v1/endpoints' : `/api/v1/endpoints?host=node${1 + (i % 2)}`, undefined, i % 5 === 0 ? bob : undefined)));
  assert.ok(store.endpointReads - before <= 2, `${store.endpointReads - before} reads of every endpoint for 100 listings`);
  assert.equal(answers.length, 100);
  const quiet = store.endpointReads;
  await ok(api, 'GET', '/api/v1/endpoints');
  assert.equal(store.endpointReads, quiet, 'nothing committed since: no new read');
  const made = await ok(api, 'POST', '/api/v1/endpoints', { tenant: 'blue', network: 'net', containerId: 'blue-new', host: 'node1', ifname: 'eth0' });
  const after = await ok(api, 'GET', '/api/v1/endpoints?host=node1', undefined, bob);
  assert.deepEqual(names(after), ['blue@node1', 'blue@node1']);
  assert.ok(after.items.some((e: { id: string }) => e.id === made.id), "the caller's own write is in its next listing");
  assert.ok(after.revision >= made.revision);
  assert.equal(store.endpointReads, quiet + 1);
});
