import { test } from 'node:test';
import assert from 'node:assert/strict';
import { addressOf, parseIp, type Endpoint, type Group, type Network, type Policy, type Rule, type Tenant } from '../model/index.js';
import { compilePolicy, explainFlow, explainer, explainerYielding, lookupVerdict, type CompiledPolicy, type PolicyState } from './index.js';

const meta = { revision: 1, createdAt: '', updatedAt: '' };
const tenant = (defaultAction: 'allow' | 'deny' = 'allow'): Tenant => ({ ...meta, name: 't', id: 1, defaultAction });
const net = (name: string, subnet: string): Network => ({ ...meta, tenant: 't', name, subnet, gateway: '', encap: 'vxlan', vni: 1, mtu: 1450 });
const group = (name: string, network: string, policies: string[] = []): Group => ({ ...meta, tenant: 't', name, network, policies, labels: {} });
const rule = (id: string, r: Partial<Rule>): Rule => ({ id, priority: 1, direction: 'in', action: 'allow', protocol: 'any', ...r });
const policy = (name: string, rules: Rule[]): Policy => ({ ...meta, tenant: 't', name, rules });
const ep = (ip: string, network: string, g?: string): Endpoint => ({
  ...meta, id: ip, tenant: 't', network, ...(g ? { group: g } : {}), ip, prefixLength: 24, gateway: '', mac: '', mtu: 1450, vni: 1,
  host: 'h', ifname: 'eth0', containerId: ip, labels: {}, state: 'created',
});

/** Looks a flow up in the compiled tables the way nft does: address → class, then the verdict maps. */
function lookup(c: CompiledPolicy, src: string, dst: string, proto: number, port: number): boolean {
  const cls = (ip: string) => c.classification.ranges.find((r) => (parseIp(ip) as number) >= r.first && (parseIp(ip) as number) <= r.last)?.cls ?? 0;
  const s = cls(src);
  const d = cls(dst);
  return lookupVerdict(c, s, d, proto, port) === 'accept';
}

const tutorial = (): PolicyState => ({
  tenant: tenant(),
  networks: [net('contiv-net', '10.1.2.0/24')],
  groups: [group('db', 'contiv-net', ['db-policy'])],
  policies: [policy('db-policy', [rule('1', { protocol: 'tcp', action: 'deny' }), rule('2', { protocol: 'tcp', ports: '8888', priority: 10 })])],
  endpoints: [ep('10.1.2.2', 'contiv-net', 'db'), ep('10.1.2.3', 'contiv-net')],
});

test("Contiv's tutorial: only tcp/8888 of the db group is reachable; udp falls to the default", () => {
  const s = tutorial();
  const c = compilePolicy(s);
  assert.equal(lookup(c, '10.1.2.3', '10.1.2.2', 6, 8888), true);
  assert.equal(lookup(c, '10.1.2.3', '10.1.2.2', 6, 8889), false);
  assert.equal(lookup(c, '10.1.2.3', '10.1.2.2', 17, 8889), true);
  assert.equal(lookup(c, '10.1.2.2', '10.1.2.3', 6, 8889), true, 'db may still open connections to others');
  const e = explainFlow(s, '10.1.2.3', '10.1.2.2', 'tcp', 8889);
  assert.equal(e.allowed, false);
  assert.equal(e.egress?.action, 'allow');
  assert.equal(e.egress?.by, undefined, 'egress: default action, no rule matched');
  assert.deepEqual([e.ingress?.action, e.ingress?.by?.policy, e.ingress?.by?.rule.id], ['deny', 'db-policy', '1']);
  assert.equal(explainFlow(s, '10.1.2.3', '10.1.2.2', 'tcp', 8888).ingress?.by?.rule.id, '2');
});

test('deny wins a tie; both directions must allow; a deny-default tenant is a whitelist', () => {
  const tie: PolicyState = { ...tutorial(), policies: [policy('db-policy', [rule('1', { protocol: 'tcp', priority: 5 }), rule('2', { protocol: 'tcp', priority: 5, action: 'deny' })])] };
  assert.equal(lookup(compilePolicy(tie), '10.1.2.3', '10.1.2.2', 6, 80), false);
  const deny: PolicyState = {
    tenant: tenant('deny'),
    networks: [net('n', '10.1.2.0/24')],
    groups: [group('web', 'n', ['web-in']), group('app', 'n', ['app-out'])],
    policies: [policy('web-in', [rule('1', { fromGroup: 'app', protocol: 'tcp', ports: '80' })]), policy('app-out', [])],
    endpoints: [ep('10.1.2.2', 'n', 'web'), ep('10.1.2.3', 'n', 'app')],
  };
  assert.equal(lookup(compilePolicy(deny), '10.1.2.3', '10.1.2.2', 6, 80), false, 'ingress allows, egress falls to deny');
  deny.policies = [deny.policies[0]!, policy('app-out', [rule('1', { direction: 'out', toGroup: 'web', protocol: 'tcp', ports: '80' })])];
  const c = compilePolicy(deny);
  assert.equal(lookup(c, '10.1.2.3', '10.1.2.2', 6, 80), true);
  assert.equal(lookup(c, '10.1.2.3', '10.1.2.2', 6, 81), false);
  assert.equal(lookup(c, '10.1.2.2', '10.1.2.3', 6, 80), false, 'the reverse direction is a new connection: denied');
});

test('peers by network and by CIDR; out rules to the outside', () => {
  const s: PolicyState = {
    tenant: tenant(),
    networks: [net('a', '10.1.1.0/24'), net('b', '10.1.2.0/24')],
    groups: [group('db', 'b', ['p'])],
    policies: [policy('p', [
      rule('1', { action: 'deny' }),
      rule('2', { fromNetwork: 'a', priority: 5 }),
      rule('3', { fromCidr: '10.1.1.128/25', priority: 6, action: 'deny' }),
      rule('4', { direction: 'out', toCidr: '192.0.2.0/24', action: 'deny' }),
    ])],
    endpoints: [ep('10.1.1.2', 'a'), ep('10.1.1.200', 'a'), ep('10.1.2.2', 'b', 'db'), ep('10.1.2.3', 'b')],
  };
  const c = compilePolicy(s);
  assert.equal(lookup(c, '10.1.1.2', '10.1.2.2', 6, 22), true, 'network a is allowed at priority 5');
  assert.equal(lookup(c, '10.1.1.200', '10.1.2.2', 6, 22), false, 'but its upper half is denied at 6');
  assert.equal(lookup(c, '10.1.2.3', '10.1.2.2', 1, 0), false, 'its own network falls to rule 1');
  assert.equal(lookup(c, '10.1.2.2', '192.0.2.7', 6, 443), false, 'out rule to the outside');
  assert.equal(lookup(c, '10.1.2.2', '198.51.100.7', 6, 443), true);
});

test('compiled tables and explain agree on every flow of a random policy', () => {
  let seed = 42;
  const rnd = (n: number) => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed % n; };
  const groups = ['g0', 'g1', 'g2', 'g3'];
  const ports = ['80', '443', '8000-8080', '53'];
  const protos = ['tcp', 'udp', 'icmp', 'any'];
  for (let round = 0; round < 6; round++) {
    const rules: Rule[] = Array.from({ length: 25 }, (_, i) => {
      const proto = protos[rnd(4)] as string;
      const dir = rnd(2) ? 'in' : 'out';
      const peer = rnd(4);
      const peerKey = dir === 'in' ? ['fromGroup', 'fromNetwork', 'fromCidr'] : ['toGroup', 'toNetwork', 'toCidr'];
      return rule(String(i), {
        direction: dir, protocol: proto, priority: 1 + rnd(5), action: rnd(2) ? 'allow' : 'deny',
        ...((proto === 'tcp' || proto === 'udp') && rnd(2) ? { ports: ports[rnd(4)] as string } : {}),
        ...(peer === 0 ? { [peerKey[0] as string]: groups[rnd(4)] } : peer === 1 ? { [peerKey[1] as string]: rnd(2) ? 'a' : 'b' } : peer === 2 ? { [peerKey[2] as string]: rnd(2) ? '10.1.1.0/25' : '10.1.2.3/32' } : {}),
      });
    });
    const s: PolicyState = {
      tenant: tenant(rnd(2) ? 'allow' : 'deny'),
      networks: [net('a', '10.1.1.0/24'), net('b', '10.1.2.0/24')],
      groups: groups.map((g, i) => group(g, i < 2 ? 'a' : 'b', [`p${i % 3}`])),
      policies: [0, 1, 2].map((i) => policy(`p${i}`, rules.filter((_, j) => j % 3 === i))),
      endpoints: [ep('10.1.1.2', 'a', 'g0'), ep('10.1.1.3', 'a', 'g1'), ep('10.1.1.200', 'a'), ep('10.1.2.3', 'b', 'g2'), ep('10.1.2.4', 'b', 'g3'), ep('10.1.2.5', 'b')],
    };
    const c = compilePolicy(s);
    const ips = [...s.endpoints.map(addressOf), '192.0.2.1'];
    for (const a of ips) for (const b of ips) {
      if (a === b) continue;
      for (const [proto, name] of [[6, 'tcp'], [17, 'udp'], [1, 'icmp'], [47, '47']] as const) {
        for (const port of proto === 6 || proto === 17 ? [53, 80, 443, 8000, 8080, 8081] : [0]) {
          const want = explainFlow(s, a, b, name, proto === 6 || proto === 17 ? port : undefined).allowed;
          assert.equal(lookup(c, a, b, proto, port), want, `round ${round}: ${a} -> ${b} ${name}/${port}`);
        }
      }
    }
  }
});

test('a group with no endpoint on this host compiles to nothing here; its members stay plain addresses', () => {
  const far = Array.from({ length: 500 }, (_, i) => rule(`f${i}`, { fromCidr: `192.0.${i >> 8}.${i & 255}/32`, protocol: 'tcp', ports: String(1000 + i) }));
  const s: PolicyState = {
    tenant: tenant('deny'),
    networks: [net('n', '10.1.2.0/24')],
    groups: [group('db', 'n', ['db-in']), group('far', 'n', ['far-in']), group('web', 'n')],
    policies: [policy('db-in', [rule('1', { fromGroup: 'web', protocol: 'tcp', ports: '80' })]), policy('far-in', far)],
    endpoints: [{ ...ep('10.1.2.2', 'n', 'db'), host: 'h1' }, { ...ep('10.1.2.3', 'n', 'far'), host: 'h2' }, { ...ep('10.1.2.4', 'n', 'web'), host: 'h2' }],
  };
  const here = compilePolicy({ ...s, host: 'h1' });
  const without = compilePolicy({ ...s, host: 'h1', policies: [s.policies[0]!], groups: s.groups.map((g) => (g.name === 'far' ? { ...g, policies: [] } : g)) });
  assert.equal(here.ruleCount, 1, "only db's rule is compiled on h1");
  assert.ok(here.classification.classes.every((k) => k.cidrs.length === 0), "far's 500 CIDRs make no class on h1");
  assert.deepEqual([here.classification.ranges, here.pairs, here.profiles], [without.classification.ranges, without.pairs, without.profiles]);
  assert.ok(here.classification.classes.some((k) => k.group === 'web'), 'web, named by a rule enforced here, keeps its class');
  assert.ok(!here.classification.classes.some((k) => k.group === 'far'), 'far, named by nothing here, is an address of its network');
  assert.equal(lookup(here, '10.1.2.4', '10.1.2.2', 6, 80), true, 'web → db/80 is allowed by ingress here (web egress is h2\'s)');
  assert.equal(lookup(here, '10.1.2.3', '10.1.2.2', 6, 80), false);
  const there = compilePolicy({ ...s, host: 'h2' });
  assert.equal(there.ruleCount, 500, "h2 compiles far's rules, not db's");
  assert.equal(lookup(there, '10.1.2.4', '10.1.2.2', 6, 80), false, "on h2, web's egress falls to the tenant's deny: the connection fails there");
});

test('the evaluator made with pauses answers as the one made at once, rules with CIDRs over several policies', async () => {
  // 1,300 rules with CIDRs in three policies (pauses fall inside and between them), nested around db-1.
  const cidrRules = (at: number, n: number) => Array.from({ length: n }, (_, i) => {
    const k = at + i;
    const cidr = [`10.${1 + (k >> 8)}.2.${k & 255}/32`, `10.1.2.${(k % 64) * 4}/30`, `10.1.${k % 8}.0/24`, `10.0.0.0/${8 + (k % 17)}`][k % 4] as string;
    return rule(`c${k}`, { protocol: 'tcp', ports: String(1000 + (k % 50)), priority: 1 + (k % 7), action: k % 3 ? 'allow' : 'deny', direction: k % 2 ? 'in' : 'out', ...(k % 2 ? { fromCidr: cidr } : { toCidr: cidr }) });
  });
  const s: PolicyState = {
    ...tutorial(),
    groups: [group('db', 'contiv-net', ['p1', 'p2', 'p3']), group('app', 'contiv-net', ['p2'])],
    policies: [policy('p1', cidrRules(0, 700)), policy('p2', cidrRules(700, 100)), policy('p3', cidrRules(800, 500))],
    endpoints: [ep('10.1.2.2', 'contiv-net', 'db'), ep('10.1.2.3', 'contiv-net', 'app'), ep('10.1.2.9', 'contiv-net')],
  };
  let pauses = 0;
  const slow = await explainerYielding(s, async () => { pauses++; });
  assert.equal(pauses, 2, 'every 512 rules');
  const fast = explainer(s);
  // 10.5.2.4 is only in rule c1028's CIDR (the last policy's, after the second pause), tcp/1028.
  const ips = ['10.1.2.2', '10.1.2.3', '10.1.2.9', '10.1.2.4', '10.1.3.7', '10.0.9.1', '10.5.2.4', '10.200.0.1', '192.0.2.1'];
  let denied = 0;
  let byCidr = 0;
  for (const a of ips) for (const b of ips) for (const port of [1000, 1003, 1028, 1049, 1050]) {
    const got = slow(a, b, 'tcp', port);
    assert.deepEqual(got, fast(a, b, 'tcp', port), `${a} > ${b} tcp/${port}`);
    if (!got.allowed) denied++;
    for (const d of [got.egress, got.ingress]) if (d?.by?.rule.id.startsWith('c')) byCidr++;
    assert.equal(slow.classOf(a), fast.classOf(a));
  }
  assert.ok(denied > 0 && byCidr > 20, `rules with CIDRs decide flows (${byCidr} sides; ${denied} denied)`);
});

