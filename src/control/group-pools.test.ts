import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStore } from '../store/index.js';
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
    } catch {
      return ips;
    }
  }
}

const OUTSIDE_POOLS = ['10.0.0.4', '10.0.0.5', '10.0.0.8', '10.0.0.9', '10.0.0.10', '10.0.0.11', '10.0.0.12', '10.0.0.13', '10.0.0.14'];

test('a network\'s group pools are kept beside its book: a new network has none, groups with a pool add theirs, sorted by group', async () => {
  const c = await withPools();
  assert.deepEqual(await stored(c), { pools: [['a', '10.0.0.2-10.0.0.3'], ['b', '10.0.0.6-10.0.0.7']] });
  await c.networks.create('u', 'default', { name: 'empty', subnet: '10.0.1.0/28' });
  assert.deepEqual((await c.store.get('ipam/default/empty/pools'))?.value, { pools: [] });
  assert.deepEqual(await plainAddresses(c), OUTSIDE_POOLS, 'plain members never land in a pool');
  await rejectsWith(c.groups.create('u', 'default', { name: 'c', network: 'net', ipPool: '10.0.0.7-10.0.0.8' }), 'WEFT_OVERLAP', /overlaps the pool of group default\/b \(10\.0\.0\.6-10\.0\.0\.7\)/, 'ipPool');
});

test('a group\'s delete gives its pool back to the network; a group without a pool, or an update, leaves the index alone', async () => {
  const c = await withPools();
  const before = await stored(c);
  await c.groups.patch('u', 'default', 'b', { labels: { tier: 'db' } });
  await c.groups.remove('u', 'default', 'plain');
  assert.deepEqual(await stored(c), before);
  await rejectsWith(c.endpoints.create('a', { ...req, containerId: 'x', ip: '10.0.0.2' }), 'WEFT_INVALID_VALUE', /ip: 10\.0\.0\.2/, 'ip');
  await c.groups.remove('u', 'default', 'a');
  assert.deepEqual(await stored(c), { pools: [['b', '10.0.0.6-10.0.0.7']] });
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
  assert.deepEqual(await stored(c), { pools: [['a', '10.0.0.2-10.0.0.3'], ['b', '10.0.0.6-10.0.0.7']] });
  await c.apply('u', docs, { mayManageTenants: true });
  assert.deepEqual(await stored(c), { pools: [['a', '10.0.0.2-10.0.0.3'], ['b', '10.0.0.6-10.0.0.7']] }, 'unchanged by a second apply');
  await c.apply('u', [docs[1] as ApplyDoc], { mayManageTenants: true, remove: true });
  assert.deepEqual(await stored(c), { pools: [['b', '10.0.0.6-10.0.0.7']] });
});

test('a network from before the index is answered from its groups, and the first allocation writes the index', async () => {
  const c = await withPools();
  await setIndex(c, undefined);
  assert.deepEqual(await plainAddresses(c), OUTSIDE_POOLS);
  assert.deepEqual(await stored(c), { pools: [['a', '10.0.0.2-10.0.0.3'], ['b', '10.0.0.6-10.0.0.7']] });
  await setIndex(c, undefined);
  await rejectsWith(c.groups.create('u', 'default', { name: 'c', network: 'net', ipPool: '10.0.0.3-10.0.0.4' }), 'WEFT_OVERLAP', /group default\/a/, 'ipPool');
  await c.groups.create('u', 'default', { name: 'c', network: 'net', ipPool: '10.0.0.14-10.0.0.14' });
  assert.deepEqual(await stored(c), { pools: [['a', '10.0.0.2-10.0.0.3'], ['b', '10.0.0.6-10.0.0.7'], ['c', '10.0.0.14-10.0.0.14']] }, 'a group\'s create rebuilds it whole');
});

test('an index that does not read as one is never trusted: the pools come from the groups', async () => {
  for (const bad of ['garbage', { pools: 'x' }, { pools: [['a', 5]] }, { pools: [['a']] }, { pools: [['a', '']] }, { pools: [{ group: 'a', pool: '10.0.0.2' }] }, null]) {
    const c = await withPools();
    await setIndex(c, bad);
    assert.deepEqual(await plainAddresses(c), OUTSIDE_POOLS, JSON.stringify(bad));
    assert.deepEqual(await stored(c), { pools: [['a', '10.0.0.2-10.0.0.3'], ['b', '10.0.0.6-10.0.0.7']] }, JSON.stringify(bad));
  }
});

test('the index goes with its network', async () => {
  const c = await withPools();
  for (const g of ['a', 'b', 'plain']) await c.groups.remove('u', 'default', g);
  await c.networks.remove('u', 'default', 'net');
  assert.equal(await stored(c), undefined);
});
