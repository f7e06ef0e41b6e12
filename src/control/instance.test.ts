import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isWeftError } from '../model/index.js';
import { MemoryStore } from '../store/index.js';
import { Control } from './control.js';

const GRACE = 60_000;
const A = 'a'.repeat(32);
const B = 'b'.repeat(32);

async function hosts() {
  const at = { now: Date.parse('2026-11-28T10:00:00Z') };
  const c = new Control(new MemoryStore(), () => new Date(at.now), { hostGraceMs: GRACE });
  await c.bootstrap();
  const register = (instance?: string) => c.hosts.register('agent', { name: 'twin', vtepIp: '192.0.2.1', ...(instance ? { instance } : {}) });
  const refused = (instance?: string) => register(instance).then(() => undefined, (e: unknown) => e);
  return { c, at, register, refused };
}

test('a host name is held by its agent instance while it heartbeats within the grace period, and only so long', async () => {
  const { at, register, refused } = await hosts();
  const first = await register(A);
  assert.equal(first.instance?.length, 64, 'recorded as a SHA-256, never the id itself');
  assert.notEqual(first.instance, A);
  at.now += GRACE;
  await register(A);
  at.now += GRACE;
  const e = await refused(B);
  assert.ok(isWeftError(e) && e.code === 'WEFT_IN_USE' && e.field === 'name' && e.status === 409, String(e));
  assert.match(e.message, /host twin is registered by another agent instance, last heard from 60 s ago/);
  at.now += 1;
  const taken = await register(B);
  assert.notEqual(taken.instance, first.instance, 'silent one millisecond past the grace: a reinstalled host takes over');
  assert.ok(await refused(A), 'and the old instance is the stranger now');
});

test('a registration without an instance (the API, an older agent) keeps the recorded one; a host never registered with one takes any', async () => {
  const { register, refused } = await hosts();
  assert.equal((await register()).instance, undefined);
  const held = (await register(A)).instance;
  assert.equal((await register()).instance, held);
  assert.ok(await refused(B));
});
