import type { Group } from '../model/index.js';
import type { Txn } from '../store/index.js';
import { keys } from './keys.js';

/**
 * The ipPools of a network's groups, kept beside its address book (`ipam/T/N/pools`, internal, dropped
 * with the book) so that an allocation reads one key instead of every group of its tenant (with 500 groups
 * that read was ~1.2 ms an allocation: docs/benchmarks.md, bench:api session 44). Written in the same
 * transaction as the group it follows: a pool can only appear with a group's create and go with its delete
 * (a group's network and ipPool never change). A network made before the index existed, or an index that
 * does not read as one, is answered from the groups themselves, and rewritten by the next write that reads
 * it: a doubtful index is never trusted, since a stale one would hand out addresses inside a group's pool.
 */
export type GroupPool = readonly [group: string, pool: string];
interface StoredPools { pools: GroupPool[] }

const poolsKey = (tenant: string, network: string) => `${keys.addressBook(tenant, network)}/pools`;

const isPool = (p: unknown): p is GroupPool => Array.isArray(p) && p.length === 2 && typeof p[0] === 'string' && typeof p[1] === 'string' && p[1] !== '';

/** The pools of `network`'s groups, by group name; `stored`: whether they came from the index. */
export async function readGroupPools(tx: Txn, tenant: string, network: string): Promise<{ pools: GroupPool[]; stored: boolean }> {
  const v = (await tx.get(poolsKey(tenant, network)))?.value as Partial<StoredPools> | undefined;
  if (v && Array.isArray(v.pools) && v.pools.every(isPool)) return { pools: v.pools, stored: true };
  const pools: GroupPool[] = [];
  for (const e of await tx.list(keys.scopedPrefix('groups', tenant))) {
    const g = e.value as Partial<Group> | undefined;
    if (g?.network === network && typeof g.name === 'string' && typeof g.ipPool === 'string' && g.ipPool !== '') pools.push([g.name, g.ipPool]);
  }
  return { pools, stored: false };
}

export function writeGroupPools(tx: Txn, tenant: string, network: string, pools: readonly GroupPool[]): void {
  const sorted = [...pools].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  tx.put(poolsKey(tenant, network), { pools: sorted } satisfies StoredPools);
}

/** Records (`add`) or forgets a group's pool in its network's index; nothing for a group without one. */
export async function trackGroupPool(tx: Txn, g: Pick<Group, 'tenant' | 'name' | 'network' | 'ipPool'>, add: boolean): Promise<void> {
  if (g.ipPool === undefined || g.ipPool === '') return;
  const others = (await readGroupPools(tx, g.tenant, g.network)).pools.filter(([name]) => name !== g.name);
  writeGroupPools(tx, g.tenant, g.network, add ? [...others, [g.name, g.ipPool]] : others);
}
