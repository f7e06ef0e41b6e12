import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatIp, type Endpoint, type Rule } from '../model/index.js';
import { CidrAliases } from './aliases.js';
import { compilePolicy, explainFlow, lookupVerdict, type PolicyState } from './index.js';

const meta = { revision: 1, createdAt: '', updatedAt: '' };
const rule = (id: string, cidr: string, more: Partial<Rule> = {}): Rule =>
  ({ id, direction: 'in', protocol: 'tcp', ports: '5432', priority: 5, action: 'allow', fromCidr: cidr, ...more });

test('CIDRs whose rules say the same share a name; one that differs, an IPv6 CIDR, a NetworkPolicy block keep their own', () => {
  const rules = [rule('a', '10.0.0.1/32'), rule('b', '10.0.0.2/32'), rule('c', '10.0.0.3/32', { ports: '5433' }), rule('d', 'fd00::1/128'), rule('e', 'fd00::2/128'), rule('f', '10.0.0.9/32'), rule('g', '10.0.0.8/32', { fromGroup: 'x' })];
  const a = CidrAliases.of([{ name: 'p', rules }], new Set(['10.0.0.9/32']));
  const one = a.name('10.0.0.1/32');
  assert.match(one, /^~/);
  assert.equal(a.name('10.0.0.2/32'), one);
  assert.equal(a.name('10.0.0.3/32'), '10.0.0.3/32', 'other ports: its own name');
  assert.equal(a.name('fd00::1/128'), 'fd00::1/128', 'IPv6: its own name');
  assert.equal(a.name('10.0.0.9/32'), '10.0.0.9/32', 'a NetworkPolicy block: its own name');
  assert.equal(a.name('10.0.0.8/32'), '10.0.0.8/32', 'named beside a group peer: decides nothing');
  // The same rules in another policy (held by other groups) are not the same.
  const b = CidrAliases.of([{ name: 'p', rules: [rules[0] as Rule] }, { name: 'q', rules: [rules[1] as Rule] }], new Set());
  assert.equal(b.name('10.0.0.1/32'), '10.0.0.1/32');
});

test('a rule change renames the CIDRs it moves, and the last other member of a set that falls to one, with their old names', () => {
  const rules = [rule('a', '10.0.0.1/32'), rule('b', '10.0.0.2/32'), rule('c', '10.0.0.3/32', { ports: '80' })];
  const a = CidrAliases.of([{ name: 'p', rules }], new Set());
  const set = a.name('10.0.0.1/32');
  // b leaves a's set for c's words: a is its own again (a set of one), b and c make a new set.
  const b2 = rule('b', '10.0.0.2/32', { ports: '80' });
  const out = a.change([['p', rules[1] as Rule, -1], ['p', b2, 1]]);
  assert.deepEqual(new Map([...out].sort()), new Map([['10.0.0.1/32', set], ['10.0.0.2/32', set], ['10.0.0.3/32', '10.0.0.3/32']]));
  const joined = a.name('10.0.0.2/32');
  assert.match(joined, /^~/);
  assert.equal(a.name('10.0.0.3/32'), joined);
  assert.equal(a.name('10.0.0.1/32'), '10.0.0.1/32');
  // A third member joins a set of two: only it is renamed.
  const d = rule('d', '10.0.0.4/32', { ports: '80' });
  assert.deepEqual([...a.change([['p', d, 1]])], [['10.0.0.4/32', '10.0.0.4/32']]);
  assert.equal(a.name('10.0.0.4/32'), joined);
});

/** Group `db` of n endpoints on one host, each allowed in by its own /32 (alike, or each its own port), and `app` allowed on 80. */
function perEndpoint(n: number, ownPorts: boolean): PolicyState {
  const eps: Endpoint[] = Array.from({ length: n }, (_, i) => {
    const ip = formatIp(0x0a010002 + i);
    return { ...meta, id: ip, tenant: 't', network: 'n', group: i % 10 === 0 ? 'app' : 'db', ip, prefixLength: 16, gateway: '', mac: '', mtu: 1450, vni: 1, host: 'h1', ifname: 'eth0', containerId: ip, labels: {}, state: 'created' };
  });
  const rules: Rule[] = eps.filter((e) => e.group === 'db').map((e, i) => rule(`r${i}`, `${e.ip}/32`, ownPorts ? { ports: String(1000 + i) } : {}));
  rules.push({ id: 'out', direction: 'out', protocol: 'any', priority: 1, action: 'allow' }, { id: 'web', direction: 'in', protocol: 'tcp', ports: '80', priority: 3, action: 'allow', fromGroup: 'app' });
  return {
    tenant: { ...meta, name: 't', id: 1, defaultAction: 'deny' }, host: 'h1',
    networks: [{ ...meta, tenant: 't', name: 'n', subnet: '10.1.0.0/16', gateway: '', encap: 'vxlan', vni: 1, mtu: 1450 }],
    groups: [{ ...meta, tenant: 't', name: 'db', network: 'n', labels: {}, policies: ['p'] }, { ...meta, tenant: 't', name: 'app', network: 'n', labels: {}, policies: ['p'] }],
    policies: [{ ...meta, tenant: 't', name: 'p', rules }], endpoints: eps,
  };
}

/** Flows between a sample of the endpoints: the compile decides each as explain does. */
function assertAgrees(s: PolicyState, c: ReturnType<typeof compilePolicy>, at: string): void {
  const ips = s.endpoints.filter((_, i) => i % 37 < 3 || i === 4).map((e) => e.ip as string);
  for (const a of ips) for (const b of ips) {
    if (a === b) continue;
    for (const port of [80, 5432, 5433]) {
      const want = explainFlow(s, a, b, 'tcp', port).allowed;
      const got = lookupVerdict(c, c.classification.byIp(a).id, c.classification.byIp(b).id, 6, port) !== 'drop';
      assert.equal(got, want, `${at}: ${a} -> ${b} tcp/${port}`);
    }
  }
}

test('400 endpoints each allowed in by its own /32 with alike rules: a handful of classes and pairs, not 400 x 400; a rule changed splits one CIDR off, incrementally', () => {
  const s = perEndpoint(400, false);
  const c = compilePolicy(s);
  // Before: 363 classes and 131,769 pairs (one class per /32, every pair of them decided).
  assert.ok(c.classification.classes.length <= 6, `${c.classification.classes.length} classes`);
  assert.ok(c.pairs.length <= 8, `${c.pairs.length} pairs`);
  assertAgrees(s, c, 'cold');
  const p = s.policies[0] as PolicyState['policies'][number];
  const edited: PolicyState = { ...s, policies: [{ ...p, revision: 2, rules: p.rules.map((r) => (r.id === 'r3' ? { ...r, ports: '5433' } : r)) }] };
  const inc = compilePolicy({ ...edited, previous: c });
  assert.equal(inc.how, 'incremental');
  assert.ok(inc.classification.classes.length <= 8 && inc.pairs.length <= 16, `${inc.classification.classes.length} classes, ${inc.pairs.length} pairs`);
  assertAgrees(edited, inc, 'r3 on 5433');
  const r3 = formatIp(0x0a010002 + 4); // the fourth db endpoint (index 4: index 0 is app)
  assert.equal(explainFlow(edited, r3, formatIp(0x0a010002 + 5), 'tcp', 5433).allowed, true);
});
