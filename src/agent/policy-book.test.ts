import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Control, publicChange } from '../control/index.js';
import type { ChangeEvent, RuleInput } from '../model/index.js';
import { MemoryStore } from '../store/index.js';
import { DesiredState } from './state.js';

const T = 'default';
const rule = (id: string, port = 80): RuleInput => ({ id, protocol: 'tcp', ports: String(port) });
const rules = (n: number, at = 0) => Array.from({ length: n }, (_, i) => rule(`r${at + i}`, 1 + ((at + i) % 60000)));

/** A control plane whose committed changes are collected as the watch would carry them, per transaction. */
async function server() {
  const store = new MemoryStore();
  const c = new Control(store, undefined, { quota: { objects: 100, rules: 100_000 } });
  await c.bootstrap();
  const commits: ChangeEvent[][] = [];
  store.subscribe((cs) => commits.push(cs.map(publicChange).filter((x): x is ChangeEvent => x !== undefined)));
  return { c, commits };
}

test('the agent keeps the same policies as the server, a transaction at a time, through every kind of rule change', async () => {
  const { c, commits } = await server();
  const state = new DesiredState();
  const same = async (step: string) => {
    for (const cs of commits.splice(0)) for (const x of cs) state.apply(x);
    const want = (await c.policies.list(T)).items;
    assert.deepEqual(want.map((p) => state.policies.get(`${T}/${p.name}`)), want, step);
  };
  await c.policies.create('u', T, { name: 'p', rules: rules(300) });
  await same('bulk create');
  for (let i = 0; i < 40; i++) await c.rules.add('u', T, 'p', rule(`r1${i}x`, i + 1));
  await same('adds inside the spans of bulk segments, splitting them');
  for (let i = 0; i < 20; i++) await c.rules.add('u', T, 'p', rule(`z${i}`));
  await c.rules.replace('u', T, 'p', 'r150', rule('r150', 7));
  await c.rules.remove('u', T, 'p', 'r77');
  await c.rules.remove('u', T, 'p', 'z3');
  await same('adds past the end, a change, a delete inside a segment, a delete of a one-rule segment');
  await c.policies.replace('u', T, 'p', { name: 'p', rules: [...rules(5), rule('r150', 9), ...rules(200, 1000)] });
  await same('a bulk replace');
  await c.policies.remove('u', T, 'p');
  await c.policies.create('u', T, { name: 'p', rules: rules(2) });
  await same('deleted and made again');
});

test('a replace arrives whole: until its head comes, the agent keeps enforcing the previous rules', async () => {
  const { c, commits } = await server();
  const state = new DesiredState();
  await c.policies.create('u', T, { name: 'p', rules: [...rules(200), { id: 'block', action: 'deny', protocol: 'tcp' }] });
  for (const x of commits.splice(0).flat()) state.apply(x);
  const before = state.policies.get(`${T}/p`);
  await c.policies.replace('u', T, 'p', { name: 'p', rules: [...rules(200, 500), { id: 'block', action: 'deny', protocol: 'tcp' }] });
  const [replace = []] = commits.splice(0);
  const head = replace[replace.length - 1];
  assert.equal(head?.kind, 'policy', 'the head comes last');
  for (const x of replace.slice(0, -1)) assert.equal(state.apply(x), 'nothing');
  assert.deepEqual(state.policies.get(`${T}/p`), before, 'no moment with the old rules gone and the new not there');
  assert.deepEqual(state.apply(head as ChangeEvent), { tenant: T });
  assert.deepEqual(state.policies.get(`${T}/p`), await c.policies.get(T, 'p'));
});

test('after a listing, replayed changes it already holds and new ones leave the agent where the server is', async () => {
  const { c, commits } = await server();
  await c.policies.create('u', T, { name: 'p', rules: rules(400) });
  await c.rules.add('u', T, 'p', rule('r20x'));
  const listed = await c.policies.list(T);
  const replay = commits.splice(0).slice(-1).flat();
  const state = new DesiredState();
  for (const p of listed.items) state.policies.set(p);
  for (const x of replay) state.apply(x);
  // Rules the listing gave (their segments unknown to the agent) are dropped by id when a segment removes them.
  await c.rules.remove('u', T, 'p', 'r250');
  await c.rules.replace('u', T, 'p', 'r251', rule('r251', 5));
  await c.policies.patch('u', T, 'p', { rules: [...rules(10), rule('r251', 6)] });
  await c.rules.remove('u', T, 'p', 'r3');
  for (const x of commits.splice(0).flat()) state.apply(x);
  assert.deepEqual(state.policies.get(`${T}/p`), await c.policies.get(T, 'p'));
});

test('a head whose rules do not add up (a change missed) makes the agent re-list; a whole policy from an older server is taken as it is', async () => {
  const { c, commits } = await server();
  const state = new DesiredState();
  await c.policies.create('u', T, { name: 'p', rules: rules(3) });
  for (const x of commits.splice(0).flat()) state.apply(x);
  await c.rules.add('u', T, 'p', rule('z'));
  const add = commits.splice(0).flat();
  assert.throws(() => state.apply(add[add.length - 1] as ChangeEvent), /policy default\/p: 3 rules held but its head counts 4; a change was missed/);
  const at = '2024-01-01T00:00:00.000Z';
  const old = { tenant: T, name: 'old', rules: [rule('b'), rule('a')].map((r) => ({ ...r, priority: 1, direction: 'in', action: 'allow' })), createdAt: at, updatedAt: at };
  state.apply({ revision: 99, op: 'put', kind: 'policy', key: 'policies/default/old', tenant: T, object: old, actor: 'x', time: at });
  assert.deepEqual(state.policies.get(`${T}/old`), { ...old, revision: 99 });
});

test("a rule change leaves every other rule the same object, so the compiler's caches keyed on rules still hold them", async () => {
  const { c, commits } = await server();
  const state = new DesiredState();
  const take = () => { for (const cs of commits.splice(0)) for (const x of cs) state.apply(x); return state.policies.get(`${T}/p`)?.rules ?? []; };
  await c.policies.create('u', T, { name: 'p', rules: rules(1000) });
  const before = take();
  await c.rules.replace('u', T, 'p', 'r500', rule('r500', 9999));
  const after = take();
  assert.equal(after.length, 1000);
  assert.deepEqual(after.find((r) => r.id === 'r500')?.ports, '9999');
  const kept = after.filter((r, i) => r === before[i]).length;
  // The changed rule's segment is re-sent whole (128 rules): its unchanged rules too are the objects they were.
  assert.equal(kept, 999, `${kept} of 999 unchanged rules kept their identity`);
  assert.notEqual(after.find((r) => r.id === 'r500'), before.find((r) => r.id === 'r500'));
  // The same after a listing: its rules are the ones the compiler reads, and a change keeps the others.
  const listed = await c.policies.get(T, 'p');
  state.policies.set(listed);
  const fresh = take();
  await c.rules.add('u', T, 'p', rule('r500a', 7));
  await c.rules.remove('u', T, 'p', 'r10');
  const next = take();
  assert.deepEqual(next, (await c.policies.get(T, 'p')).rules, 'in the server\'s order');
  assert.equal(next.filter((r) => fresh.includes(r)).length, 999, 'every listed rule but the removed one is the same object');
});
