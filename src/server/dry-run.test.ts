import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Endpoint, Policy, Tenant } from '../model/index.js';
import { compilePolicy, verdictChanges, type PolicyState } from '../policy/index.js';
import { DryRunComparer } from './dry-run.js';

const meta = { revision: 1, createdAt: '', updatedAt: '' };
const tenant: Tenant = { ...meta, name: 't', id: 1, defaultAction: 'allow' };
const endpoints: Endpoint[] = Array.from({ length: 6 }, (_, i) => ({
  ...meta, id: `e${i}`, tenant: 't', network: 'n', group: i < 3 ? 'web' : 'db', ip: `10.0.0.${i + 2}`, prefixLength: 24, gateway: '10.0.0.1', mac: '', mtu: 1450, vni: 1,
  host: 'h', ifname: 'eth0', containerId: `c${i}`, labels: {}, state: 'created',
}));
function state(rules: Policy['rules']): PolicyState {
  return {
    tenant, networks: [{ ...meta, tenant: 't', name: 'n', subnet: '10.0.0.0/24', gateway: '10.0.0.1', encap: 'vxlan', vni: 1, mtu: 1450 }],
    groups: [{ ...meta, tenant: 't', name: 'web', network: 'n', policies: [], labels: {} }, { ...meta, tenant: 't', name: 'db', network: 'n', policies: ['p'], labels: {} }],
    policies: [{ ...meta, tenant: 't', name: 'p', rules }], endpoints,
  };
}
const before = state([]);
const after = state([
  { id: 'deny', priority: 1, direction: 'in', action: 'deny', protocol: 'tcp' },
  { id: 'web', priority: 5, direction: 'in', action: 'allow', protocol: 'tcp', ports: '5432', fromGroup: 'web' },
]);

test('a dry run\'s comparison on its own thread answers as the compiles on the event loop do', async () => {
  const want = verdictChanges(compilePolicy(before), compilePolicy(after), endpoints, 100);
  assert.ok(want.total > 0);
  assert.deepEqual(await new DryRunComparer().compare({ before, after, endpoints, limit: 100 }), want);
});

test('a comparison past its time is answered without one, naming why; so is one past the waiting bound; the next one works', async () => {
  const slow = new DryRunComparer({ ms: 1, heapMb: 256 });
  const r = await slow.compare({ before, after, endpoints, limit: 100 });
  assert.deepEqual(r, { refused: 'the comparison took more than 0.001 s; not compared' });
  const many = await Promise.all(Array.from({ length: 12 }, (_, i) => slow.compare({ before, after, endpoints, limit: 100 }, `u${i}`)));
  assert.ok(many.some((x) => 'refused' in x && /dry runs are being compared or waiting/.test(x.refused)), JSON.stringify(many.slice(-2)));
  // One user's share: two under way; a third is answered at once, another user's is not held back.
  const one = new DryRunComparer();
  const mine = await Promise.all([0, 1, 2].map(() => one.compare({ before, after, endpoints, limit: 100 }, 'eve')));
  assert.deepEqual(mine.map((x) => 'refused' in x ? x.refused : 'compared'), ['compared', 'compared', 'you have 2 dry runs being compared; not compared']);
  // A request that ended: its comparison leaves the queue, or its thread is stopped.
  const gone = new AbortController();
  const waiting = one.compare({ before, after, endpoints, limit: 100 }, 'bob');
  const ended = one.compare({ before, after, endpoints, limit: 100 }, 'ann', gone.signal);
  gone.abort();
  assert.deepEqual(await ended, { refused: 'the request ended before its comparison' });
  assert.ok('changes' in (await waiting));
  const fine = new DryRunComparer();
  const again = await fine.compare({ before, after, endpoints, limit: 100 });
  assert.ok('changes' in again && again.total > 0);
});
