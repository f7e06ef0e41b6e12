import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Policy, RuleInput } from '../model/index.js';
import { MemoryStore } from '../store/index.js';
import { Control } from './control.js';
import { listPolicies, policiesYielding } from './policy-store.js';

const T = 'default';
const rule = (id: string, port: number): RuleInput => ({ id, protocol: 'tcp', ports: String(port), fromCidr: `10.1.${port % 250}.0/24` });
const rules = (n: number, at = 0) => Array.from({ length: n }, (_, i) => rule(`r${at + i}`, 1000 + at + i));

async function fresh(): Promise<Control> {
  const c = new Control(new MemoryStore(), undefined, { quota: { objects: 1000, rules: 1_000_000 } });
  await c.bootstrap();
  for (const [name, n] of [['a', 300], ['b', 5], ['c', 0], ['d', 129]] as const) await c.policies.create('u', T, { name, rules: rules(n) });
  return c;
}

const byName = (ps: readonly Policy[]) => new Map(ps.map((p) => [p.name, p]));
const noPause = async () => {};

test('policies read a policy at a time are what one listing gives, each paused after', async () => {
  const c = await fresh();
  let pauses = 0;
  const got = await policiesYielding(c.store, T, new Map(), async () => { pauses++; });
  assert.deepEqual(got, (await listPolicies(c.store, T)).items);
  assert.equal(pauses, 4, 'one pause per policy read');
  assert.deepEqual(await policiesYielding(c.store, 'nosuch', new Map(), noPause), []);
});

test('a policy whose head has not moved is taken from what was read before, unread; a changed, new or deleted one is not', async () => {
  const c = await fresh();
  const first = await policiesYielding(c.store, T, new Map(), noPause);
  await c.rules.replace('u', T, 'a', 'r7', rule('r7', 9999));
  await c.policies.remove('u', T, 'b');
  await c.policies.create('u', T, { name: 'e', rules: rules(3, 500) });
  let pauses = 0;
  const second = await policiesYielding(c.store, T, byName(first), async () => { pauses++; });
  assert.deepEqual(second, (await listPolicies(c.store, T)).items);
  assert.equal(pauses, 2, 'only a and e read');
  const was = byName(first);
  const now = byName(second);
  assert.equal(now.get('c'), was.get('c'), 'unchanged: the very object');
  assert.equal(now.get('d'), was.get('d'));
  assert.notEqual(now.get('a'), was.get('a'));
  assert.equal(now.get('a')?.rules.find((r) => r.id === 'r7')?.ports, '9999');
  assert.equal(now.has('b'), false);
  // An old copy offered under a name whose head moved is never used, whatever it holds.
  const stale = new Map([['a', { ...(was.get('a') as Policy), rules: [] }]]);
  assert.deepEqual(await policiesYielding(c.store, T, stale, noPause), second);
});

test('a policy changed while others are read is read again: the answer is one moment\'s, the last listing\'s', async () => {
  const c = await fresh();
  let n = 0;
  // After the first policy is read, each pause changes a policy already read (a, then d), then stops.
  const got = await policiesYielding(c.store, T, new Map(), async () => {
    n++;
    if (n === 1) await c.rules.add('u', T, 'a', rule('z1', 7777));
    if (n === 3) await c.rules.remove('u', T, 'd', 'r3');
  });
  const now = (await listPolicies(c.store, T)).items;
  assert.deepEqual(got, now);
  assert.ok(byName(got).get('a')?.rules.some((r) => r.id === 'z1'));
  assert.equal(byName(got).get('d')?.rules.length, 128);
});

test('a tenant that never stops changing is read in one listing after three rounds', async () => {
  const c = await fresh();
  let k = 0;
  const got = await policiesYielding(c.store, T, new Map(), async () => { await c.rules.add('u', T, 'b', rule(`y${k++}`, 2000 + k)); });
  assert.deepEqual(got, (await listPolicies(c.store, T)).items);
});
