import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryStore, SqliteStore, type Store } from '../store/index.js';
import { WeftError, checkNetwork, formatIp, parseIp, parseRange, type Endpoint, type Group, type Network } from '../model/index.js';
import { Control } from './control.js';
import { plainRanges } from './addressing.js';
import type { GroupPool } from './group-pools.js';

/**
 * The plain search's hint (addressing.ts, PlainHint) only saves work: wherever it is, a plain member gets
 * what a search of the whole range would give, the lowest free address of the dynamic range outside every
 * group's pool. Checked here against that search, done by hand on what is stored, through random runs of
 * what moves it: members and VIPs coming and going, requested addresses, pools made and dropped, the
 * network's ipRange changed.
 */
const SUBNET = '10.9.0.0/24';
const req = { tenant: 'default', network: 'net', host: 'h1', ifname: 'eth0' };

/** A small deterministic generator (mulberry32), so a failing run can be replayed by its seed. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The lowest address a plain member may take now, found by looking at everything stored (undefined: none). */
async function lowestFree(c: Control): Promise<string | undefined> {
  const net = await c.networks.get('default', 'net') as Network;
  const layout = checkNetwork({ name: net.name, subnet: net.subnet ?? '', gateway: net.gateway, ipRange: net.ipRange });
  const taken = new Set<number>([layout.gateway]);
  for (const e of (await c.endpoints.list({})).items as Endpoint[]) if (e.ip) taken.add(parseIp(e.ip) ?? -1);
  for (const s of (await c.services.list('default')).items) if (s.vip) taken.add(parseIp(s.vip) ?? -1);
  const pools = (await c.groups.list('default')).items.flatMap((g: Group) => (g.ipPool ? [parseRange(g.ipPool, 'ipPool')] : []));
  for (let ip = layout.dynamic.first; ip <= layout.dynamic.last; ip++) {
    if (taken.has(ip) || pools.some((p) => ip >= p.first && ip <= p.last)) continue;
    return formatIp(ip);
  }
  return undefined;
}

async function plain(c: Control, id: string): Promise<string | undefined> {
  try {
    return (await c.endpoints.create('u', { ...req, containerId: id })).ip;
  } catch (e) {
    if (e instanceof WeftError && e.code === 'WEFT_POOL_EXHAUSTED') return undefined;
    throw e;
  }
}

/**
 * On both stores: SQLite hands every reader of the pools index one frozen object while it is unchanged
 * (Txn.getShared), and the address space worked out from it is kept with it (addressing.ts plainRanges).
 */
const RUNS: Array<[string, number]> = [...[1, 2, 3, 4, 5, 6].map((s): [string, number] => ['memory', s]), ...[1, 2, 3].map((s): [string, number] => ['sqlite', s])];
for (const [kind, seed] of RUNS) {
  test(`a plain member gets the lowest free address outside every pool, however the hint stands (random run on ${kind}, seed ${seed})`, async (t) => {
    const rnd = random(seed);
    const pick = <T>(xs: readonly T[]): T | undefined => xs[Math.floor(rnd() * xs.length)];
    let store: Store = new MemoryStore();
    if (kind === 'sqlite') {
      const dir = mkdtempSync(join(tmpdir(), 'weft-plain-hint-'));
      const sqlite = new SqliteStore(join(dir, 'weft.db'));
      store = sqlite;
      t.after(async () => {
        await sqlite.close();
        rmSync(dir, { recursive: true, force: true });
      });
    }
    const c = new Control(store);
    await c.bootstrap();
    await c.networks.create('u', 'default', { name: 'net', subnet: SUBNET });
    let n = 0;
    let checked = 0;
    /** What each kind of step did, so a run that never exercised one fails rather than passes idly. */
    const done = { removed: 0, requested: 0, pool: 0, dropped: 0, member: 0, range: 0, vip: 0 };
    for (let step = 0; step < 400; step++) {
      const r = rnd();
      const eps = (await c.endpoints.list({})).items as Endpoint[];
      const groups = (await c.groups.list('default')).items.filter((g: Group) => g.ipPool);
      if (r < 0.45) {
        const want = await lowestFree(c);
        assert.equal(await plain(c, `p${n++}`), want, `step ${step}: a plain member`);
        checked++;
      } else if (r < 0.7) {
        const e = pick(eps);
        if (e && await c.endpoints.remove('u', e.id)) done.removed++;
      } else if (r < 0.76) {
        // A requested address: anywhere free outside the pools, above or below where the search stands.
        const free = await lowestFree(c);
        const base = parseIp('10.9.0.0') ?? 0;
        const ip = formatIp(base + 2 + Math.floor(rnd() * 250));
        if (free !== undefined) await c.endpoints.create('u', { ...req, containerId: `r${n++}`, ip }).then(() => done.requested++, () => undefined);
      } else if (r < 0.82) {
        // A pool made over a stretch nobody holds (its addresses leave the plain search).
        const base = parseIp('10.9.0.0') ?? 0;
        const first = base + 2 + Math.floor(rnd() * 240);
        await c.groups.create('u', 'default', { name: `g${n++}`, network: 'net', ipPool: `${formatIp(first)}-${formatIp(first + 3)}` }).then(() => done.pool++, () => undefined);
      } else if (r < 0.87) {
        // A pool dropped, its members first: its addresses join the plain search again, maybe below the hint.
        const g = pick(groups);
        if (g) {
          for (const e of eps.filter((x) => x.group === g.name)) await c.endpoints.remove('u', e.id);
          await c.groups.remove('u', 'default', g.name);
          done.dropped++;
        }
      } else if (r < 0.92) {
        const g = pick(groups);
        if (g) await c.endpoints.create('u', { ...req, containerId: `m${n++}`, group: g.name }).then(() => done.member++, () => undefined);
      } else if (r < 0.96) {
        // The network's range moved (refused where members would fall outside it: nothing changes then).
        const base = parseIp('10.9.0.0') ?? 0;
        const first = base + 1 + Math.floor(rnd() * 60);
        await c.networks.patch('u', 'default', 'net', { ipRange: `${formatIp(first)}-${formatIp(base + 254)}` }).then(() => done.range++, () => undefined);
      } else {
        const s = (await c.services.list('default')).items;
        if (s.length > 0 && rnd() < 0.5) await c.services.remove('u', 'default', s[0]?.name ?? '');
        else await c.services.create('u', 'default', { name: `s${n++}`, network: 'net', selector: { app: 'x' }, ports: [{ port: 80, protocol: 'TCP', targetPort: 80 }] }).then(() => done.vip++, () => undefined);
      }
    }
    assert.ok(checked > 100, `${checked} plain members checked`);
    for (const [k, v] of Object.entries(done)) assert.ok(v > 0, `no step of kind ${k} took effect: ${JSON.stringify(done)}`);
  });
}

test('a hint stored by hand (past the end, or garbage) never makes a network look full, nor takes an address twice', async () => {
  const c = new Control(new MemoryStore());
  await c.bootstrap();
  await c.networks.create('u', 'default', { name: 'net', subnet: '10.9.0.0/28' });
  const first = await plain(c, 'a');
  assert.equal(first, '10.9.0.2');
  const key = 'ipam/default/net';
  const summary = (await c.store.get(key))?.value as { plain?: number[] };
  assert.ok(Array.isArray(summary.plain), 'an allocation leaves a hint');
  const write = (plainHint: unknown) => c.store.transact('test', async (tx) => tx.put(key, { ...summary, plain: plainHint }));
  // Past the end, under the right range and pools: the search from it finds nothing, the whole range is searched.
  await write([999, ...(summary.plain ?? []).slice(1)]);
  assert.equal(await plain(c, 'b'), '10.9.0.3');
  // Garbage: ignored.
  await write(['x', -1, null]);
  assert.equal(await plain(c, 'c'), '10.9.0.4');
  const ips = [first, '10.9.0.3', '10.9.0.4'];
  for (let i = 0; ; i++) {
    const ip = await plain(c, `d${i}`);
    if (ip === undefined) break;
    assert.ok(!ips.includes(ip), `${ip} given twice`);
    ips.push(ip);
  }
  assert.equal(ips.length, 13, 'a /28 without its network, broadcast and gateway: 13 addresses, every one handed out');
  // A member gone below the hint: its address is the next one.
  const eps = (await c.endpoints.list({})).items as Endpoint[];
  const low = eps.find((e) => e.ip === '10.9.0.5');
  assert.ok(low);
  await c.endpoints.remove('u', low.id);
  assert.equal(await plain(c, 'e'), '10.9.0.5');
});

test('the plain ranges kept with a shared pools list are only the last ones worked out: a network whose range keeps changing cannot grow them', async () => {
  const pools: readonly GroupPool[] = Object.freeze([Object.freeze(['g', '10.9.0.10-10.9.0.13', 0x0a09000a, 0x0a09000d] as const)]);
  const usable = { first: 0x0a090001, last: 0x0a0900fe };
  const a = plainRanges(pools, { first: 0x0a090002, last: 0x0a0900fe }, usable);
  assert.equal(plainRanges(pools, { first: 0x0a090002, last: 0x0a0900fe }, usable), a, 'kept while the ranges stay');
  assert.deepEqual(a.candidates, [{ first: 0x0a090002, last: 0x0a090009 }, { first: 0x0a09000e, last: 0x0a0900fe }]);
  const b = plainRanges(pools, { first: 0x0a090003, last: 0x0a0900fe }, usable);
  assert.deepEqual(b.candidates, [{ first: 0x0a090003, last: 0x0a090009 }, { first: 0x0a09000e, last: 0x0a0900fe }]);
  // Each range once kept them all (a tenant changing its network's ipRange grew the server's memory).
  const again = plainRanges(pools, { first: 0x0a090002, last: 0x0a0900fe }, usable);
  assert.notEqual(again, a, 'the first answer is no longer kept');
  assert.deepEqual(again, a);
});
