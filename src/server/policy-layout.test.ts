import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Control } from '../control/index.js';
import { WeftError } from '../model/index.js';
import { SqliteStore, type Store } from '../store/index.js';
import { EtcdStore } from '../store/etcd.js';
import { startEtcd, type EtcdProcess } from '../testkit/etcd.js';
import { testApi } from './testkit.js';

// Policies as the server stored them before rule segments (issue 13): the head held every rule.
const T = '/api/v1/tenants/default';
const AT = '2024-05-01T10:00:00.000Z';
const legacyRules = (n: number) => Array.from({ length: n }, (_, i) => ({
  id: `w${n - i}`, priority: 1 + (i % 100), direction: 'in', action: i % 3 ? 'allow' : 'deny', protocol: 'tcp', ports: String(1000 + i),
  ...(i % 7 ? { fromCidr: `10.0.${i % 250}.0/24` } : {}), owner: i % 2 ? 'bob' : 'ann',
}));

async function writeLegacy(store: Store, n: number): Promise<void> {
  await store.transact('old-server', async (tx) => {
    tx.put('tenants/default', { name: 'default', id: 1, defaultAction: 'allow', createdAt: AT, updatedAt: AT });
    tx.put('policies/default/web', { tenant: 'default', name: 'web', rules: legacyRules(n), createdAt: AT, updatedAt: AT, owner: 'bob' });
    tx.put('policies/default/empty', { tenant: 'default', name: 'empty', rules: [], createdAt: AT, updatedAt: AT });
    tx.put('quota/bob', { used: { objects: 1, rules: n / 2 } });
    tx.put('quota/ann', { used: { objects: 0, rules: n / 2 } });
  });
}

const dir = mkdtempSync(join(tmpdir(), 'weft-layout-'));
const etcdHere = (() => { try { execFileSync('etcd', ['--version'], { stdio: 'ignore' }); return true; } catch { return false; } })();
let etcd: EtcdProcess | undefined;
before(async () => { if (etcdHere) etcd = await startEtcd(); });
after(async () => { await etcd?.stop(); rmSync(dir, { recursive: true, force: true }); });

const stores: Array<[string, () => Promise<Store>, false | string]> = [
  ['sqlite', async () => new SqliteStore(join(dir, 'weft.db')), false],
  ['etcd', async () => EtcdStore.open([etcd?.endpoint ?? ''], '/legacy/'), etcdHere ? false : 'etcd is not installed'],
];

for (const [name, open, skip] of stores) {
  test(`${name}: a store in the old policy layout is migrated at start, once, and reads back the same through the API`, { skip }, async () => {
    const raw = await open();
    await writeLegacy(raw, 1000);
    await raw.close();
    const store = await open();
    const api = await testApi({ store });
    try {
      const web = await api.call('GET', `${T}/policies/web`);
      assert.equal(web.status, 200);
      assert.deepEqual(web.json.rules, legacyRules(1000), 'every rule, every field and owner, in the stored order');
      assert.deepEqual([web.json.owner, web.json.createdAt, web.json.updatedAt, web.headers['etag']], ['bob', AT, AT, `"${web.json.revision}"`]);
      const list = (await api.call('GET', `${T}/policies`)).json.items;
      assert.deepEqual(list.map((p: { name: string; rules: unknown[] }) => [p.name, p.rules.length]), [['empty', 0], ['web', 1000]]);
      assert.deepEqual((await api.call('GET', `${T}/policies/web/rules/w500`)).json, { ...legacyRules(1000)[500], revision: web.json.revision });
      const head = (await store.get('policies/default/web'))?.value as Record<string, unknown>;
      assert.deepEqual([head['rules'], head['count'], (await store.list('rules/default/web/')).entries.length], [undefined, 1000, 8], 'a head and 8 segments of at most 128');
      assert.deepEqual((await api.control.quota.view(store, 'bob')).used, { objects: 1, rules: 500 }, 'quotas did not move');
      const rev = await store.revision();
      await api.control.bootstrap();
      await new Control(store).bootstrap();
      assert.equal(await store.revision(), rev, 'a second start (or a second server) migrates nothing');
      assert.equal((await api.call('POST', `${T}/policies/web/rules`, { id: 'new', protocol: 'udp' })).status, 201);
      assert.equal((await api.call('DELETE', `${T}/policies/web/rules/w1000`)).status, 204);
      const after = (await api.call('GET', `${T}/policies/web`)).json.rules.map((r: { id: string }) => r.id);
      assert.deepEqual(after, [...legacyRules(1000).slice(1).map((r) => r.id), 'new']);
      assert.deepEqual((await api.control.quota.view(store, 'ann')).used.rules, 499, "w1000 was ann's: refunded");
    } finally {
      await store.close();
    }
  });
}

const bulk = (n: number) => Array.from({ length: n }, (_, i) => ({ id: `r${i}`, protocol: 'tcp', ports: String(1 + (i % 60000)) }));

test("etcd: a 10,000-rule policy is one transaction through the API; one past etcd's bounds is refused whole (413) and writes nothing", { skip: etcdHere ? false : 'etcd is not installed' }, async () => {
  const store = await EtcdStore.open([etcd?.endpoint ?? ''], '/bulk/');
  const api = await testApi({ store });
  try {
    const rev = await store.revision();
    const made = await api.call('POST', `${T}/policies`, { name: 'big', rules: bulk(10_000) });
    assert.equal(made.status, 201, JSON.stringify(made.json).slice(0, 300));
    assert.equal(await store.revision(), rev + 1, 'one transaction');
    const got = (await api.call('GET', `${T}/policies/big`)).json.rules.map((r: { id: string }) => r.id);
    assert.deepEqual(got, bulk(10_000).map((r) => r.id));
    assert.equal((await api.call('POST', `${T}/policies/big/rules`, { id: 'r5000x', protocol: 'udp' })).status, 201);
    assert.equal((await api.call('DELETE', `${T}/policies/big/rules/r5000`)).status, 204);
    assert.equal((await api.call('PUT', `${T}/policies/big`, { name: 'big', rules: bulk(9_000) })).status, 200, 'a bulk replace, one transaction too');
    const at = await store.revision();
    await assert.rejects(api.control.policies.create('admin', 'default', { name: 'huge', rules: bulk(20_000) }),
      (e: unknown) => e instanceof WeftError && e.code === 'WEFT_TOO_LARGE' && /--max-request-bytes/.test(e.message));
    assert.equal(await store.revision(), at, 'nothing was written');
    assert.equal((await api.call('GET', `${T}/policies/huge`)).status, 404);
    assert.equal((await api.call('GET', `${T}/policies/big`)).json.rules.length, 9_000);
    // Refused before it was sent: sent, gRPC's limit would fail it as retryable and cut the server off etcd.
    assert.equal((await api.call('POST', `${T}/policies`, { name: 'huge', rules: bulk(8_000) })).status, 201, 'the connection to etcd is still up');
  } finally {
    await store.close();
  }
});
