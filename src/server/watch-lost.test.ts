import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Control } from '../control/index.js';
import { LossyStore } from '../store/testing.js';
import { buildApp } from './app.js';

test('a watch stream ends when the store lost changes it cannot deliver, so its client re-lists instead of missing them', { timeout: 20_000 }, async () => {
  const store = new LossyStore();
  const control = new Control(store);
  const { adminToken } = await control.bootstrap();
  const app = await buildApp({ control, logger: false });
  try {
    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    const res = await fetch(`${url}/api/v1/watch`, { headers: { authorization: `Bearer ${adminToken ?? ''}` } });
    assert.equal(res.status, 200);
    const reader = res.body!.getReader();
    await control.tenants.create('u', { name: 'blue' });
    const first = await reader.read();
    assert.match(new TextDecoder().decode(first.value), /tenants\/blue|"blue"/, 'live changes flow');
    store.lose();
    const t0 = Date.now();
    const ended = await reader.read().then((r) => r.done, () => true);
    assert.ok(ended, 'the stream ended');
    assert.ok(Date.now() - t0 < 5000, 'at once, not at the next bookmark');
  } finally {
    await app.close();
  }
});

test('flow records of tenants deleted while the store lost changes are forgotten; one made again under a name loses the old one\'s', { timeout: 20_000 }, async () => {
  const store = new LossyStore();
  const control = new Control(store);
  await control.bootstrap();
  const app = await buildApp({ control, logger: false });
  try {
    await control.tenants.create('u', { name: 'blue' });
    await control.tenants.create('u', { name: 'red' });
    const blue = await control.tenants.createdAt('blue');
    const red = await control.tenants.createdAt('red');
    assert.ok(blue !== undefined && red !== undefined);
    // What the book would hold had this server missed a deletion ('gone') and a re-creation ('red').
    app.flows.admit('blue', blue);
    app.flows.countLost('blue', 1);
    app.flows.admit('gone', 1);
    app.flows.countLost('gone', 2);
    app.flows.admit('red', red - 1);
    app.flows.countLost('red', 3);
    store.lose();
    const t0 = Date.now();
    while (app.flows.tenants().has('gone') && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual([...app.flows.lost.entries()].sort(), [['blue', 1]]);
    assert.deepEqual([...app.flows.tenants()].sort(), [['blue', blue], ['red', red]], 'red is held as the tenant now under its name, with nothing of the old one');
  } finally {
    await app.close();
  }
});
