import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Endpoint, Group, Network, Policy, Rule, Tenant } from '../model/index.js';
import { compilePolicy, PolicyTooLarge, type CompiledPolicy, type PolicyState } from './index.js';
import { Engine } from './engine.js';
import { Prng } from '../chaos/prng.js';

// The budget refuses a compile by the pairs it would decide, counted before deciding any: the count must
// be the cold compile's own (`decided`), whatever the rules, the groups and which endpoints are here.

const meta = { revision: 1, createdAt: '', updatedAt: '' };
const tenant: Tenant = { ...meta, name: 't', id: 1, defaultAction: 'deny' };
const networks: Network[] = [{ ...meta, tenant: 't', name: 'n', subnet: '10.5.0.0/16', gateway: '10.5.0.1', encap: 'vxlan', vni: 1, mtu: 1450 }];
const ip = (i: number) => `10.5.${(i >> 8) + 1}.${i & 255}`;

function endpoint(i: number, group: string, host: string): Endpoint {
  return { ...meta, id: `e${i}`, tenant: 't', network: 'n', group, ip: ip(i), prefixLength: 16, gateway: '10.5.0.1', mac: '', mtu: 1450, vni: 1, host, ifname: 'eth0', containerId: `c${i}`, labels: {}, state: 'created' };
}

function state(endpoints: Endpoint[], rules: Rule[], host: string | undefined): PolicyState {
  const policies: Policy[] = [{ ...meta, tenant: 't', name: 'p', rules }];
  const groups: Group[] = ['g0', 'g1', 'g2'].map((name) => ({ ...meta, tenant: 't', name, network: 'n', policies: name === 'g2' ? [] : ['p'], labels: {} }));
  return { tenant, networks, groups, policies, endpoints, ...(host !== undefined ? { host } : {}) };
}

/**
 * Each of `n` endpoints of g0 on h1 let in by a rule naming its own address, on a port of its own, and let
 * out to it by another: each address tells sources apart and destinations apart, so pairs grow as n squared
 * (named on one side only, they would be linear: roles.ts).
 */
function perEndpoint(n: number, revision = 1): PolicyState {
  const eps = Array.from({ length: n }, (_, i) => endpoint(i, 'g0', 'h1'));
  const rules: Rule[] = eps.flatMap((e, i): Rule[] => [{ id: `r${i}`, direction: 'in', action: 'allow', protocol: 'tcp', priority: 5, ports: String(20000 + i), fromCidr: `${e.ip}/32` },
    { id: `o${i}`, direction: 'out', action: 'allow', protocol: 'tcp', priority: 5, ports: String(20000 + i), toCidr: `${e.ip}/32` }]);
  const s = state(eps, rules, 'h1');
  return { ...s, policies: s.policies.map((p) => ({ ...p, revision })) };
}

function refused(f: () => CompiledPolicy): PolicyTooLarge {
  try {
    f();
  } catch (e) {
    if (e instanceof PolicyTooLarge) return e;
    throw e;
  }
  assert.fail('the compile was not refused');
}

test('the pairs counted before a cold compile are the pairs it decides (random rules, groups and hosts)', () => {
  for (let seed = 1; seed <= 60; seed++) {
    const g = new Prng(seed);
    const rnd = (k: number) => g.int(0, k - 1);
    const eps = Array.from({ length: 2 + rnd(24) }, (_, i) => endpoint(i, `g${rnd(3)}`, rnd(3) ? 'h1' : 'h2'));
    const rules: Rule[] = Array.from({ length: 1 + rnd(30) }, (_, j) => {
      const direction = rnd(2) ? 'in' : 'out';
      const peer = rnd(4);
      const target = ip(rnd(eps.length + 4));
      const base = { id: `r${j}`, direction, action: rnd(2) ? 'allow' : 'deny', protocol: rnd(3) ? 'tcp' : 'udp', priority: 1 + rnd(9), ports: String(1000 + rnd(5)) } as Rule;
      if (peer === 0) return base;
      if (peer === 1) return { ...base, [direction === 'in' ? 'fromGroup' : 'toGroup']: `g${rnd(3)}` };
      return { ...base, [direction === 'in' ? 'fromCidr' : 'toCidr']: peer === 2 ? `${target}/32` : `${target.replace(/\.\d+$/, '.0')}/24` };
    });
    const s = state(eps, rules, rnd(4) ? 'h1' : undefined);
    const free = compilePolicy(s);
    if (free.decided === 0) continue;
    const within = compilePolicy({ ...s, budget: free.decided });
    assert.deepEqual(within.pairs, free.pairs, `seed ${seed}: a budget of exactly its pairs changes nothing`);
    const e = refused(() => compilePolicy({ ...s, budget: free.decided - 1 }));
    assert.equal(e.pairs, free.decided, `seed ${seed}: the refusal counts the cold compile's pairs`);
    assert.equal(e.budget, free.decided - 1);
  }
});

test('a policy past the budget is refused with its numbers, cold and when an incremental compile takes it past', () => {
  // 5 endpoints each named by its own /32 both ways: 7 classes, 5 enforced here, each its own role on both sides.
  const small = compilePolicy({ ...perEndpoint(5), budget: 200 });
  assert.equal(small.decided, 45);
  assert.equal(small.how, 'cold');
  // From that compile, 30 such endpoints and rules: the incremental compile is refused by what it leaves.
  const e = refused(() => compilePolicy({ ...perEndpoint(30, 2), previous: small, budget: 200 }));
  assert.deepEqual([e.tenant, e.pairs, e.classes, e.enforced, e.budget], ['t', 1020, 64, 60, 200]);
  assert.match(e.message, /tenant t would make 1,020 pairs of address classes \(64 classes as sources or destinations, 60 of them of enforced groups\), past the limit of 200: /);
  // Its engine was spent on the refused compile: the next from it is cold, and refused before any pair.
  const again = refused(() => compilePolicy({ ...perEndpoint(31, 3), previous: small, budget: 200 }));
  assert.equal(again.pairs, 2 * 33 * 31 - 31 * 31);
  // Back under the budget, it compiles (cold) and decides what an unlimited compile does.
  const back = compilePolicy({ ...perEndpoint(6, 4), previous: small, budget: 200 });
  assert.deepEqual(back.pairs, compilePolicy(perEndpoint(6, 4)).pairs);
  // Without a budget nothing is refused (the server's explain and dry runs have their own limits).
  assert.equal(compilePolicy(perEndpoint(30, 2)).decided, 1020);
});

test('an incremental compile past the budget is refused before it decides any pair', (t) => {
  const small = compilePolicy({ ...perEndpoint(5), budget: 200 });
  let decided = 0;
  const decide = Engine.prototype.decide;
  t.mock.method(Engine.prototype, 'decide', function (this: Engine, ...args: Parameters<Engine['decide']>) {
    decided++;
    return decide.apply(this, args);
  });
  // 95 endpoints and rules more: each new endpoint's class would be decided against every class.
  const e = refused(() => compilePolicy({ ...perEndpoint(100, 2), previous: small, budget: 200 }));
  assert.equal(e.pairs, 2 * 102 * 100 - 100 * 100);
  assert.equal(decided, 0, 'no pair decided for a refused compile');
  // The same change within a budget that holds it decides them (the count above can see a decide).
  compilePolicy({ ...perEndpoint(100, 3), previous: compilePolicy(perEndpoint(5)), budget: 20_000 });
  assert.ok(decided > 100, `${decided} pairs decided by the compile within its budget`);
});
