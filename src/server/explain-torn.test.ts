import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStore, type Store } from '../store/index.js';
import { testApi } from './testkit.js';

/** A store that runs `hook` once, just before the Nth listing of `prefix` after it is armed. */
function hooked(): { store: Store; arm: (prefix: string, nth: number, hook: () => Promise<void>) => void } {
  const store = new MemoryStore();
  let armed: { prefix: string; left: number; hook: () => Promise<void> } | undefined;
  const proxy = new Proxy(store, {
    get(target, key) {
      const v = Reflect.get(target, key) as unknown;
      if (typeof v !== 'function') return v;
      if (key !== 'list') return (v as (...a: unknown[]) => unknown).bind(target);
      return async (...a: unknown[]) => {
        const a0 = a[0] as string;
        if (armed && a0 === armed.prefix && --armed.left === 0) {
          const h = armed.hook;
          armed = undefined;
          await h();
        }
        return (v as (...a: unknown[]) => unknown).apply(target, a);
      };
    },
  });
  return { store: proxy, arm: (prefix, nth, hook) => { armed = { prefix, left: nth, hook }; } };
}

test('explain: a group changed while an explain reads the policies is in the next answers (torn read cached under the later fingerprint)', async () => {
  const h = hooked();
  const api = await testApi({ store: h.store });
  const ok = async (r: Promise<{ status: number; json: any }>, status = 201) => {
    const x = await r;
    assert.equal(x.status, status, JSON.stringify(x.json));
    return x.json;
  };
  await ok(api.call('POST', '/api/v1/tenants', { name: 't' }));
  await ok(api.call('POST', '/api/v1/tenants/t/networks', { name: 'net', subnet: '10.8.0.0/24' }));
  await ok(api.call('POST', '/api/v1/tenants/t/groups', { name: 'db', network: 'net' }));
  await ok(api.call('POST', '/api/v1/tenants/t/policies', { name: 'p', rules: [{ id: 'deny-80', direction: 'in', action: 'deny', protocol: 'tcp', ports: '80', fromCidr: '10.8.0.2/32', priority: 5 }] }));
  await ok(api.call('POST', '/api/v1/endpoints', { tenant: 't', network: 'net', group: 'db', host: 'h1', containerId: 'c'.repeat(64), ifname: 'eth0', ip: '10.8.0.3' }));
  const ask = async () => {
    const x = await ok(api.call('GET', '/api/v1/tenants/t/explain?from=10.8.0.2&to=10.8.0.3&protocol=tcp&port=80'), 200);
    return `${x.allowed} ${x.ingress?.rule?.id ?? '-'}`;
  };
  assert.equal(await ask(), 'true -', 'p not attached yet');
  // While the next explain reads the policies (after the groups were read): db gets p, then p gets a rule.
  h.arm('policies/t/', 2, async () => {
    await ok(api.call('PATCH', '/api/v1/tenants/t/groups/db', { policies: ['p'] }), 200);
    await ok(api.call('POST', '/api/v1/tenants/t/policies/p/rules', { id: 'other', direction: 'in', action: 'allow', protocol: 'udp', ports: '53', fromCidr: '10.8.0.0/24', priority: 1 }));
  });
  await ask(); // read at no one moment: whatever it answers
  const groups = await ok(api.call('GET', '/api/v1/tenants/t/groups/db'), 200);
  assert.deepEqual(groups.policies, ['p'], 'the store has db with p');
  assert.equal(await ask(), 'false deny-80', 'nothing written since: the answer is the policy as stored now');
});
