import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Endpoint, LabelMap, LabelSelector } from '../model/index.js';
import { Netpol, type NetpolInput } from './netpol.js';
import { namedPortsOf, podInSet, type SetSpec } from './netpol-sets.js';
import { NAMESPACE_NAME_LABEL } from '../model/index.js';
import { Prng } from '../chaos/prng.js';

// The pod sets an endpoint is in, found through the index of sets by label (netpol.ts podSetIndex), are
// those a test of every set finds, in the sets' order: random selectors of several labels, expressions of
// every operator, namespace selectors alone or with pod selectors, named ports, for random pods.

const KEYS = ['app', 'tier', 'role', 'constructor', 'toString', '1'];
const VALS = ['', 'x', 'y', 'z'];
const NS = ['default', 'p', 'q'];

function generator(seed: number) {
  const g = new Prng(seed);
  const rnd = (n: number) => g.int(0, n - 1);
  const pick = <T>(xs: readonly T[]): T => xs[rnd(xs.length)] as T;
  const labels = (): LabelMap => {
    const out: Record<string, string> = {};
    for (const k of KEYS) if (rnd(3) === 0) out[k] = pick(VALS);
    if (rnd(2)) out['namespace'] = pick(NS);
    if (rnd(3) === 0) out['port.weft.io/http'] = pick(['80', '8080']);
    return out;
  };
  const selector = (): LabelSelector => {
    const matchLabels: Record<string, string> = {};
    for (let i = rnd(4); i > 0; i--) matchLabels[pick(KEYS)] = pick(VALS);
    const matchExpressions = Array.from({ length: rnd(3) }, () => {
      const operator = pick(['In', 'NotIn', 'Exists', 'DoesNotExist'] as const);
      return { key: pick(KEYS), operator, ...(operator === 'In' || operator === 'NotIn' ? { values: [pick(VALS), pick(VALS)] } : {}) };
    });
    return { ...(Object.keys(matchLabels).length || rnd(2) ? { matchLabels } : {}), ...(matchExpressions.length ? { matchExpressions } : {}) };
  };
  const peer = () => pick([() => ({ podSelector: selector() }), () => ({ namespaceSelector: selector() }), () => ({ namespaceSelector: selector(), podSelector: selector() })])();
  const input = (): NetpolInput => ({
    namespaces: NS.map((name) => ({ name, labels: labels() })),
    policies: Array.from({ length: 1 + rnd(4) }, (_, i) => ({
      namespace: pick(NS), name: `np${i}`,
      spec: {
        podSelector: selector(),
        ingress: Array.from({ length: rnd(3) }, () => ({ from: Array.from({ length: rnd(5) }, peer), ...(rnd(2) ? { ports: [{ port: 'http' }] } : {}) })),
        egress: Array.from({ length: rnd(2) }, () => ({ ...(rnd(3) ? { to: Array.from({ length: rnd(4) }, peer) } : {}), ports: [{ port: rnd(2) ? 'http' : 81 }] })),
      },
    })) as NetpolInput['policies'],
  });
  return { labels, input };
}

test('a pod\'s sets through the label index are the sets a test of every set finds, in their order', () => {
  let sets = 0;
  let found = 0;
  for (let seed = 1; seed <= 400; seed++) {
    const { labels, input } = generator(seed);
    const np = input();
    const eps: Endpoint[] = Array.from({ length: 12 }, (_, i) => ({ id: `e${i}`, tenant: 't', network: 'n', ip: `10.0.0.${i + 2}`, prefixLength: 24, gateway: '', mac: '', mtu: 1450, vni: 1,
      host: 'h', ifname: 'eth0', containerId: `c${i}`, labels: labels(), state: 'created', revision: 1, createdAt: '', updatedAt: '' }));
    const netpol = new Netpol(np, eps) as unknown as { specs: SetSpec[]; partOf(e: Endpoint): { podSets: string[] } };
    for (const e of eps) {
      const ns = e.labels['namespace'] ?? 'default';
      const nsLabels = { ...(np.namespaces.find((n) => n.name === ns)?.labels ?? {}), [NAMESPACE_NAME_LABEL]: ns };
      const scan = netpol.specs.filter((s) => !s.block && podInSet(s, ns, nsLabels, e.labels, namedPortsOf(e.labels))).map((s) => s.id);
      assert.deepEqual(netpol.partOf(e).podSets, scan, `seed ${seed}, pod ${JSON.stringify(e.labels)}`);
      found += scan.length;
    }
    sets += netpol.specs.length;
  }
  assert.ok(found > 1000 && sets > 1000, `${found} memberships of ${sets} sets checked`);
});
