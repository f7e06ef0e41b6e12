import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { WeftError } from '../model/index.js';
import { EtcdStore } from './etcd.js';
import type { Change } from './port.js';
import { startEtcd, type EtcdProcess } from '../testkit/etcd.js';
import { etcdAlarms, fillEtcd, freeEtcd } from '../testkit/etcd-space.js';

// A real etcd with an 8 MiB space quota, filled past it with keys outside the store's prefix.
const available = (() => { try { execFileSync('etcd', ['--version'], { stdio: 'ignore' }); return true; } catch { return false; } })();
const skip = !available && 'etcd is not installed';
let etcd: EtcdProcess | undefined;
before(async () => { if (available) etcd = await startEtcd({ args: ['--quota-backend-bytes', String(8 * 1024 * 1024)] }); });
after(async () => etcd?.stop());

test('etcd past its space quota: writes refused as WEFT_STORE_FULL with the way out, nothing half-written, reads and the watch go on; freed, writes resume', { skip, timeout: 60_000 }, async () => {
  const s = await EtcdStore.open([etcd!.endpoint], '/full/');
  try {
    const seen: Change[] = [];
    s.subscribe((c) => seen.push(...c));
    await s.transact('t', async (tx) => { tx.put('a/1', 1); tx.put('a/2', 2); });
    const before = await s.revision();
    const filled = await fillEtcd(etcd!.endpoint);
    assert.ok(filled.keys > 0, 'the filler wrote keys before etcd ran out');

    for (let i = 0; i < 3; i++) {
      const e = await s.transact('t', async (tx) => { tx.put('a/3', 3); tx.delete('a/1'); }).catch((x: unknown) => x);
      assert.ok(e instanceof WeftError && e.code === 'WEFT_STORE_FULL', `refused as full: ${String(e)}`);
      assert.match(e.message, /etcd at 127\.0\.0\.1:\d+: etcd's space quota .* exhausted/);
      assert.match(e.message, /compact .* defragment each member, then disarm the alarm/);
    }
    // The client's own fault handling once counted that refusal as a dead host: reads then failed for 5 s.
    for (let i = 0; i < 5; i++) assert.deepEqual((await s.list('a/')).entries.map((x) => x.value), [1, 2], 'reads answer, nothing half-written');
    assert.equal((await s.probe()).writable, false, 'a probe is refused too');
    const h = s.writeHealth();
    assert.equal(h.writable, false);
    assert.ok(h.failures >= 4 && h.error?.code === 'WEFT_STORE_FULL', `health names the failure: ${JSON.stringify(h)}`);

    await freeEtcd([etcd!.endpoint]);
    assert.deepEqual(await etcdAlarms(etcd!.endpoint), [], 'no alarm left');
    const t0 = Date.now();
    await s.transact('t', async (tx) => tx.put('a/3', 3));
    assert.ok(Date.now() - t0 < 10_000);
    assert.equal(s.writeHealth().writable, true, 'a commit makes it writable again');
    assert.deepEqual((await s.list('a/')).entries.map((x) => x.value), [1, 2, 3]);
    const deadline = Date.now() + 5000;
    while (!seen.some((c) => c.key === 'a/3') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.ok(seen.some((c) => c.key === 'a/3' && c.revision > before), 'the watch delivered the write after the recovery');
    assert.ok(!seen.some((c) => c.key === 'a/1' && c.op === 'delete'), 'no refused change was ever delivered');
  } finally {
    await s.close();
  }
});
