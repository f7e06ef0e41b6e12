import { test } from 'node:test';
import assert from 'node:assert/strict';
import { quotaDeltas, stampOwners } from './quota.js';

test('quotaDeltas: create charges the owner and each rule owner; delete refunds them; unowned pays nothing', () => {
  const p = { owner: 'ann', rules: [{ owner: 'ann' }, { owner: 'bob' }, {}] };
  assert.deepEqual([...quotaDeltas(undefined, p)], [['ann', { objects: 1, rules: 1 }], ['bob', { objects: 0, rules: 1 }]]);
  assert.deepEqual([...quotaDeltas(p, undefined)], [['ann', { objects: -1, rules: -1 }], ['bob', { objects: 0, rules: -1 }]]);
  assert.deepEqual([...quotaDeltas(p, { ...p, rules: [...p.rules, { owner: 'bob' }] })].filter(([, d]) => d.objects || d.rules), [['bob', { objects: 0, rules: 1 }]]);
});

test('stampOwners: creator owns a new object, kept rules keep their owner by id, new rules belong to the actor', () => {
  assert.deepEqual(stampOwners({ name: 'x', owner: 'forged' }, undefined, 'ann'), { name: 'x', owner: 'ann' });
  const before = { name: 'p', owner: 'ann', rules: [{ id: '1', owner: 'ann' }, { id: '2' }] };
  const after = stampOwners({ name: 'p', rules: [{ id: '2' }, { id: '3', owner: 'forged' }] }, before, 'bob');
  assert.deepEqual(after, { name: 'p', owner: 'ann', rules: [{ id: '2' }, { id: '3', owner: 'bob' }] });
  assert.deepEqual(stampOwners({ name: 'legacy' }, { name: 'legacy' }, 'bob'), { name: 'legacy' }, 'an unowned object stays unowned when edited');
});
