import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStore, type Txn } from '../store/index.js';
import type { HostInput, WireguardStatus } from '../model/index.js';
import { rejectsWith } from './testing.js';
import { Control } from './control.js';
import { hostFor } from './access.js';

/** A memory store that counts how often a transaction lists the hosts (what a heartbeat should not do). */
class CountingStore extends MemoryStore {
  hostLists = 0;
  override transact<T>(actor: string, fn: (tx: Txn) => Promise<T>): Promise<{ value: T; revision: number }> {
    return super.transact(actor, (tx) => fn({
      get: (k) => tx.get(k),
      getShared: (k) => tx.getShared(k),
      list: (p) => {
        if (p === 'hosts/') this.hostLists++;
        return tx.list(p);
      },
      put: (k, v) => tx.put(k, v),
      delete: (k) => tx.delete(k),
      ceiling: (p, k) => tx.ceiling(p, k),
      deletePrefix: (p) => tx.deletePrefix(p),
    }));
  }
}

async function fresh(store = new MemoryStore()): Promise<Control> {
  const c = new Control(store);
  await c.bootstrap();
  return c;
}

const host = (name: string, n: number, extra: Partial<HostInput> = {}): HostInput => ({ name, vtepIp: `192.0.2.${n}`, ...extra });
const tunnels = async (c: Control) => Object.fromEntries((await c.hosts.list()).items.map((h) => [h.name, h.tunnelIp]));

test('a store written before encryption reads with its defaults, and keeps them through an update', async () => {
  const store = new MemoryStore();
  await store.transact('old', async (tx) => tx.put('global', { vxlanRange: '20000-20099', mtu: 1500, arpMode: 'flood', createdAt: '2025-01-01T00:00:00.000Z', updatedAt: '2025-01-01T00:00:00.000Z' }));
  const c = await fresh(store);
  const g = await c.global.get();
  assert.deepEqual([g.vxlanRange, g.arpMode, g.encryption, g.tunnelRange, g.keyRotationDays], ['20000-20099', 'flood', 'none', '100.64.0.0/16', 30]);
  await c.global.update('admin', { mtu: 9000 });
  const stored = (await store.get('global'))?.value as Record<string, unknown>;
  assert.deepEqual([stored['mtu'], stored['arpMode'], stored['encryption'], stored['tunnelRange'], stored['keyRotationDays']], [9000, 'flood', 'none', '100.64.0.0/16', 30]);
  assert.equal((await c.hosts.register('agent', host('node1', 1))).tunnelIp, '100.64.0.1', 'a host gets an address of the default range');
});

test('tunnel addresses: distinct, lowest free first, stable across heartbeats that read no other host', async () => {
  const store = new CountingStore();
  const c = await fresh(store);
  for (const [i, name] of ['n1', 'n2', 'n3'].entries()) await c.hosts.register('agent', host(name, i + 1));
  assert.deepEqual(await tunnels(c), { n1: '100.64.0.1', n2: '100.64.0.2', n3: '100.64.0.3' });
  store.hostLists = 0;
  for (let beat = 0; beat < 3; beat++) for (const [i, name] of ['n3', 'n1', 'n2'].entries()) await c.hosts.register('agent', host(name, [3, 1, 2][i]!));
  assert.equal(store.hostLists, 0, 'a heartbeat of a host that has its address lists no hosts');
  assert.deepEqual(await tunnels(c), { n1: '100.64.0.1', n2: '100.64.0.2', n3: '100.64.0.3' });
  await c.forgetHost('admin', 'n2');
  assert.equal((await c.hosts.register('agent', host('n4', 4))).tunnelIp, '100.64.0.2', 'a freed address is the lowest free one again');
  assert.equal((await c.hosts.register('agent', host('n5', 5))).tunnelIp, '100.64.0.4');
});

test('a new tunnel range moves every host in one transaction, by name order; the same range changes nothing', async () => {
  const c = await fresh();
  for (const [i, name] of ['cc', 'aa', 'bb'].entries()) await c.hosts.register('agent', host(name, i + 1));
  assert.deepEqual(await tunnels(c), { aa: '100.64.0.2', bb: '100.64.0.3', cc: '100.64.0.1' });
  const before = await c.store.revision();
  const g = await c.global.update('admin', { tunnelRange: '10.77.0.0/24' });
  assert.equal(g.revision, before + 1, 'settings and hosts change in one revision');
  assert.deepEqual(await tunnels(c), { aa: '10.77.0.1', bb: '10.77.0.2', cc: '10.77.0.3' });
  assert.ok((await c.hosts.list()).items.every((h) => h.revision === g.revision));
  await c.global.update('admin', { tunnelRange: '10.77.0.0/24', keyRotationDays: 7 });
  assert.ok((await c.hosts.list()).items.every((h) => h.revision === g.revision), 'the same range leaves the hosts alone');
  assert.equal((await c.hosts.register('agent', host('dd', 4))).tunnelIp, '10.77.0.4');
});

test('a range too small for the hosts, or holding a host\'s underlay, is refused and nothing changes; a full range refuses a new host', async () => {
  const c = await fresh();
  for (const [i, name] of ['h1', 'h2', 'h3'].entries()) await c.hosts.register('agent', host(name, i + 1));
  const rev = await c.store.revision();
  await rejectsWith(c.global.update('admin', { tunnelRange: '10.99.0.0/30' }), 'WEFT_INVALID_FIELD', /tunnelRange: 10\.99\.0\.0\/30 holds 2 tunnel addresses but 3 hosts are registered/, 'tunnelRange');
  await rejectsWith(c.global.update('admin', { tunnelRange: '192.0.2.0/24', encryption: 'wireguard' }), 'WEFT_OVERLAP', /contains the underlay address of host h1 \(192\.0\.2\.1\), host h2/, 'tunnelRange');
  assert.equal(await c.store.revision(), rev, 'nothing written');
  assert.equal((await c.global.get()).encryption, 'none');
  assert.deepEqual(await tunnels(c), { h1: '100.64.0.1', h2: '100.64.0.2', h3: '100.64.0.3' });

  await c.forgetHost('admin', 'h3');
  await c.global.update('admin', { tunnelRange: '10.99.0.0/30' });
  assert.deepEqual(await tunnels(c), { h1: '10.99.0.1', h2: '10.99.0.2' }, 'never the network (.0) or broadcast (.3) address');
  const full = await c.store.revision();
  await rejectsWith(c.hosts.register('agent', host('h3', 3)), 'WEFT_POOL_EXHAUSTED', /tunnelRange: 10\.99\.0\.0\/30 has no tunnel address left for host h3 \(all 2 are taken\)/, 'tunnelRange');
  assert.equal(await c.store.revision(), full);
  await rejectsWith(c.hosts.get('h3'), 'WEFT_NOT_FOUND', /host h3/);
  await c.hosts.register('agent', host('h1', 1));
  assert.equal((await c.hosts.get('h1')).tunnelIp, '10.99.0.1', 'registered hosts still heartbeat');
});

test('bad global values name their field and change nothing', async () => {
  const c = await fresh();
  const rev = await c.store.revision();
  const bad: Array<[string, RegExp]> = [
    ['garbage', /'garbage' is not a CIDR/], ['10.0.0.0/33', /invalid prefix length/], ['::1/64', /invalid IPv4 address/],
    ['10.0.0.0/31', /between \/8 and \/30/], ['10.0.0.0/7', /between \/8 and \/30/], ['10.1.2.3/16', /host bits set \(did you mean 10\.1\.0\.0\/16\?\)/],
    ['127.0.0.0/8', /loopback/], ['169.254.0.0/20', /link-local/], ['224.0.0.0/24', /multicast/],
  ];
  for (const [range, msg] of bad) await rejectsWith(c.global.update('admin', { tunnelRange: range }), 'WEFT_INVALID_FIELD', msg, 'tunnelRange');
  assert.equal(await c.store.revision(), rev);
  assert.equal((await c.global.update('admin', { tunnelRange: '10.0.0.0/08' })).tunnelRange, '10.0.0.0/8', 'stored normalised');
});

test('the server keeps what it owns (tunnel address, rotations); the status is stored as the agent sends it', async () => {
  const c = await fresh();
  const status: WireguardStatus = { mode: 'wireguard-go', peers: 1, handshaken: 1, oldestHandshakeAt: '2026-11-23T10:00:00Z', rxBytes: 10, txBytes: 20 };
  await c.hosts.register('agent', host('n1', 1, { wireguard: status }));
  assert.deepEqual((await c.hosts.get('n1')).wireguard, status);
  const r1 = await c.hosts.rotateKey('admin', 'n1');
  assert.deepEqual([r1.rotateKey, r1.tunnelIp, r1.state], [1, '100.64.0.1', 'up']);
  assert.equal((await c.hosts.rotateKey('admin', 'n1')).rotateKey, 2);
  const beat = await c.hosts.register('agent', host('n1', 1));
  assert.deepEqual([beat.rotateKey, beat.tunnelIp, 'wireguard' in beat], [2, '100.64.0.1', false], 'kept, kept, and an absent status removed');
  await rejectsWith(c.hosts.rotateKey('admin', 'ghost'), 'WEFT_NOT_FOUND', /host ghost not found/);
});

test('tenant users see no underlay, tunnel address, key, rotation or tunnel status', async () => {
  const c = await fresh();
  const key = Buffer.alloc(32, 9).toString('base64');
  await c.hosts.register('agent', host('n1', 1, { wgPublicKey: key, wireguard: { mode: 'kernel', peers: 0, handshaken: 0, rxBytes: 0, txBytes: 0 } }));
  await c.hosts.rotateKey('admin', 'n1');
  const h = await c.hosts.get('n1');
  const seen = hostFor({ user: 'bob', role: 'tenant', tenants: ['default'], credential: 't' }, h);
  assert.deepEqual(Object.keys(seen).sort(), ['createdAt', 'lastSeen', 'name', 'revision', 'state', 'updatedAt']);
  const ops = hostFor({ user: 'olga', role: 'ops', tenants: [], credential: 'o' }, h);
  assert.deepEqual(ops, h, 'ops users see it all');
});

test('networks are encrypted unless made with encrypt false, for life; the default MTU leaves room for the tunnel', async () => {
  const c = await fresh();
  const enc = await c.networks.create('u', 'default', { name: 'enc', subnet: '10.0.0.0/24' });
  const clear = await c.networks.create('u', 'default', { name: 'bulk', subnet: '10.0.1.0/24', encrypt: false });
  const own = await c.networks.create('u', 'default', { name: 'own', subnet: '10.0.2.0/24', mtu: 1400 });
  assert.deepEqual([enc.encrypt, enc.mtu, clear.encrypt, clear.mtu, own.encrypt, own.mtu], [true, 1390, false, 1450, true, 1400]);
  await c.global.update('admin', { mtu: 9000 });
  assert.equal((await c.networks.create('u', 'default', { name: 'jumbo', subnet: '10.0.3.0/24' })).mtu, 8890);
  await rejectsWith(c.networks.patch('u', 'default', 'bulk', { encrypt: true }), 'WEFT_IMMUTABLE', /encrypt: cannot change from false to true/, 'encrypt');
  await rejectsWith(c.networks.patch('u', 'default', 'enc', { encrypt: false }), 'WEFT_IMMUTABLE', /encrypt: cannot change from true to false/, 'encrypt');
  assert.equal((await c.networks.replace('u', 'default', 'bulk', { name: 'bulk', subnet: '10.0.1.0/24', mtu: 1450 })).encrypt, false, 'an update that omits it keeps it');

  // A network stored before the field existed counts as encrypted.
  const old = { ...(await c.store.get('networks/default/enc'))?.value as Record<string, unknown> };
  delete old['encrypt'];
  await c.store.transact('old', async (tx) => tx.put('networks/default/enc', old));
  await rejectsWith(c.networks.patch('u', 'default', 'enc', { encrypt: false }), 'WEFT_IMMUTABLE', /from true to false/, 'encrypt');
  assert.equal((await c.networks.patch('u', 'default', 'enc', { mtu: 1380 })).encrypt, true);
});
