import { test } from 'node:test';
import assert from 'node:assert/strict';
import { podLabels } from './docker/network.js';

test('a Docker container\'s labels as an endpoint can carry them: label keys and values only, never runtime/network/group, a namespace only when it is one, at most 64', () => {
  assert.deepEqual(podLabels({ pod: 'a', app_name: 'web', 'com.example.vendor': 'ACME Inc', runtime: 'cni', network: 'n', group: 'g', namespace: 'x', '': 'v', 'x y': 'z' }),
    { app_name: 'web', namespace: 'x', pod: 'a' });
  assert.deepEqual(podLabels({ namespace: 'Shop.Prod' }), {});
  assert.equal(Object.keys(podLabels(Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`k${i}`, 'v'])))).length, 64);
});
