import { test } from 'node:test';
import assert from 'node:assert/strict';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Attached } from './attached.js';

v8.setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

test('a value attached to an object is found on that object only, and invisible to JSON, deepEqual, spread and keys', () => {
  const a = new Attached<object, number[]>('a');
  const b = new Attached<object, number[]>('b');
  const x = { name: 'x', rules: [1, 2] };
  const y = { name: 'x', rules: [1, 2] };
  assert.equal(a.get(x), undefined);
  assert.equal(a.has(x), false);
  a.set(x, [7]);
  b.set(x, [8]);
  assert.deepEqual(a.get(x), [7]);
  assert.deepEqual(b.get(x), [8], 'two attachments to one object are apart');
  assert.equal(a.get(y), undefined, 'an equal object is another key');
  assert.deepEqual(x, y, 'deepEqual ignores it');
  assert.equal(JSON.stringify(x), JSON.stringify(y));
  assert.deepEqual(Object.keys(x), ['name', 'rules']);
  assert.equal(a.get({ ...x }), undefined, 'a spread copy does not carry it');
  assert.equal(a.get(structuredClone(x)), undefined, 'nor a structured clone');
  a.set(x, [9]);
  assert.deepEqual(a.get(x), [9], 'set again replaces');
  assert.equal(a.delete(x), true);
  assert.equal(a.delete(x), false);
  assert.equal(a.get(x), undefined);
  assert.deepEqual(b.get(x), [8], 'deleting one leaves the other');
  const arr = ['l1', 'l2'];
  a.set(arr, [1]);
  assert.deepEqual([...arr], ['l1', 'l2'], 'an array keeps its elements and length');
  assert.equal(arr.length, 2);
  assert.deepEqual(a.get(arr), [1]);
});

test('an attached value is collected with its object, like a WeakMap entry', async () => {
  const a = new Attached<object, object>('big');
  let owner: object | undefined = {};
  const value = new WeakRef(new Uint8Array(1 << 20));
  a.set(owner, value.deref() as object);
  const kept = {};
  const keptValue = new WeakRef(new Uint8Array(1 << 20));
  a.set(kept, keptValue.deref() as object);
  owner = undefined;
  for (let i = 0; i < 5 && value.deref(); i++) {
    await new Promise((r) => setImmediate(r));
    gc();
  }
  assert.equal(value.deref(), undefined, 'gone with its object');
  assert.ok(keptValue.deref() && a.get(kept) === keptValue.deref(), 'kept while its object lives');
});
