import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChangeEvent, Endpoint } from '../model/index.js';
import { DesiredState } from './state.js';

const ep = (revision: number, extra: Partial<Endpoint> = {}): Endpoint => ({
  revision, createdAt: '', updatedAt: '', id: 'aaaaaaaaaaaaaaaa', tenant: 't', network: 'n', ip: '10.0.0.2', prefixLength: 24, gateway: '10.0.0.1',
  mac: '02:00:00:00:00:02', mtu: 1450, vni: 1, host: 'h', ifname: 'eth0', containerId: 'c', labels: {}, state: 'created', ...extra,
});
const change = (op: 'put' | 'delete', revision: number, object?: Endpoint): ChangeEvent =>
  ({ revision, op, kind: 'endpoint', key: 'endpoints/aaaaaaaaaaaaaaaa', tenant: 't', object, actor: 'a', time: '' });

test('endpoint changes touch the datapath only when they can change it', () => {
  const s = new DesiredState();
  assert.deepEqual(s.apply(change('put', 5, ep(5))), { tenant: 't' }, 'a new endpoint');
  s.putEndpoint(ep(7));
  assert.equal(s.apply(change('put', 7, ep(7))), 'nothing', "the echo of the agent's own write");
  const v = s.version;
  assert.equal(s.apply(change('put', 8, ep(8, { containerName: 'db1', updatedAt: 'later' }))), 'nothing', 'a name only matters to DNS');
  assert.equal(s.endpoints.get('aaaaaaaaaaaaaaaa')?.containerName, 'db1', 'but it is recorded');
  assert.ok(s.version > v, 'and caches keyed on the version see it');
  assert.deepEqual(s.apply(change('put', 9, ep(9, { containerName: 'db1', labels: { tier: 'db' } }))), { tenant: 't' }, 'labels select service backends');
  assert.equal(s.apply(change('put', 4, ep(4))), 'nothing', 'an older change is ignored');
  assert.equal(s.endpoints.get('aaaaaaaaaaaaaaaa')?.revision, 9);
  assert.deepEqual(s.apply(change('delete', 10)), { tenant: 't' });
  assert.equal(s.endpoints.size, 0);
  assert.equal(s.apply(change('delete', 11)), 'nothing', 'the echo of a release the agent made itself');
});

test('NetworkPolicies and namespaces: kept by tenant/name, each change touches its tenant, and the host view carries them', () => {
  const s = new DesiredState();
  const spec = { podSelector: {}, policyTypes: ['Ingress' as const] };
  const put = (kind: string, key: string, revision: number, object?: unknown): ChangeEvent => ({ revision, op: object ? 'put' : 'delete', kind, key, tenant: 't', object, actor: 'a', time: '' });
  assert.deepEqual(s.apply(put('networkpolicy', 'networkpolicies/t/x.deny', 3, { revision: 3, tenant: 't', name: 'x.deny', namespace: 'x', policyName: 'deny', spec })), { tenant: 't' });
  assert.deepEqual(s.apply(put('namespace', 'namespaces/t/x', 4, { revision: 4, tenant: 't', name: 'x', labels: { team: 'a' } })), { tenant: 't' });
  const v = s.hostView('h', 'w');
  assert.deepEqual(v.networkPolicies?.map((p) => p.name), ['x.deny']);
  assert.deepEqual(v.namespaces?.map((n) => n.labels), [{ team: 'a' }]);
  assert.deepEqual(s.apply(put('networkpolicy', 'networkpolicies/t/x.deny', 5)), { tenant: 't' });
  assert.equal(s.networkPolicies.size, 0);
});
