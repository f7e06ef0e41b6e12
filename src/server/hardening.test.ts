import { test } from 'node:test';
import assert from 'node:assert/strict';
import { testApi } from './testkit.js';

test('a login flood gets 429 at once beyond --max-logins instead of queueing behind scrypt', async () => {
  const api = await testApi({ limits: { maxLogins: 2 } });
  assert.equal((await api.call('POST', '/api/v1/users', { name: 'bob', role: 'ops', password: 'bob-password-1' })).status, 201);
  const answers = await Promise.all(Array.from({ length: 12 }, (_, i) =>
    api.call('POST', '/api/v1/login', { username: 'bob', password: i % 2 ? 'bob-password-1' : 'wrong-password' }, {}, '')));
  const by = (s: number) => answers.filter((a) => a.status === s);
  assert.ok(by(429).length >= 1, 'some were turned away');
  assert.ok(by(429).every((a) => a.json.code === 'WEFT_TOO_MANY_LOGINS' && /--max-logins 2/.test(a.json.detail)));
  assert.ok(by(200).length + by(401).length >= 2, 'as many as allowed were checked');
  assert.equal(answers.length, by(200).length + by(401).length + by(429).length);
  // Once the flood is over, logins work again.
  assert.equal((await api.call('POST', '/api/v1/login', { username: 'bob', password: 'bob-password-1' }, {}, '')).status, 200);
});
