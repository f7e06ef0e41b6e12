import { isDeepStrictEqual } from 'node:util';
import { WeftError, checkNetwork, checkPool, cidrRange, contains, type Group, type Network, type NetworkLayout } from '../model/index.js';
import type { Store, Txn } from '../store/index.js';
import { keys } from './keys.js';

/**
 * The ipPools of a network's groups, kept beside its address book (`ipam/T/N/pools`, internal, dropped
 * with the book) so that an allocation reads one key instead of every group of its tenant (with 500 groups
 * that read was ~1.2 ms an allocation: docs/benchmarks.md, bench:api session 44). Written in the same
 * transaction as the group it follows: a pool can only appear with a group's create and go with its delete
 * (a group's network and ipPool never change). Each entry keeps its range as numbers, parsed once when the
 * group was made. A network made before the index existed, or an index that does not read as one (or
 * holds a range outside the subnet), is answered from the groups themselves and rewritten: a doubtful
 * index is never trusted, since a stale one would hand out addresses inside a group's pool. A well-formed
 * index a server without it left behind (an older version writing groups) is found by `reconcileGroupPools`
 * at every start.
 */
export type GroupPool = readonly [group: string, pool: string, first: number, last: number];
interface StoredPools { pools: GroupPool[] }

const poolsKey = (tenant: string, network: string) => `${keys.addressBook(tenant, network)}/pools`;

const isAddress = (n: unknown): n is number => Number.isInteger(n) && (n as number) >= 0 && (n as number) <= 0xffffffff;
const isPool = (p: unknown): p is GroupPool => Array.isArray(p) && p.length === 4 && typeof p[0] === 'string'
  && typeof p[1] === 'string' && p[1] !== '' && isAddress(p[2]) && isAddress(p[3]) && p[2] <= p[3];

const byGroup = (a: GroupPool, b: GroupPool) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);

/** The pools as `net`'s groups hold them (a group's pool that is not a range inside the subnet is refused, naming ipPool). */
function poolsFromGroups(groups: Iterable<Partial<Group> | undefined>, net: Pick<Network, 'name'>, layout: NetworkLayout): GroupPool[] {
  const pools: GroupPool[] = [];
  for (const g of groups) {
    if (g?.network !== net.name || typeof g.name !== 'string' || typeof g.ipPool !== 'string' || g.ipPool === '') continue;
    const r = checkPool(g.ipPool, layout, net.name);
    pools.push([g.name, g.ipPool, r.first, r.last]);
  }
  return pools.sort(byGroup);
}

async function groupsOfTenant(tx: Txn, tenant: string): Promise<Array<Partial<Group> | undefined>> {
  return (await tx.list(keys.scopedPrefix('groups', tenant))).map((e) => e.value as Partial<Group> | undefined);
}

/** `trusted`'s verdicts on shared (frozen) index values, per subnet: checked once while the index is unchanged. */
const verdicts = new WeakMap<object, { subnet: string; pools: GroupPool[] | undefined }>();
const subnetKey = (layout: NetworkLayout) => { const r = cidrRange(layout.subnet); return `${r.first}-${r.last}`; };

/** The index as stored, if it reads as one whose every range lies inside the subnet (`layout`). */
function trusted(value: unknown, layout: NetworkLayout): readonly GroupPool[] | undefined {
  if (typeof value !== 'object' || value === null || !Object.isFrozen(value)) return check(value, layout);
  const subnet = subnetKey(layout);
  const known = verdicts.get(value);
  if (known?.subnet === subnet) return known.pools;
  const pools = check(value, layout);
  verdicts.set(value, { subnet, pools });
  return pools;
}

function check(value: unknown, layout: NetworkLayout): GroupPool[] | undefined {
  const pools = (value as Partial<StoredPools> | undefined)?.pools;
  if (!Array.isArray(pools) || !pools.every(isPool)) return undefined;
  // checkPool's test: inside the subnet, its network and broadcast addresses excluded.
  const all = cidrRange(layout.subnet);
  const inside = { first: all.first + 1, last: all.last - 1 };
  return pools.every((p) => contains(inside, { first: p[2], last: p[3] })) ? pools : undefined;
}

/**
 * The pools of `net`'s groups with their ranges, sorted by group. From the index when it can be trusted;
 * else from the groups, and the index written with them (in this transaction).
 */
export async function groupPoolsOf(tx: Txn, net: Pick<Network, 'tenant' | 'name'>, layout: NetworkLayout): Promise<readonly GroupPool[]> {
  return (await groupPoolsWithRevision(tx, net, layout)).pools;
}

/**
 * The same, with the index's revision (0: none stored yet, or written in this transaction): a pool that
 * comes or goes moves it, so what was worked out under one revision holds while the revision does.
 */
export async function groupPoolsWithRevision(tx: Txn, net: Pick<Network, 'tenant' | 'name'>, layout: NetworkLayout): Promise<{ pools: readonly GroupPool[]; revision: number }> {
  // Shared: read by every allocation, and the address space derived from it is kept with the object.
  const e = await tx.getShared(poolsKey(net.tenant, net.name));
  const stored = trusted(e?.value, layout);
  if (stored) return { pools: stored, revision: e?.modRevision ?? 0 };
  const pools = poolsFromGroups(await groupsOfTenant(tx, net.tenant), net, layout);
  writeGroupPools(tx, net.tenant, net.name, pools);
  return { pools, revision: 0 };
}

export function writeGroupPools(tx: Txn, tenant: string, network: string, pools: readonly GroupPool[]): void {
  tx.put(poolsKey(tenant, network), { pools: [...pools].sort(byGroup) } satisfies StoredPools);
}

/** Records (`add`) or forgets a group's pool in its network's index; nothing for a group without one. */
export async function trackGroupPool(tx: Txn, g: Pick<Group, 'tenant' | 'name' | 'network' | 'ipPool'>, layout: NetworkLayout, add: boolean): Promise<void> {
  if (g.ipPool === undefined || g.ipPool === '') return;
  const net = { tenant: g.tenant, name: g.network };
  const others = (await groupPoolsOf(tx, net, layout)).filter(([name]) => name !== g.name);
  if (!add) return writeGroupPools(tx, g.tenant, g.network, others);
  const r = checkPool(g.ipPool, layout, g.network);
  writeGroupPools(tx, g.tenant, g.network, [...others, [g.name, g.ipPool, r.first, r.last]]);
}

/**
 * At every start: each IPv4 network's index compared with its groups, and rewritten where they differ
 * (a server of an older version, which keeps no index, may have created or deleted groups since; an index
 * damaged on disk). Where a group's own pool is unreadable the index is removed, so that an allocation
 * answers from the groups and names the bad pool. Returns how many indexes were rewritten or removed.
 */
export async function reconcileGroupPools(store: Store): Promise<number> {
  const groups = (await store.list('groups/')).entries.map((e) => e.value as Partial<Group> | undefined);
  let fixed = 0;
  for (const e of (await store.list('networks/')).entries) {
    const net = e.value as Partial<Network> | undefined;
    if (typeof net?.tenant !== 'string' || typeof net.name !== 'string' || typeof net.subnet !== 'string') continue;
    const { tenant, name, subnet, gateway, ipRange } = net;
    /** What the index should hold, from these groups; undefined where the network or a group's pool does not read. */
    const want = (of: Iterable<Partial<Group> | undefined>): { pools: GroupPool[] } | undefined => {
      try {
        return { pools: poolsFromGroups(of, { name }, checkNetwork({ name, subnet, gateway, ipRange })) };
      } catch (err) {
        if (err instanceof WeftError) return undefined;
        throw err;
      }
    };
    const index = await store.get(poolsKey(tenant, name));
    if (isDeepStrictEqual(index?.value, want(groups.filter((g) => g?.tenant === tenant)))) continue;
    // Decided again inside a transaction, from what it reads: the listing above may be behind.
    const { value: changed } = await store.transact('system', async (tx) => {
      const wanted = want(await groupsOfTenant(tx, tenant));
      const cur = await tx.get(poolsKey(tenant, name));
      if (!(await tx.get(keys.scoped('networks', tenant, name))) || isDeepStrictEqual(cur?.value, wanted)) return false;
      if (wanted) writeGroupPools(tx, tenant, name, wanted.pools);
      else tx.delete(poolsKey(tenant, name));
      return true;
    });
    if (changed) fixed++;
  }
  return fixed;
}
