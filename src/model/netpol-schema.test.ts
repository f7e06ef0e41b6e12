import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AjvCompiler } from '@fastify/ajv-compiler';
import { NetworkPolicySpecSchema, checkNetworkPolicySpec } from './netpol-schema.js';
import type { NetworkPolicy } from './netpol.js';
import { WeftError } from './errors.js';

type Spec = NetworkPolicy['spec'];

// Checked as the server checks bodies: fastify's ajv with the server's options (unknown fields are errors).
const compile = AjvCompiler()({}, { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: false } }) as unknown as (r: { schema: object }) => ((v: unknown) => boolean) & { errors?: unknown };
const validate = compile({ schema: NetworkPolicySpecSchema });

test('NetworkPolicy spec: upstream examples pass the schema and the checks', () => {
  const examples: Spec[] = [
    { podSelector: {}, policyTypes: ['Ingress'] },
    { podSelector: { matchLabels: { 'app.kubernetes.io/name': 'web' } }, ingress: [{ from: [{ namespaceSelector: { matchExpressions: [{ key: 'team', operator: 'In', values: ['a', 'b'] }] }, podSelector: { matchExpressions: [{ key: 'debug', operator: 'DoesNotExist' }] } }] }] },
    { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '172.17.0.0/16', except: ['172.17.1.0/24'] } }], ports: [{ protocol: 'TCP', port: 6379 }] }] },
    { podSelector: {}, policyTypes: ['Egress'], egress: [{ ports: [{ protocol: 'UDP', port: 53 }, { port: 32000, endPort: 32768 }] }, { to: [{ podSelector: {} }], ports: [{ port: 'serve-80-tcp' }, { protocol: 'SCTP' }] }] },
  ];
  for (const s of examples) {
    assert.ok(validate(s), JSON.stringify(validate.errors));
    checkNetworkPolicySpec(s);
  }
});

test('NetworkPolicy spec: what the schema refuses', () => {
  const bad: unknown[] = [
    {},
    { podSelector: {}, ingres: [] },
    { podSelector: { matchLabels: { 'Bad Key': 'x' } } },
    { podSelector: { matchExpressions: [{ key: 'a', operator: 'Has' }] } },
    { podSelector: {}, policyTypes: ['Ingress', 'Ingress'] },
    { podSelector: {}, ingress: [{ ports: [{ port: 0 }] }] },
    { podSelector: {}, ingress: [{ ports: [{ port: 'a'.repeat(16) }] }] },
    { podSelector: {}, ingress: [{ ports: [{ port: 'HTTP' }] }] },
    { podSelector: {}, ingress: [{ ports: [{ port: '8080' }] }] },
    { podSelector: {}, ingress: [{ ports: [{ protocol: 'ICMP' }] }] },
    { podSelector: {}, egress: [{ from: [{ podSelector: {} }] }] },
  ];
  for (const s of bad) assert.equal(validate(s), false, JSON.stringify(s));
});

test('NetworkPolicy spec: what the checks refuse, naming the field', () => {
  const cases: Array<[Spec, string, RegExp]> = [
    [{ podSelector: { matchExpressions: [{ key: 'a', operator: 'In' }] } }, 'spec.podSelector.matchExpressions.0.values', /operator In needs at least one value/],
    [{ podSelector: { matchExpressions: [{ key: 'a', operator: 'Exists', values: ['x'] }] } }, 'spec.podSelector.matchExpressions.0.values', /takes no values/],
    [{ podSelector: {}, ingress: [{ from: [{}] }] }, 'spec.ingress.0.from.0', /needs a podSelector, a namespaceSelector or an ipBlock/],
    [{ podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/8' }, podSelector: {} }] }] }, 'spec.ingress.0.from.0.ipBlock', /cannot be combined/],
    [{ podSelector: {}, egress: [{ to: [{ ipBlock: { cidr: '10.0.0.0/16', except: ['10.1.0.0/24'] } }] }] }, 'spec.egress.0.to.0.ipBlock.except.0', /strictly inside/],
    [{ podSelector: {}, egress: [{ to: [{ ipBlock: { cidr: '10.0.0.0/16', except: ['10.0.0.0/16'] } }] }] }, 'spec.egress.0.to.0.ipBlock.except.0', /strictly inside/],
    [{ podSelector: {}, egress: [{ to: [{ ipBlock: { cidr: '10.0.0.0/33' } }] }] }, 'spec.egress.0.to.0.ipBlock.cidr', /prefix length/],
    [{ podSelector: {}, ingress: [{ ports: [{ port: 'http', endPort: 90 }] }] }, 'spec.ingress.0.ports.0.endPort', /needs a numeric port/],
    [{ podSelector: {}, ingress: [{ ports: [{ port: 90, endPort: 80 }] }] }, 'spec.ingress.0.ports.0.endPort', /80 is below port 90/],
    [{ podSelector: {}, ingress: [{ from: [{ namespaceSelector: { matchExpressions: [{ key: 'x', operator: 'NotIn' }] } }] }] }, 'spec.ingress.0.from.0.namespaceSelector.matchExpressions.0.values', /NotIn needs/],
  ];
  for (const [spec, field, message] of cases) {
    assert.throws(() => checkNetworkPolicySpec(spec), (e: unknown) => e instanceof WeftError && e.field === field && message.test(e.message), `${JSON.stringify(spec)} -> ${field}`);
  }
});
