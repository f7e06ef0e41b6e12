import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { RuleInput, RuleSegment } from '../model/index.js';
import { MemoryStore, type Store } from '../store/index.js';
import { rejectsWith } from './testing.js';
import { Control } from './control.js';
import { SEGMENT_RULES } from './segments.js';

const T = 'default';
const many = { quota: { objects: 1000, rules: 1_000_000 } };
const rule = (id: string, port = 80): RuleInput => ({ id, protocol: 'tcp', ports: String(port), fromCidr: '10.1.2.3/32' });
const rules = (n: number, at = 0) => Array.from({ length: n }, (_, i) => rule(`r${at + i}`, 1000 + ((at + i) % 60000)));

async function fresh(store: Store = new MemoryStore()): Promise<Control> {
  const c = new Control(store, undefined, many);
  await c.bootstrap();
  return c;
}

/** Bytes the change log took for the newest revision (each change's key and JSON value, as the stores count them). */
async function lastChangeBytes(s: Store): Promise<number> {
  const rev = await s.revision();
  const cs = (await s.changes(rev - 1)).filter((c) => c.revision === rev);
  return cs.reduce((n, c) => n + Buffer.byteLength(c.key) + Buffer.byteLength(JSON.stringify(c.value)), 0);
}

test('a rule add, change and delete log the same bytes at rule 10 and at rule 100,000', async () => {
  const c = await fresh();
  await c.policies.create('u', T, { name: 'small', rules: rules(10) });
  await c.policies.create('u', T, { name: 'big', rules: rules(100_000) });
  const cost = async (policy: string) => {
    const out: number[] = [];
    await c.rules.add('u', T, policy, rule('x1'));
    out.push(await lastChangeBytes(c.store));
    await c.rules.replace('u', T, policy, 'x1', rule('x1', 81));
    out.push(await lastChangeBytes(c.store));
    await c.rules.remove('u', T, policy, 'x1');
    out.push(await lastChangeBytes(c.store));
    return out;
  };
  const small = await cost('small');
  const big = await cost('big');
  console.log(`# bytes logged for add / change / delete: ${small.join(' / ')} at 10 rules, ${big.join(' / ')} at 100,000`);
  // The only difference is the head's counters (10 against 100,000 rules: a few digits).
  for (const [i, op] of ['add', 'change', 'delete'].entries()) {
    assert.ok(Math.abs((big[i] ?? 0) - (small[i] ?? 0)) <= 16, `${op}: ${big[i]} bytes at 100,000 rules, ${small[i]} at 10`);
    assert.ok((big[i] ?? Infinity) < 1000, `${op}: ${big[i]} bytes`);
  }
  // A rule inside a bulk-written segment rewrites that segment (split past the bound): bounded, not the policy.
  const oneRule = Buffer.byteLength(JSON.stringify({ ...rule('r12345'), priority: 1, direction: 'in', action: 'allow', owner: 'u', pos: 99999 }));
  const bound = (SEGMENT_RULES + 1) * oneRule + 1000;
  for (const id of ['r5000a', 'r7b', 'r77777a']) {
    await c.rules.add('u', T, 'big', rule(id));
    assert.ok(await lastChangeBytes(c.store) <= bound, `insert ${id}: ${await lastChangeBytes(c.store)} > ${bound}`);
    await c.rules.replace('u', T, 'big', 'r7', rule('r7', 9));
    assert.ok(await lastChangeBytes(c.store) <= bound);
    await c.rules.remove('u', T, 'big', id);
    assert.ok(await lastChangeBytes(c.store) <= bound);
  }
  const p = await c.policies.get(T, 'big');
  assert.equal(p.rules.length, 100_000);
  assert.deepEqual([p.rules[0]?.id, p.rules[7]?.ports, p.rules[99_999]?.id], ['r0', '9', 'r99999']);
});

/** A tiny deterministic shuffle, so a failure replays. */
function shuffled<T>(xs: T[], seed = 7): T[] {
  const out = [...xs];
  let s = seed;
  for (let i = out.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) % 2147483648;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

test('rules keep their order through bulk writes, adds inside and outside segment spans, splits, changes and deletes', async () => {
  const c = await fresh();
  const ids = shuffled(Array.from({ length: 300 }, (_, i) => `a${String(i).padStart(3, '0')}`));
  await c.policies.create('ann', T, { name: 'p', rules: ids.map((id) => rule(id)) });
  const want = [...ids];
  // Inside the spans of the bulk segments (a0005x sorts between a000 and a001...), past the end, before the start.
  for (let i = 0; i < 200; i++) {
    const id = i % 3 === 0 ? `z${i}` : i % 3 === 1 ? `a${String(i % 300).padStart(3, '0')}x` : `0${i}`;
    await c.rules.add('bob', T, 'p', rule(id, i + 1));
    want.push(id);
  }
  for (const id of shuffled(want, 3).slice(0, 120)) {
    await c.rules.remove('ann', T, 'p', id);
    want.splice(want.indexOf(id), 1);
  }
  const changed = want[17] ?? '';
  await c.rules.replace('carl', T, 'p', changed, rule(changed, 4242));
  const p = await c.policies.get(T, 'p');
  assert.deepEqual(p.rules.map((r) => r.id), want, 'the policy lists its rules in the order given and added');
  assert.deepEqual(p.rules.find((r) => r.id === changed), { ...rule(changed, 4242), priority: 1, direction: 'in', action: 'allow', owner: ids.includes(changed) ? 'ann' : 'bob' },
    'a changed rule keeps its place and its owner');
  assert.deepEqual((await c.rules.list(T, 'p')).items, p.rules);
  for (const id of [want[0], want[150], want[want.length - 1]]) {
    const one = await c.rules.get(T, 'p', id ?? '');
    assert.deepEqual(one, { ...p.rules.find((r) => r.id === id), revision: p.revision });
  }
  const segs = (await c.store.list('rules/')).entries.map((e) => e.value as RuleSegment);
  assert.ok(segs.every((s) => s.rules.length >= 1 && s.rules.length <= SEGMENT_RULES), 'every segment within the bound');
  assert.equal(segs.reduce((n, s) => n + s.rules.length, 0), want.length);
  const used = await c.quota.view(c.store, 'ann');
  assert.equal(used.used.rules + (await c.quota.view(c.store, 'bob')).used.rules, want.length, 'quotas count exactly the rules there are');
});

test('rule errors and If-Match: the policy revision moves with every rule change; a stale one is refused and changes nothing', async () => {
  const c = await fresh();
  await c.policies.create('u', T, { name: 'p', rules: rules(3) });
  const r0 = (await c.policies.get(T, 'p')).revision;
  const added = await c.rules.add('u', T, 'p', rule('n1'), r0);
  assert.equal((await c.policies.get(T, 'p')).revision, added.revision);
  const rev = await c.store.revision();
  await rejectsWith(c.rules.add('u', T, 'p', rule('n2'), r0), 'WEFT_STALE_REVISION', /policy default\/p is at revision/);
  await rejectsWith(c.rules.add('u', T, 'p', rule('r1')), 'WEFT_EXISTS', /rule r1 already exists in policy default\/p/, 'id');
  await rejectsWith(c.rules.replace('u', T, 'p', 'nope', rule('nope')), 'WEFT_NOT_FOUND', /rule nope of policy default\/p/);
  await rejectsWith(c.rules.remove('u', T, 'p', 'r1a'), 'WEFT_NOT_FOUND', /rule r1a of policy default\/p/);
  await rejectsWith(c.rules.get(T, 'p', 'r1a'), 'WEFT_NOT_FOUND', /rule r1a/);
  await rejectsWith(c.rules.add('u', T, 'ghost', rule('x')), 'WEFT_NOT_FOUND', /policy default\/ghost/);
  assert.equal(await c.store.revision(), rev, 'nothing was written');
  await c.rules.remove('u', T, 'p', 'r1', added.revision);
  assert.deepEqual((await c.policies.get(T, 'p')).rules.map((r) => r.id), ['r0', 'r2', 'n1']);
});

test('a bulk replace is one revision: the old generation deleted whole, the new one written, the head last', async () => {
  const c = await fresh();
  await c.policies.create('u', T, { name: 'p', rules: rules(300) });
  for (let i = 0; i < 50; i++) await c.rules.add('u', T, 'p', rule(`z${i}`));
  const before = await c.store.revision();
  await c.policies.replace('u', T, 'p', { name: 'p', rules: rules(200, 1000) });
  assert.equal(await c.store.revision(), before + 1);
  const cs = await c.store.changes(before);
  const ops = cs.map((x) => `${x.op} ${x.key.split('/')[0]}`);
  assert.deepEqual([...new Set(ops)], ['delete rules', 'put quota', 'put rules', 'put policies'], 'deletes first, head last');
  assert.equal(cs.filter((x) => x.op === 'delete').length, 3 + 50, '3 bulk segments and 50 one-rule segments');
  assert.ok(cs.filter((x) => x.op === 'put' && x.key.startsWith('rules/')).every((x) => x.key.startsWith('rules/default/p/2/')), 'a new generation');
  assert.deepEqual((await c.policies.get(T, 'p')).rules.map((r) => r.id), rules(200, 1000).map((r) => r.id));
  assert.equal((await c.quota.view(c.store, 'u')).used.rules, 200);
  await c.policies.remove('u', T, 'p');
  assert.deepEqual((await c.store.list('rules/')).entries, [], 'a deleted policy leaves no segment');
  assert.equal((await c.quota.view(c.store, 'u')).used.rules, 0);
});

test('a group named by rules in segments cannot be deleted; the refusal names policy and rule', async () => {
  const c = await fresh();
  await c.networks.create('u', T, { name: 'net', subnet: '10.0.0.0/24' });
  await c.groups.create('u', T, { name: 'web', network: 'net' });
  await c.policies.create('u', T, { name: 'p', rules: rules(200) });
  await c.rules.add('u', T, 'p', { id: 'r150a', fromGroup: 'web' });
  await rejectsWith(c.groups.remove('u', T, 'web'), 'WEFT_IN_USE', /policy default\/p rule r150a/);
  await c.rules.remove('u', T, 'p', 'r150a');
  await c.groups.remove('u', T, 'web');
});

test('a rule change to a policy still in the old layout migrates it in the same transaction, its head still last', async () => {
  const store = new MemoryStore();
  const c = await fresh(store);
  const at = '2024-01-01T00:00:00.000Z';
  const old = rules(3).map((r) => ({ ...r, priority: 1, direction: 'in', action: 'allow' }));
  await store.transact('old', async (tx) => tx.put('policies/default/legacy', { tenant: T, name: 'legacy', rules: old, createdAt: at, updatedAt: at }));
  const before = await store.revision();
  await c.rules.add('u', T, 'legacy', rule('n'));
  const cs = await store.changes(before);
  assert.equal(cs[cs.length - 1]?.key, 'policies/default/legacy', 'the head comes last');
  assert.equal(cs.filter((x) => x.key === 'policies/default/legacy').length, 1);
  assert.deepEqual((await c.policies.get(T, 'legacy')).rules.map((r) => r.id), ['r0', 'r1', 'r2', 'n']);
});
