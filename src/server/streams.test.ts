import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Change } from '../store/index.js';
import type { Principal } from '../control/index.js';
import { Streams } from './streams.js';

const change = (key: string): Change => ({ key, op: 'put', value: {}, revision: 1, actor: 'x', time: '' } as unknown as Change);

test('a change re-authenticates only the streams whose credential it touches; a failed one ends', async () => {
  const s = new Streams();
  const checked: string[] = [];
  const ended: string[] = [];
  const open = (name: string, p: Principal, valid = true) => s.add({ principal: p, stillValid: async () => { checked.push(name); return valid; }, end: () => ended.push(name) });
  open('bob-1', { user: 'bob', role: 'ops', tenants: [], credential: 'aaaaaaaaaaaaaaaa' });
  open('bob-2', { user: 'bob', role: 'ops', tenants: [], credential: 'bbbbbbbbbbbbbbbb' }, false);
  open('carol', { user: 'carol', role: 'ops', tenants: [], credential: 'cccccccccccccccc' });
  open('host', { user: 'host:n1', role: 'host', tenants: [], credential: 'cert:01', host: 'n1' });
  const run = async (keys: string[]) => {
    checked.length = 0;
    s.onChanges(keys.map(change));
    await new Promise((r) => setImmediate(r));
    return [...checked].sort();
  };
  // A new token of bob's (or anyone's), its index entry, an endpoint: nobody's credential.
  assert.deepEqual(await run([`tokens/${'d'.repeat(64)}`, 'usertokens/bob/x', 'endpoints/e1']), []);
  assert.deepEqual(await run([`tokens/${'a'.repeat(64)}`]), ['bob-1']);
  assert.deepEqual(await run(['users/carol']), ['carol']);
  assert.deepEqual(await run(['hostids/n1']), ['host']);
  assert.deepEqual(await run(['users/bob']), ['bob-1', 'bob-2']);
  assert.deepEqual(ended, ['bob-2']);
  assert.equal(s.size, 3);
  assert.deepEqual(await run(['users/bob']), ['bob-1'], 'an ended stream is checked no more');
});
