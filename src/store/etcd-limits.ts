import { WeftError } from '../model/index.js';

/** etcd's refusal of a transaction with more operations than its --max-txn-ops (gRPC INVALID_ARGUMENT). */
export const isTooManyOps = (e: unknown): boolean => e instanceof Error && /too many operations in txn request/i.test(e.message);

/**
 * What a transaction etcd refused for its size becomes: not the store being unavailable (a retry is
 * refused the same way forever) but a change too large for one transaction, saying how large and what an
 * operator can do. `writes` counts every operation sent: the keys written and Weft's guard and log keys.
 */
export function tooManyOps(e: unknown, writes: number): WeftError {
  return new WeftError('WEFT_TXN_TOO_LARGE', `this change is one etcd transaction of ${writes} operations, and etcd refuses more than its --max-txn-ops `
    + `(default 128) in one transaction (${(e as Error).message}); start every etcd member with --max-txn-ops ${writes} or more, or make the change in smaller steps; nothing was written`, { cause: e });
}
