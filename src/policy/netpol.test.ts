import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseIp, type AdminNetworkPolicy, type AnpPeer, type AnpPort, type AnpRule, type AnpSubject, type BaselineAdminNetworkPolicy, type Endpoint, type Group, type LabelSelector, type NetpolProtocol, type NetworkPolicy, type NetworkPolicyPeer, type NetworkPolicyPort, type Policy, type Rule, type Tenant } from '../model/index.js';
import { adminVerdict, netpolVerdict, type OracleAdmin, type OracleEnd, type OracleNamespace, type OraclePod } from '../testkit/netpol-oracle.js';
import { compilePolicy, explainFlow, filters, lookupVerdict, verdictChanges, type CompiledPolicy, type PolicyState } from './index.js';
import { classify, classKey } from './classes.js';
import { netpolOf } from './compile.js';
import { pointClassifier } from './point.js';

// The compiler's NetworkPolicy layer against the truth-table oracle (src/testkit/netpol-oracle.ts, written
// apart from the compiler): the upstream x/y/z × a/b/c world, fixed cases and many random policy sets,
// each checked for every ordered pair, protocol and port, in the compiled tables (whole tenant, and per
// host as the agents enforce it: the source's host, then the destination's) and through explain.

const meta = { revision: 1, createdAt: '', updatedAt: '' };
const tenant: Tenant = { ...meta, name: 't', id: 1, defaultAction: 'allow' };
const NS = ['x', 'y', 'z'];
const POD = ['a', 'b', 'c'];
const namespaces: OracleNamespace[] = NS.map((n) => ({ name: n, labels: { ns: n } }));
/** Upstream's pods serve TCP, UDP and SCTP on 80 and 81 under these names; z/c declares serve-80-tcp and serve-80-sctp as 81, to make names matter. */
const portsOf = (id: string) => Object.fromEntries(([80, 81] as const).flatMap((p) => (['TCP', 'UDP', 'SCTP'] as const).map((pr) => [`serve-${p}-${pr.toLowerCase()}`, { port: id === 'z/c' && p === 80 && pr !== 'UDP' ? 81 : p, protocol: pr }])));
const pods: OraclePod[] = NS.flatMap((n, i) => POD.map((p, j) => ({ namespace: n, name: p, labels: { pod: p }, ip: `10.0.${i}.${j + 1}`, ports: portsOf(`${n}/${p}`) })));
const HOSTS = ['h1', 'h2'];
const hostOf = (p: OraclePod) => HOSTS[(pods.indexOf(p) * 7) % HOSTS.length] as string;

function endpointOf(p: OraclePod, group?: string): Endpoint {
  const labels: Record<string, string> = { ...p.labels, namespace: p.namespace };
  for (const [name, x] of Object.entries(p.ports ?? {})) labels[`port.weft.io/${name}`] = x.protocol === 'TCP' ? String(x.port) : `${x.protocol.toLowerCase()}-${x.port}`;
  return {
    ...meta, id: p.ip, tenant: 't', network: 'n', ...(group ? { group } : {}), ip: p.ip, prefixLength: 16, gateway: '', mac: '', mtu: 1450, vni: 1,
    host: hostOf(p), ifname: 'eth0', containerId: p.ip, labels, state: 'created',
  };
}

/** Addresses outside every pod: one in the pods' network, one outside it. */
const OUTSIDE = ['10.0.9.9', '192.0.2.7'];
const ends: OracleEnd[] = [...pods.map((pod) => ({ pod })), ...OUTSIDE.map((ip) => ({ ip }))];
const ipOf = (x: OracleEnd) => ('pod' in x ? x.pod.ip : x.ip);
const nameOf = (x: OracleEnd) => ('pod' in x ? `${x.pod.namespace}/${x.pod.name}` : x.ip);

function state(policies: NetworkPolicy[], extra: Partial<PolicyState> = {}, admin?: OracleAdmin): PolicyState {
  return {
    tenant, networks: [{ ...meta, tenant: 't', name: 'n', subnet: '10.0.0.0/16', gateway: '', encap: 'vxlan', vni: 1, mtu: 1450 }],
    groups: [], policies: [], endpoints: pods.map((p) => endpointOf(p)), netpol: { policies, namespaces, ...(admin ? { anps: admin.anps, banp: admin.banp } : {}) }, ...extra,
  };
}

const clsOf = (c: CompiledPolicy, ip: string) => {
  const n = parseIp(ip) as number;
  return c.classification.ranges.find((r) => n >= r.first && n <= r.last)?.cls ?? 0;
};
const passes = (c: CompiledPolicy, src: string, dst: string, proto: number, port: number) => lookupVerdict(c, clsOf(c, src), clsOf(c, dst), proto, port) === 'accept';

const CASES: Array<[NetpolProtocol, number]> = [['TCP', 80], ['TCP', 81], ['TCP', 82], ['UDP', 80], ['UDP', 81], ['SCTP', 80], ['SCTP', 81]];
const PROTO_NUMBER: Record<NetpolProtocol, number> = { TCP: 6, UDP: 17, SCTP: 132 };

/** A state's compiles: the whole tenant's and each host's. */
function compiled(s: PolicyState): { whole: CompiledPolicy; perHost: Map<string, CompiledPolicy> } {
  return { whole: compilePolicy(s), perHost: new Map(HOSTS.map((h) => [h, compilePolicy({ ...s, host: h })])) };
}

/** An address's class as the datapath finds it: an endpoint's IPv6 address by its entry, else by the ranges. */
const clsAt = (c: CompiledPolicy, ip: string) => (ip.includes(':') ? c.v6.find((x) => x.addr === ip)?.cls ?? c.classification.byIp(ip).id : clsOf(c, ip));

/**
 * Every ordered pair of `fends` (not an end to itself, not outside to outside), protocol and port: the
 * differences from the oracle, in the compiled tables (whole, and per host: `hostAt` a pod's) and explain.
 */
function pairMismatches(s: PolicyState, c: ReturnType<typeof compiled>, policies: NetworkPolicy[], admin: OracleAdmin | undefined, fends: readonly OracleEnd[], hostAt: (p: OraclePod) => string, label = ''): string[] {
  const pass = (x: CompiledPolicy, src: string, dst: string, proto: number, port: number) => lookupVerdict(x, clsAt(x, src), clsAt(x, dst), proto, port) === 'accept';
  const out: string[] = [];
  for (const src of fends) for (const dst of fends) {
    if (src === dst || (!('pod' in src) && !('pod' in dst))) continue;
    for (const [protocol, port] of CASES) {
      const want = (admin ? adminVerdict(admin, policies, namespaces, src, dst, protocol, port) : netpolVerdict(policies, namespaces, src, dst, protocol, port)).allowed;
      const proto = PROTO_NUMBER[protocol];
      const hosts = new Set([src, dst].filter((x): x is { pod: OraclePod } => 'pod' in x).map((x) => hostAt(x.pod)));
      const got = {
        whole: pass(c.whole, ipOf(src), ipOf(dst), proto, port),
        hosts: [...hosts].every((h) => pass(c.perHost.get(h) as CompiledPolicy, ipOf(src), ipOf(dst), proto, port)),
        explain: explainFlow(s, ipOf(src), ipOf(dst), protocol === 'SCTP' ? '132' : protocol.toLowerCase(), port).allowed,
      };
      for (const [k, v] of Object.entries(got)) if (v !== want) out.push(`${label}${k}: ${nameOf(src)} > ${nameOf(dst)} ${protocol}/${port}: got ${v}, want ${want}`);
    }
  }
  return out;
}

/** The IPv4 world's differences from the oracle (pairMismatches over its pods and outside addresses). */
function mismatches(policies: NetworkPolicy[], s: PolicyState = state(policies), admin?: OracleAdmin): string[] {
  return pairMismatches(s, compiled(s), policies, admin, ends, hostOf);
}

const np = (namespace: string, name: string, spec: NetworkPolicy['spec']): NetworkPolicy => ({ namespace, name, spec });

test('netpol compile: no policy, deny-all ingress, same namespace, a namespace by label and by name', () => {
  assert.deepEqual(mismatches([]), []);
  assert.deepEqual(mismatches([np('x', 'deny', { podSelector: {}, policyTypes: ['Ingress'] })]), []);
  assert.deepEqual(mismatches([np('x', 'same', { podSelector: {}, ingress: [{ from: [{ podSelector: {} }] }] })]), []);
  assert.deepEqual(mismatches([np('x', 'from-y', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }] }] })]), []);
  assert.deepEqual(mismatches([np('x', 'by-name', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'z' } } }] }] })]), []);
});

test('netpol compile: AND against OR peers, named ports (resolved on each destination), ranges, a protocol alone', () => {
  assert.deepEqual(mismatches([np('x', 'and', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } }, podSelector: { matchLabels: { pod: 'b' } } }] }] })]), []);
  assert.deepEqual(mismatches([np('x', 'or', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }, { podSelector: { matchLabels: { pod: 'b' } } }] }] })]), []);
  assert.deepEqual(mismatches([np('z', 'named-in', { podSelector: {}, ingress: [{ ports: [{ port: 'serve-80-tcp' }] }] })]), []);
  assert.deepEqual(mismatches([np('z', 'named-other-protocol', { podSelector: {}, ingress: [{ ports: [{ protocol: 'UDP', port: 'serve-80-tcp' }] }] })]), [], 'a name declared for TCP names nothing of UDP');
  assert.deepEqual(mismatches([np('x', 'named-out', { podSelector: {}, policyTypes: ['Egress'], egress: [{ to: [{ namespaceSelector: {} }], ports: [{ port: 'serve-80-tcp' }, { protocol: 'UDP', port: 'serve-81-udp' }] }] })]), []);
  assert.deepEqual(mismatches([np('x', 'named-any', { podSelector: {}, policyTypes: ['Egress'], egress: [{ ports: [{ port: 'serve-80-tcp' }] }] })]), []);
  assert.deepEqual(mismatches([np('x', 'range', { podSelector: {}, ingress: [{ ports: [{ protocol: 'TCP', port: 80, endPort: 81 }] }] })]), []);
  assert.deepEqual(mismatches([np('x', 'udp', { podSelector: {}, ingress: [{ ports: [{ protocol: 'UDP' }] }] })]), []);
  assert.deepEqual(mismatches([np('x', 'sctp', { podSelector: {}, ingress: [{ ports: [{ protocol: 'SCTP' }] }] })]), []);
});

test('netpol compile: SCTP ports (a port, a range, a named port on each side) are decided by port, and only then get a slot of their own', () => {
  const port = np('x', 'sctp-80', { podSelector: {}, ingress: [{ ports: [{ protocol: 'SCTP', port: 80 }] }] });
  assert.deepEqual(mismatches([port]), []);
  assert.equal(compilePolicy(state([port])).sctp, true);
  assert.equal(compilePolicy(state([np('x', 'sctp', { podSelector: {}, ingress: [{ ports: [{ protocol: 'SCTP' }] }] })])).sctp, false, 'SCTP as a whole: one protocol number among the others');
  assert.deepEqual(mismatches([np('y', 'sctp-range', { podSelector: { matchLabels: { pod: 'b' } }, ingress: [{ from: [{ namespaceSelector: {} }], ports: [{ protocol: 'SCTP', port: 79, endPort: 80 }, { protocol: 'TCP', port: 81 }] }] })]), []);
  assert.deepEqual(mismatches([np('z', 'sctp-named-in', { podSelector: {}, ingress: [{ ports: [{ protocol: 'SCTP', port: 'serve-80-sctp' }] }] })]), [], 'z/c declares it as 81');
  const out = np('x', 'sctp-named-out', { podSelector: {}, policyTypes: ['Egress'], egress: [{ ports: [{ protocol: 'SCTP', port: 'serve-80-sctp' }, { protocol: 'UDP', port: 81 }] }] });
  assert.deepEqual(mismatches([out]), []);
  assert.equal(compilePolicy(state([out])).sctp, true, 'a named port declared for SCTP');
  assert.equal(compilePolicy(state([np('x', 'tcp-named', { podSelector: {}, ingress: [{ ports: [{ port: 'serve-80-tcp' }] }] })])).sctp, false, 'a named port declared for TCP only');
});

test('netpol compile: ipBlock with except (host bits set), re-allowed by a second policy; egress and outside addresses', () => {
  const block = np('x', 'block', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.1/16', except: ['10.0.1.2/32', '10.0.9.0/24'] } }] }] });
  assert.deepEqual(mismatches([block]), []);
  const again = np('x', 'again', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } }, podSelector: { matchLabels: { pod: 'b' } } }] }] });
  assert.deepEqual(mismatches([block, again]), []);
  const out = np('y', 'out', { podSelector: {}, egress: [{ to: [{ ipBlock: { cidr: '192.0.2.0/24' } }, { podSelector: { matchLabels: { pod: 'c' } } }], ports: [{ protocol: 'UDP', port: 81 }] }] });
  assert.deepEqual(mismatches([out, block]), []);
  const named = np('y', 'block-named', { podSelector: {}, policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: '10.0.2.0/24', except: ['10.0.2.2/31'] } }], ports: [{ port: 'serve-80-tcp' }] }] });
  assert.deepEqual(mismatches([named]), []);
});

test('netpol compile: policies in groups, beside Weft rules; the tenant default for pods no policy selects', () => {
  const groups: Group[] = [{ ...meta, tenant: 't', name: 'web', network: 'n', policies: ['p'], labels: {} }];
  const rule = (r: Partial<Rule>): Rule => ({ id: '1', priority: 5, direction: 'in', action: 'deny', protocol: 'udp', ...r });
  const weft: Policy[] = [{ ...meta, tenant: 't', name: 'p', rules: [rule({})] }];
  const eps = pods.map((p) => endpointOf(p, p.name === 'a' ? 'web' : undefined));
  const policies = [np('x', 'deny', { podSelector: {}, policyTypes: ['Ingress'] })];
  const s = state(policies, { groups, policies: weft, endpoints: eps });
  const c = compilePolicy(s);
  // Weft's rules come first: udp into any pod a is denied, whatever NetworkPolicy says.
  assert.equal(passes(c, '10.0.1.2', '10.0.1.1', 17, 80), false, 'y/b > y/a udp: a Weft deny, no NetworkPolicy there');
  assert.equal(passes(c, '10.0.1.2', '10.0.1.1', 6, 80), true, 'y/b > y/a tcp: nothing decides: the default');
  assert.equal(passes(c, '10.0.1.2', '10.0.0.2', 6, 80), false, 'y/b > x/b: isolated by NetworkPolicy');
  weft[0] = { ...weft[0]!, rules: [rule({ action: 'allow', protocol: 'tcp', ports: '80' })] };
  const allowed = compilePolicy(state(policies, { groups, policies: weft, endpoints: eps }));
  assert.equal(passes(allowed, '10.0.1.2', '10.0.0.1', 6, 80), true, 'a Weft allow on x/a passes what its NetworkPolicy isolation denies');
  assert.equal(passes(allowed, '10.0.1.2', '10.0.0.1', 6, 81), false);
  const e = explainFlow(state(policies, { groups, policies: weft, endpoints: eps }), '10.0.1.2', '10.0.0.1', 'tcp', 81);
  assert.deepEqual([e.allowed, e.ingress?.by?.policy, e.ingress?.by?.rule.id], [false, 'networkpolicy isolation (x/deny)', 'ingress']);
  const deny: PolicyState = { ...state([np('x', 'from-y', { podSelector: {}, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }] }] })]), tenant: { ...tenant, defaultAction: 'deny' } };
  const d = compilePolicy(deny);
  assert.equal(passes(d, '10.0.1.1', '10.0.0.1', 6, 80), false, 'an isolated ingress allows, but y/a\'s egress falls to the tenant\'s deny');
  const ex = explainFlow(deny, '10.0.1.1', '10.0.0.1', 'tcp', 80);
  assert.deepEqual([ex.ingress?.action, ex.ingress?.by?.policy, ex.ingress?.by?.rule.id, ex.egress?.action, ex.egress?.by], ['allow', 'networkpolicy x/from-y', 'ingress.0.from.0.ports.0', 'deny', undefined]);
});

test('netpol compile: a tenant with no NetworkPolicy keeps its class keys; one with them compiles only what it needs per host', () => {
  const none = compilePolicy(state([]));
  assert.equal(none.pairs.length, 0, 'nothing selects any pod: nothing to enforce');
  const groups: Group[] = [{ ...meta, tenant: 't', name: 'web', network: 'n', policies: ['p'], labels: {} }];
  const weft: Policy[] = [{ ...meta, tenant: 't', name: 'p', rules: [{ id: '1', priority: 5, direction: 'in', action: 'deny', protocol: 'tcp', fromCidr: '10.0.1.0/24' }] }];
  const withWeft = state([], { groups, policies: weft, endpoints: pods.map((p) => endpointOf(p, 'web')) });
  const { netpol: _, ...without } = withWeft;
  assert.deepEqual(compilePolicy(withWeft).classification.ranges, compilePolicy(without).classification.ranges);
  assert.deepEqual(compilePolicy(withWeft).classification.classes.map((k) => 'np' in k), compilePolicy(without).classification.classes.map(() => false));
  const one = compilePolicy({ ...state([np('x', 'deny', { podSelector: { matchLabels: { pod: 'a' } }, policyTypes: ['Ingress'] })]), host: hostOf(pods[0]!) });
  // Isolation alone is a rule without a peer: x/a's side stage drops every ingress, no pair holds it.
  assert.ok(filters(one) && one.sides.some((x) => x.in[0] !== 0));
  const elsewhere = HOSTS.find((h) => h !== hostOf(pods[0]!)) as string;
  assert.equal(filters(compilePolicy({ ...state([np('x', 'deny', { podSelector: { matchLabels: { pod: 'a' } }, policyTypes: ['Ingress'] })]), host: elsewhere })), false, 'x/a is not on that host');
});

test('netpol compile: a label change recompiles to what a cold compile gives, and matches the oracle', () => {
  const policies = [np('x', 'from-b', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ namespaceSelector: {}, podSelector: { matchLabels: { pod: 'b' } } }] }] })];
  const s = state(policies);
  const first = compilePolicy({ ...s, host: 'h1' });
  // y/c becomes a pod b: it joins the peer set.
  const eps = s.endpoints.map((e) => (e.ip === '10.0.1.3' ? { ...e, labels: { ...e.labels, pod: 'b' } } : e));
  const next = compilePolicy({ ...s, endpoints: eps, host: 'h1', previous: first });
  const cold = compilePolicy({ ...s, endpoints: eps, host: 'h1', previous: first });
  assert.equal(next.how, 'incremental');
  assert.deepEqual([...next.pairs].sort((a, b) => a.src - b.src || a.dst - b.dst), [...cold.pairs].sort((a, b) => a.src - b.src || a.dst - b.dst));
  const moved = pods.map((p) => (p.ip === '10.0.1.3' ? { ...p, labels: { pod: 'b' } } : p));
  const xa = pods[0] as OraclePod;
  if (hostOf(xa) === 'h1') {
    for (const p of moved) if (p !== xa) assert.equal(passes(next, p.ip, xa.ip, 6, 80), netpolVerdict(policies, namespaces, { pod: p }, { pod: xa }, 'TCP', 80).allowed, p.ip);
  }
});

// Random policy sets from a vocabulary of the shapes upstream's tables use, against the oracle.
function rng(seed: number) {
  let x = seed >>> 0 || 1;
  return () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x / 2 ** 32; };
}

/** ipBlocks the random sets pick from: a CIDR and, half the time, one except of its family. */
interface BlockVocabulary { cidrs: readonly string[]; excepts: (cidr: string) => readonly string[] }
const BLOCKS4: BlockVocabulary = { cidrs: ['10.0.0.0/16', '10.0.1.0/24', '0.0.0.0/0', '192.0.2.0/24'], excepts: () => ['10.0.1.1/32', '10.0.1.2/31'] };

function randomPolicies(r: () => number, blocks: BlockVocabulary = BLOCKS4): NetworkPolicy[] {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;
  const selector = (key: string, values: string[]): LabelSelector => pick<LabelSelector>([
    {}, { matchLabels: { [key]: pick(values) } },
    { matchExpressions: [{ key, operator: 'In', values: [pick(values), pick(values)] }] },
    { matchExpressions: [{ key, operator: 'NotIn', values: [pick(values)] }] },
    { matchExpressions: [{ key: 'absent', operator: 'DoesNotExist' }] },
  ]);
  const peer = (): NetworkPolicyPeer => pick<() => NetworkPolicyPeer>([
    () => ({ podSelector: selector('pod', POD) }),
    () => ({ namespaceSelector: selector('ns', NS) }),
    () => ({ namespaceSelector: selector('ns', NS), podSelector: selector('pod', POD) }),
    () => {
      const cidr = pick(blocks.cidrs);
      return { ipBlock: { cidr, ...(r() < 0.5 ? { except: [pick(blocks.excepts(cidr))] } : {}) } };
    },
  ])();
  const port = (): NetworkPolicyPort => pick<() => NetworkPolicyPort>([
    () => ({ port: pick([80, 81]) }),
    () => ({ protocol: 'UDP', port: pick([80, 81]) }),
    () => ({ protocol: pick(['TCP', 'UDP'] as const) }),
    () => ({ port: 80, endPort: 82 }),
    () => ({ port: pick(['serve-80-tcp', 'serve-81-tcp']) }),
    () => ({ protocol: 'UDP', port: 'serve-81-udp' }),
    () => ({ protocol: 'UDP', port: 'serve-80-tcp' }),
    () => ({ protocol: 'SCTP' }),
    () => ({ protocol: 'SCTP', port: pick([80, 81]) }),
    () => ({ protocol: 'SCTP', port: 80, endPort: 81 }),
    () => ({ protocol: 'SCTP', port: 'serve-80-sctp' }),
  ])();
  const list = <T>(f: () => T, max: number): T[] => Array.from({ length: Math.floor(r() * (max + 1)) }, f);
  return list(() => {
    const types = pick([undefined, ['Ingress'], ['Egress'], ['Ingress', 'Egress']] as const);
    return np(pick(NS), `p${Math.floor(r() * 1e6)}`, {
      podSelector: selector('pod', POD),
      ...(types ? { policyTypes: [...types] } : {}),
      ...(r() < 0.7 ? { ingress: list(() => ({ ...(r() < 0.7 ? { from: list(peer, 2) } : {}), ...(r() < 0.6 ? { ports: list(port, 2) } : {}) }), 2) } : {}),
      ...(r() < 0.5 ? { egress: list(() => ({ ...(r() < 0.7 ? { to: list(peer, 2) } : {}), ...(r() < 0.6 ? { ports: list(port, 2) } : {}) }), 2) } : {}),
    });
  }, 3);
}

test('netpol compile: 120 random policy sets agree with the oracle everywhere', () => {
  const r = rng(15);
  for (let i = 0; i < 120; i++) {
    const policies = randomPolicies(r);
    const bad = mismatches(policies);
    assert.deepEqual(bad.slice(0, 5), [], `set ${i}: ${JSON.stringify(policies)}`);
  }
});

test('netpol compile: random NetworkPolicies beside random Weft rules: the tables decide as explain does, and a Weft rule edit recompiles to the cold result', () => {
  const r = rng(99);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;
  const groups: Group[] = ['g0', 'g1'].map((name) => ({ ...meta, tenant: 't', name, network: 'n', policies: [`w-${name}`], labels: {} }));
  const weftRule = (i: number): Rule => {
    const direction = pick(['in', 'out'] as const);
    const peer = pick([{}, { [direction === 'in' ? 'fromGroup' : 'toGroup']: pick(['g0', 'g1']) }, { [direction === 'in' ? 'fromCidr' : 'toCidr']: pick(['10.0.1.0/24', '10.0.0.2/32', '192.0.2.0/25']) }]);
    const protocol = pick(['tcp', 'udp', 'any']);
    return { id: `r${i}`, priority: 1 + Math.floor(r() * 5), direction, action: pick(['allow', 'deny'] as const), protocol, ...(protocol !== 'any' && r() < 0.7 ? { ports: pick(['80', '81', '80-81']) } : {}), ...peer };
  };
  for (let i = 0; i < 40; i++) {
    const policies = randomPolicies(r);
    const weft: Policy[] = groups.map((g) => ({ ...meta, tenant: 't', name: `w-${g.name}`, rules: Array.from({ length: Math.floor(r() * 4) }, (_, k) => weftRule(k)) }));
    const eps = pods.map((p) => endpointOf(p, pick([undefined, 'g0', 'g1'])));
    const s = state(policies, { groups, policies: weft, endpoints: eps, tenant: { ...tenant, defaultAction: pick(['allow', 'deny'] as const) } });
    const per = new Map(HOSTS.map((h) => [h, compilePolicy({ ...s, host: h })]));
    const whole = compilePolicy(s);
    const check = (label: string, tables: Map<string, CompiledPolicy>, st: PolicyState) => {
      for (const src of ends) for (const dst of ends) {
        if (src === dst || (!('pod' in src) && !('pod' in dst))) continue;
        for (const [protocol, port] of CASES) {
          const want = explainFlow(st, ipOf(src), ipOf(dst), protocol === 'SCTP' ? '132' : protocol.toLowerCase(), port).allowed;
          const hosts = new Set([src, dst].filter((x): x is { pod: OraclePod } => 'pod' in x).map((x) => hostOf(x.pod)));
          const got = [...hosts].every((h) => passes(tables.get(h) as CompiledPolicy, ipOf(src), ipOf(dst), PROTO_NUMBER[protocol], port));
          assert.equal(got, want, `${label} set ${i}: ${nameOf(src)} > ${nameOf(dst)} ${protocol}/${port}`);
          if (label === 'cold') assert.equal(passes(whole, ipOf(src), ipOf(dst), PROTO_NUMBER[protocol], port), want, `whole set ${i}: ${nameOf(src)} > ${nameOf(dst)} ${protocol}/${port}`);
        }
      }
    };
    check('cold', per, s);
    // One Weft rule added: each host recompiles from its last compile.
    const edited = { ...s, policies: [{ ...weft[0]!, rules: [...weft[0]!.rules, weftRule(99)] }, weft[1]!] };
    const next = new Map(HOSTS.map((h) => [h, compilePolicy({ ...edited, host: h, previous: per.get(h) as CompiledPolicy })]));
    for (const [h, c] of next) {
      // The same `previous` again: its engine was taken over, so this one is cold, with the same ids.
      const cold = compilePolicy({ ...edited, host: h, previous: per.get(h) as CompiledPolicy });
      assert.equal(cold.how, 'cold');
      const sorted = (x: CompiledPolicy) => [...x.pairs].sort((a, b) => a.src - b.src || a.dst - b.dst);
      assert.deepEqual(c.classification.ranges, cold.classification.ranges, `set ${i} ${h}: ranges`);
      assert.deepEqual(sorted(c), sorted(cold), `set ${i} ${h}: pairs`);
      assert.deepEqual(c.profiles, cold.profiles, `set ${i} ${h}: profiles`);
    }
    assert.ok([...next.values()].some((c) => c.how === 'incremental') || [...per.values()].every((c) => c.pairs.length === 0), `set ${i}: the edit took the incremental path`);
    check('incremental', next, edited);
  }
});

// AdminNetworkPolicy and the baseline: fixed cases, then random sets of all three tiers, against the oracle.
const anp = (name: string, priority: number, subject: AnpSubject, ingress: AnpRule[] = [], egress: AnpRule[] = []): AdminNetworkPolicy => ({ name, priority, subject, ingress, egress });
const nsSel = (n: string): AnpSubject => ({ namespaces: { matchLabels: { ns: n } } });
const podsSel = (n: string, p: string): AnpSubject => ({ pods: { namespaceSelector: { matchLabels: { ns: n } }, podSelector: { matchLabels: { pod: p } } } });
const check = (admin: OracleAdmin, policies: NetworkPolicy[] = []) => mismatches(policies, state(policies, {}, admin), admin);

test('admin tiers: priority order, first rule wins, Pass hands over to NetworkPolicy, the baseline only where nothing isolates', () => {
  // x is denied from y at 10, but allowed at 5 for pod b: 5 comes first.
  assert.deepEqual(check({ anps: [anp('deny-y', 10, nsSel('x'), [{ action: 'Deny', peers: [{ namespaces: { matchLabels: { ns: 'y' } } }] }]), anp('allow-yb', 5, nsSel('x'), [{ action: 'Allow', peers: [podsSel('y', 'b')] }])] }), []);
  // Within one: the first matching rule (Deny tcp/80, then Allow everything from y).
  assert.deepEqual(check({ anps: [anp('order', 1, nsSel('z'), [{ action: 'Deny', peers: [{ namespaces: {} }], ports: [{ portNumber: { protocol: 'TCP', port: 80 } }] }, { action: 'Allow', peers: [{ namespaces: {} }] }])] }), []);
  // Pass, then a NetworkPolicy isolating x/a; the baseline denies all ingress to x (only where nothing isolated decided).
  const pass: OracleAdmin = { anps: [anp('pass-y', 3, nsSel('x'), [{ action: 'Pass', peers: [{ namespaces: { matchLabels: { ns: 'y' } } }] }]), anp('deny-all', 9, nsSel('x'), [{ action: 'Deny', peers: [{ namespaces: {} }] }])] };
  const banp: BaselineAdminNetworkPolicy = { subject: { namespaces: {} }, ingress: [{ action: 'Deny', peers: [{ namespaces: { matchLabels: { ns: 'y' } } }] }], egress: [] };
  const xa = [np('x', 'a-from-yb', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } }, podSelector: { matchLabels: { pod: 'b' } } }] }] })];
  assert.deepEqual(check(pass, xa), []);
  assert.deepEqual(check({ ...pass, banp }, xa), []);
  assert.deepEqual(check({ anps: [], banp }, xa), []);
  // Egress to networks, named ports and ranges.
  assert.deepEqual(check({ anps: [anp('out', 2, podsSel('y', 'a'), [], [
    { action: 'Allow', peers: [{ networks: ['192.0.2.0/24'] }], ports: [{ portRange: { protocol: 'UDP', start: 80, end: 81 } }] },
    { action: 'Allow', peers: [{ namespaces: {} }], ports: [{ namedPort: 'serve-80-tcp' }] },
    { action: 'Deny', peers: [{ networks: ['0.0.0.0/0'] }] },
  ])] }), []);
  // A Weft rule sits between the tiers: an AdminNetworkPolicy's Deny beats a Weft allow of priority 100.
  const groups: Group[] = [{ ...meta, tenant: 't', name: 'web', network: 'n', policies: ['p'], labels: {} }];
  const weft: Policy[] = [{ ...meta, tenant: 't', name: 'p', rules: [{ id: '1', priority: 100, direction: 'in', action: 'allow', protocol: 'any' }] }];
  const s = state([], { groups, policies: weft, endpoints: pods.map((p) => endpointOf(p, 'web')) }, { anps: [anp('deny-y', 1, nsSel('x'), [{ action: 'Deny', peers: [{ namespaces: { matchLabels: { ns: 'y' } } }] }])] });
  const c = compilePolicy(s);
  assert.equal(passes(c, '10.0.1.1', '10.0.0.1', 6, 80), false, 'y/a > x/a: the AdminNetworkPolicy denies');
  const e = explainFlow(s, '10.0.1.1', '10.0.0.1', 'tcp', 80);
  assert.deepEqual([e.ingress?.by?.policy, e.ingress?.by?.rule.id], ['adminnetworkpolicy deny-y', 'ingress.0.from.0.ports.0']);
  assert.equal(passes(c, '10.0.2.1', '10.0.0.1', 6, 80), true, 'z/a > x/a: the Weft allow');
});

const NETWORKS4 = ['10.0.1.0/24', '192.0.2.0/24', '0.0.0.0/0', '10.0.0.2/32'];

function randomAdmin(r: () => number, networks: readonly string[] = NETWORKS4): OracleAdmin {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;
  const subject = (): AnpSubject => pick<() => AnpSubject>([() => nsSel(pick(NS)), () => podsSel(pick(NS), pick(POD)), () => ({ namespaces: {} }), () => ({ pods: { namespaceSelector: {}, podSelector: { matchLabels: { pod: pick(POD) } } } })])();
  const peer = (egress: boolean): AnpPeer => pick<() => AnpPeer>([
    () => nsSel(pick(NS)), () => podsSel(pick(NS), pick(POD)), () => ({ namespaces: {} }),
    ...(egress ? [() => ({ networks: [pick(networks)] })] : []),
  ])();
  const port = (): AnpPort => pick<() => AnpPort>([
    () => ({ portNumber: { protocol: pick(['TCP', 'UDP', 'SCTP'] as const), port: pick([80, 81]) } }),
    () => ({ portRange: { protocol: pick(['TCP', 'UDP', 'SCTP'] as const), start: 80, end: pick([80, 81, 90]) } }),
    () => ({ namedPort: pick(['serve-80-tcp', 'serve-81-udp', 'serve-80-sctp']) }),
  ])();
  const rules = <A extends 'Allow' | 'Deny' | 'Pass'>(actions: readonly A[], egress: boolean): AnpRule<A>[] => Array.from({ length: Math.floor(r() * 3) }, () => ({
    action: pick(actions), peers: Array.from({ length: 1 + Math.floor(r() * 2) }, () => peer(egress)), ...(r() < 0.6 ? { ports: Array.from({ length: 1 + Math.floor(r() * 2) }, port) } : {}),
  }));
  const anps = Array.from({ length: Math.floor(r() * 3) }, (_, i) => anp(`a${i}`, pick([1, 5, 5, 9]), subject(), rules(['Allow', 'Deny', 'Pass'] as const, false), rules(['Allow', 'Deny', 'Pass'] as const, true)));
  const banp = r() < 0.5 ? { subject: subject(), ingress: rules(['Allow', 'Deny'] as const, false), egress: rules(['Allow', 'Deny'] as const, true) } : undefined;
  return { anps, banp };
}

test('admin tiers: 80 random sets of AdminNetworkPolicies, a baseline and NetworkPolicies agree with the oracle everywhere', () => {
  const r = rng(7);
  for (let i = 0; i < 80; i++) {
    const admin = randomAdmin(r);
    const policies = randomPolicies(r).slice(0, 2);
    const bad = mismatches(policies, state(policies, {}, admin), admin);
    assert.deepEqual(bad.slice(0, 5), [], `set ${i}: ${JSON.stringify({ admin, policies })}`);
  }
});

// Audit mode: what only policies in audit mode would drop passes as `audit` (counted by the datapath).
const verdictAt = (c: CompiledPolicy, src: string, dst: string, proto: number, port: number) => lookupVerdict(c, clsOf(c, src), clsOf(c, dst), proto, port);
/** Both hosts' verdicts as the packet meets them: a drop anywhere drops, else an audit anywhere is audited. */
const through = (vs: string[]) => (vs.includes('drop') ? 'drop' : vs.includes('audit') ? 'audit' : 'accept');

test('audit mode: random NetworkPolicies split between enforced and audit: drop what the enforced ones deny, audit what only the rest would', () => {
  const r = rng(31);
  let audited = 0;
  for (let i = 0; i < 60; i++) {
    const policies = randomPolicies(r);
    const audit = policies.map(() => r() < 0.5);
    const s = state([], { netpol: { policies: policies.map((p, k) => ({ ...p, ...(audit[k] ? { audit: true } : {}) })), namespaces } });
    const enforced = policies.filter((_, k) => !audit[k]);
    const per = new Map(HOSTS.map((h) => [h, compilePolicy({ ...s, host: h })]));
    for (const src of ends) for (const dst of ends) {
      if (src === dst || !('pod' in src) || !('pod' in dst)) continue;
      for (const [protocol, port] of CASES) {
        const actual: boolean = netpolVerdict(enforced, namespaces, src, dst, protocol, port).allowed;
        const wouldBe = netpolVerdict(policies, namespaces, src, dst, protocol, port).allowed;
        const want: string = !actual ? "drop" : !wouldBe ? "audit" : "accept";
        if (want === 'audit') audited++;
        const hosts = [...new Set([hostOf(src.pod), hostOf(dst.pod)])];
        const got = through(hosts.map((h) => verdictAt(per.get(h) as CompiledPolicy, src.pod.ip, dst.pod.ip, PROTO_NUMBER[protocol], port)));
        assert.equal(got, want, `set ${i} (audit ${audit}): ${nameOf(src)} > ${nameOf(dst)} ${protocol}/${port}: ${JSON.stringify(policies)}`);
        const e = explainFlow(s, src.pod.ip, dst.pod.ip, protocol === 'SCTP' ? '132' : protocol.toLowerCase(), port);
        assert.equal(e.allowed, actual);
        assert.equal(e.audit !== undefined, want === 'audit', `explain names the audit: ${nameOf(src)} > ${nameOf(dst)} ${protocol}/${port}`);
      }
    }
  }
  assert.ok(audited > 100, `some cells were audited (${audited})`);
});

test('audit mode on a Weft policy: its denials pass audited, explain names the rule that would have dropped; an enforced deny still drops', () => {
  const groups: Group[] = [{ ...meta, tenant: 't', name: 'db', network: 'n', policies: ['watch', 'hard'], labels: {} }];
  const weft: Policy[] = [
    { ...meta, tenant: 't', name: 'watch', mode: 'audit', rules: [{ id: '1', priority: 5, direction: 'in', action: 'deny', protocol: 'tcp' }] },
    { ...meta, tenant: 't', name: 'hard', rules: [{ id: '1', priority: 5, direction: 'in', action: 'deny', protocol: 'udp', ports: '81' }] },
  ];
  const eps = pods.map((p) => endpointOf(p, p.name === 'a' ? 'db' : undefined));
  const s = state([], { groups, policies: weft, endpoints: eps, netpol: { policies: [], namespaces } });
  const c = compilePolicy(s);
  assert.equal(verdictAt(c, '10.0.1.2', '10.0.0.1', 6, 80), 'audit', 'tcp into db: only the audit policy denies it');
  assert.equal(verdictAt(c, '10.0.1.2', '10.0.0.1', 17, 81), 'drop', 'udp/81: the enforced deny');
  assert.equal(verdictAt(c, '10.0.1.2', '10.0.0.1', 17, 80), 'accept');
  const e = explainFlow(s, '10.0.1.2', '10.0.0.1', 'tcp', 80);
  assert.deepEqual([e.allowed, e.ingress?.by, e.audit?.ingress?.by?.policy, e.audit?.ingress?.by?.rule.id], [true, undefined, 'watch', '1']);
  // Incremental: a rule added to the audit policy is audited too.
  const next: PolicyState = { ...s, policies: [{ ...weft[0]!, rules: [...weft[0]!.rules, { id: '2', priority: 6, direction: 'in', action: 'deny', protocol: 'udp', ports: '80' }] }, weft[1]!], previous: c };
  const n = compilePolicy(next);
  assert.equal(n.how, 'incremental');
  assert.equal(verdictAt(n, '10.0.1.2', '10.0.0.1', 17, 80), 'audit');
  // Enforcing the policy is a frame change: a cold compile, and now it drops.
  const enforced = compilePolicy({ ...next, policies: [{ ...next.policies[0]!, mode: 'enforce' }, weft[1]!], previous: n });
  assert.equal(enforced.how, 'cold');
  assert.equal(verdictAt(enforced, '10.0.1.2', '10.0.0.1', 6, 80), 'drop');
});

test('review: pods swapping a named port\'s number at the same addresses (an ipBlock + named-port egress) recompile to the oracle\'s answer', () => {
  const policies = [np('x', 'out', { podSelector: { matchLabels: { pod: 'a' } }, policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: '10.0.0.0/16' } }], ports: [{ port: 'http' }] }] })];
  const withHttp = (e: Endpoint, port: number) => ({ ...e, labels: { ...e.labels, 'port.weft.io/http': String(port) } });
  const base = pods.map((p) => endpointOf(p));
  const before = base.map((e) => (e.ip === '10.0.1.2' ? withHttp(e, 80) : e.ip === '10.0.1.3' ? withHttp(e, 8080) : e));
  const after = base.map((e) => (e.ip === '10.0.1.2' ? withHttp(e, 8080) : e.ip === '10.0.1.3' ? withHttp(e, 80) : e));
  const moved = pods.map((p) => (p.ip === '10.0.1.2' ? { ...p, ports: { http: { port: 8080, protocol: 'TCP' as const } } } : p.ip === '10.0.1.3' ? { ...p, ports: { http: { port: 80, protocol: 'TCP' as const } } } : p));
  for (const host of [...HOSTS, undefined]) {
    const first = compilePolicy({ ...state(policies, { endpoints: before }), ...(host ? { host } : {}) });
    const warm = compilePolicy({ ...state(policies, { endpoints: after }), ...(host ? { host } : {}), previous: first });
    for (const dst of moved.filter((p) => p.ip === '10.0.1.2' || p.ip === '10.0.1.3')) {
      for (const port of [80, 8080]) {
        const want = netpolVerdict(policies, namespaces, { pod: moved[0] as OraclePod }, { pod: dst }, 'TCP', port).allowed;
        if (host === undefined || host === hostOf(moved[0] as OraclePod)) assert.equal(passes(warm, '10.0.0.1', dst.ip, 6, port), want, `${host ?? 'whole'} (${warm.how}): x/a > ${dst.ip}:${port}`);
      }
    }
  }
});

test('dry-run verdict changes: SCTP reported once, by port, when only one of the two compiles decides it by port', () => {
  const before = compilePolicy(state([]));
  const after = compilePolicy(state([np('x', 'sctp-80', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ ports: [{ protocol: 'SCTP', port: 80 }] }] })]));
  assert.deepEqual([before.sctp, after.sctp], [false, true]);
  const eps = state([]).endpoints;
  const xa = eps.find((e) => e.ip === '10.0.0.1') as Endpoint;
  const yb = eps.find((e) => e.ip === '10.0.1.2') as Endpoint;
  const lines = (a: CompiledPolicy, b: CompiledPolicy) => verdictChanges(a, b, [yb, xa], 100).changes.map((c) => `${c.from}>${c.to} ${c.protocol} ${c.first}-${c.last} ${c.before}>${c.after}`);
  const want = [
    '10.0.1.2>10.0.0.1 tcp 0-65535 accept>drop', '10.0.1.2>10.0.0.1 udp 0-65535 accept>drop',
    '10.0.1.2>10.0.0.1 other 0-5 accept>drop', '10.0.1.2>10.0.0.1 other 7-16 accept>drop', '10.0.1.2>10.0.0.1 other 18-131 accept>drop', '10.0.1.2>10.0.0.1 other 133-255 accept>drop',
    '10.0.1.2>10.0.0.1 sctp 0-79 accept>drop', '10.0.1.2>10.0.0.1 sctp 81-65535 accept>drop',
  ];
  assert.deepEqual(lines(before, after), want);
  assert.deepEqual(lines(after, before), want.map((l) => l.replace('accept>drop', 'drop>accept')), 'and back');
  assert.deepEqual(lines(after, after), []);
});

test('dry-run verdict changes agree with the oracle, pair by pair, over random policy sets before and after (classes compared once)', () => {
  const eps = state([]).endpoints;
  const podOf = new Map(pods.map((p) => [p.ip, p]));
  for (let seed = 1; seed <= 40; seed++) {
    const r = rng(seed * 7919);
    const was = randomPolicies(r);
    const now = randomPolicies(r);
    const [cb, ca] = [compilePolicy(state(was)), compilePolicy(state(now))];
    const d = verdictChanges(cb, ca, eps, 1_000_000);
    // SCTP is compared by port where either compile decides it so, else as protocol 132 of `other`.
    const bySctpPort = cb.sctp || ca.sctp;
    assert.equal(d.changes.length, d.total);
    const reported = new Map<string, Array<{ first: number; last: number; before: string; after: string }>>();
    for (const c of d.changes) {
      const k = `${c.from} ${c.to} ${c.protocol}`;
      reported.set(k, [...(reported.get(k) ?? []), c]);
    }
    for (const src of eps) {
      for (const dst of eps) {
        if (src === dst) continue;
        for (const [proto, port] of [...CASES, ['TCP', 0], ['TCP', 65535], ['UDP', 9999]] as Array<[NetpolProtocol, number]>) {
          const verdict = (ps: NetworkPolicy[]) => (netpolVerdict(ps, namespaces, { pod: podOf.get(src.ip as string) as OraclePod }, { pod: podOf.get(dst.ip as string) as OraclePod }, proto, port).allowed ? 'accept' : 'drop');
          const [b, a] = [verdict(was), verdict(now)];
          const [slot, key] = proto === 'SCTP' && !bySctpPort ? ['other', 132] : [proto.toLowerCase(), port];
          const run = reported.get(`${src.id} ${dst.id} ${slot}`)?.find((x) => x.first <= key && x.last >= key);
          const at = `seed ${seed}: ${src.ip} > ${dst.ip} ${proto}/${port}`;
          if (b === a) assert.equal(run, undefined, `${at}: no change, yet reported ${JSON.stringify(run)}`);
          else assert.deepEqual(run && [run.before, run.after], [b, a], `${at}: ${b} > ${a} not reported as such`);
        }
      }
    }
  }
});

test('compiles leave nothing on the objects they are given: the same endpoints, policies and rules compiled again and again keep their own properties', () => {
  const groups: Group[] = [{ ...meta, tenant: 't', name: 'web', network: 'n', policies: ['p'], labels: {} }];
  const weft: Policy[] = [{ ...meta, tenant: 't', name: 'p', rules: [{ id: '1', priority: 5, direction: 'in', action: 'deny', protocol: 'tcp', ports: '80-90', fromCidr: '10.0.1.0/24' }] }];
  const s = state([np('x', 'deny', { podSelector: { matchLabels: { pod: 'a' } }, policyTypes: ['Ingress'] })], { groups, policies: weft, endpoints: pods.map((p) => endpointOf(p, 'web')) });
  assert.ok(s.policies.length > 0 && s.endpoints.length > 0);
  const props = (o: object) => Object.getOwnPropertySymbols(o).length + Object.getOwnPropertyNames(o).length;
  const own = () => [...s.endpoints.map(props), ...s.policies.map(props), ...s.policies.flatMap((p) => p.rules.map(props))];
  const before = own();
  let last = compilePolicy(s);
  for (let i = 0; i < 5; i++) last = compilePolicy({ ...s, previous: last });
  for (let i = 0; i < 5; i++) compilePolicy(s);
  assert.deepEqual(own(), before, 'no property on the endpoints, policies or rules it was given');
});

test('netpol compile: IPv6 ipBlocks (a dual-stack tenant) decide outside IPv6 addresses per address, with except; IPv4 blocks stay IPv4\'s', () => {
  // x/a may send only to 2001:db8::/32 but 2001:db8:bad::/48, and to 192.0.2.0/24; every pod has an IPv6 address.
  const six = (p: OraclePod) => `fd00:9::${pods.indexOf(p) + 1}`;
  const s = state([np('x', 'out6', { podSelector: { matchLabels: { pod: 'a' } }, policyTypes: ['Egress'], egress: [{ to: [
    { ipBlock: { cidr: '2001:DB8::1/32', except: ['2001:db8:bad::/48'] } }, { ipBlock: { cidr: '192.0.2.0/24' } },
  ] }] })], {
    networks: [{ ...meta, tenant: 't', name: 'n', subnet: '10.0.0.0/16', gateway: '', subnet6: 'fd00:9::/64', gateway6: '', encap: 'vxlan', vni: 1, mtu: 1450 }],
    endpoints: pods.map((p) => ({ ...endpointOf(p), ip6: six(p), prefixLength6: 64, gateway6: '' })),
  });
  const c = compilePolicy(s);
  const cls6 = (ip: string) => c.v6.find((x) => x.addr === ip)?.cls ?? c.classification.byIp(ip).id;
  const passes6 = (src: string, dst: string, port: number) => lookupVerdict(c, cls6(src), cls6(dst), 6, port) === 'accept';
  const xa = pods.find((p) => p.namespace === 'x' && p.name === 'a') as OraclePod;
  const xb = pods.find((p) => p.namespace === 'x' && p.name === 'b') as OraclePod;
  const cases: Array<[string, string, boolean]> = [
    [six(xa), '2001:db8::1', true], [six(xa), '2001:db8:1::80', true], [six(xa), '2001:db8:bad::1', false], [six(xa), '2001:db9::1', false],
    [six(xa), six(xb), false], [xa.ip, '192.0.2.7', true], [xa.ip, '198.51.100.1', false],
    [six(xb), '2001:db8:bad::1', true], [six(xb), '2001:db9::1', true],
  ];
  for (const [src, dst, want] of cases) {
    const got = src.includes(':') ? passes6(src, dst, 80) : passes(c, src, dst, 6, 80);
    assert.equal(got, want, `${src} -> ${dst}`);
    assert.equal(explainFlow(s, src, dst, 'tcp', 80).allowed, want, `explain ${src} -> ${dst}`);
  }
  // The block's text as classes carry it: the network address in RFC 5952 form.
  assert.ok(c.classification.classes.some((k) => k.cidrs.includes('2001:db8::/32') && k.cidrs.includes('2001:db8:bad::/48')));

  // A Weft rule with an IPv6 CIDR inside the block, added later (x/a in group g): compiled incrementally,
  // the cold compile's result, and deciding before the block (Weft's tier comes first).
  const g: Group = { ...meta, tenant: 't', name: 'g', network: 'n', policies: ['w'], labels: {} };
  const w = (rules: Rule[], revision: number): Policy => ({ ...meta, revision, tenant: 't', name: 'w', rules });
  const s1: PolicyState = { ...s, groups: [g], policies: [w([], 1)], endpoints: s.endpoints.map((e) => (e.ip === xa.ip ? { ...e, group: 'g' } : e)) };
  const c1 = compilePolicy(s1);
  const s2: PolicyState = { ...s1, policies: [w([{ id: 'r', priority: 1, direction: 'out', action: 'deny', protocol: 'tcp', toCidr: '2001:db8:1::/48' }], 2)] };
  const inc = compilePolicy({ ...s2, previous: c1 });
  const cold = compilePolicy({ ...s2, previous: c1 });
  assert.deepEqual([inc.how, cold.how], ['incremental', 'cold']);
  assert.deepEqual(inc.classification.ranges6, cold.classification.ranges6);
  const keys = (x: CompiledPolicy) => x.classification.classes.map((k) => JSON.stringify(k)).sort();
  assert.deepEqual(keys(inc), keys(cold));
  const on = (x: CompiledPolicy, dst: string) => lookupVerdict(x, x.v6.find((v) => v.addr === six(xa))?.cls ?? 0, x.v6.find((v) => v.addr === dst)?.cls ?? x.classification.byIp(dst).id, 6, 80);
  assert.deepEqual([on(inc, '2001:db8:1::5'), on(inc, '2001:db8::1'), on(inc, '2001:db8:bad::1')], ['drop', 'accept', 'drop']);
  assert.deepEqual([on(cold, '2001:db8:1::5'), on(cold, '2001:db8::1')], ['drop', 'accept']);
});

// Dual stack against the oracle: every pod has an IPv6 address too, and random sets mix IPv4 and IPv6
// ipBlocks (with excepts); every ordered pair is checked over IPv4 and over IPv6, outside addresses of each
// family included, in the compiled tables (whole, and per host) and through explain. A pod is one
// endpoint: a block covering either of its addresses covers it in both families (the oracle's `also`).
const six6 = (p: OraclePod) => `fd00::${NS.indexOf(p.namespace)}:${POD.indexOf(p.name) + 1}`;
const OUTSIDE6 = ['fd00::9:9', '2001:db8::7'];
const BLOCKS_DUAL: BlockVocabulary = {
  cidrs: ['10.0.0.0/16', '10.0.1.0/24', '0.0.0.0/0', '192.0.2.0/24', 'fd00::/64', 'fd00::1:0/112', '::/0', '2001:db8::/64'],
  excepts: (cidr) => (cidr.includes(':') ? ['fd00::1:1/128', 'fd00::1:2/127', '2001:db8::7/128'] : ['10.0.1.1/32', '10.0.1.2/31']),
};

function dualState(policies: NetworkPolicy[], admin?: OracleAdmin): PolicyState {
  return state(policies, {
    networks: [{ ...meta, tenant: 't', name: 'n', subnet: '10.0.0.0/16', gateway: '', subnet6: 'fd00::/64', gateway6: '', encap: 'vxlan', vni: 1, mtu: 1450 }],
    endpoints: pods.map((p) => ({ ...endpointOf(p), ip6: six6(p), prefixLength6: 64, gateway6: '' })),
  }, admin);
}

function dualMismatches(policies: NetworkPolicy[], admin?: OracleAdmin): string[] {
  const s = dualState(policies, admin);
  const c = compiled(s);
  return ([4, 6] as const).flatMap((family) => {
    const view: OraclePod[] = pods.map((p) => (family === 4 ? { ...p, also: [six6(p)] } : { ...p, ip: six6(p), also: [p.ip] }));
    const fends: OracleEnd[] = [...view.map((pod) => ({ pod })), ...(family === 4 ? OUTSIDE : OUTSIDE6).map((ip) => ({ ip }))];
    return pairMismatches(s, c, policies, admin, fends, (pod) => hostOf(pods[view.indexOf(pod)] as OraclePod), `IPv${family} `);
  });
}

test('netpol compile, dual stack: fixed IPv4 and IPv6 blocks, then 60 random sets mixing both, agree with the oracle in both families', () => {
  assert.deepEqual(dualMismatches([]), []);
  assert.deepEqual(dualMismatches([np('x', 'deny', { podSelector: {}, policyTypes: ['Ingress'] })]), []);
  // An IPv6 block with an except, an IPv4 one beside it, both directions.
  assert.deepEqual(dualMismatches([
    np('x', 'in6', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ ipBlock: { cidr: 'fd00::1:0/112', except: ['fd00::1:2/127'] } }], ports: [{ port: 80 }] }] }),
    np('y', 'out6', { podSelector: {}, policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: '2001:db8::/64' } }, { ipBlock: { cidr: '10.0.2.0/24' } }] }] }),
  ]), []);
  const r = rng(61);
  for (let i = 0; i < 60; i++) {
    const policies = randomPolicies(r, BLOCKS_DUAL);
    const bad = dualMismatches(policies);
    assert.deepEqual(bad.slice(0, 5), [], `set ${i}: ${JSON.stringify(policies)}`);
  }
});

test('explain\'s classes one address at a time (point.ts) are the sweep\'s with NetworkPolicies: ipBlocks, excepts and isolation in both families, 40 random sets', () => {
  const r = rng(83);
  for (let i = 0; i < 40; i++) {
    const s = dualState(randomPolicies(r, BLOCKS_DUAL));
    const np = netpolOf(s);
    const swept = classify(s.networks, s.groups, s.policies, s.endpoints, undefined, np);
    const point = pointClassifier(s.networks, s.groups, s.policies, s.endpoints, np);
    const cidrs = [...BLOCKS_DUAL.cidrs, ...BLOCKS_DUAL.cidrs.flatMap((c) => BLOCKS_DUAL.excepts(c))].map((c) => c.split('/')[0] as string);
    for (const ip of [...pods.flatMap((p) => [p.ip, six6(p)]), ...OUTSIDE, ...OUTSIDE6, ...cidrs]) {
      assert.equal(classKey(point(ip)), classKey(swept.byIp(ip)), `set ${i}: ${ip}`);
    }
  }
});

test('admin tiers, dual stack: AdminNetworkPolicy networks of both families (an IPv6 one decides outside IPv6 addresses, and covers pods in both families), 40 random sets', () => {
  const out6 = anp('out6', 5, { namespaces: {} }, [], [
    { action: 'Deny', peers: [{ networks: ['2001:db8::7/128'] }] },
    { action: 'Allow', peers: [{ networks: ['2001:db8::/64'] }], ports: [{ portNumber: { protocol: 'UDP', port: 80 } }] },
    { action: 'Deny', peers: [{ networks: ['::/0'] }] },
  ]);
  assert.deepEqual(dualMismatches([], { anps: [out6] }), []);
  const r = rng(62);
  const networks = [...NETWORKS4, 'fd00::1:0/112', '2001:db8::/64', '::/0', 'fd00::2:3/128'];
  for (let i = 0; i < 40; i++) {
    const admin = randomAdmin(r, networks);
    const policies = r() < 0.5 ? randomPolicies(r, BLOCKS_DUAL) : [];
    const bad = dualMismatches(policies, admin);
    assert.deepEqual(bad.slice(0, 5), [], `set ${i}: ${JSON.stringify({ admin, policies })}`);
  }
});
