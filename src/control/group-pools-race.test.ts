import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore, type Store } from '../store/index.js';
import { EtcdStore } from '../store/etcd.js';
import { startEtcd, type EtcdProcess } from '../testkit/etcd.js';
import { parseIp, WeftError } from '../model/index.js';
import { Control } from './control.js';

// A group's pool index is a key every allocation and group create reads, so on both real stores a group
// created while allocations run is seen by every allocation that commits after it, and of two groups
// with overlapping pools made at once, one is refused. On etcd the two sides are two servers (two
// clients of one etcd), as in a cluster. Starts a real etcd (loopback, its own temp dir): run under the lock.

const dir = mkdtempSync(join(tmpdir(), 'weft-pools-race-'));
const etcdInstalled = (() => { try { execFileSync('etcd', ['--version'], { stdio: 'ignore' }); return true; } catch { return false; } })();
let etcd: EtcdProcess | undefined;
let n = 0;
before(async () => { if (etcdInstalled) etcd = await startEtcd(); });
after(async () => {
  await etcd?.stop();
  rmSync(dir, { recursive: true, force: true });
});

interface Servers { a: Control; b: Control; close(): Promise<void> }

const openers: Record<string, () => Promise<Servers>> = {
  sqlite: async () => {
    const store = new SqliteStore(join(dir, `race-${n++}.db`));
    return { a: new Control(store), b: new Control(store), close: () => store.close() };
  },
  etcd: async () => {
    const prefix = `/pools-race-${n++}/`;
    const stores: Store[] = [await EtcdStore.open([etcd!.endpoint], prefix), await EtcdStore.open([etcd!.endpoint], prefix)];
    return { a: new Control(stores[0]!), b: new Control(stores[1]!), close: async () => { for (const s of stores) await s.close(); } };
  },
};

const POOL = { first: parseIp('10.0.0.20') as number, last: parseIp('10.0.0.120') as number };
const inPool = (ip: string | undefined) => ip !== undefined && (parseIp(ip) as number) >= POOL.first && (parseIp(ip) as number) <= POOL.last;

for (const [name, open] of Object.entries(openers)) {
  const skip = name === 'etcd' && !etcdInstalled ? 'etcd is not installed' : false;

  test(`${name}: a group created while another server allocates: no allocation that commits after it lands in its pool`, { skip }, async () => {
    const s = await open();
    try {
      await s.a.bootstrap();
      await s.a.networks.create('u', 'default', { name: 'net', subnet: '10.0.0.0/24' });
      const made: Array<{ ip?: string; revision: number }> = [];
      let groupCreate: Promise<{ revision: number }> | undefined;
      let next = 0;
      // Four allocating clients on server b; server a creates the pooled group once ten are done.
      await Promise.all(Array.from({ length: 4 }, async () => {
        while (next < 60) {
          const i = next++;
          made.push(await s.b.endpoints.create('cni', { tenant: 'default', network: 'net', host: 'h1', ifname: 'eth0', containerId: `c${i}` }));
          if (made.length === 10) groupCreate = s.a.groups.create('u', 'default', { name: 'pool', network: 'net', ipPool: '10.0.0.20-10.0.0.120' });
        }
      }));
      const group = await groupCreate!;
      const after = made.filter((e) => e.revision > group.revision);
      assert.ok(after.length >= 10, `allocations after the group's commit: ${after.length} (the race did not happen)`);
      assert.deepEqual(after.filter((e) => inPool(e.ip)).map((e) => e.ip), [], 'allocated inside the pool after it was made');
      assert.equal(new Set(made.map((e) => e.ip)).size, made.length, 'every address once');
    } finally {
      await s.close();
    }
  });

  test(`${name}: two groups with overlapping pools made at once on two servers: one is made, the other refused`, { skip }, async () => {
    const s = await open();
    try {
      await s.a.bootstrap();
      for (let round = 0; round < 5; round++) {
        await s.a.networks.create('u', 'default', { name: `net${round}`, subnet: `10.${round}.0.0/24` });
        const tries = [
          s.a.groups.create('u', 'default', { name: `x${round}`, network: `net${round}`, ipPool: `10.${round}.0.10-10.${round}.0.50` }),
          s.b.groups.create('u', 'default', { name: `y${round}`, network: `net${round}`, ipPool: `10.${round}.0.40-10.${round}.0.90` }),
        ];
        const out = await Promise.allSettled(tries);
        const made = out.filter((o) => o.status === 'fulfilled');
        const refused = out.flatMap((o) => (o.status === 'rejected' ? [o.reason as unknown] : []));
        assert.equal(made.length, 1, `round ${round}: ${made.length} made`);
        assert.ok(refused[0] instanceof WeftError && refused[0].code === 'WEFT_OVERLAP', `round ${round}: ${String(refused[0])}`);
        const index = (await s.a.store.get(`ipam/default/net${round}/pools`))?.value as { pools: unknown[] };
        assert.equal(index.pools.length, 1, `round ${round}: the index holds the one made`);
      }
    } finally {
      await s.close();
    }
  });
}
