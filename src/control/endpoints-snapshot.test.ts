import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore } from '../store/index.js';
import { LossyStore } from '../store/testing.js';
import { Control } from './control.js';

const req = { tenant: 'default', network: 'net', ifname: 'eth0', host: 'h1' };

test('the endpoint listing is read again only when an endpoint changed, not when other keys moved the revision (heartbeats); never older than a caller\'s own write', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-eps-'));
  const store = new SqliteStore(join(dir, 'weft.db'));
  try {
    const c = new Control(store);
    await c.bootstrap();
    await c.networks.create('u', 'default', { name: 'net', subnet: '10.0.0.0/24' });
    const a = await c.endpoints.create('a', { ...req, containerId: 'a' });
    const s1 = await c.endpoints.snapshot();
    assert.deepEqual(s1.items.map((e) => e.id), [a.id]);
    // Other keys: a tenant, a host's heartbeat-like writes. The store's revision moves, the endpoints do not.
    await c.tenants.create('u', { name: 'other' });
    await store.transact('h1', async (tx) => tx.put('leases/h1', { lastSeen: new Date().toISOString() }));
    assert.ok((await store.revision()) > s1.revision);
    assert.equal(await c.endpoints.snapshot(), s1, 'the same read serves');
    const b = await c.endpoints.create('a', { ...req, containerId: 'b' });
    const s2 = await c.endpoints.snapshot();
    assert.notEqual(s2, s1);
    assert.deepEqual(s2.items.map((e) => e.id).sort(), [a.id, b.id].sort(), "a caller's own endpoint is in the next listing");
    await c.endpoints.update('a', a.id, { labels: { tier: 'db' } });
    assert.equal((await c.endpoints.snapshot()).items.find((e) => e.id === a.id)?.labels['tier'], 'db', 'a changed endpoint too');
    await c.endpoints.remove('a', b.id);
    assert.deepEqual((await c.endpoints.snapshot()).items.map((e) => e.id), [a.id], 'and a removed one');
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('after the store lost changes from its feed, the listing is read again until a change is heard', async () => {
  const store = new LossyStore();
  const c = new Control(store);
  await c.bootstrap();
  await c.networks.create('u', 'default', { name: 'net', subnet: '10.0.0.0/24' });
  await c.endpoints.create('a', { ...req, containerId: 'a' });
  const s1 = await c.endpoints.snapshot();
  store.lose();
  assert.equal(await c.endpoints.snapshot(), s1, 'nothing committed since: the same read');
  await c.tenants.create('u', { name: 'other' });
  const s2 = await c.endpoints.snapshot();
  assert.notEqual(s2, s1, 'the feed lost changes before that commit: no read before it is vouched for');
  await c.tenants.create('u', { name: 'third' });
  assert.equal(await c.endpoints.snapshot(), s2, 'heard again since: reads are shared again');
});
