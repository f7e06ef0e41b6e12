import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatIp, parseIp, type Endpoint, type Group, type Network, type Policy, type Rule, type Tenant } from '../model/index.js';
import { compilePolicy, explainFlow, lookupVerdict, type CompiledPolicy, type PolicyState } from './index.js';
import { Prng } from '../chaos/prng.js';

// Classes per role (roles.ts): the compile keeps pairs of roles, and the tables decide every connection
// as explain does, over random rule sets (nested and overlapping CIDRs as sources and as destinations,
// groups, networks, ports, priorities, both defaults, endpoints here and elsewhere); a rule shape that
// names each endpoint's own address as a source makes pairs linear in the endpoints, and stays so as
// endpoints and rules come and go (incremental compiles equal to cold ones).

const meta = { revision: 1, createdAt: '', updatedAt: '' };
const GROUPS = ['g0', 'g1', 'g2'];
const IPS = ['10.1.0.2', '10.1.0.3', '10.1.0.9', '10.1.1.4', '10.2.0.3', '10.2.0.4', '10.2.0.77', '192.0.2.1', '192.0.2.200'];

function randomState(seed: number): PolicyState {
  const g = new Prng(seed);
  const rnd = (n: number) => g.int(0, n - 1);
  const cidr = () => {
    const len = [8, 16, 24, 25, 30, 32, 32][rnd(7)] as number;
    const size = 2 ** (32 - len);
    return `${formatIp(Math.floor((parseIp(IPS[rnd(IPS.length)] as string) as number) / size) * size)}/${len}`;
  };
  let serial = 0;
  const rule = (): Rule => {
    const direction = rnd(2) ? 'in' : 'out';
    const protocol = ['tcp', 'tcp', 'udp', 'icmp', 'any'][rnd(5)] as string;
    const k = direction === 'in' ? ['fromGroup', 'fromNetwork', 'fromCidr'] : ['toGroup', 'toNetwork', 'toCidr'];
    const a = [53, 80, 443, 8000][rnd(4)] as number;
    const peer = rnd(6);
    return {
      id: `r${serial++}`, direction, protocol, priority: 1 + rnd(6), action: rnd(2) ? 'allow' : 'deny',
      ...((protocol === 'tcp' || protocol === 'udp') && rnd(3) ? { ports: rnd(2) ? String(a) : `${a}-${a + 20}` } : {}),
      ...(peer === 0 ? { [k[0] as string]: GROUPS[rnd(3)] } : peer === 1 ? { [k[1] as string]: rnd(2) ? 'a' : 'b' } : peer < 5 ? { [k[2] as string]: cidr() } : {}),
    } as Rule;
  };
  const ep = (ip: string): Endpoint => ({ ...meta, id: ip, tenant: 't', network: ip.startsWith('10.1.') ? 'a' : 'b', ...(rnd(5) ? { group: GROUPS[rnd(3)] as string } : {}), ip,
    prefixLength: 16, gateway: '', mac: '', mtu: 1450, vni: 1, host: rnd(3) ? 'h' : 'other', ifname: 'eth0', containerId: ip, labels: {}, state: 'created' });
  const net = (name: string, subnet: string): Network => ({ ...meta, tenant: 't', name, subnet, gateway: '', encap: 'vxlan', vni: 1, mtu: 1450 });
  const policies: Policy[] = ['p0', 'p1'].map((name) => ({ ...meta, tenant: 't', name, rules: Array.from({ length: 4 + rnd(20) }, rule) }));
  const groups: Group[] = GROUPS.map((name, i) => ({ ...meta, tenant: 't', name, network: i ? 'b' : 'a', labels: {}, policies: ['p0', 'p1'].filter(() => rnd(3) > 0) }));
  const tenant: Tenant = { ...meta, name: 't', id: 1, defaultAction: rnd(2) ? 'allow' : 'deny' };
  return { tenant, networks: [net('a', '10.1.0.0/16'), net('b', '10.2.0.0/16')], groups, policies, endpoints: IPS.slice(0, 7).map(ep), ...(rnd(3) ? { host: 'h' } : {}) };
}


/**
 * Every probed flow between the state's addresses: the tables of the hosts of its ends (through their
 * roles) together decide as explain does (an endpoint's host enforces its side).
 */
function assertExplained(s: PolicyState, tables: ReadonlyMap<string | undefined, CompiledPolicy>, at: string): void {
  const hostOf = new Map(s.endpoints.map((e) => [e.ip, s.host === undefined ? undefined : e.host]));
  for (const a of IPS) for (const b of IPS) {
    if (a === b || (!hostOf.has(a) && !hostOf.has(b))) continue;
    const hosts = new Set([a, b].filter((x) => hostOf.has(x)).map((x) => hostOf.get(x)));
    for (const [proto, name, ports] of [[6, 'tcp', [53, 80, 90, 443, 8000, 8021]], [17, 'udp', [53, 80]], [1, 'icmp', [0]]] as const) {
      for (const port of ports) {
        const want = explainFlow(s, a, b, name, proto === 1 ? undefined : port).allowed;
        const got = [...hosts].every((h) => { const c = tables.get(h) as CompiledPolicy; return lookupVerdict(c, c.classification.byIp(a).id, c.classification.byIp(b).id, proto, port) !== 'drop'; });
        assert.equal(got, want, `${at}: ${a} -> ${b} ${name}/${port}`);
      }
    }
  }
}

test('the tables decide through roles as explain does: random rule sets, with fewer pairs than pairs of classes', () => {
  let classPairs = 0;
  let rolePairs = 0;
  for (let seed = 1; seed <= 150; seed++) {
    const s = randomState(seed);
    const tables = new Map(s.host === undefined ? [[undefined, compilePolicy(s)]] : ['h', 'other'].map((h) => [h, compilePolicy({ ...s, host: h })]));
    assertExplained(s, tables, `seed ${seed}`);
    const c = tables.values().next().value as CompiledPolicy;
    const n = c.classification.classes.length;
    classPairs += n * n;
    rolePairs += new Set(c.classification.classes.map((k) => c.roles.src.get(k.id) ?? k.id)).size * new Set(c.classification.classes.map((k) => c.roles.dst.get(k.id) ?? k.id)).size;
    // A role's id is one of its classes' (the smallest), and pairs are keyed by roles only.
    for (const [k, r] of [...c.roles.src, ...c.roles.dst]) assert.ok(r < k, `seed ${seed}: class ${k} in role ${r}`);
    for (const p of c.pairs) {
      assert.ok(!c.roles.src.has(p.src), `seed ${seed}: a pair from class ${p.src}, not its role`);
      assert.ok(!c.roles.dst.has(p.dst & 0xffffff), `seed ${seed}: a pair to class ${p.dst}, not its role`);
    }
  }
  assert.ok(rolePairs < classPairs * 0.8, `${rolePairs} pairs of roles for ${classPairs} pairs of classes`);
});

const ip = (i: number) => `10.5.${(i >> 8) + 1}.${i & 255}`;
const endpoint = (i: number, host = 'h'): Endpoint => ({ ...meta, id: `e${i}`, tenant: 't', network: 'n', group: 'db', ip: ip(i), prefixLength: 16, gateway: '',
  mac: '', mtu: 1450, vni: 1, host, ifname: 'eth0', containerId: `c${i}`, labels: {}, state: 'created' });
const ownRule = (i: number): Rule => ({ id: `r${i}`, direction: 'in', action: 'allow', protocol: 'tcp', priority: 5, ports: String(20000 + i), fromCidr: `${ip(i)}/32` });

/** E endpoints of db, each let in from its own address on its own port (#13's rule shape, every endpoint on one host). */
function perEndpoint(n: number): PolicyState {
  const endpoints = Array.from({ length: n }, (_, i) => endpoint(i));
  const rules: Rule[] = [{ id: 'out', direction: 'out', action: 'allow', protocol: 'any', priority: 1 }, ...endpoints.map((_, i) => ownRule(i))];
  return { tenant: { ...meta, name: 't', id: 1, defaultAction: 'deny' }, host: 'h', endpoints, policies: [{ ...meta, tenant: 't', name: 'p', rules }],
    networks: [{ ...meta, tenant: 't', name: 'n', subnet: '10.5.0.0/16', gateway: '', encap: 'vxlan', vni: 1, mtu: 1450 }],
    groups: [{ ...meta, tenant: 't', name: 'db', network: 'n', policies: ['p'], labels: {} }] };
}

/** Two compiles mean the same: roles, and each pair of roles with its functions' text. */
function assertSame(a: CompiledPolicy, b: CompiledPolicy, at: string): void {
  const sorted = (m: ReadonlyMap<number, number>) => [...m].sort((x, y) => x[0] - y[0]);
  assert.deepEqual(sorted(a.roles.src), sorted(b.roles.src), `${at}: source roles`);
  assert.deepEqual(sorted(a.roles.dst), sorted(b.roles.dst), `${at}: destination roles`);
  const fns = (c: CompiledPolicy) => {
    const text = new Map(c.profiles.map((p) => [p.id, `${p.proto}:${p.text}`]));
    return c.pairs.map((p) => `${p.src}.${p.dst} ${[p.tcp, p.udp, p.other, p.sctp].map((id) => (id ? text.get(id) : '-')).join(' ')}`).sort();
  };
  assert.deepEqual(fns(a), fns(b), `${at}: pairs`);
}

test('E endpoints each let in from its own /32 on its own port: pairs linear in E, and incremental compiles as cold ones as endpoints and rules come and go', () => {
  const n = 300;
  let s = perEndpoint(n);
  let c = compilePolicy(s);
  // Classes: the endpoints, the rest of the network, elsewhere. Sources tell every endpoint apart; destinations do not.
  assert.equal(c.classification.classes.length, n + 2);
  assert.equal(c.roles.dst.size, n - 1, 'every endpoint but the first is the first one\'s destination role');
  assert.equal(c.roles.src.size, 0);
  assert.ok(c.decided <= 3 * (n + 2), `${c.decided} pairs decided for ${n} endpoints (pairs of classes: ${(n + 2) ** 2})`);
  assertExplainedPer(s, c, 'cold', [0, 1, n - 1]);
  const edits: Array<[string, (x: PolicyState) => PolicyState]> = [
    // The role's id is its smallest class: the first endpoint gone moves it to the next one.
    ['the first endpoint gone', (x) => ({ ...x, endpoints: x.endpoints.slice(1) })],
    ['an endpoint and its rule come', (x) => ({ ...x, endpoints: [...x.endpoints, endpoint(n)], policies: x.policies.map((p) => ({ ...p, rules: [...p.rules, ownRule(n)] })) })],
    ['a rule\'s port changed', (x) => ({ ...x, policies: x.policies.map((p) => ({ ...p, rules: p.rules.map((r) => (r.id === 'r7' ? { ...r, ports: '7' } : r)) })) })],
    ['an endpoint on another host', (x) => ({ ...x, endpoints: [...x.endpoints, endpoint(n + 1, 'other')] })],
    // Now named as a destination too: the address tells destinations apart (roles change: cold).
    ['its address named as a destination', (x) => ({ ...x, policies: x.policies.map((p) => ({ ...p, rules: [...p.rules, { id: 'to9', direction: 'out', action: 'deny', protocol: 'udp', priority: 2, toCidr: `${ip(9)}/32` }] })) })],
    ['and no more', (x) => ({ ...x, policies: x.policies.map((p) => ({ ...p, rules: p.rules.filter((r) => r.id !== 'to9') })) })],
  ];
  for (const [what, edit] of edits) {
    s = edit(s);
    const inc = compilePolicy({ ...s, previous: c });
    const cold = compilePolicy({ ...s, previous: c });
    assertSame(inc, cold, what);
    assertExplainedPer(s, inc, what, [1, 7, 9, n - 1]);
    c = inc;
  }
  // The first endpoint's address, still named by its rule, is an address of the network's rest as a destination.
  const dstRoles = new Set(c.classification.classes.map((k) => c.roles.dst.get(k.id) ?? k.id));
  assert.equal(dstRoles.size, 3, 'destination roles: elsewhere, the rest of the network, db');
  assert.ok(c.decided < 10 * n, `${c.decided} pairs decided by the last change`);
});

/** Between a few of the per-endpoint shape's endpoints, on each's own port and another's. */
function assertExplainedPer(s: PolicyState, c: CompiledPolicy, at: string, picks: readonly number[]): void {
  for (const a of picks) for (const b of picks) {
    if (a === b || !s.endpoints.some((e) => e.ip === ip(a)) || !s.endpoints.some((e) => e.ip === ip(b))) continue;
    for (const port of [20000 + a, 20000 + b, 7]) {
      const want = explainFlow(s, ip(a), ip(b), 'tcp', port).allowed;
      assert.equal(lookupVerdict(c, c.classification.byIp(ip(a)).id, c.classification.byIp(ip(b)).id, 6, port) !== 'drop', want, `${at}: ${ip(a)} -> ${ip(b)} tcp/${port}`);
    }
  }
}

test('a rule naming a /16 around 2,000 endpoints of one destination role comes and goes: each class moves its role once, not the role\'s size per class', () => {
  // A review's find: the old classes left in id order, each the role's smallest id as it went, and the role
  // was renumbered (every member's entry rewritten) each time: 2,000² writes; 16,000 endpoints, 8 s a change.
  const n = 2000;
  const wide: Rule = { id: 'wide', direction: 'in', action: 'allow', protocol: 'udp', ports: '53', priority: 2, fromCidr: '10.5.0.0/16' };
  const s = perEndpoint(n);
  const c0 = compilePolicy(s);
  const withWide = (x: PolicyState): PolicyState => ({ ...x, policies: x.policies.map((p) => ({ ...p, rules: [...p.rules, wide] })) });
  // Counted by hand (a mock would keep every call): Map writes during the two compiles.
  let writes = 0;
  const set = Map.prototype.set;
  let c1: CompiledPolicy;
  let c2: CompiledPolicy;
  Map.prototype.set = function (this: Map<unknown, unknown>, k: unknown, v: unknown) { writes++; return set.call(this, k, v); };
  try {
    c1 = compilePolicy({ ...withWide(s), previous: c0 });
    c2 = compilePolicy({ ...s, previous: c1 });
  } finally {
    Map.prototype.set = set;
  }
  assert.deepEqual([c1.how, c2.how], ['incremental', 'incremental']);
  assert.ok(writes < 100 * n, `${writes} map writes for two compiles that each move ${n} classes`);
  assertSame(c2, compilePolicy({ ...s, previous: c1 }), 'the /16 gone');
});
