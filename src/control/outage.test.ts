import { test } from 'node:test';
import { ERROR_CATALOGUE, WeftError } from '../model/index.js';
import { MemoryStore, type Txn } from '../store/index.js';
import assert from 'node:assert/strict';
import { rejectsWith } from './testing.js';
import { Control } from './control.js';

/** A store whose reads of `down` keys fail inside transactions as an unreachable etcd's do. */
class Flaky extends MemoryStore {
  down: RegExp | undefined;
  override transact<T>(actor: string, fn: (tx: Txn) => Promise<T>): Promise<{ value: T; revision: number }> {
    return super.transact(actor, (tx) => fn({
      get: (k) => (this.down?.test(k) ? Promise.reject(new WeftError('WEFT_STORE_UNAVAILABLE', 'etcd: unreachable; retry')) : tx.get(k)),
      getShared: (k) => (this.down?.test(k) ? Promise.reject(new WeftError('WEFT_STORE_UNAVAILABLE', 'etcd: unreachable; retry')) : tx.getShared(k)),
      list: (p) => tx.list(p),
      put: (k, v) => tx.put(k, v),
      delete: (k) => tx.delete(k),
      ceiling: (p, k) => tx.ceiling(p, k),
      deletePrefix: (p) => tx.deletePrefix(p),
    }));
  }
}

test('an endpoint request during a store outage fails as retryable (503, CNI 11), not as a missing tenant (422, CNI 7)', async () => {
  const store = new Flaky();
  const c = new Control(store);
  await c.bootstrap();
  await c.networks.create('u', 'default', { name: 'net', subnet: '10.0.0.0/24' });
  const req = { tenant: 'default', network: 'net', host: 'h1', ifname: 'eth0', containerId: 'c1' };
  store.down = /^tenants\//;
  await rejectsWith(c.endpoints.create('a', req), 'WEFT_STORE_UNAVAILABLE', /unreachable/);
  assert.deepEqual([ERROR_CATALOGUE.WEFT_STORE_UNAVAILABLE.status, ERROR_CATALOGUE.WEFT_STORE_UNAVAILABLE.cni], [503, 11]);
  store.down = undefined;
  await rejectsWith(c.endpoints.create('a', { ...req, tenant: 'ghost' }), 'WEFT_INVALID_REFERENCE', /tenant ghost/, 'tenant');
  assert.equal((await c.endpoints.create('a', req)).ip, '10.0.0.2', 'nothing was taken during the outage');
});
