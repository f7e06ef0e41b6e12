import { test } from 'node:test';
import assert from 'node:assert/strict';
import { within } from './deadline.js';

test('within: a wait past its deadline fails naming what it waited for; one in time passes its value through', async () => {
  await assert.rejects(within(new Promise(() => undefined), 30, 'scale worker 7 to answer \'started\''), /gave up after 30 ms waiting for scale worker 7 to answer 'started'/);
  assert.equal(await within(Promise.resolve(5), 1000, 'five'), 5);
  await assert.rejects(within(Promise.reject(new Error('its own error')), 1000, 'x'), /its own error/);
});
