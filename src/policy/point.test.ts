import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Endpoint, Group, Network, Policy, Rule } from '../model/index.js';
import { CLASS0_KEY, classify, classKey } from './classes.js';
import { pointClassifier } from './point.js';
import { Prng } from '../chaos/prng.js';

// pointClassifier answers what classify's sweep answers (explain and the server's flow records use it,
// the compiler the sweep): compared address by address over random tenants.

const meta = { revision: 1, createdAt: '', updatedAt: '' };

/** Seeded (chaos/prng.ts), so a failure names the seed that reproduces it. */
function rng(seed: number): (n: number) => number {
  const g = new Prng(seed);
  return (n: number) => g.int(0, n - 1);
}

const quad = (n: number) => `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;

interface Tenant { networks: Network[]; groups: Group[]; policies: Policy[]; endpoints: Endpoint[]; probes: string[] }

/**
 * Networks in 10.40.0.0/16 (one with IPv6, one IPv6-only when `dual`), endpoints (some sharing an
 * address, some in a group the tenant lacks, dual-stack and IPv6-only ones), and rule CIDRs nested around
 * them and elsewhere, some written with host bits set, some IPv6; probes at every edge and some garbage.
 */
function tenant(seed: number, dual: boolean): Tenant {
  const r = rng(seed);
  const net = (name: string, subnet: string | undefined, subnet6?: string): Network => ({ ...meta, tenant: 't', name, ...(subnet ? { subnet } : {}), ...(subnet6 ? { subnet6 } : {}), gateway: '', encap: 'vxlan', vni: 1, mtu: 1450 });
  const networks = [net('a', '10.40.0.0/20', dual ? 'fd00:40::/64' : undefined), net('b', '10.40.16.0/20'), ...(dual ? [net('c', undefined, 'fd00:41::/64')] : [])];
  const groups: Group[] = ['g0', 'g1'].map((name) => ({ ...meta, tenant: 't', name, network: 'a', policies: ['p'], labels: {} }));
  const endpoints: Endpoint[] = [];
  for (let i = 0; i < 40; i++) {
    const v6only = dual && r(6) === 0;
    const ip = v6only ? undefined : quad((10 << 24) | (40 << 16) | r(8192));
    const ip6 = dual && (v6only || r(2) === 0) ? `fd00:${v6only ? 41 : 40}::${(r(4096) + 2).toString(16)}` : undefined;
    endpoints.push({ ...meta, id: `e${i}`, tenant: 't', network: v6only ? 'c' : ip && Number(ip.split('.')[2]) < 16 ? 'a' : 'b', ...(r(4) ? { group: ['g0', 'g1', 'gone'][r(3)] as string } : {}),
      ...(ip ? { ip, prefixLength: 20, gateway: '' } : {}), ...(ip6 ? { ip6, prefixLength6: 64, gateway6: '' } : {}),
      mac: '', mtu: 1450, vni: 1, host: 'h', ifname: 'eth0', containerId: `e${i}`, labels: {}, state: 'created' } as Endpoint);
  }
  const cidrs: string[] = [];
  for (let i = 0; i < 60; i++) {
    const around = endpoints[r(endpoints.length)]?.ip;
    const base = around && r(3) ? (10 << 24) | (40 << 16) | (Number(around.split('.')[2]) << 8) | Number(around.split('.')[3]) : ((11 + r(3)) << 24) | r(1 << 24);
    const len = [0, 8, 12, 16, 20, 24, 28, 30, 31, 32][r(10)] as number;
    const size = 2 ** (32 - len);
    // Host bits kept in one in three (classify reads the range, not the text).
    const first = r(3) ? (base >>> 0) - ((base >>> 0) % size) : base >>> 0;
    cidrs.push(`${quad(first)}/${len}`);
    if (dual && r(4) === 0) cidrs.push(r(2) ? `fd00:40::${(r(4096) + 2).toString(16)}/128` : `fd00:${40 + r(2)}::/${[64, 100, 120][r(3)]}`);
  }
  const rules: Rule[] = cidrs.map((c, i) => ({ id: `r${i}`, priority: 1, direction: i % 2 ? 'in' : 'out', action: 'allow', protocol: 'tcp', ...(i % 2 ? { fromCidr: c } : { toCidr: c }) }));
  const policies: Policy[] = [{ ...meta, tenant: 't', name: 'p', rules }];
  const probes = ['', 'x', '10.40.0', '::1', 'fd00:40::zz', '0.0.0.0', '255.255.255.255', '10.40.0.0', '10.40.15.255', '10.40.16.0', '10.40.31.255', '10.40.32.0'];
  for (const e of endpoints) for (const ip of [e.ip, e.ip6]) if (ip) probes.push(ip);
  for (const c of cidrs) {
    if (c.includes(':')) { probes.push(c.split('/')[0] as string); continue; }
    const [a, l] = c.split('/') as [string, string];
    const n = a.split('.').reduce((k, x) => k * 256 + Number(x), 0);
    const size = 2 ** (32 - Number(l));
    const first = n - (n % size);
    for (const x of [first - 1, first, first + 1, first + size - 1, first + size]) if (x >= 0 && x < 2 ** 32) probes.push(quad(x));
  }
  for (let i = 0; i < 50; i++) probes.push(quad(r(2 ** 30) * 4 + r(4)), dual ? `fd00:${40 + r(2)}::${r(65536).toString(16)}` : `fd00::${i}`);
  return { networks, groups, policies, endpoints, probes };
}

for (const dual of [false, true]) {
  test(`an address's class one at a time is the sweep's, ${dual ? 'dual-stack' : 'IPv4'} tenants (40 seeds)`, () => {
    for (let seed = 1; seed <= 40; seed++) {
      const t = tenant(seed * 7 + (dual ? 1 : 0), dual);
      const swept = classify(t.networks, t.groups, t.policies, t.endpoints);
      const point = pointClassifier(t.networks, t.groups, t.policies, t.endpoints);
      const idOf = new Map<string, number>();
      for (const ip of t.probes) {
        const want = swept.byIp(ip);
        const got = point(ip);
        assert.equal(classKey(got), classKey(want), `seed ${seed}, ${ip}`);
        // Its ids: 0 for class 0, one per class.
        const key = classKey(got);
        assert.equal(got.id === 0, key === CLASS0_KEY, `seed ${seed}, ${ip}: id ${got.id}`);
        if (!idOf.has(key)) idOf.set(key, got.id);
        assert.equal(got.id, idOf.get(key), `seed ${seed}, ${ip}: one id per class`);
      }
      assert.equal(new Set(idOf.values()).size, idOf.size, `seed ${seed}: distinct classes, distinct ids`);
    }
  });
}

test('50,000 nested rule CIDRs: the addresses inside them, at their edges and outside, one at a time as the sweep has them', () => {
  const rules: Rule[] = Array.from({ length: 50_000 }, (_, i): Rule => {
    const len = [8, 12, 16, 20, 24, 26, 28, 32][i & 7] as number;
    const base = ((11 + ((i >> 3) % 200)) << 24 | ((i >> 3) * 37 & 0xffff) << 8) >>> 0;
    return { id: `r${i}`, priority: 1, direction: 'in', action: 'allow', protocol: 'tcp', fromCidr: `${quad(base - (base % 2 ** (32 - len)))}/${len}` };
  });
  const t = tenant(3, false);
  const policies: Policy[] = [{ ...meta, tenant: 't', name: 'p', rules }];
  const swept = classify(t.networks, t.groups, policies, t.endpoints);
  const point = pointClassifier(t.networks, t.groups, policies, t.endpoints);
  const probes = [...t.probes, ...rules.slice(0, 400).flatMap((r) => {
    const [a] = (r.fromCidr as string).split('/') as [string];
    const n = a.split('.').reduce((k, x) => k * 256 + Number(x), 0);
    return [quad(n), quad(n - 1), quad(n + 77)];
  })];
  for (const ip of probes) assert.equal(classKey(point(ip)), classKey(swept.byIp(ip)), ip);
  assert.ok(new Set(probes.map((ip) => point(ip).id)).size > 100, 'many classes among them');
});
