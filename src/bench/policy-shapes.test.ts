import { test } from 'node:test';
import assert from 'node:assert/strict';
import { explainFlow, type PolicyState } from '../policy/index.js';
import { ips, shapeState } from './policy-compile.js';
import { SHAPES, makeShape } from './policy-shapes.js';

function state(name: (typeof SHAPES)[number], n: number): PolicyState & { depth: Map<string, number> } {
  const shape = makeShape(name, n, ips);
  const depth = new Map(shape.policies.flatMap((p) => p.rules).map((r, i) => [r.id, i]));
  return { ...shapeState(name, n), depth };
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
