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

test('the host view is one object while the state stands still, and a new one after any change (the planner indexes it once)', () => {
  const s = new DesiredState();
  const put = (kind: string, key: string, revision: number, object: unknown): ChangeEvent => ({ revision, op: 'put', kind, key, tenant: 't', object, actor: 'a', time: '' });
  const v0 = s.hostView('h', 'w', '192.0.2.1');
  assert.equal(s.hostView('h', 'w', '192.0.2.1'), v0, 'nothing changed: the same view');
  assert.notEqual(s.hostView('h2', 'w', '192.0.2.1'), v0, 'another host, another view');
  type View = ReturnType<DesiredState['hostView']>;
  const seen: Array<[string, View, (v: View) => unknown, unknown]> = [];
  const step = (what: string, act: () => void, read: (v: View) => unknown, want: unknown) => {
    const before = s.hostView('h', 'w', '192.0.2.1');
    seen.push([what, before, read, structuredClone(read(before))]);
    act();
    const after = s.hostView('h', 'w', '192.0.2.1');
    assert.notEqual(after, before, `${what}: a new view`);
    assert.deepEqual(read(after), want, what);
  };
  step('a tenant', () => s.apply(put('tenant', 'tenants/t', 2, { name: 't', id: 1 })), (v) => v.tenants.map((t) => t.name), ['t']);
  step('a network', () => s.apply(put('network', 'networks/t/n', 3, { tenant: 't', name: 'n', vni: 7 })), (v) => v.networks.map((n) => n.vni), [7]);
  step('an endpoint by the watch', () => s.apply(change('put', 4, ep(4))), (v) => v.endpoints.map((e) => e.revision), [4]);
  step("the agent's own write", () => s.putEndpoint(ep(6, { ip: '10.0.0.9' })), (v) => v.endpoints.map((e) => e.ip), ['10.0.0.9']);
  step('a host', () => s.apply(put('host', 'hosts/h2', 7, { name: 'h2', vtepIp: '192.0.2.2' })), (v) => v.hosts?.map((h) => h.vtepIp), ['192.0.2.2']);
  step('the global settings', () => s.apply(put('global', 'global', 8, { arpMode: 'flood' })), (v) => v.arpMode, 'flood');
  step('a release', () => s.dropEndpoint('aaaaaaaaaaaaaaaa'), (v) => v.endpoints.length, 0);
  // Each earlier view still says what it said: views are never changed in place.
  for (const [what, view, read, was] of seen) assert.deepEqual(read(view), was, `the view before ${what}`);
});
