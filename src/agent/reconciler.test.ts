import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { MemoryDatapath } from '../datapath/index.js';
import { DesiredState } from './state.js';
import { Reconciler } from './reconciler.js';

const log = pino({ level: process.env['WEFT_TEST_LOG'] ?? 'silent' });
const tick = () => new Promise((r) => setImmediate(r));

/** A reconciler whose host side blocks until `release()`: a pass as slow as the test wants. */
function slowReconciler(dir: string, resyncMs = 60_000) {
  let open: () => void = () => undefined;
  let gate = new Promise<void>((r) => (open = r));
  let hostSides = 0;
  const hostSide = async () => {
    hostSides++;
    await gate;
  };
  const r = new Reconciler(new DesiredState(), new MemoryDatapath('u-'), hostSide, {
    host: 'node1', nsPrefix: 'u-', cniConfDir: dir, agentSocket: join(dir, 'agent.sock'), resyncMs, vtep: '192.0.2.1', dnsPort: 15353,
  }, log);
  const release = () => {
    open();
    gate = Promise.resolve();
  };
  return { r, release, hostSides: () => hostSides };
}

test('marks during a slow pass fold into one queued pass, not one pass each', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-reconciler-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const { r, release, hostSides } = slowReconciler(dir);
  r.mark(undefined);
  for (let i = 0; i < 20 && hostSides() === 0; i++) await tick();
  assert.equal(hostSides(), 1, 'the first pass is running (blocked in the host side)');
  // Each mark in its own turn of the event loop, as watch lines and resync ticks arrive.
  for (let i = 0; i < 100; i++) {
    r.mark(i % 2 ? undefined : `t${i}`);
    await tick();
  }
  release();
  await r.stop();
  for (let i = 0; i < 5; i++) await tick();
  await r.stop();
  assert.equal(r.passes, 2, `100 marks during one slow pass: ${r.passes} passes (the running one and one queued)`);
  assert.equal(hostSides(), 2);
});

test('a resync interval shorter than a pass does not pile passes up', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-reconciler-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const { r, release, hostSides } = slowReconciler(dir, 5);
  r.start();
  // 400 ms of a pass that does not finish, with a resync every 5 ms (~80 ticks).
  await new Promise((res) => setTimeout(res, 400));
  assert.equal(hostSides(), 1);
  release();
  await r.stop();
  for (let i = 0; i < 5; i++) await tick();
  await r.stop();
  assert.ok(r.passes <= 2, `${r.passes} passes after 400 ms of resync ticks behind one slow pass`);
});
