import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dualStackRefusal, parseDualStackRefusal } from './docker-refusals.js';

test('the dual-stack refusal reads back as the network it names, also inside the text dockerd wraps it in', () => {
  const text = dualStackRefusal('blue', 'web-1', 'fd00:1::/64');
  assert.deepEqual(parseDualStackRefusal(text), { tenant: 'blue', network: 'web-1' });
  assert.deepEqual(parseDualStackRefusal(`failed to create network x: NetworkDriver.CreateNetwork: ${text}`), { tenant: 'blue', network: 'web-1' });
});

test('anything else, or a refusal naming no valid network, reads as none', () => {
  assert.equal(parseDualStackRefusal('network blue/web is IPv4 only'), undefined);
  assert.equal(parseDualStackRefusal(''), undefined);
  assert.equal(parseDualStackRefusal('network Blue/web is dual-stack (subnet6 fd00::/64)'), undefined);
  assert.equal(parseDualStackRefusal(`network blue/${'a'.repeat(64)} is dual-stack (subnet6 fd00::/64)`), undefined);
  assert.equal(parseDualStackRefusal('network blue/we.b is dual-stack (subnet6 fd00::/64)'), undefined);
});
