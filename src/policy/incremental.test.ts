import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { addressOf, formatIp, formatIp6, maskOf6, parseIp, parseIp6, type Endpoint, type Group, type Network, type Policy, type Rule, type Tenant } from '../model/index.js';
import { compilePolicy, explainFlow, ID_LIMIT, lookupVerdict, RENUMBER_AT, type CompiledPolicy, type PolicyState } from './index.js';
import { listChangesOf, patchList, type Profile } from './pairs.js';

// Random rule sets and random single-rule (or single-endpoint) edits: each edit is compiled from the last compile (the
// incremental path) and must equal a cold compile given the same `previous` (same class ids, same
// ranges, same entries), and the tables of both hosts together must decide every probed flow as
// explain does (DESIGN §4).

const meta = { revision: 1, createdAt: '', updatedAt: '' };

/** mulberry32: seeded, so a failure names the seed that reproduces it. */
function rng(seed: number): (n: number) => number {
  return (n: number) => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) % n;
  };
}

const GROUPS = ['g0', 'g1', 'g2', 'g3'];
const POLICIES = ['p0', 'p1', 'p2', 'p3'];
const EPS: Array<[string, string, string, string | undefined]> = [
  ['10.1.0.2', 'a', 'h1', 'g0'], ['10.1.0.3', 'a', 'h2', 'g1'], ['10.1.1.200', 'a', 'h2', undefined], ['10.1.2.9', 'a', 'h1', 'g3'],
  ['10.2.0.3', 'b', 'h1', 'g2'], ['10.2.0.4', 'b', 'h2', 'g3'], ['10.2.0.5', 'b', 'h1', undefined], ['10.2.0.6', 'b', 'h2', 'g0'],
];
/** Addresses probed: every endpoint, and outside addresses near and far from the rule CIDRs. */
const PROBE_IPS = [...EPS.map((e) => e[0]), '10.1.0.77', '10.2.0.200', '192.0.2.1', '192.0.2.130', '198.51.100.7'];

/** A CIDR around an endpoint or an outside address, at a random length: prefixes nest and overlap. */
function cidr(rnd: (n: number) => number): string {
  const base = parseIp(PROBE_IPS[rnd(PROBE_IPS.length)] as string) as number;
  const len = [8, 12, 16, 20, 23, 24, 25, 28, 30, 31, 32][rnd(11)] as number;
  const size = 2 ** (32 - len);
  return `${formatIp(Math.floor(base / size) * size)}/${len}`;
}

/**
 * Dual stack (the second test): endpoints have IPv6 addresses too, and rule CIDRs may be IPv6 prefixes
 * around them (or around an address no endpoint has) at random lengths: they select endpoints by their
 * IPv6 address, as IPv4 ones do by their IPv4 address.
 */
let DUAL = false;
/**
 * IPv6-only (the third test, dual stack too): a network `c` with subnet6 alone, whose endpoints have no
 * IPv4 address: their class comes from the endpoint itself (classes.ts soloClass), their IPv6 address is
 * their only lookup.
 */
let SOLO = false;
const SOLO_EPS: Array<[string, string, string | undefined]> = [['fd00:3::2', 'h1', 'g0'], ['fd00:3::3', 'h2', 'g2'], ['fd00:3::4', 'h1', undefined], ['fd00:3::5', 'h2', 'g1']];
const SOLO_SPARE = ['fd00:3::50', 'fd00:3::51', 'fd00:3::1:0'];
const ip6Of = (ip: string): string | undefined => (ip.endsWith('.200') ? undefined : `fd00:${ip.split('.')[1]}::${ip.split('.').slice(2).map((x) => Number(x).toString(16)).join(':')}`);
function cidr6(rnd: (n: number) => number): string {
  const pool = [...EPS.map((e) => ip6Of(e[0])).filter((x): x is string => x !== undefined), 'fd00:1::77', 'fd00:9::1', '2001:db8::1', ...(SOLO ? [...SOLO_EPS.map((e) => e[0]), 'fd00:3::1:0'] : [])];
  const base = parseIp6(pool[rnd(pool.length)] as string) as bigint;
  const len = [16, 32, 48, 64, 96, 112, 120, 126, 127, 128][rnd(10)] as number;
  const text = `${formatIp6(base & maskOf6(len))}/${len}`;
  // Another spelling of the same prefix now and then: a separate text, the same addresses.
  return rnd(5) === 0 ? text.toUpperCase() : text;
}

function ports(rnd: (n: number) => number): string {
  const a = [0, 53, 79, 80, 443, 1000, 8000, 65535][rnd(8)] as number;
  if (rnd(2) || a === 65535) return String(a);
  return `${a}-${Math.min(65535, a + [1, 2, 20, 1000][rnd(4)]!)}`;
}

/**
 * Alike (the fourth test): rules drawn from a few shapes (tcp 80 or 443, priority 3 or 5, mostly CIDR
 * peers, some without one), so CIDRs often have the same rules and share a name (aliases.ts), and an edit moves one in or
 * out of a set, or leaves a set with one CIDR.
 */
let ALIKE = false;
function alikeRule(rnd: (n: number) => number): Rule {
  const direction = rnd(3) ? 'in' : 'out';
  const [g, c] = direction === 'in' ? ['fromGroup', 'fromCidr'] : ['toGroup', 'toCidr'];
  return {
    id: `r${nextRule++}`, direction, protocol: 'tcp', ports: rnd(2) ? '80' : '443', priority: rnd(2) ? 3 : 5, action: rnd(4) ? 'allow' : 'deny',
    // Now and then no peer: its changes decide again the pairs of the sets whose rules meet its ports.
    ...(rnd(8) ? { [c]: rnd(2) ? `${EPS[rnd(EPS.length)]![0]}/32` : cidr(rnd) } : rnd(2) ? { [g]: GROUPS[rnd(4)] } : {}),
  };
}

let nextRule = 0;
function randomRule(rnd: (n: number) => number): Rule {
  if (ALIKE) return alikeRule(rnd);
  const direction = rnd(2) ? 'in' : 'out';
  const protocol = ['tcp', 'tcp', 'udp', 'icmp', 'any', '47'][rnd(6)] as string;
  const peer = rnd(6);
  const k = direction === 'in' ? { g: 'fromGroup', n: 'fromNetwork', c: 'fromCidr' } : { g: 'toGroup', n: 'toNetwork', c: 'toCidr' };
  return {
    id: `r${nextRule++}`, direction, protocol, priority: 1 + rnd(8), action: rnd(2) ? 'allow' : 'deny',
    ...((protocol === 'tcp' || protocol === 'udp') && rnd(4) ? { ports: ports(rnd) } : {}),
    ...(peer === 0 ? { [k.g]: GROUPS[rnd(4)] } : peer === 1 ? { [k.n]: SOLO ? ['a', 'b', 'c'][rnd(3)] : rnd(2) ? 'a' : 'b' } : peer < 5 ? { [k.c]: DUAL && rnd(2) ? cidr6(rnd) : cidr(rnd) } : {}),
  };
}

function randomState(rnd: (n: number) => number): PolicyState {
  const rules = Array.from({ length: 20 + rnd(50) }, () => randomRule(rnd));
  const tenant: Tenant = { ...meta, name: 't', id: 1, defaultAction: rnd(2) ? 'allow' : 'deny' };
  const net = (name: string, subnet: string): Network => ({ ...meta, tenant: 't', name, subnet, gateway: '', encap: 'vxlan', vni: 1, mtu: 1450,
    ...(DUAL ? { subnet6: `fd00:${subnet.split('.')[1]}::/64`, gateway6: '' } : {}) });
  const group = (name: string, i: number): Group => ({ ...meta, tenant: 't', name, network: i % 2 ? 'b' : 'a', labels: {},
    policies: POLICIES.filter(() => rnd(3) === 0) });
  const ep = ([ip, network, host, g]: (typeof EPS)[number]): Endpoint => ({ ...meta, id: ip, tenant: 't', network, ...(g ? { group: g } : {}), ip,
    prefixLength: 24, gateway: '', mac: '', mtu: 1450, vni: 1, host, ifname: 'eth0', containerId: ip, labels: {}, state: 'created', ...six(ip) });
  const solo = (SOLO ? SOLO_EPS : []).map(([ip6, host, g]) => soloEp(ip6, host, g));
  return {
    tenant, networks: [net('a', '10.1.0.0/16'), net('b', '10.2.0.0/24'), ...(SOLO ? [{ ...meta, tenant: 't', name: 'c', subnet6: 'fd00:3::/64', gateway6: '', encap: 'vxlan' as const, vni: 3, mtu: 1450 }] : [])], groups: GROUPS.map(group),
    // One policy in five in audit mode: its rules without a peer stay in the pairs (sides.ts).
    policies: POLICIES.map((name, i): Policy => ({ ...meta, tenant: 't', name, rules: rules.filter((_, j) => j % 4 === i), ...(rnd(5) === 0 ? { mode: 'audit' as const } : {}) })),
    endpoints: [...EPS.map(ep), ...solo],
  };
}

/** An endpoint of the IPv6-only network `c`: no IPv4 address. */
const soloEp = (ip6: string, host: string, g: string | undefined): Endpoint => ({ ...meta, id: ip6, tenant: 't', network: 'c', ...(g ? { group: g } : {}),
  ip6, prefixLength6: 64, gateway6: '', mac: '', mtu: 1450, vni: 3, host, ifname: 'eth0', containerId: ip6, labels: {}, state: 'created' });

/** One IPv6-only endpoint comes, goes, or changes group. */
function editSolo(s: PolicyState, rnd: (n: number) => number): PolicyState {
  const eps = [...s.endpoints];
  const solos = eps.flatMap((e, i) => (e.ip === undefined ? [i] : []));
  const kind = rnd(3);
  if (kind === 0 || solos.length === 0) {
    const ip6 = SOLO_SPARE[rnd(SOLO_SPARE.length)] as string;
    if (eps.some((x) => x.ip6 === ip6)) return s;
    eps.push(soloEp(ip6, rnd(2) ? 'h1' : 'h2', rnd(4) ? GROUPS[rnd(4)] : undefined));
  } else {
    const j = solos[rnd(solos.length)] as number;
    const e = eps[j] as Endpoint;
    if (kind === 1) eps.splice(j, 1);
    else {
      const { group: _, ...rest } = e;
      eps[j] = { ...rest, ...(rnd(4) ? { group: GROUPS[rnd(4)] as string } : {}), revision: e.revision + 1 };
    }
  }
  return { ...s, endpoints: eps };
}

const six = (ip: string) => { const a = DUAL ? ip6Of(ip) : undefined; return a === undefined ? {} : { ip6: a, prefixLength6: 64, gateway6: '' }; };

const SPARE_IPS = ['10.1.0.50', '10.1.0.51', '10.1.1.201', '10.2.0.7', '10.2.0.8', '10.2.0.201'];

/** One endpoint comes, goes, or changes group (a new revision), on either host. */
function editEndpoint(s: PolicyState, rnd: (n: number) => number): PolicyState {
  if (SOLO && rnd(2) === 0) return editSolo(s, rnd);
  const kind = rnd(3);
  const eps = [...s.endpoints];
  const j = rnd(eps.length);
  const e = eps[j] as Endpoint;
  if (e.ip === undefined) return editSolo(s, rnd);
  const group = rnd(4) ? { group: GROUPS[rnd(4)] as string } : {};
  if (kind === 0 || eps.length < 3) {
    const ip = SPARE_IPS[rnd(SPARE_IPS.length)] as string;
    if (eps.some((x) => x.ip === ip)) return s;
    const { group: _, ...rest } = e;
    const { ip6: _6, prefixLength6: _p, gateway6: _g, ...plain } = rest;
    eps.push({ ...plain, ...group, ...six(ip), id: ip, ip, network: ip.startsWith('10.1.') ? 'a' : 'b', host: rnd(2) ? 'h1' : 'h2', containerId: ip });
  } else if (kind === 1) eps.splice(j, 1);
  else if (DUAL && rnd(3) === 0) {
    // Replaced in place: the same IPv4 address and group, another IPv6 address (or none).
    const { ip6: _6, prefixLength6: _p, gateway6: _g, ...plain } = e;
    const other = SPARE_IPS[rnd(SPARE_IPS.length)] as string;
    const taken = eps.some((x) => x.ip6 !== undefined && x.ip6 === ip6Of(other));
    eps[j] = { ...plain, ...(rnd(4) && !taken ? six(other) : {}), revision: e.revision + 1 };
  } else {
    const { group: _, ...rest } = e;
    eps[j] = { ...rest, ...group, revision: e.revision + 1 };
  }
  return { ...s, endpoints: eps };
}

/** One random edit of one rule (add, remove, or change a field), as a new revision of its policy. */
function editOne(s: PolicyState, rnd: (n: number) => number): PolicyState {
  if (rnd(4) === 0) return editEndpoint(s, rnd);
  const i = rnd(s.policies.length);
  const p = s.policies[i] as Policy;
  let rules: Rule[];
  const kind = p.rules.length === 0 ? 0 : rnd(3);
  if (kind === 0) rules = [...p.rules, randomRule(rnd)];
  else if (kind === 1) { const j = rnd(p.rules.length); rules = p.rules.filter((_, x) => x !== j); }
  else {
    const j = rnd(p.rules.length);
    const fresh = randomRule(rnd);
    const field = (['priority', 'action', 'ports', 'protocol', 'peer', 'direction'] as const)[rnd(6)];
    rules = p.rules.map((r, x) => {
      if (x !== j) return r;
      // A changed field of the same rule (same id); peer and direction take the fresh rule's whole shape.
      if (field === 'peer' || field === 'direction' || field === 'protocol' || field === 'ports') return { ...fresh, id: r.id, priority: r.priority, action: r.action };
      return { ...r, [field as 'priority' | 'action']: fresh[field as 'priority' | 'action'] };
    });
  }
  return { ...s, policies: s.policies.map((x, k) => (k === i ? { ...p, revision: p.revision + 1, rules } : x)) };
}

const sortBy = <T>(xs: readonly T[]) => [...xs].map((x) => JSON.stringify(x)).sort();

/** The incremental compile is the cold compile: ids, ranges and entries alike. */
function assertSame(inc: CompiledPolicy, cold: CompiledPolicy, at: string): void {
  assert.deepEqual(inc.classification.ranges, cold.classification.ranges, `${at}: ranges`);
  assert.deepEqual(inc.classification.ranges6, cold.classification.ranges6, `${at}: IPv6 ranges`);
  assert.deepEqual([...inc.classification.solo].sort(), [...cold.classification.solo].sort(), `${at}: IPv6-only endpoints' classes`);
  assert.deepEqual(sortBy(inc.v6), sortBy(cold.v6), `${at}: the IPv6 map`);
  assert.deepEqual(sortBy(inc.classification.classes), sortBy(cold.classification.classes), `${at}: classes`);
  // Profile ids may differ (they are given in the order functions are met): the functions may not.
  assert.deepEqual(pairFunctions(inc), pairFunctions(cold), `${at}: pairs and their functions`);
  assert.deepEqual(sideFunctions(inc), sideFunctions(cold), `${at}: side profiles`);
  assert.deepEqual(sideFunctions(inc, true), sideFunctions(cold, true), `${at}: high profiles`);
  // The class → role maps themselves (the snapshots of versioned.ts), not only what the pairs make of them.
  assert.deepEqual(rolesOf(inc), rolesOf(cold), `${at}: roles`);
  assertInterned(inc, at);
  assert.equal(inc.ruleCount, cold.ruleCount, `${at}: rule count`);
}

const rolesOf = (c: CompiledPolicy) => ({ src: [...c.roles.src].sort((a, b) => a[0] - b[0]), dst: [...c.roles.dst].sort((a, b) => a[0] - b[0]), sizes: [c.roles.src.size, c.roles.dst.size] });

/** Each pair with the text of its function per protocol, sorted: a compile's meaning, without its ids. */
function pairFunctions(c: CompiledPolicy): string[] {
  const text = new Map(c.profiles.map((p) => [p.id, `${p.proto}:${p.text}`]));
  return c.pairs.map((p) => `${p.src}.${p.dst} ${[p.tcp, p.udp, p.other, p.sctp].map((id) => (id ? text.get(id) : '-')).join(' ')}`).sort();
}

/** Each enforced class with the text of its side profile per direction and protocol. */
function sideFunctions(c: CompiledPolicy, high = false): string[] {
  const text = new Map((high ? c.highProfiles : c.sideProfiles).map((p) => [p.id, `${p.proto}:${p.text}`]));
  const t = (ids: readonly number[]) => ids.map((id) => (id ? text.get(id) : '-')).join(' ');
  return (high ? c.highs : c.sides).map((x) => `${x.cls} in ${t(x.in)} out ${t(x.out)}`);
}

/** Every profile is held by a pair, every pair's profile exists, and no function is stored twice. */
function assertInterned(c: CompiledPolicy, at: string): void {
  const ids = new Set(c.profiles.map((p) => p.id));
  assert.ok(c.profiles.every((p, i) => i === 0 || (c.profiles[i - 1] as Profile).id < p.id), `${at}: profiles listed by id`);
  const held = new Set(c.pairs.flatMap((p) => [p.tcp, p.udp, p.other]).filter((id) => id !== 0));
  assert.deepEqual([...held].sort(), [...ids].sort(), `${at}: profiles held and listed`);
  const texts = c.profiles.map((p) => `${p.proto}:${p.text}`);
  assert.equal(new Set(texts).size, texts.length, `${at}: a function stored twice`);
  assert.equal(new Set(c.pairs.map((p) => `${p.src}.${p.dst}`)).size, c.pairs.length, `${at}: a pair listed twice`);
}

/** What a host's tables decide for a new connection (address → class, then the entries, else the default). */
function allows(c: CompiledPolicy, src: string, dst: string, proto: number, port: number): boolean {
  const cls = (ip: string) => c.classification.ranges.find((r) => (parseIp(ip) as number) >= r.first && (parseIp(ip) as number) <= r.last)?.cls ?? 0;
  const [s, d] = [cls(src), cls(dst)];
  // An audit verdict passes (counted): what explain calls allowed.
  return lookupVerdict(c, s, d, proto, port) !== 'drop';
}

/**
 * The same over IPv6: an endpoint's address has the IPv6 map's class (the datapath's cls6), any other
 * the class of the IPv6 range it is in (cls6r), else 0.
 */
function allows6(c: CompiledPolicy, src: string, dst: string, proto: number, port: number): boolean {
  const cls = (ip: string) => {
    const own = c.v6.find((x) => x.addr === ip);
    if (own) return own.cls;
    const n = parseIp6(ip) as bigint;
    return c.classification.ranges6.find((r) => n >= r.first && n <= r.last)?.cls ?? 0;
  };
  return lookupVerdict(c, cls(src), cls(dst), proto, port) !== 'drop';
}

/** IPv6 addresses no endpoint has (outside the tenant, reached by NAT66), near and far from the rule CIDRs. */
const PROBE_IPS6 = ['fd00:1::77', 'fd00:1::1:0', 'fd00:2::c8', 'fd00:9::1', 'fd00:9::1:1', '2001:db8::1'];

/** Every probed flow: the hosts of both ends together allow it exactly when explain does. */
function assertVerdicts(s: PolicyState, tables: ReadonlyMap<string, CompiledPolicy>, at: string): void {
  if (DUAL) assertVerdicts6(s, tables, at);
  const hostOf = new Map(s.endpoints.map((e) => [addressOf(e), e.host]));
  // An endpoint's IPv6 address by the address it is named by (its own, for an IPv6-only network's).
  const six6 = new Map(s.endpoints.flatMap((e) => (e.ip6 !== undefined ? [[addressOf(e), e.ip6] as const] : [])));
  const probePorts = [0, 53, 54, 80, 81, 443, 1000, 8000, 65535];
  const ips = [...new Set([...PROBE_IPS, ...s.endpoints.map(addressOf)])];
  for (const a of ips) for (const b of ips) {
    if (a === b) continue;
    const hosts = [hostOf.get(a), hostOf.get(b)].filter((h): h is string => h !== undefined);
    for (const [proto, name] of [[6, 'tcp'], [17, 'udp'], [1, 'icmp'], [47, '47']] as const) {
      for (const port of proto === 6 || proto === 17 ? probePorts : [0]) {
        const want = explainFlow(s, a, b, name, proto === 6 || proto === 17 ? port : undefined).allowed;
        // Over IPv4 where both ends have it (an IPv6-only endpoint is decided over IPv6 below).
        if (!a.includes(':') && !b.includes(':')) {
          const got = hosts.every((h) => allows(tables.get(h) as CompiledPolicy, a, b, proto, port));
          assert.equal(got, want, `${at}: ${a} -> ${b} ${name}/${port}`);
        }
        // The same endpoints over IPv6: their addresses' classes from the IPv6 map (cls6), one verdict.
        const [a6, b6] = [six6.get(a), six6.get(b)];
        if (a6 !== undefined && b6 !== undefined) {
          const got6 = hosts.every((h) => allows6(tables.get(h) as CompiledPolicy, a6, b6, proto, port));
          assert.equal(got6, want, `${at}: ${a6} -> ${b6} ${name}/${port}`);
        }
      }
    }
  }
}

/**
 * Between endpoints (by their IPv6 addresses) and IPv6 addresses of no endpoint, both ways: the hosts'
 * IPv6 lookups decide as explain does for the endpoint (its IPv4 address) and that address.
 */
function assertVerdicts6(s: PolicyState, tables: ReadonlyMap<string, CompiledPolicy>, at: string): void {
  const eps = s.endpoints.filter((e) => e.ip6 !== undefined);
  const others = PROBE_IPS6.filter((x) => !eps.some((e) => e.ip6 === x));
  for (const e of eps) {
    for (const o of others) {
      for (const [src, dst, src6, dst6] of [[addressOf(e), o, e.ip6, o], [o, addressOf(e), o, e.ip6]] as const) {
        for (const [proto, name, port] of [[6, 'tcp', 80], [6, 'tcp', 443], [17, 'udp', 53], [1, 'icmp', 0]] as const) {
          const want = explainFlow(s, src, dst, name, proto === 1 ? undefined : port).allowed;
          const got = allows6(tables.get(e.host) as CompiledPolicy, src6 as string, dst6 as string, proto, port);
          assert.equal(got, want, `${at}: ${src6} -> ${dst6} ${name}/${port}`);
        }
      }
    }
  }
}

/**
 * Random states of `seeds`, 25 random edits each, compiled on both hosts from the last compile: each must
 * equal the cold compile, and every 12 edits the tables must decide every probed flow as explain does.
 * Returns how many compiles were incremental, and how many of their classes held an IPv6 CIDR.
 */
function randomEdits(seeds: readonly number[]): { incremental: number; sixes: number; aliased: number } {
  let incremental = 0;
  let sixes = 0;
  let aliased = 0;
  for (const seed of seeds) {
    const rnd = rng(seed);
    let s = randomState(rnd);
    const tables = new Map(['h1', 'h2'].map((h) => [h, compilePolicy({ ...s, host: h })]));
    for (let step = 0; step < 25; step++) {
      s = editOne(s, rnd);
      for (const [h, prev] of tables) {
        const inc = compilePolicy({ ...s, host: h, previous: prev });
        // The previous compile's state was taken over: given it again, compilePolicy compiles cold.
        const cold = compilePolicy({ ...s, host: h, previous: prev });
        assert.equal(cold.how, 'cold');
        if (inc.how === 'incremental') incremental++;
        assertSame(inc, cold, `seed ${seed} step ${step} ${h}`);
        tables.set(h, inc);
        sixes += inc.classification.classes.filter((k) => k.cidrs.some((c) => c.includes(':'))).length;
        aliased += inc.classification.classes.filter((k) => k.cidrs.some((c) => c.startsWith('~'))).length;
      }
      if (step % 12 === 11) assertVerdicts(s, tables, `seed ${seed} step ${step}`);
    }
  }
  return { incremental, sixes, aliased };
}

test('random single-rule and single-endpoint edits, compiled from the last compile: the same as a cold compile, and explain agrees', () => {
  const { incremental } = randomEdits([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
  // Only a compile with no rule in force here (nothing to take over) may be cold: most edits must not be.
  assert.ok(incremental > 12 * 25 * 2 * 0.6, `${incremental} of ${12 * 25 * 2} edits compiled incrementally`);
});

test('CIDRs with alike rules share a name (aliases.ts): random edits move CIDRs in and out of sets, incremental as cold, and explain agrees', () => {
  ALIKE = true;
  try {
    const { incremental, aliased } = randomEdits([21, 22, 23, 24, 25, 26, 27, 28]);
    assert.ok(incremental > 8 * 25 * 2 * 0.6, `${incremental} of ${8 * 25 * 2} edits compiled incrementally`);
    // The shapes make sets: most compiles have a class named by one.
    assert.ok(aliased > 8 * 25, `${aliased} classes named by a set`);
  } finally {
    ALIKE = false;
  }
});

test('IPv6-only network: endpoints without an IPv4 address get classes of their own; random edits incremental as cold, and explain agrees', () => {
  DUAL = true;
  SOLO = true;
  try {
    const { incremental } = randomEdits([201, 202, 203, 204, 205, 206, 207, 208]);
    assert.ok(incremental > 8 * 25 * 2 * 0.6, `${incremental} of ${8 * 25 * 2} edits compiled incrementally`);
  } finally {
    DUAL = false;
    SOLO = false;
  }
});

test('dual stack: random edits with IPv6 rule CIDRs (endpoints selected by their IPv6 address), incremental as cold, and explain agrees', () => {
  DUAL = true;
  try {
    const { incremental, sixes } = randomEdits([101, 102, 103, 104, 105, 106, 107, 108]);
    assert.ok(sixes > 100, `classes holding IPv6 CIDRs were made (${sixes})`);
    assert.ok(incremental > 8 * 25 * 2 * 0.6, `${incremental} of ${8 * 25 * 2} edits compiled incrementally`);
  } finally {
    DUAL = false;
  }
});

test('a compile taken over by the next one keeps its own tables; what changes the frame compiles cold', () => {
  const rnd = rng(99);
  const s: PolicyState = { ...randomState(rnd), groups: GROUPS.map((g, i) => ({ ...meta, tenant: 't', name: g, network: i % 2 ? 'b' : 'a', labels: {}, policies: POLICIES })) };
  const first = compilePolicy({ ...s, host: 'h1' });
  assert.ok(first.classification.classes.length > 1, 'rules are in force on h1');
  const snapshot = JSON.stringify([first.classification.ranges, first.classification.classes, first.pairs, first.profiles, [...first.classification.ids]]);
  // Three rules added, one removed, and an endpoint of a group h1 already enforces.
  const [p0, ...others] = s.policies as [Policy, ...Policy[]];
  const rules = [...p0.rules.slice(1), randomRule(rnd), randomRule(rnd), { ...randomRule(rnd), direction: 'in' as const, fromCidr: '10.1.0.48/29' }];
  const ep = { ...(s.endpoints[0] as Endpoint), id: 'new', ip: '10.1.0.50', containerId: 'new' };
  const next: PolicyState = { ...s, policies: [{ ...p0, revision: 2, rules }, ...others], endpoints: [...s.endpoints, ep] };
  const second = compilePolicy({ ...next, host: 'h1', previous: first });
  assert.equal(second.how, 'incremental');
  assert.equal(JSON.stringify([first.classification.ranges, first.classification.classes, first.pairs, first.profiles, [...first.classification.ids]]), snapshot,
    'the previous compile is a value: the agent may still be rendering or applying it');
  const attached = { ...next, groups: next.groups.map((g, i) => (i === 0 ? { ...g, policies: [...g.policies, 'p3'] } : g)) };
  const third = compilePolicy({ ...attached, host: 'h1', previous: second });
  assert.equal(third.how, 'cold', 'a policy attached: the rule indexes change wholesale');
  assert.ok(second.lineage === first.lineage && third.lineage === first.lineage, 'compiles made from one another share a lineage, cold ones too');
  assert.notEqual(compilePolicy({ ...attached, host: 'h1' }).lineage, first.lineage, 'a compile from nothing starts its own');
});

test('a rule without a peer on ports no rule with a peer uses, at 3,000 CIDR rules: no pair decided again, one side profile changes, the cold compile\'s result', () => {
  const ep = (ip: string, g: string): Endpoint => ({ ...meta, id: ip, tenant: 't', network: 'a', group: g, ip, prefixLength: 16, gateway: '', mac: '', mtu: 1450, vni: 1, host: 'h1', ifname: 'eth0', containerId: ip, labels: {}, state: 'created' });
  const cidrRules = Array.from({ length: 3000 }, (_, i): Rule => ({ id: `c${i}`, priority: 5, direction: 'in', action: i % 2 ? 'allow' : 'deny', protocol: 'tcp', ports: String(10000 + i), fromCidr: `10.9.${i >> 8}.${i & 255}/32` }));
  const base: Rule[] = [{ id: 'base', priority: 1, direction: 'in', action: 'deny', protocol: 'tcp' }, { id: 'app', priority: 10, direction: 'in', action: 'allow', protocol: 'tcp', ports: '5202', fromGroup: 'app' }];
  const state = (live: Rule[], previous?: CompiledPolicy): PolicyState => ({
    tenant: { ...meta, name: 't', id: 1, defaultAction: 'allow' }, networks: [{ ...meta, tenant: 't', name: 'a', subnet: '10.1.0.0/16', gateway: '', encap: 'vxlan', vni: 1, mtu: 1450 }],
    groups: [{ ...meta, tenant: 't', name: 'db', network: 'a', labels: {}, policies: ['base', 'bulk', 'live'] }, { ...meta, tenant: 't', name: 'app', network: 'a', labels: {}, policies: [] }],
    policies: [{ ...meta, tenant: 't', name: 'base', rules: base }, { ...meta, tenant: 't', name: 'bulk', rules: cidrRules }, { ...meta, tenant: 't', name: 'live', revision: live.length + 2, rules: live }],
    endpoints: [ep('10.1.0.2', 'db'), ep('10.1.0.3', 'app')], host: 'h1', ...(previous ? { previous } : {}),
  });
  const open: Rule = { id: 'toggle', priority: 10, direction: 'in', action: 'allow', protocol: 'tcp', ports: '9500' };
  let c = compilePolicy(state([]));
  const changes: Rule[][] = [[open], [], [open], [{ ...open, ports: '9400-9499' }], []];
  for (const [k, live] of changes.entries()) {
    const before = c;
    c = compilePolicy(state(live, before));
    assert.equal(c.how, 'incremental', `change ${k}`);
    // The rule is high (above every rule with a peer on its ports, high.ts): no pair decides it. When db's
    // ingress gains its first high rule or loses its last, the two pairs of enforced classes into db are
    // decided again (their functions once db's ingress is decided open); else none.
    const toggled = (live.length > 0) !== ((changes[k - 1] ?? []).length > 0);
    assert.equal(c.decided, toggled ? 2 : 0, `change ${k}: pairs decided again`);
    // The same pairs, the same profiles: nothing a pair decides moved.
    assert.deepEqual([c.pairs, c.profiles], [before.pairs, before.profiles], `change ${k}: the pairs and their profiles as they were`);
    assertSame(c, compilePolicy(state(live, before)), `change ${k}`);
    const db = c.classification.byIp('10.1.0.2').id;
    const from = c.classification.byIp('10.9.3.7').id;
    const app = c.classification.byIp('10.1.0.3').id;
    assert.equal(lookupVerdict(c, from, db, 6, 9500), live.length && k !== 3 ? 'accept' : 'drop', `change ${k}: 9500 from a CIDR source`);
    assert.equal(lookupVerdict(c, app, db, 6, 9450), k === 3 ? 'accept' : 'drop', `change ${k}: 9450 from app`);
    assert.equal(lookupVerdict(c, app, db, 6, 5202), 'accept', `change ${k}: app's port`);
    assert.equal(lookupVerdict(c, from, db, 6, 10000 + 3 * 256 + 7), (3 * 256 + 7) % 2 ? 'accept' : 'drop', `change ${k}: the CIDR's own port`);
  }
  // On a port some rule with a peer uses, below it (priority 3 under the CIDR rules' 5), the pairs decide:
  // they are decided again, and still agree with cold.
  const below: Rule = { ...open, ports: '10001', priority: 3 };
  const over = compilePolicy(state([below], c));
  assert.equal(over.how, 'incremental');
  assert.ok(compilePolicy(state([])).decided > 3000, 'a cold compile decides every pair into db');
  // Only the pair whose rule with a peer names 10001 (from 10.9.0.1 into db), not the 3,000 pairs into db.
  assert.equal(over.decided, 1, 'one pair decided again');
  assert.notDeepEqual(over.profiles, c.profiles, 'the pairs that use port 10001 changed');
  assertSame(over, compilePolicy(state([below], c)), 'overlapping');
  const at = (x: CompiledPolicy, from: string, port: number) => lookupVerdict(x, x.classification.byIp(from).id, x.classification.byIp('10.1.0.2').id, 6, port);
  assert.equal(at(over, '10.9.0.0', 10001), 'accept', 'from a source whose own rule names another port: the peerless allow');
  assert.equal(at(over, '10.9.0.1', 10001), 'accept', 'from the source whose own rule allows it');
  assert.equal(at(over, '10.9.0.2', 10002), 'drop', 'its own priority-5 deny still holds where the allow does not reach');
  // Above every rule with a peer on its port (a high rule, high.ts): decided ahead of the pairs, none decided again.
  let prev = over;
  for (const action of ['deny', 'allow'] as const) {
    const high: Rule = { ...open, ports: '10000-10001', action };
    const top = compilePolicy(state([high], prev));
    assert.equal(top.how, 'incremental');
    // From `over`: the pair the priority-3 rule's removal touches, and db's ingress gains its first high
    // rule (the two pairs of enforced classes into db); then none.
    assert.equal(top.decided, action === 'deny' ? 3 : 0, `${action} above: pairs decided again`);
    const again = compilePolicy(state([{ ...high, ports: '10000-10003' }], top));
    assert.equal(again.decided, 0, `${action} above, its ports changed: no pair decided again`);
    assert.deepEqual([again.pairs, again.profiles], [top.pairs, top.profiles], `${action} above: the pairs and their profiles as they were`);
    assertSame(again, compilePolicy(state([{ ...high, ports: '10000-10003' }], top)), `${action} above`);
    for (const [from, port] of [['10.9.0.0', 10000], ['10.9.0.1', 10001], ['10.9.0.2', 10002], ['10.9.0.3', 10003], ['10.9.0.4', 10004]] as const) {
      const own = port - 10000;
      const want = port <= 10003 ? (action === 'allow' ? 'accept' : 'drop') : own % 2 ? 'accept' : 'drop';
      assert.equal(at(again, from, port), want, `${action} above: ${from} → ${port}`);
    }
    prev = again;
  }
});

test('a peerless rule beside a NetworkPolicy isolation in audit mode (its peerless rules stay in the pairs): the incremental compile decides the pairs again, as cold', () => {
  const ep = (ip: string, g: string, labels: Record<string, string>): Endpoint => ({ ...meta, id: ip, tenant: 't', network: 'a', group: g, ip, prefixLength: 24, gateway: '', mac: '', mtu: 1450, vni: 1, host: 'h1', ifname: 'eth0', containerId: ip, labels, state: 'created' });
  const state = (def: 'allow' | 'deny', rules: Rule[], previous?: CompiledPolicy): PolicyState => ({
    tenant: { ...meta, name: 't', id: 1, defaultAction: def }, networks: [{ ...meta, tenant: 't', name: 'a', subnet: '10.1.1.0/24', gateway: '', encap: 'vxlan', vni: 1, mtu: 1450 }],
    groups: [{ ...meta, tenant: 't', name: 'db', network: 'a', labels: {}, policies: ['p'] }, { ...meta, tenant: 't', name: 'web', network: 'a', labels: {}, policies: ['q'] }],
    policies: [{ ...meta, tenant: 't', name: 'p', revision: rules.length + 1, rules }, { ...meta, tenant: 't', name: 'q', rules: [{ id: 'o', priority: 1, direction: 'out', action: 'allow', protocol: 'any' }] }],
    endpoints: [ep('10.1.1.2', 'db', { app: 'db' }), ep('10.1.1.3', 'web', {})],
    netpol: { policies: [{ namespace: 'default', name: 'iso', audit: true, spec: { podSelector: { matchLabels: { app: 'db' } }, policyTypes: ['Ingress'] } }], namespaces: [] },
    host: 'h1', ...(previous ? { previous } : {}),
  });
  for (const [def, action] of [['allow', 'deny'], ['deny', 'allow']] as const) {
    const rule: Rule = { id: 'x', priority: 10, direction: 'in', action, protocol: 'tcp', ports: '9500' };
    let c = compilePolicy(state(def, []));
    for (const rules of [[rule], [], [rule]]) {
      const before = c;
      c = compilePolicy(state(def, rules, before));
      assert.equal(c.how, 'incremental');
      assertSame(c, compilePolicy(state(def, rules, before)), `${def} ${rules.length ? 'with' : 'without'} the rule`);
      const want = explainFlow(state(def, rules), '10.1.1.3', '10.1.1.2', 'tcp', 9500);
      const got = lookupVerdict(c, c.classification.byIp('10.1.1.3').id, c.classification.byIp('10.1.1.2').id, 6, 9500);
      assert.equal(got === 'drop', !want.allowed, `${def} ${rules.length ? 'with' : 'without'} the rule: ${got}`);
    }
  }
});

test('the last rule without a peer of a policy in audit mode, removed and added again: the pairs that held it are decided again, as cold', () => {
  const ep = (ip: string, g: string): Endpoint => ({ ...meta, id: ip, tenant: 't', network: 'a', group: g, ip, prefixLength: 24, gateway: '', mac: '', mtu: 1450, vni: 1, host: 'h1', ifname: 'eth0', containerId: ip, labels: {}, state: 'created' });
  const audited: Rule = { id: 'a', priority: 1, direction: 'out', action: 'deny', protocol: 'tcp', ports: '8000-8080' };
  const state = (rules: Rule[], previous?: CompiledPolicy): PolicyState => ({
    tenant: { ...meta, name: 't', id: 1, defaultAction: 'allow' }, networks: [{ ...meta, tenant: 't', name: 'a', subnet: '10.1.1.0/24', gateway: '', encap: 'vxlan', vni: 1, mtu: 1450 }],
    groups: [{ ...meta, tenant: 't', name: 'web', network: 'a', labels: {}, policies: ['watch', 'plain'] }],
    policies: [{ ...meta, tenant: 't', name: 'watch', mode: 'audit', revision: rules.length + 1, rules },
      { ...meta, tenant: 't', name: 'plain', rules: [{ id: 'p', priority: 5, direction: 'out', action: 'allow', protocol: 'udp', ports: '53', toCidr: '192.0.2.0/24' }] }],
    endpoints: [ep('10.1.1.2', 'web'), ep('10.1.1.3', 'web')], host: 'h1', ...(previous ? { previous } : {}),
  });
  let c = compilePolicy(state([audited]));
  for (const rules of [[], [audited], []]) {
    const before = c;
    c = compilePolicy(state(rules, before));
    assert.equal(c.how, 'incremental');
    assertSame(c, compilePolicy(state(rules, before)), rules.length ? 'added' : 'removed');
    const got = lookupVerdict(c, c.classification.byIp('10.1.1.2').id, c.classification.byIp('192.0.2.9').id, 6, 8000);
    assert.equal(got, rules.length ? 'audit' : 'accept', `${rules.length ? 'with' : 'without'} the audited deny`);
  }
});

test('an endpoint gone and another of its class come in one compile: the class keeps its id, as cold (the order regions are swept in does not matter)', () => {
  const ep = (ip: string, g: string): Endpoint => ({ ...meta, id: ip, tenant: 't', network: 'a', group: g, ip, prefixLength: 24, gateway: '', mac: '', mtu: 1450, vni: 1, host: 'h1', ifname: 'eth0', containerId: ip, labels: {}, state: 'created' });
  const state = (eps: Endpoint[], previous?: CompiledPolicy): PolicyState => ({
    tenant: { ...meta, name: 't', id: 1, defaultAction: 'allow' }, networks: [{ ...meta, tenant: 't', name: 'a', subnet: '10.1.1.0/24', gateway: '', encap: 'vxlan', vni: 1, mtu: 1450 }],
    groups: [{ ...meta, tenant: 't', name: 'web', network: 'a', labels: {}, policies: ['p'] }, { ...meta, tenant: 't', name: 'db', network: 'a', labels: {}, policies: ['p'] }],
    policies: [{ ...meta, tenant: 't', name: 'p', rules: [{ id: 'x', priority: 5, direction: 'in', action: 'deny', protocol: 'tcp', ports: '22', fromGroup: 'web' }] }],
    endpoints: eps, host: 'h1', ...(previous ? { previous } : {}),
  });
  const first = compilePolicy(state([ep('10.1.1.2', 'db'), ep('10.1.1.3', 'web')]));
  const web = first.classification.byIp('10.1.1.3').id;
  // web's only endpoint leaves from a lower address than the one that comes.
  const moved = [ep('10.1.1.2', 'db'), ep('10.1.1.50', 'web')];
  const inc = compilePolicy(state(moved, first));
  assert.equal(inc.how, 'incremental');
  assertSame(inc, compilePolicy(state(moved, first)), 'moved');
  assert.equal(inc.classification.byIp('10.1.1.50').id, web, "web's class keeps its id (its mark)");
});

test('a rule without a peer on the last port of two rules with a peer that span 1,024 ports from the same first port: both of their pairs are decided again (below them), or only enforced classes\' pairs (above them)', () => {
  const ep = (ip: string, g: string): Endpoint => ({ ...meta, id: ip, tenant: 't', network: 'a', group: g, ip, prefixLength: 16, gateway: '', mac: '', mtu: 1450, vni: 1, host: 'h1', ifname: 'eth0', containerId: ip, labels: {}, state: 'created' });
  // Two buckets (from app, from web) whose one range each starts at 1024 and reaches 2048: tied in the index.
  const rules: Rule[] = [
    { id: 'base', priority: 1, direction: 'in', action: 'deny', protocol: 'tcp' },
    { id: 'app', priority: 5, direction: 'in', action: 'allow', protocol: 'tcp', ports: '1024-2048', fromGroup: 'app' },
    { id: 'web', priority: 5, direction: 'in', action: 'allow', protocol: 'tcp', ports: '1024-2048', fromGroup: 'web' },
  ];
  const state = (live: Rule[], previous?: CompiledPolicy): PolicyState => ({
    tenant: { ...meta, name: 't', id: 1, defaultAction: 'allow' }, networks: [{ ...meta, tenant: 't', name: 'a', subnet: '10.1.0.0/16', gateway: '', encap: 'vxlan', vni: 1, mtu: 1450 }],
    groups: ['db', 'app', 'web'].map((g) => ({ ...meta, tenant: 't', name: g, network: 'a', labels: {}, policies: g === 'db' ? ['base', 'live'] : [] })),
    policies: [{ ...meta, tenant: 't', name: 'base', rules }, { ...meta, tenant: 't', name: 'live', revision: live.length + 2, rules: live }],
    endpoints: [ep('10.1.0.2', 'db'), ep('10.1.0.3', 'app'), ep('10.1.0.4', 'web')], host: 'h1', ...(previous ? { previous } : {}),
  });
  // Above them: high (high.ts), no pair decides it; db's ingress gains its first high rule, so the three
  // pairs of enforced classes into db are decided again (their functions once db's ingress is open).
  for (const [priority, decided, shut] of [[3, 2, false], [10, 3, true]] as const) {
    const before = compilePolicy(state([]));
    const rule: Rule = { id: 'shut', priority, direction: 'in', action: 'deny', protocol: 'tcp', ports: '2048' };
    const after = compilePolicy(state([rule], before));
    assert.equal(after.how, 'incremental');
    assert.equal(after.decided, decided, `priority ${priority}: the pairs from app and from web, or those of enforced classes into db`);
    assertSame(after, compilePolicy(state([rule], before)), `priority ${priority}`);
    const db = after.classification.byIp('10.1.0.2').id;
    for (const from of ['10.1.0.3', '10.1.0.4']) {
      const src = after.classification.byIp(from).id;
      assert.equal(lookupVerdict(after, src, db, 6, 2048), shut ? 'drop' : 'accept', `priority ${priority}: ${from} → db:2048`);
      assert.equal(lookupVerdict(after, src, db, 6, 2047), 'accept', `priority ${priority}: ${from} → db:2047 stays open`);
    }
  }
});

test('a rule with a peer added above a NetworkPolicy isolation that was decided ahead of the pairs: the isolation goes back into the pairs, which are decided again (they have no Weft holder), as cold', () => {
  const ep = (ip: string, g: string, labels: Record<string, string>): Endpoint => ({ ...meta, id: ip, tenant: 't', network: 'a', group: g, ip, prefixLength: 24, gateway: '', mac: '', mtu: 1450, vni: 1, host: 'h1', ifname: 'eth0', containerId: ip, labels, state: 'created' });
  const clientRules: Rule[] = [{ id: 'shut', priority: 5, direction: 'out', action: 'deny', protocol: 'any' }, { id: 'web', priority: 10, direction: 'out', action: 'allow', protocol: 'tcp', ports: '80', toGroup: 'web' }];
  const state = (webRules: Rule[], previous?: CompiledPolicy): PolicyState => ({
    tenant: { ...meta, name: 't', id: 1, defaultAction: 'allow' }, networks: [{ ...meta, tenant: 't', name: 'a', subnet: '10.1.1.0/24', gateway: '', encap: 'vxlan', vni: 1, mtu: 1450 }],
    groups: ['web', 'client', 'admin'].map((g) => ({ ...meta, tenant: 't', name: g, network: 'a', labels: {}, policies: [g] })),
    policies: [{ ...meta, tenant: 't', name: 'web', revision: webRules.length + 1, rules: webRules }, { ...meta, tenant: 't', name: 'client', rules: clientRules }, { ...meta, tenant: 't', name: 'admin', rules: [] }],
    endpoints: [ep('10.1.1.2', 'web', { app: 'web' }), ep('10.1.1.3', 'client', {}), ep('10.1.1.4', 'admin', {})],
    // web's pods are isolated for ingress with nothing allowed: a deny of everything below Weft's rules, no peer.
    netpol: { policies: [{ namespace: 'default', name: 'iso', spec: { podSelector: { matchLabels: { app: 'web' } }, policyTypes: ['Ingress'] } }], namespaces: [] },
    host: 'h1', ...(previous ? { previous } : {}),
  });
  let c = compilePolicy(state([]));
  assert.ok(c.highs.length > 0, "web's isolation is decided ahead of the pairs");
  for (const rules of [[{ id: 'admin', priority: 10, direction: 'in', action: 'allow', protocol: 'tcp', ports: '443', fromGroup: 'admin' } as Rule], []]) {
    const before = c;
    c = compilePolicy(state(rules, before));
    assert.equal(c.how, 'incremental');
    assertSame(c, compilePolicy(state(rules, before)), rules.length ? 'added' : 'removed');
    for (const [from, port] of [['10.1.1.3', 80], ['10.1.1.3', 443], ['10.1.1.4', 443], ['10.1.1.4', 80]] as const) {
      const want = explainFlow(state(rules), from, '10.1.1.2', 'tcp', port).allowed;
      assert.equal(lookupVerdict(c, c.classification.byIp(from).id, c.classification.byIp('10.1.1.2').id, 6, port) !== 'drop', want, `${rules.length ? 'added' : 'removed'}: ${from} → web:${port}`);
    }
  }
});

test('ids only grow with churn; a compile whose previous gave one past RENUMBER_AT starts over from 1, and none passes ID_LIMIT', () => {
  const ep = (ip: string, g: string): Endpoint => ({ ...meta, id: ip, tenant: 't', network: 'a', group: g, ip, prefixLength: 16, gateway: '', mac: '', mtu: 1450, vni: 1, host: 'h1', ifname: 'eth0', containerId: ip, labels: {}, state: 'created' });
  // Each state's rules name CIDRs no earlier state named, each with a port of its own: new classes, new functions.
  const state = (k: number, previous?: CompiledPolicy): PolicyState => ({
    tenant: { ...meta, name: 't', id: 1, defaultAction: 'allow' }, networks: [{ ...meta, tenant: 't', name: 'a', subnet: '10.1.0.0/16', gateway: '', encap: 'vxlan', vni: 1, mtu: 1450 }],
    groups: [{ ...meta, tenant: 't', name: 'db', network: 'a', labels: {}, policies: ['churn'] }, { ...meta, tenant: 't', name: 'app', network: 'a', labels: {}, policies: [] }],
    policies: [{ ...meta, tenant: 't', name: 'churn', revision: k + 1, rules: Array.from({ length: 20 }, (_, i): Rule => ({ id: `c${i}`, priority: 5, direction: 'in', action: i % 2 ? 'allow' : 'deny', protocol: 'tcp', ports: String(1000 + 20 * k + i), fromCidr: `10.${9 + (k >> 8)}.${k & 255}.${i}/32` })) }],
    endpoints: [ep('10.1.0.2', 'db'), ep('10.1.0.3', 'app')], host: 'h1', ...(previous ? { previous } : {}),
  });
  const maxClass = (c: CompiledPolicy) => Math.max(...c.classification.ids.values());
  let c = compilePolicy(state(0));
  const first = c.idHigh;
  for (let k = 1; k <= 10; k++) {
    const before = c;
    c = compilePolicy(state(k, before));
    assert.equal(c.lineage, before.lineage, `change ${k}: one lineage`);
    assert.ok(c.idHigh > before.idHigh && maxClass(c) > maxClass(before), `change ${k}: new CIDRs take new ids above every live one (${before.idHigh} → ${c.idHigh})`);
  }
  assert.ok(c.idHigh >= first + 10 * 20, `ten changes of twenty new CIDRs: ids grew past ${first + 200} (${c.idHigh}), and with a tenant's churn they would go on growing`);
  // A lineage that has given ids up to just below RENUMBER_AT (its previous's ids shifted up: a cold
  // compile keeps them) and one past it: the first goes on as it was, the second starts over.
  const shifted = (x: CompiledPolicy, by: number): CompiledPolicy => ({
    ...x, classification: { ...x.classification, ids: new Map([...x.classification.ids].map(([key, id]) => [key, id === 0 ? 0 : id + by])) },
    profiles: x.profiles.map((p) => ({ ...p, id: p.id + by })), idHigh: x.idHigh + by,
  });
  const near = compilePolicy(state(11, shifted(c, RENUMBER_AT - 1 - c.idHigh)));
  assert.equal(near.lineage, c.lineage, 'below RENUMBER_AT: the lineage goes on');
  assert.ok(near.idHigh >= RENUMBER_AT, `its new classes take ids past RENUMBER_AT (${near.idHigh})`);
  assert.ok(maxClass(near) >= RENUMBER_AT - 1, 'the kept classes keep their ids');
  const over = compilePolicy(state(12, near));
  const fromNothing = compilePolicy(state(12));
  assert.notEqual(over.lineage, near.lineage, 'past RENUMBER_AT: a lineage of its own (the datapath writes its table anew)');
  assert.equal(over.how, 'cold');
  assert.ok(over.idHigh < 100 && maxClass(over) < 100, `ids from 1 again (${over.idHigh})`);
  assert.deepEqual([...over.classification.ids], [...fromNothing.classification.ids], 'the ids of a compile from nothing');
  assertSame(over, fromNothing, 'renumbered');
  const db = over.classification.byIp('10.1.0.2').id;
  for (let i = 0; i < 20; i++) {
    assert.equal(lookupVerdict(over, over.classification.byIp(`10.9.12.${i}`).id, db, 6, 1000 + 240 + i), i % 2 ? 'accept' : 'drop', `the renumbered compile decides rule ${i}`);
  }
  // A previous that claims less than it gave (no compile does): a compile past ID_LIMIT starts over too,
  // rather than write colliding marks or refuse the tenant at every pass.
  const past = compilePolicy(state(13, { ...shifted(over, ID_LIMIT), idHigh: 0 }));
  assert.ok(past.idHigh < 100 && past.lineage !== over.lineage, `past ID_LIMIT: ids from 1 again (${past.idHigh})`);
  assertSame(past, compilePolicy(state(13)), 'past ID_LIMIT, renumbered');
});

test('a profile list patched by the ids that came, went or changed equals the list made again, and leaves the old one as it was', () => {
  const rnd = rng(7);
  for (let round = 0; round < 300; round++) {
    const live = new Map<number, { id: number; v: number }>();
    for (let k = rnd(40); k > 0; k--) { const id = 1 + rnd(60); live.set(id, { id, v: rnd(1000) }); }
    const was = [...live.values()].sort((a, b) => a.id - b.id);
    const frozen = JSON.stringify(was);
    const touched = new Set<number>();
    // Come (ids below, between and above those listed), go, change in place, and come and go again.
    for (let k = rnd(30); k > 0; k--) {
      const id = 1 + rnd(70);
      touched.add(id);
      if (live.has(id) && rnd(2)) live.delete(id);
      else live.set(id, { id, v: rnd(1000) });
    }
    const got = patchList(was, touched, (id) => live.get(id));
    assert.deepEqual(got, [...live.values()].sort((a, b) => a.id - b.id), `round ${round}`);
    assert.equal(JSON.stringify(was), frozen, `round ${round}: the old list unchanged`);
    // What it changed, as a walk of both lists finds it (a changed object is one of each), in id order.
    const olds = new Map(was.map((x) => [x.id, x]));
    const ids = [...new Set([...olds.keys(), ...live.keys()])].sort((a, b) => a - b);
    assert.deepEqual(listChangesOf(got, was), {
      removed: ids.flatMap((id) => (olds.has(id) && olds.get(id) !== live.get(id) ? [olds.get(id)] : [])),
      added: ids.flatMap((id) => (live.has(id) && olds.get(id) !== live.get(id) ? [live.get(id)] : [])),
    }, `round ${round}: its changes`);
    assert.equal(listChangesOf(got, [...was]), undefined, `round ${round}: not said for another list than the one it was patched from`);
  }
});

test('a patched profile list does not keep the list it was patched from alive (each would keep all before it)', async () => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const made = (n: number) => Array.from({ length: n }, (_, i) => ({ id: i + 1, v: 0 }));
  let was: { id: number; v: number }[] | undefined = made(1000);
  const ref = new WeakRef(was);
  const got = patchList(was, new Set([5]), (id) => ({ id, v: 1 }));
  assert.equal(listChangesOf(got, was)?.added.length, 1);
  was = undefined;
  // A WeakRef's target lives to the end of the job that made or read it.
  await new Promise((r) => setImmediate(r));
  gc();
  assert.equal(ref.deref(), undefined, 'the old list was collected');
  assert.equal(got.length, 1000);
});
