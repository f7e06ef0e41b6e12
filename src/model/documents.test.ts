import { test } from 'node:test';
import assert from 'node:assert/strict';
import { documentOf } from './documents.js';

test('documentOf: the spec is what the kind\'s create takes (server-chosen values kept), bookkeeping left out', () => {
  const net = { tenant: 'shop', name: 'front', subnet: '10.20.0.0/24', gateway: '10.20.0.1', encap: 'vxlan', vni: 10001, mtu: 1390, encrypt: true, revision: 7, createdAt: 'x', updatedAt: 'y', owner: 'alice' };
  assert.deepEqual(documentOf('Network', net), {
    apiVersion: 'weft/v1', kind: 'Network', metadata: { name: 'front', tenant: 'shop' },
    spec: { subnet: '10.20.0.0/24', gateway: '10.20.0.1', encap: 'vxlan', vni: 10001, mtu: 1390, encrypt: true },
  });
  const policy = { tenant: 'shop', name: 'p', gen: 3, owner: 'alice', rules: [{ id: 'r', priority: 1, direction: 'in', action: 'allow', protocol: 'tcp', ports: '80', owner: 'bob', pos: 0 }] };
  assert.deepEqual(documentOf('Policy', policy).spec, { rules: [{ id: 'r', priority: 1, direction: 'in', action: 'allow', protocol: 'tcp', ports: '80' }] });
  const group = { tenant: 'shop', name: 'web', network: 'front', policies: ['p'], labels: { tier: 'web', 'app.kubernetes.io/name': 'x' }, netprofile: '' };
  assert.deepEqual(documentOf('Group', group).spec, { network: 'front', policies: ['p'], labels: { tier: 'web', 'app.kubernetes.io/name': 'x' }, netprofile: '' });
  const tenant = { name: 'shop', id: 3, defaultAction: 'deny', tenant: 'ignored' };
  assert.deepEqual(documentOf('Tenant', tenant), { apiVersion: 'weft/v1', kind: 'Tenant', metadata: { name: 'shop' }, spec: { defaultAction: 'deny' } });
});
