import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStore } from '../store/index.js';
import { WeftError, parseRange } from '../model/index.js';
import { rejectsWith } from './testing.js';
import { Control } from './control.js';
import type { ApplyDoc } from './apply.js';

const INDEX = 'ipam/default/net/pools';
const req = { tenant: 'default', network: 'net', host: 'h1', ifname: 'eth0' };

/** A /28 (.1 the gateway) with two pooled groups and one without a pool. */
async function withPools(): Promise<Control> {
  const c = new Control(new MemoryStore());
  await c.bootstrap();
  await c.networks.create('u', 'default', { name: 'net', subnet: '10.0.0.0/28' });
  await c.groups.create('u', 'default', { name: 'b', network: 'net', ipPool: '10.0.0.6-10.0.0.7' });
  await c.groups.create('u', 'default', { name: 'a', network: 'net', ipPool: '10.0.0.2-10.0.0.3' });
  await c.groups.create('u', 'default', { name: 'plain', network: 'net' });
  return c;
}

const stored = async (c: Control) => (await c.store.get(INDEX))?.value;
const revisionOf = async (c: Control) => (await c.store.get(INDEX))?.modRevision;

/** An index entry: the group, its pool as written, and the pool's first and last address as numbers. */
const entry = (group: string, pool: string) => {
  const r = parseRange(pool, 'ipPool');
  return [group, pool, r.first, r.last];
};
const A = entry('a', '10.0.0.2-10.0.0.3');
const B = entry('b', '10.0.0.6-10.0.0.7');

/** Sets the index's stored value as it is (undefined: removes it, as in a data dir from before it). */
async function setIndex(c: Control, value: unknown): Promise<void> {
  await c.store.transact('test', async (tx) => (value === undefined ? tx.delete(INDEX) : tx.put(INDEX, value)));
}

/** Where plain members of the network land, lowest first, until it is full. */
async function plainAddresses(c: Control): Promise<string[]> {
  const ips: string[] = [];
  for (let i = 0; ; i++) {
    try {
      ips.push((await c.endpoints.create('a', { ...req, containerId: `c${i}` })).ip ?? '');
    } catch (e) {
      if (e instanceof WeftError && e.code === 'WEFT_POOL_EXHAUSTED') return ips;
      throw e;
    }
  }
}

const OUTSIDE_POOLS = ['10.0.0.4', '10.0.0.5', '10.0.0.8', '10.0.0.9', '10.0.0.10', '10.0.0.11', '10.0.0.12', '10.0.0.13', '10.0.0.14'];

test('a network\'s group pools are kept beside its book: a new network has none, groups with a pool add theirs, sorted by group', async () => {
  const c = await withPools();
  assert.deepEqual(await stored(c), { pools: [A, B] });
  await c.networks.create('u', 'default', { name: 'empty', subnet: '10.0.1.0/28' });
  assert.deepEqual((await c.store.get('ipam/default/empty/pools'))?.value, { pools: [] });
  assert.deepEqual(await plainAddresses(c), OUTSIDE_POOLS, 'plain members never land in a pool');
  await rejectsWith(c.groups.create('u', 'default', { name: 'c', network: 'net', ipPool: '10.0.0.7-10.0.0.8' }), 'WEFT_OVERLAP', /overlaps the pool of group default\/b \(10\.0\.0\.6-10\.0\.0\.7\)/, 'ipPool');
});

test('a group\'s delete gives its pool back to the network; a group without a pool, or an update, leaves the index alone', async () => {
  const c = await withPools();
  const before = await revisionOf(c);
  await c.groups.patch('u', 'default', 'b', { labels: { tier: 'db' } });
  await c.groups.remove('u', 'default', 'plain');
  assert.equal(await revisionOf(c), before, 'not written');
  await rejectsWith(c.endpoints.create('a', { ...req, containerId: 'x', ip: '10.0.0.2' }), 'WEFT_INVALID_VALUE', /ip: 10\.0\.0\.2/, 'ip');
  await c.groups.remove('u', 'default', 'a');
  assert.deepEqual(await stored(c), { pools: [B] });
  assert.equal((await c.endpoints.create('a', { ...req, containerId: 'x', ip: '10.0.0.2' })).ip, '10.0.0.2', 'the pool is the network\'s again');
  assert.equal((await c.endpoints.create('a', { ...req, containerId: 'y' })).ip, '10.0.0.3');
});

test('weft apply and delete -f keep the index as the single-object API does', async () => {
  const c = new Control(new MemoryStore());
  await c.bootstrap();
  const docs = [
    { kind: 'Network', tenant: 'default', input: { name: 'net', subnet: '10.0.0.0/28' } },
    { kind: 'Group', tenant: 'default', input: { name: 'a', network: 'net', ipPool: '10.0.0.2-10.0.0.3' } },
    { kind: 'Group', tenant: 'default', input: { name: 'b', network: 'net', ipPool: '10.0.0.6-10.0.0.7' } },
  ].map((d, index) => ({ ...d, index }) as ApplyDoc);
  await c.apply('u', docs, { mayManageTenants: true });
  assert.deepEqual(await stored(c), { pools: [A, B] });
  const first = await revisionOf(c);
  await c.apply('u', docs, { mayManageTenants: true });
  assert.equal(await revisionOf(c), first, 'not written by a second apply');
  await c.apply('u', [docs[1] as ApplyDoc], { mayManageTenants: true, remove: true });
  assert.deepEqual(await stored(c), { pools: [B] });
});

test('a network from before the index is answered from its groups, and the first allocation writes the index', async () => {
  const c = await withPools();
  await setIndex(c, undefined);
  assert.deepEqual(await plainAddresses(c), OUTSIDE_POOLS);
  assert.deepEqual(await stored(c), { pools: [A, B] });
  await setIndex(c, undefined);
  await rejectsWith(c.groups.create('u', 'default', { name: 'c', network: 'net', ipPool: '10.0.0.3-10.0.0.4' }), 'WEFT_OVERLAP', /group default\/a/, 'ipPool');
  await c.groups.create('u', 'default', { name: 'c', network: 'net', ipPool: '10.0.0.14-10.0.0.14' });
  assert.deepEqual(await stored(c), { pools: [A, B, entry('c', '10.0.0.14-10.0.0.14')] }, 'a group\'s create rebuilds it whole');
});

test('an index that does not read as one is never trusted: the pools come from the groups', async () => {
  const n = (ip: string) => parseRange(`${ip}-${ip}`, 'x').first;
  for (const bad of [
    'garbage', null, { pools: 'x' }, { pools: [['a', 5]] }, { pools: [['a']] }, { pools: [{ group: 'a', pool: '10.0.0.2' }] },
    { pools: [['a', '10.0.0.2-10.0.0.3'], ['b', '10.0.0.6-10.0.0.7']] },
    { pools: [['a', '', n('10.0.0.2'), n('10.0.0.3')]] },
    { pools: [['a', '10.0.0.2-10.0.0.3', n('10.0.0.3'), n('10.0.0.2')]] },
    { pools: [['a', '10.0.0.2-10.0.0.3', n('10.0.0.2') + 0.5, n('10.0.0.3')]] },
    { pools: [['a', '10.0.0.2-10.0.0.3', -1, n('10.0.0.3')]] },
    { pools: [['far', '10.0.9.2-10.0.9.3', n('10.0.9.2'), n('10.0.9.3')]] },
    { pools: [['edge', '10.0.0.0-10.0.0.3', n('10.0.0.0'), n('10.0.0.3')]] },
  ]) {
    const c = await withPools();
    await setIndex(c, bad);
    assert.deepEqual(await plainAddresses(c), OUTSIDE_POOLS, JSON.stringify(bad));
    assert.deepEqual(await stored(c), { pools: [A, B] }, JSON.stringify(bad));
  }
});

test('the index goes with its network', async () => {
  const c = await withPools();
  for (const g of ['a', 'b', 'plain']) await c.groups.remove('u', 'default', g);
  await c.networks.remove('u', 'default', 'net');
  assert.equal(await stored(c), undefined);
});

test('at every start, an index that disagrees with the groups (as an older server, keeping none, leaves it) is written again', async () => {
  const c = await withPools();
  await setIndex(c, { pools: [B] });
  const again = new Control(c.store);
  await again.bootstrap();
  assert.deepEqual(await stored(again), { pools: [A, B] });
  assert.deepEqual(await plainAddresses(again), OUTSIDE_POOLS);
  const rev = await c.store.revision();
  await new Control(c.store).bootstrap();
  assert.equal(await c.store.revision(), rev, 'an index that agrees is not written');
});

test('at start, a network whose group holds an unreadable pool loses its index: its allocations name the bad pool', async () => {
  const c = await withPools();
  await c.store.transact('test', async (tx) => {
    const g = await tx.get('groups/default/b');
    tx.put('groups/default/b', { ...(g?.value as object), ipPool: '10.0.0.6-nonsense' });
  });
  await new Control(c.store).bootstrap();
  assert.equal(await stored(c), undefined);
  await rejectsWith(c.endpoints.create('a', { ...req, containerId: 'x' }), 'WEFT_INVALID_FIELD', /ipPool/, 'ipPool');
});
