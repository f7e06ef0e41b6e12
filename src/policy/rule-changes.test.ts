import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Policy, Rule } from '../model/index.js';
import { ruleChanges } from './incremental.js';

const meta = { revision: 1, createdAt: '', updatedAt: '' };
const rule = (n: number): Rule => ({ id: `r${n}`, direction: 'in', protocol: 'tcp', ports: String(1000 + n), priority: 5, action: 'allow', fromCidr: `10.0.${n >> 8}.${n & 255}/32` });
const policy = (rules: Rule[]): Policy => ({ ...meta, tenant: 't', name: 'p', rules });

/** The changes by id, the slow way: what ruleChanges must find, whatever way it walks. */
function expected(a: readonly Rule[], b: readonly Rule[]): string[] {
  const was = new Map(a.map((r) => [r.id, r]));
  const now = new Map(b.map((r) => [r.id, r]));
  const out: string[] = [];
  for (const [id, r] of now) { const o = was.get(id); if (!o || JSON.stringify(o) !== JSON.stringify(r)) out.push(`${id}:${o ? 'changed' : 'added'}`); }
  for (const id of was.keys()) if (!now.has(id)) out.push(`${id}:removed`);
  return out.sort();
}
const found = (cs: NonNullable<ReturnType<typeof ruleChanges>>) => cs.map((c) => `${(c.after ?? c.before)?.id}:${!c.before ? 'added' : !c.after ? 'removed' : 'changed'}`).sort();

test('rule changes found by walking two versions of a 2,000-rule policy: rules put in, taken out, changed and moved, each version from the last', () => {
  let seed = 7;
  const rnd = (n: number) => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed % n; };
  let p = policy(Array.from({ length: 2000 }, (_, i) => rule(i)));
  let next = 2000;
  for (let step = 0; step < 200; step++) {
    const rules = [...p.rules];
    for (let k = 1 + rnd(4); k > 0; k--) {
      const at = rnd(rules.length);
      const kind = rnd(4);
      if (kind === 0) rules.splice(at, 0, rule(next++));
      else if (kind === 1) rules.splice(at, 1);
      else if (kind === 2) rules[at] = { ...(rules[at] as Rule), priority: 1 + rnd(9) };
      else { const [r] = rules.splice(at, 1); rules.splice(rnd(rules.length), 0, r as Rule); }
    }
    const q = policy(rules);
    const got = ruleChanges(new Map([['p', p]]), new Map([['p', q]]));
    assert.ok(got, `step ${step}: a diff`);
    assert.deepEqual(found(got), expected(p.rules, q.rules), `step ${step}`);
    p = q;
  }
});

test('a rule put in with an id the policy already holds elsewhere, or a version holding one id twice: no diff (the compile is cold)', () => {
  const p = policy(Array.from({ length: 50 }, (_, i) => rule(i)));
  // Seen once, so its ids are known.
  assert.deepEqual(ruleChanges(new Map([['p', p]]), new Map([['p', policy([...p.rules.slice(0, 49), { ...rule(49), priority: 9 }])]])), [{ policy: 'p', before: p.rules[49], after: { ...rule(49), priority: 9 } }]);
  const p2 = policy([...p.rules]);
  const twice = policy([...p2.rules.slice(0, 10), { ...rule(30), ports: '9' }, ...p2.rules.slice(10)]);
  assert.equal(ruleChanges(new Map([['p', p2]]), new Map([['p', twice]])), undefined);
  const dup = policy([...p.rules, rule(3)]);
  assert.equal(ruleChanges(new Map([['p', dup]]), new Map([['p', policy([...dup.rules.slice(1)])]])), undefined);
});
