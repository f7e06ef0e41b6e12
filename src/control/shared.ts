import { GLOBAL_DEFAULTS, type Endpoint, type Global } from '../model/index.js';
import type { Txn } from '../store/index.js';
import { keys, withRevision } from './keys.js';

/** Reads used across kinds. */
export async function readGlobal(tx: Txn): Promise<Global> {
  const e = await tx.get(keys.global());
  return e ? withRevision<Global>(e) : { ...GLOBAL_DEFAULTS, revision: 0, createdAt: '', updatedAt: '' };
}

export async function endpointsWhere(tx: Txn, pred: (e: Endpoint) => boolean): Promise<Endpoint[]> {
  return (await tx.list(keys.endpoints())).map((e) => withRevision<Endpoint>(e)).filter(pred);
}
