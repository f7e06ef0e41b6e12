import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Endpoint, Group, Network, Policy, Tenant } from '../model/index.js';
import { explainFlow, type PolicyState } from '../policy/index.js';
import { BASE_RULES, SHAPES, makeShape } from './policy-shapes.js';

const meta = { revision: 1, createdAt: '', updatedAt: '' };
const ips = { app: '10.40.0.3', db: '10.40.0.2' };

function state(name: (typeof SHAPES)[number], n: number): PolicyState & { depth: Map<string, number> } {
  const shape = makeShape(name, n, ips);
  const policies: Policy[] = [{ ...meta, tenant: 't', name: 'base', rules: BASE_RULES }, ...shape.policies.map((p) => ({ ...meta, tenant: 't', ...p }))];
  const attach = (g: 'db' | 'app') => [...(g === 'db' ? ['base'] : []), ...(shape.groups.includes(g) ? shape.policies.map((p) => p.name) : [])];
  const group = (g: 'db' | 'app'): Group => ({ ...meta, tenant: 't', name: g, network: 'bench', policies: attach(g), labels: {} });
  const ep = (g: 'db' | 'app'): Endpoint => ({ ...meta, id: g, tenant: 't', network: 'bench', group: g, ip: ips[g], prefixLength: 16, gateway: '10.40.0.1',
    mac: '', mtu: 1450, vni: 1, host: 'h', ifname: 'eth0', containerId: g, labels: {}, state: 'created' });
  const tenant: Tenant = { ...meta, name: 't', id: 1, defaultAction: 'allow' };
  const networks: Network[] = [{ ...meta, tenant: 't', name: 'bench', subnet: '10.40.0.0/16', gateway: '10.40.0.1', encap: 'vxlan', vni: 1, mtu: 1450 }];
  const depth = new Map(shape.policies.flatMap((p) => p.rules).map((r, i) => [r.id, i]));
  return { tenant, networks, groups: [group('db'), group('app')], policies, endpoints: [ep('db'), ep('app')], depth };
}

test('every shape has n rules, and a rule deep in the set decides each measured flow (explain agrees)', () => {
  for (const name of SHAPES) {
    for (const n of [2000, 10000]) {
      const s = state(name, n);
      const shape = makeShape(name, n, ips);
      assert.equal(shape.policies.reduce((k, p) => k + p.rules.length, 0), n, `${name}: ${n} rules`);
      assert.equal(new Set(shape.policies.flatMap((p) => p.rules.map((r) => r.id))).size, n, `${name}: rule ids are unique`);
      for (const f of shape.flows) {
        const e = explainFlow(s, ips.app, ips.db, 'tcp', f.port);
        assert.equal(e.allowed, f.allowed, `${name}/${n}: tcp ${f.port}`);
        assert.equal(e.ingress?.by?.rule.id, f.ingress, `${name}/${n}: ingress of tcp ${f.port}`);
        assert.equal(e.egress?.by?.rule.id, f.egress, `${name}/${n}: egress of tcp ${f.port}`);
        for (const id of [f.ingress, f.egress]) {
          if (id === undefined || id.startsWith('deny-tcp')) continue;
          assert.ok((s.depth.get(id) as number) > n / 3, `${name}/${n}: ${id} sits deep in the set (at ${s.depth.get(id)})`);
        }
      }
    }
  }
});
