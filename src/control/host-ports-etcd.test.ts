import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { EtcdStore } from '../store/etcd.js';
import { startEtcd, type EtcdProcess } from '../testkit/etcd.js';
import { WeftError } from '../model/index.js';
import { Control } from './control.js';

// Host-port claims on a real etcd (loopback, its own temp dir: run under the lock), two clients as two
// servers: a start claims a cluster's published ports in transactions etcd takes (it refuses one over
// 128 operations), and of two endpoints publishing one port of one host at once, one is refused.

const etcdInstalled = (() => { try { execFileSync('etcd', ['--version'], { stdio: 'ignore' }); return true; } catch { return false; } })();
const skip = !etcdInstalled && 'etcd is not installed';
let etcd: EtcdProcess | undefined;
let n = 0;
before(async () => { if (etcdInstalled) etcd = await startEtcd(); });
after(async () => { await etcd?.stop(); });

const req = { tenant: 'default', network: 'net', ifname: 'eth0' };
const web = (hostPort: number) => ({ hostPort, containerPort: 80, protocol: 'tcp' as const });

async function two(): Promise<{ a: Control; b: Control; stores: EtcdStore[] }> {
  const prefix = `/host-ports-${n++}/`;
  const stores = [await EtcdStore.open([etcd!.endpoint], prefix), await EtcdStore.open([etcd!.endpoint], prefix)];
  return { a: new Control(stores[0]!), b: new Control(stores[1]!), stores };
}

test('etcd: a start claims the published ports of 80 hosts (more than one transaction takes), then every later start finds them', { skip, timeout: 120_000 }, async () => {
  const { a, b, stores } = await two();
  try {
    await a.bootstrap();
    await a.networks.create('u', 'default', { name: 'net', subnet: '10.0.0.0/16' });
    for (let h = 0; h < 80; h++) await a.endpoints.create('a', { ...req, host: `n${h}`, containerId: `d${h}`, portMappings: [web(9100)] });
    // As a data dir from before the claims: none.
    await stores[0]!.transact('test', async (tx) => tx.deletePrefix('hostports/'));
    const boot = await b.bootstrap();
    assert.deepEqual(boot.warnings, []);
    assert.equal((await stores[1]!.list('hostports/')).entries.length, 80, 'every published port claimed');
    await assert.rejects(a.endpoints.create('a', { ...req, host: 'n42', containerId: 'x', portMappings: [web(9100)] }), (e: unknown) => e instanceof WeftError && e.code === 'WEFT_ADDRESS_IN_USE');
    await b.bootstrap();
  } finally {
    for (const s of stores) await s.close();
  }
});

test('etcd: of two endpoints publishing one port of one host at once on two servers, exactly one is made', { skip, timeout: 60_000 }, async () => {
  const { a, b, stores } = await two();
  try {
    await a.bootstrap();
    await a.networks.create('u', 'default', { name: 'net', subnet: '10.0.0.0/16' });
    for (let round = 0; round < 5; round++) {
      const port = web(8000 + round);
      const results = await Promise.allSettled([
        a.endpoints.create('a', { ...req, host: 'h1', containerId: `a${round}`, portMappings: [port] }),
        b.endpoints.create('a', { ...req, host: 'h1', containerId: `b${round}`, portMappings: [port] }),
      ]);
      const made = results.filter((r) => r.status === 'fulfilled');
      assert.equal(made.length, 1, `round ${round}: one made`);
      const refused = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
      assert.ok(refused.reason instanceof WeftError && refused.reason.code === 'WEFT_ADDRESS_IN_USE', `round ${round}: the other refused (${String(refused.reason)})`);
    }
    const published = (await a.endpoints.list({ host: 'h1' })).items.flatMap((e) => (e.portMappings ?? []).map((p) => p.hostPort)).sort();
    assert.deepEqual(published, [8000, 8001, 8002, 8003, 8004], 'each port published once');
  } finally {
    for (const s of stores) await s.close();
  }
});

test('etcd: an endpoint\'s 64 published ports swapped for 64 others (an update, then a replacing endpoint) fit one transaction; the old ports are free at once and their claims go', { skip, timeout: 60_000 }, async () => {
  const { a, b, stores } = await two();
  try {
    await a.bootstrap();
    await a.networks.create('u', 'default', { name: 'net', subnet: '10.0.0.0/16' });
    const range = (from: number) => Array.from({ length: 64 }, (_, i) => web(from + i));
    const claims = async () => new Map((await stores[1]!.list('hostports/h1/tcp/')).entries.map((e) => [Number(e.key.split('/').pop()), (e.value as { endpoint: string }).endpoint]));
    const claimedBy = (m: Map<number, string>, from: number) => [...new Set(range(from).map((p) => m.get(p.hostPort) ?? 'none'))];
    const ep = await a.endpoints.create('a', { ...req, host: 'h1', containerId: 'c1', portMappings: range(10_000) });
    const moved = await a.endpoints.update('a', ep.id, { portMappings: range(20_000) });
    assert.deepEqual(moved.portMappings?.map((p) => p.hostPort), range(20_000).map((p) => p.hostPort));
    let m = await claims();
    assert.deepEqual([claimedBy(m, 10_000), claimedBy(m, 20_000), m.size], [['none'], [ep.id], 64], 'the swapped-out claims are gone');
    // Another endpoint takes the ports given back, through the other server; the new ones are held.
    const other = await b.endpoints.create('a', { ...req, host: 'h1', containerId: 'c2', portMappings: range(10_000) });
    await assert.rejects(b.endpoints.create('a', { ...req, host: 'h1', containerId: 'c3', portMappings: [web(20_063)] }), (e: unknown) => e instanceof WeftError && e.code === 'WEFT_ADDRESS_IN_USE');
    // A restarted container's endpoint replaces the old one, with 64 other ports, in one transaction.
    const next = await a.endpoints.create('a', { ...req, host: 'h1', containerId: 'c1b', replaces: ep.id, portMappings: range(30_000) });
    assert.equal(next.ip, ep.ip);
    const taker = await b.endpoints.create('a', { ...req, host: 'h1', containerId: 'c4', portMappings: range(20_000) });
    await assert.rejects(b.endpoints.create('a', { ...req, host: 'h1', containerId: 'c5', portMappings: [web(30_005)] }), (e: unknown) => e instanceof WeftError && e.code === 'WEFT_ADDRESS_IN_USE');
    m = await claims();
    assert.deepEqual([claimedBy(m, 10_000), claimedBy(m, 20_000), claimedBy(m, 30_000), m.size], [[other.id], [taker.id], [next.id], 192]);
  } finally {
    for (const s of stores) await s.close();
  }
});
