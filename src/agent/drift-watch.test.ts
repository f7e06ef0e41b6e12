import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { MemoryDatapath, type DriftWatch } from '../datapath/index.js';
import { DesiredState } from './state.js';
import { Reconciler } from './reconciler.js';

const log = pino({ level: process.env['WEFT_TEST_LOG'] ?? 'silent' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The memory datapath with a drift watch, as the Linux one has: a hand-deleted link is reported. */
class WatchedMemory extends MemoryDatapath {
  changed: ((ns: string | undefined) => void) | undefined;
  live = true;

  watch(changed: (ns: string | undefined) => void): DriftWatch {
    this.changed = changed;
    const self = this;
    return { get live() { return self.live; }, stop: () => (this.changed = undefined) };
  }

  override deleteLink(ns: string, name: string): void {
    super.deleteLink(ns, name);
    this.changed?.(ns);
  }
}

function snapshot() {
  const meta = { revision: 1, createdAt: '', updatedAt: '' };
  return {
    tenants: [{ ...meta, name: 't', id: 1, defaultAction: 'allow' as const }, { ...meta, name: 'u', id: 2, defaultAction: 'allow' as const }],
    networks: [
      { ...meta, tenant: 't', name: 'n', subnet: '10.9.0.0/24', gateway: '10.9.0.1', encap: 'vxlan' as const, vni: 100, mtu: 1450 },
      { ...meta, tenant: 'u', name: 'n', subnet: '10.9.0.0/24', gateway: '10.9.0.1', encap: 'vxlan' as const, vni: 101, mtu: 1450 },
    ],
    groups: [], policies: [], endpoints: [], services: [], netprofiles: [], hosts: [], dockerNetworks: [], revision: 1, global: { ...meta } as never,
  };
}

function start(t: { after: (fn: () => void | Promise<void>) => void }, safetyMs: number, resyncMs = 20) {
  const dir = mkdtempSync(join(tmpdir(), 'weft-drift-'));
  const state = new DesiredState();
  state.replaceAll(snapshot());
  const dp = new WatchedMemory('u-');
  const r = new Reconciler(state, dp, async () => undefined, {
    host: 'node1', nsPrefix: 'u-', cniConfDir: dir, agentSocket: join(dir, 'agent.sock'), resyncMs, safetyMs, vtep: '192.0.2.1', dnsPort: 15353,
  }, log);
  t.after(async () => {
    await r.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const checks = () => dp.journal.filter((j) => j.startsWith('ensureTenant'));
  return { r, dp, checks };
}

test('while the datapath watches, resyncs check no tenant nobody touched; a reported one is repaired at once', async (t) => {
  const { r, dp, checks } = start(t, 60_000);
  r.start();
  await sleep(100);
  assert.deepEqual(checks(), ['ensureTenant u-t1', 'ensureTenant u-t2'], 'the first pass checks every tenant');
  const passes = r.fullPasses;
  await sleep(300);
  assert.ok(r.fullPasses >= passes + 5, `resyncs kept running (${r.fullPasses - passes} in 300 ms)`);
  assert.equal(checks().length, 2, `no tenant checked again while nothing changed: ${checks().join(', ')}`);
  const bridge = [...(dp.namespaces.get('u-t2')?.links.keys() ?? [])].find((l) => l.startsWith('wb'));
  assert.ok(bridge, 'the tenant has its bridge');
  const t0 = performance.now();
  dp.deleteLink('u-t2', bridge);
  while (!dp.namespaces.get('u-t2')?.links.has(bridge) && performance.now() - t0 < 2000) await sleep(10);
  assert.ok(dp.namespaces.get('u-t2')?.links.has(bridge), 'the deleted bridge is back');
  assert.deepEqual(checks().slice(2), ['ensureTenant u-t2'], 'only the reported tenant was checked');
});

test('every tenant is still checked once per safety interval, and on every resync when the watch ended', async (t) => {
  const { r, dp, checks } = start(t, 150);
  r.start();
  await sleep(400);
  const n = checks().length;
  assert.ok(n >= 4 && n <= 12, `two tenants checked every 150 ms over 400 ms: ${n} checks`);
  dp.live = false;
  dp.changed?.(undefined);
  const before = checks().length;
  await sleep(200);
  assert.ok(checks().length - before >= 10, `without a watch every resync (20 ms) checks both: ${checks().length - before} checks in 200 ms`);
});

test('a re-list checks every tenant, watched or not', async (t) => {
  const { r, checks } = start(t, 60_000);
  r.start();
  await sleep(100);
  r.mark(undefined);
  await sleep(100);
  assert.deepEqual(checks().slice(2), ['ensureTenant u-t1', 'ensureTenant u-t2']);
});

test('a burst of reports (our own ADDs) is checked no more often than the resync interval', async (t) => {
  const { r, dp, checks } = start(t, 60_000, 1000);
  r.start();
  await sleep(100);
  const first = checks().length;
  // A report every 50 ms for 1.5 s, as the veths of a burst of ADDs would make.
  for (let i = 0; i < 30; i++) {
    dp.changed?.('u-t2');
    await sleep(50);
  }
  await sleep(300);
  const n = checks().length - first;
  assert.ok(n >= 1 && n <= 3, `${n} checks of the reported tenant in 1.8 s with a 1 s resync (a check every settle would be ~9)`);
});

test('a tenant reported without pause is read once per resync interval, not once by the resync and once by the settle', async (t) => {
  const { r, dp, checks } = start(t, 60_000, 500);
  r.start();
  await sleep(100);
  const first = checks().length;
  // A report every 50 ms for 3 s: with both the resync's pass and the settle's taking it, ~12 checks.
  for (let i = 0; i < 60; i++) {
    dp.changed?.('u-t2');
    await sleep(50);
  }
  const n = checks().length - first;
  assert.ok(n >= 4 && n <= 7, `${n} checks of the reported tenant in 3 s with a 0.5 s resync`);
  // A real change is still repaired within the interval and a settle after its report.
  const bridge = [...(dp.namespaces.get('u-t2')?.links.keys() ?? [])].find((l) => l.startsWith('wb'));
  assert.ok(bridge);
  const t0 = performance.now();
  dp.deleteLink('u-t2', bridge);
  while (!dp.namespaces.get('u-t2')?.links.has(bridge) && performance.now() - t0 < 3000) await sleep(10);
  assert.ok(dp.namespaces.get('u-t2')?.links.has(bridge), 'the deleted bridge is back');
  assert.ok(performance.now() - t0 < 500 + 200 + 300, `repaired in ${Math.round(performance.now() - t0)} ms`);
});
