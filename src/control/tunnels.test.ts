import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStore, type Txn } from '../store/index.js';
import { WeftError } from '../model/index.js';
import { rejectsWith } from './testing.js';
import { Control } from './control.js';

/** A store with etcd's limit on operations per transaction (--max-txn-ops, default 128), refused as EtcdStore refuses it. */
class LimitedStore extends MemoryStore {
  constructor(private readonly maxOps: number) {
    super();
  }

  override transact<T>(actor: string, fn: (tx: Txn) => Promise<T>): Promise<{ value: T; revision: number }> {
    return super.transact(actor, async (tx) => {
      let ops = 0;
      const value = await fn({
        get: (k) => tx.get(k), getShared: (k) => tx.getShared(k), list: (p) => tx.list(p), ceiling: (p, k) => tx.ceiling(p, k),
        put: (k, v) => { ops++; tx.put(k, v); }, delete: (k) => { ops++; tx.delete(k); }, deletePrefix: (p) => { ops++; tx.deletePrefix(p); },
      });
      if (ops > this.maxOps) throw new WeftError('WEFT_TOO_LARGE', `this change is one etcd transaction of ${ops} operations`);
      return value;
    });
  }
}

test('a new tunnel range the store cannot write in one transaction is refused naming tunnelRange, and no host moves', async () => {
  const c = new Control(new LimitedStore(128));
  await c.bootstrap();
  for (let i = 0; i < 130; i++) await c.hosts.register('agent', { name: `h${i}`, vtepIp: `192.0.2.${i + 1}` });
  await rejectsWith(c.global.update('admin', { tunnelRange: '10.77.0.0/16' }), 'WEFT_TOO_LARGE',
    /^tunnelRange: moving every host into 10\.77\.0\.0\/16 re-addresses them all in one transaction, and the store refused it: this change is one etcd transaction of 131 operations/, 'tunnelRange');
  assert.equal((await c.global.get()).tunnelRange, '100.64.0.0/16');
  assert.ok((await c.hosts.list()).items.every((h) => h.tunnelIp?.startsWith('100.64.')), 'every host keeps its address');
  // Other refusals of the same update pass as they are.
  await rejectsWith(c.global.update('admin', { tunnelRange: '10.99.0.0/30' }), 'WEFT_INVALID_FIELD', /holds 2 tunnel addresses but 130 hosts/, 'tunnelRange');
});
