import { test } from 'node:test';
import assert from 'node:assert/strict';
import { endpointId } from './ids.js';

test('an endpoint id is the first 16 hex digits of SHA-256 of "container/ifname": the same across versions (stored ids, agents of older builds)', () => {
  // sha256("c1/eth0"), from coreutils' sha256sum.
  assert.equal(endpointId('c1', 'eth0'), 'd72e032fedd94c16');
  assert.match(endpointId('x'.repeat(200), 'net1'), /^[0-9a-f]{16}$/);
  assert.notEqual(endpointId('c1', 'eth1'), endpointId('c1', 'eth0'));
});
