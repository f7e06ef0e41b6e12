import { GLOBAL_DEFAULTS, WeftError, type Endpoint, type Global } from '../model/index.js';
import type { Txn } from '../store/index.js';
import { keys, withRevision } from './keys.js';

/**
 * Reads used across kinds. The defaults lie under what is stored, so a store written before a setting
 * existed (encryption, tunnelRange, keyRotationDays) reads as if it had the default.
 */
export async function readGlobal(tx: Txn): Promise<Global> {
  const e = await tx.get(keys.global());
  return { ...GLOBAL_DEFAULTS, revision: 0, createdAt: '', updatedAt: '', ...(e ? withRevision<Global>(e) : {}) };
}

export async function endpointsWhere(tx: Txn, pred: (e: Endpoint) => boolean): Promise<Endpoint[]> {
  return (await tx.list(keys.endpoints())).map((e) => withRevision<Endpoint>(e)).filter(pred);
}

/**
 * A read made of several store reads may tear on etcd (a write landing between them; transactions that
 * write are guarded at commit, reads are not; such a read throws WEFT_STORE_CONFLICT): it is made again,
 * a few times, before the caller is told to retry.
 */
export async function retryTorn<T>(read: () => Promise<T>): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      return await read();
    } catch (e) {
      if (!(e instanceof WeftError && e.code === 'WEFT_STORE_CONFLICT') || i >= 4) throw e;
    }
  }
}
