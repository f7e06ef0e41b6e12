import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Endpoint, Group, Network, Policy, Rule, Tenant } from '../model/index.js';
import { compilePolicy, type CompiledPolicy, type PolicyState } from '../policy/index.js';
import { Prng } from '../chaos/prng.js';
import { renderPolicy } from './policy-nft.js';
import { policyTableOf } from './flows-nft.js';
import { diffTables } from './table-delta.js';
import { applyScript, contentOf } from './script-model.js';
import { tableText, type NftTable } from './table.js';

// A render patches the last render of its lineage (policy-nft.ts RenderState): its stages' shards, its
// chain set. Whatever the history, it must be what a render from nothing gives, and the delta between
// two such tables (table-delta.ts, by the chain set's patch or by name) must make the one from the other.

const meta = { revision: 1, createdAt: '', updatedAt: '' };
const net: Network = { ...meta, tenant: 't', name: 'a', subnet: '10.1.0.0/16', gateway: '', encap: 'vxlan', vni: 1, mtu: 1450 };
const ep = (ip: string, g: string): Endpoint => ({
  ...meta, id: ip, tenant: 't', network: 'a', group: g, ip, prefixLength: 16, gateway: '', mac: '', mtu: 1450, vni: 1,
  host: 'h1', ifname: 'eth0', containerId: ip, labels: {}, state: 'created',
});

function rng(seed: number): (n: number) => number {
  const p = new Prng(seed);
  return (n: number) => p.int(0, n - 1);
}

let ids = 0;
/**
 * Rules of every shape the stages split: /32 sources with a port (pairs, single ports), with a range
 * (rests as chains), broad prefixes with ranges (pairs with more ranges than a chain holds as rules:
 * named maps), rules from a group, peerless ones, audit and deny.
 */
function randomRule(rnd: (n: number) => number): Rule {
  const id = `r${ids++}`;
  const protocol = (['tcp', 'tcp', 'udp', 'sctp'] as const)[rnd(4)] as string;
  const port = 1000 + rnd(3000);
  const ports = rnd(3) ? String(port) : `${port}-${port + 1 + rnd(40)}`;
  const action = rnd(5) ? 'allow' : 'deny';
  const kind = rnd(10);
  const from = kind < 7 ? { fromCidr: `10.9.${rnd(8)}.${rnd(256)}/32` } : kind === 7 ? { fromCidr: `10.9.${rnd(8) & 6}.0/${[23, 24, 20][rnd(3)]}` } : kind === 8 ? { fromGroup: 'app' } : {};
  return { id, priority: 1 + rnd(9), direction: rnd(6) ? 'in' : 'out', action, protocol, ports, ...from };
}

function state(policies: Policy[], eps: Endpoint[], previous: CompiledPolicy | undefined, fallback: 'allow' | 'deny'): PolicyState {
  const tenant: Tenant = { ...meta, name: 't', id: 1, defaultAction: fallback };
  const groups: Group[] = [
    { ...meta, tenant: 't', name: 'db', network: 'a', labels: {}, policies: policies.map((p) => p.name) },
    { ...meta, tenant: 't', name: 'app', network: 'a', labels: {}, policies: [] },
  ];
  return { tenant, networks: [net], groups, policies, endpoints: eps, host: 'h1', ...(previous ? { previous } : {}) };
}

/** A policy's render as the tenant's table holds it: with the deny chain its drops go to. */
const table = (c: CompiledPolicy): NftTable => policyTableOf(renderPolicy(c));
/**
 * The same compile rendered in a lineage of its own: from nothing (its ranges a copy too, so nothing kept
 * with the ranges array, policy-nft-stages.ts classRanges, answers for it).
 */
const fresh = (c: CompiledPolicy): NftTable => table({ ...c, lineage: {}, classification: { ...c.classification, ranges: [...c.classification.ranges] } });

test('renders patched from the last one (random edits of every rule shape, shards included) equal a render from nothing, and their deltas make the next table', () => {
  let patched = 0;
  for (const seed of [1, 2, 3]) {
    const rnd = rng(seed);
    const policy = (name: string, n: number): Policy => ({ ...meta, tenant: 't', name, ...(rnd(4) === 0 ? { mode: 'audit' as const } : {}), rules: Array.from({ length: n }, () => randomRule(rnd)) });
    let policies = [policy('big', 1500), policy('live', 5)];
    const eps = [ep('10.1.0.2', 'db'), ep('10.1.0.3', 'app'), ep('10.1.0.4', 'db')];
    const fallback = seed === 2 ? 'deny' : 'allow';
    let c = compilePolicy(state(policies, eps, undefined, fallback));
    let kernel = table(c);
    for (let step = 0; step < 40; step++) {
      // One rule or many, added, removed or changed; now and then an endpoint comes or goes.
      const live = policies[1] as Policy;
      const rules = [...live.rules];
      const edits = rnd(8) === 0 ? 40 + rnd(400) : 1 + rnd(3);
      for (let k = 0; k < edits; k++) {
        const r = rnd(3);
        if (r === 0 || rules.length === 0) rules.push(randomRule(rnd));
        else if (r === 1) rules.splice(rnd(rules.length), 1);
        else rules[rnd(rules.length)] = randomRule(rnd);
      }
      policies = [policies[0] as Policy, { ...live, revision: live.revision + 1, rules }];
      if (rnd(10) === 0) eps.push(ep(`10.1.1.${eps.length}`, rnd(2) ? 'db' : 'app'));
      const next = compilePolicy(state(policies, [...eps], c, fallback));
      // Not every compile is rendered (an agent may skip one): the next render patches an older one.
      if (rnd(5) === 0) { c = next; continue; }
      const t = table(next);
      const want = fresh(next);
      assert.equal(tableText(t), tableText(want), `seed ${seed} step ${step}: the patched render is a render from nothing`);
      if (t.shared?.patch) patched++;
      // The kernel as the agent leaves it: deltas that keep what goes (a change pass), now and then a full
      // pass that deletes it; now and then the table from another lineage (its chain set by name).
      const target = rnd(6) === 0 ? want : t;
      const d = diffTables(kernel, target, { keepGone: rnd(3) !== 0 });
      assert.ok(d, `seed ${seed} step ${step}: a delta`);
      const r = applyScript(kernel, d.script);
      assert.deepEqual([r.problems, r.inPlace], [[], []], `seed ${seed} step ${step}`);
      assert.equal(contentOf(r.table), contentOf(d.table), `seed ${seed} step ${step}: the delta makes the table it says`);
      // What it keeps is nothing the next table holds or uses.
      const left = d.table.leftover;
      const kept = [...(left?.maps ?? []).map((m) => m.name), ...(left?.shared ?? []).flatMap((x) => [x.name, ...x.maps.map((m) => m.name)]),
        ...(left?.chains ?? []).flatMap((l) => /^\tchain (\S+) \{$/.exec(l)?.slice(1) ?? [])];
      const text = tableText(target);
      const used = new Set([...text.matchAll(/(?:@|jump |goto |\t(?:chain|map|set) )([\w.-]+)/g)].map((m) => m[1] as string));
      for (const k of kept) assert.ok(!used.has(k), `seed ${seed} step ${step}: ${k} kept, yet in the next table`);
      kernel = d.table;
      c = next;
    }
  }
  assert.ok(patched > 60, `${patched} renders patched their chain set`);
});

test('a rule without a peer that becomes high on a second group (no address moved): the patched render holds both groups\' addresses in the high map', () => {
  const peered: Rule = { id: 'dns', priority: 5, direction: 'in', action: 'allow', protocol: 'udp', ports: '53', fromGroup: 'app' };
  const shut: Rule = { id: 'shut', priority: 10, direction: 'in', action: 'deny', protocol: 'tcp', ports: '8000' };
  const eps = [ep('10.1.0.2', 'db'), ep('10.1.0.3', 'app')];
  const at = (onApp: boolean, previous?: CompiledPolicy): PolicyState => {
    const s = state([{ ...meta, tenant: 't', name: 'p', rules: [peered, shut] }, { ...meta, tenant: 't', name: 'q', rules: onApp ? [shut] : [] }], eps, previous, 'allow');
    return { ...s, groups: s.groups.map((g) => (g.name === 'app' ? { ...g, policies: ['q'] } : { ...g, policies: ['p'] })) };
  };
  const first = compilePolicy(at(false));
  const highMap = (t: NftTable) => t.maps.filter((m) => /^tcp_hi_/.test(m.name)).flatMap((m) => m.elements).sort();
  assert.deepEqual(highMap(table(first)).map((e) => e.split(' ')[0]), ['10.1.0.2'], 'db alone');
  const next = compilePolicy(at(true, first));
  assert.equal(next.classification.ranges, first.classification.ranges, 'no address moved: the same ranges array (what the render keeps answers with)');
  const got = highMap(table(next));
  assert.deepEqual(got, highMap(fresh(next)), 'the patched render is a render from nothing');
  assert.deepEqual(got.map((e) => e.split(' ')[0]), ['10.1.0.2', '10.1.0.3'], 'both groups\' addresses in the high map');
});
