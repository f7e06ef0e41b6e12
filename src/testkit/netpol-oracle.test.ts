import { test } from 'node:test';
import assert from 'node:assert/strict';
import { policyTypesOf, selectorMatches, type NetpolProtocol, type NetworkPolicy } from '../model/index.js';
import { netpolVerdict, type OracleNamespace, type OraclePod } from './netpol-oracle.js';

// The upstream truth-table world: namespaces x, y, z (labelled ns=NAME), pods a, b, c in each (pod=NAME),
// each serving TCP and UDP on 80 and 81 under the upstream port names.
const NS = ['x', 'y', 'z'];
const PODS = ['a', 'b', 'c'];
const namespaces: OracleNamespace[] = NS.map((n) => ({ name: n, labels: { ns: n } }));
const ports = Object.fromEntries(([80, 81] as const).flatMap((p) => (['TCP', 'UDP'] as const).map((pr) => [`serve-${p}-${pr.toLowerCase()}`, { port: p, protocol: pr }])));
const pods: OraclePod[] = NS.flatMap((n, i) => PODS.map((p, j) => ({ namespace: n, name: p, labels: { pod: p }, ip: `10.0.${i}.${j + 1}`, ports })));
const pod = (id: string) => {
  const found = pods.find((p) => `${p.namespace}/${p.name}` === id);
  if (!found) throw new Error(id);
  return { pod: found };
};
const np = (namespace: string, name: string, spec: NetworkPolicy['spec']): NetworkPolicy => ({ namespace, name, spec });

/** The ordered pairs (`x/a>y/b`) allowed for one protocol and port. */
function allowed(policies: NetworkPolicy[], protocol: NetpolProtocol = 'TCP', port = 80): Set<string> {
  const out = new Set<string>();
  for (const s of pods) for (const d of pods) {
    if (s === d) continue;
    if (netpolVerdict(policies, namespaces, { pod: s }, { pod: d }, protocol, port).allowed) out.add(`${s.namespace}/${s.name}>${d.namespace}/${d.name}`);
  }
  return out;
}
const all = allowed([]);
/** Every pair except those into (or out of) the given pods. */
const allBut = (pred: (from: string, to: string) => boolean) => new Set([...all].filter((k) => { const [f = '', t = ''] = k.split('>'); return !pred(f, t); }));

test('oracle: no policy allows everything, and no direction is isolated', () => {
  assert.equal(all.size, 72);
  assert.deepEqual(netpolVerdict([], namespaces, pod('x/a'), pod('y/b'), 'TCP', 80), { egress: 'not-isolated', ingress: 'not-isolated', allowed: true });
});

test('oracle: deny all ingress in x (empty podSelector, no rules); egress from x untouched', () => {
  const p = [np('x', 'deny', { podSelector: {}, policyTypes: ['Ingress'] })];
  assert.deepEqual(allowed(p), allBut((_, t) => t.startsWith('x/')));
  assert.equal(netpolVerdict(p, namespaces, pod('x/a'), pod('y/a'), 'TCP', 80).egress, 'not-isolated');
});

test('oracle: allow from the same namespace; from a namespace by label', () => {
  const same = [np('x', 'same', { podSelector: {}, ingress: [{ from: [{ podSelector: {} }] }] })];
  assert.deepEqual(allowed(same), allBut((f, t) => t.startsWith('x/') && !f.startsWith('x/')));
  const fromY = [np('x', 'from-y', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }] }] })];
  assert.deepEqual(allowed(fromY), allBut((f, t) => t === 'x/a' && !f.startsWith('y/')));
  const byName = [np('x', 'by-name', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'z' } } }] }] })];
  assert.deepEqual(allowed(byName), allBut((f, t) => t === 'x/a' && !f.startsWith('z/')), 'every namespace has its name as a label');
});

test('oracle: one peer with a pod AND a namespace selector, against two peers (either)', () => {
  const and = [np('x', 'and', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } }, podSelector: { matchLabels: { pod: 'b' } } }] }] })];
  assert.deepEqual(allowed(and), allBut((f, t) => t === 'x/a' && f !== 'y/b'));
  const or = [np('x', 'or', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }, { podSelector: { matchLabels: { pod: 'b' } } }] }] })];
  assert.deepEqual(allowed(or), allBut((f, t) => t === 'x/a' && !f.startsWith('y/') && f !== 'x/b'), 'a podSelector alone means the policy\'s own namespace');
});

test('oracle: selectors: matchExpressions In, NotIn (an absent key is not in), Exists, DoesNotExist; {} selects all', () => {
  const labels = { pod: 'a', tier: 'web' };
  assert.equal(selectorMatches({}, labels), true);
  assert.equal(selectorMatches({ matchExpressions: [{ key: 'pod', operator: 'In', values: ['a', 'b'] }] }, labels), true);
  assert.equal(selectorMatches({ matchExpressions: [{ key: 'pod', operator: 'NotIn', values: ['a'] }] }, labels), false);
  assert.equal(selectorMatches({ matchExpressions: [{ key: 'env', operator: 'NotIn', values: ['prod'] }] }, labels), true);
  assert.equal(selectorMatches({ matchExpressions: [{ key: 'env', operator: 'In', values: ['prod'] }] }, labels), false);
  assert.equal(selectorMatches({ matchExpressions: [{ key: 'tier', operator: 'Exists' }] }, labels), true);
  assert.equal(selectorMatches({ matchExpressions: [{ key: 'tier', operator: 'DoesNotExist' }] }, labels), false);
  assert.equal(selectorMatches({ matchLabels: { pod: 'a' }, matchExpressions: [{ key: 'tier', operator: 'In', values: ['db'] }] }, labels), false, 'all must hold');
});

test('oracle: ports: a named port resolved on the destination, endPort ranges, a protocol alone', () => {
  const named = [np('x', 'named', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ ports: [{ port: 'serve-81-tcp' }] }] })];
  assert.deepEqual(allowed(named, 'TCP', 81), all);
  assert.deepEqual(allowed(named, 'TCP', 80), allBut((_, t) => t === 'x/a'));
  assert.deepEqual(allowed(named, 'UDP', 81), allBut((_, t) => t === 'x/a'), 'the name carries its protocol');
  const range = [np('x', 'range', { podSelector: {}, ingress: [{ ports: [{ protocol: 'TCP', port: 80, endPort: 81 }] }] })];
  assert.deepEqual(allowed(range, 'TCP', 81), all);
  assert.deepEqual(allowed(range, 'UDP', 80), allBut((_, t) => t.startsWith('x/')));
  const udpOnly = [np('x', 'udp', { podSelector: {}, ingress: [{ ports: [{ protocol: 'UDP' }] }] })];
  assert.deepEqual(allowed(udpOnly, 'UDP', 81), all);
  assert.deepEqual(allowed(udpOnly, 'TCP', 80), allBut((_, t) => t.startsWith('x/')));
});

test('oracle: ipBlock with except, and a second policy allowing the excepted address again (policies add up)', () => {
  const block = np('x', 'block', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/16', except: ['10.0.1.2/32'] } }] }] });
  assert.deepEqual(allowed([block]), allBut((f, t) => t === 'x/a' && f === 'y/b'));
  const again = np('x', 'again', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } }, podSelector: { matchLabels: { pod: 'b' } } }] }] });
  assert.deepEqual(allowed([block, again]), all);
  assert.equal(netpolVerdict([block], namespaces, { ip: '192.0.2.9' }, pod('x/a'), 'TCP', 80).ingress, 'deny', 'an outside address outside the block');
  assert.equal(netpolVerdict([block], namespaces, { ip: '10.0.200.9' }, pod('x/a'), 'TCP', 80).ingress, 'allow', 'an outside address inside it');
});

test('oracle: egress denied but DNS: both directions must allow; policyTypes default from the rules present', () => {
  const dnsOnly = np('x', 'dns', { podSelector: {}, policyTypes: ['Egress'], egress: [{ ports: [{ protocol: 'UDP', port: 53 }] }] });
  assert.deepEqual(allowed([dnsOnly]), allBut((f) => f.startsWith('x/')));
  assert.deepEqual(netpolVerdict([dnsOnly], namespaces, pod('x/a'), { ip: '192.0.2.53' }, 'UDP', 53), { egress: 'allow', ingress: 'not-isolated', allowed: true });
  assert.equal(netpolVerdict([dnsOnly], namespaces, pod('y/a'), pod('x/a'), 'TCP', 80).allowed, true, 'ingress into x is not isolated by an egress policy');
  assert.deepEqual(policyTypesOf(np('x', 'p', { podSelector: {}, egress: [{}] })), ['Ingress', 'Egress']);
  assert.deepEqual(policyTypesOf(np('x', 'p', { podSelector: {}, ingress: [{}] })), ['Ingress']);
  assert.deepEqual(policyTypesOf(np('x', 'p', { podSelector: {}, egress: [] })), ['Ingress'], 'an empty egress list is no egress rule');
  const isolateBoth = np('x', 'both', { podSelector: { matchLabels: { pod: 'c' } }, egress: [{ to: [{ podSelector: { matchLabels: { pod: 'a' } } }] }] });
  assert.deepEqual(allowed([isolateBoth]), allBut((f, t) => t === 'x/c' || (f === 'x/c' && t !== 'x/a')), 'egress rules make the policy isolate both ways; it allows no ingress');
});
