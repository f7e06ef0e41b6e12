import { GLOBAL_DEFAULTS, type Endpoint, type Global } from '../model/index.js';
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
