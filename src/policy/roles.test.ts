import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatIp, parseIp, type Endpoint, type Group, type Network, type Policy, type Rule, type Tenant } from '../model/index.js';
import { compilePolicy, lookups, type PolicyState, type Slot } from './index.js';
import { rolesOf } from './roles.js';
import { Prng } from '../chaos/prng.js';

// The premise of classes per role: a pair of classes decides as the pair of its roles' representatives,
// for every pair, slot and port, over random rule sets (nested and overlapping CIDRs as sources and as
// destinations, groups, networks, ports, priorities, both defaults, endpoints here and elsewhere).

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

/** The CIDRs a state's rules name as sources and as destinations (names as classes hold them: no sets at these sizes). */
function cidrRoles(s: PolicyState) {
  const from = new Set<string>();
  const to = new Set<string>();
  for (const p of s.policies) for (const r of p.rules) { if (r.fromCidr) from.add(r.fromCidr); if (r.toCidr) to.add(r.toCidr); }
  return { from, to };
}

test('every pair of classes decides as the pair of its roles: random rule sets', () => {
  let pairs = 0;
  let rolePairs = 0;
  for (let seed = 1; seed <= 150; seed++) {
    const s = randomState(seed);
    const c = compilePolicy(s);
    const classes = c.classification.classes;
    const roles = rolesOf(classes, cidrRoles(s));
    const { functionOf } = lookups(c);
    for (const src of classes) {
      for (const dst of classes) {
        const a = roles.srcRep.get(roles.src.get(src.id) as number)?.id as number;
        const b = roles.dstRep.get(roles.dst.get(dst.id) as number)?.id as number;
        for (const slot of [0, 1, 2] as Slot[]) {
          assert.deepEqual(functionOf(a, b, slot), functionOf(src.id, dst.id, slot), `seed ${seed}: classes ${src.id} → ${dst.id}, slot ${slot}, as roles' ${a} → ${b}`);
        }
      }
    }
    pairs += classes.length ** 2;
    rolePairs += roles.srcRep.size * roles.dstRep.size;
  }
  assert.ok(rolePairs < pairs, `${rolePairs} pairs of roles for ${pairs} pairs of classes`);
});

test('E endpoints each let in by its own /32 on its own port: E source roles, a few destination roles', () => {
  const n = 60;
  const ip = (i: number) => `10.5.${(i >> 8) + 1}.${i & 255}`;
  const endpoints: Endpoint[] = Array.from({ length: n }, (_, i) => ({ ...meta, id: `e${i}`, tenant: 't', network: 'n', group: 'db', ip: ip(i), prefixLength: 16, gateway: '',
    mac: '', mtu: 1450, vni: 1, host: 'h', ifname: 'eth0', containerId: `c${i}`, labels: {}, state: 'created' }));
  const rules: Rule[] = [{ id: 'out', direction: 'out', action: 'allow', protocol: 'any', priority: 1 },
    ...endpoints.map((e, i): Rule => ({ id: `r${i}`, direction: 'in', action: 'allow', protocol: 'tcp', priority: 5, ports: String(20000 + i), fromCidr: `${e.ip}/32` }))];
  const s: PolicyState = { tenant: { ...meta, name: 't', id: 1, defaultAction: 'deny' }, host: 'h', endpoints, policies: [{ ...meta, tenant: 't', name: 'p', rules }],
    networks: [{ ...meta, tenant: 't', name: 'n', subnet: '10.5.0.0/16', gateway: '', encap: 'vxlan', vni: 1, mtu: 1450 }],
    groups: [{ ...meta, tenant: 't', name: 'db', network: 'n', policies: ['p'], labels: {} }] };
  const c = compilePolicy(s);
  const roles = rolesOf(c.classification.classes, cidrRoles(s));
  assert.equal(c.classification.classes.length, n + 2);
  assert.deepEqual([roles.srcRep.size, roles.dstRep.size], [n + 2, 3]);
  const { functionOf } = lookups(c);
  const db = c.classification.classes.filter((k) => k.endpoint);
  for (const src of db) for (const dst of db) assert.deepEqual(functionOf(src.id, dst.id, 0), functionOf(src.id, db[0]!.id, 0));
});
