import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cniLabels } from './cni-host.js';

test("a CNI container's labels never say runtime (the Docker collector deletes endpoints labelled runtime=docker)", () => {
  assert.deepEqual(cniLabels({ app: 'web', runtime: 'docker', namespace: 'x' }), { app: 'web', namespace: 'x' });
  assert.deepEqual(cniLabels({}), {});
});
