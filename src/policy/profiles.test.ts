import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatIp, parseIp, type Endpoint, type Group, type Network, type Policy, type Rule, type Tenant } from '../model/index.js';
import { compilePolicy, DECIDED_IN, DECIDED_OUT, explainFlow, groupRules, lookupVerdict, type CompiledPolicy, type Klass, type PolicyState, type Verdict } from './index.js';
import { Prng } from '../chaos/prng.js';
import { viewOf } from './compile.js';
import { coverage, peerMatches, type RuleRef } from './decide.js';
import { segmentPorts, segmentProtos, type Segment } from './segments.js';

// Old against new: before profiles, every pair of classes stored its own segments, decided from the
// rules matching its two sides. Here that per-pair decision is redone directly (no rule index, no
// buckets, no memo) for every pair of every random rule set, cold and after incremental edits, and the
// pair's profiles must hold exactly those segments; and the tables must decide probed flows as explain.

const meta = { revision: 1, createdAt: '', updatedAt: '' };

/** Seeded (the chaos harness's generator), so a failure names the seed that reproduces it. */
function rng(seed: number): (n: number) => number {
  const g = new Prng(seed);
  return (n: number) => g.int(0, n - 1);
}

const GROUPS = ['g0', 'g1', 'g2'];
const IPS = ['10.1.0.2', '10.1.0.3', '10.1.0.9', '10.1.1.4', '10.2.0.3', '10.2.0.4', '10.2.0.77', '192.0.2.1', '192.0.2.200'];

/** A prefix around one of the addresses, at a random length: prefixes nest and overlap. */
function cidr(rnd: (n: number) => number): string {
  const len = [8, 16, 23, 24, 25, 30, 32][rnd(7)] as number;
  const size = 2 ** (32 - len);
  return `${formatIp(Math.floor((parseIp(IPS[rnd(IPS.length)] as string) as number) / size) * size)}/${len}`;
}

let serial = 0;
function randomRule(rnd: (n: number) => number): Rule {
  const direction = rnd(2) ? 'in' : 'out';
  const protocol = ['tcp', 'tcp', 'udp', 'udp', 'icmp', 'any', '47'][rnd(7)] as string;
  const k = direction === 'in' ? ['fromGroup', 'fromNetwork', 'fromCidr'] : ['toGroup', 'toNetwork', 'toCidr'];
  const a = [0, 53, 80, 443, 8000, 65535][rnd(6)] as number;
  const ports = rnd(2) || a === 65535 ? String(a) : `${a}-${Math.min(65535, a + [1, 30, 2000][rnd(3)]!)}`;
  const peer = rnd(5);
  return {
    id: `r${serial++}`, direction, protocol, priority: 1 + rnd(6), action: rnd(2) ? 'allow' : 'deny',
    ...((protocol === 'tcp' || protocol === 'udp') && rnd(4) ? { ports } : {}),
    ...(peer === 0 ? { [k[0] as string]: GROUPS[rnd(3)] } : peer === 1 ? { [k[1] as string]: rnd(2) ? 'a' : 'b' } : peer < 4 ? { [k[2] as string]: cidr(rnd) } : {}),
  };
}

function randomState(rnd: (n: number) => number): PolicyState {
  const ep = (ip: string, network: string, group: string | undefined): Endpoint => ({ ...meta, id: ip, tenant: 't', network, ...(group ? { group } : {}), ip,
    prefixLength: 16, gateway: '', mac: '', mtu: 1450, vni: 1, host: 'h', ifname: 'eth0', containerId: ip, labels: {}, state: 'created' });
  const net = (name: string, subnet: string): Network => ({ ...meta, tenant: 't', name, subnet, gateway: '', encap: 'vxlan', vni: 1, mtu: 1450 });
  const policies: Policy[] = ['p0', 'p1', 'p2'].map((name) => ({ ...meta, tenant: 't', name, rules: Array.from({ length: 5 + rnd(25) }, () => randomRule(rnd)) }));
  const groups: Group[] = GROUPS.map((name, i) => ({ ...meta, tenant: 't', name, network: i ? 'b' : 'a', labels: {}, policies: ['p0', 'p1', 'p2'].filter(() => rnd(2)) }));
  const tenant: Tenant = { ...meta, name: 't', id: 1, defaultAction: rnd(2) ? 'allow' : 'deny' };
  const endpoints = IPS.slice(0, 7).map((ip) => ep(ip, ip.startsWith('10.1.') ? 'a' : 'b', rnd(4) ? GROUPS[rnd(3)] : undefined));
  return { tenant, networks: [net('a', '10.1.0.0/16'), net('b', '10.2.0.0/16')], groups, policies, endpoints };
}

/** Which protocol slots (tcp, udp, the others) a rule speaks for. */
const inSlot = (r: RuleRef, slot: 0 | 1 | 2) => {
  const p = r.rule.protocol === 'any' ? 'any' : r.rule.protocol === 'tcp' ? 6 : r.rule.protocol === 'udp' ? 17 : -1;
  return p === 'any' || (slot === 0 ? p === 6 : slot === 1 ? p === 17 : p === -1);
};
const peerless = (r: RuleRef) => !['fromGroup', 'fromNetwork', 'fromCidr', 'toGroup', 'toNetwork', 'toCidr'].some((k) => (r.rule as Record<string, unknown>)[k] !== undefined);
const slotSegments = (sides: { egress: RuleRef[] | undefined; ingress: RuleRef[] | undefined }, slot: 0 | 1 | 2, a: 'allow' | 'deny') =>
  (slot === 2 ? segmentProtos(sides, a) : segmentPorts(sides, slot === 0 ? 6 : 17, a));

/**
 * The pair's segments from first principles: every matching rule of each enforced side decides the
 * connection; the side stages decide by each enforced side's rules without a peer; a pair holds, per
 * protocol where a rule with a peer matches it, the segments where the two differ.
 */
function oldSegments(s: PolicyState, src: Klass, dst: Klass, rulesOf: (g: string | undefined, d: 'in' | 'out') => RuleRef[], decided?: 'in' | 'out'): [Segment[], Segment[], Segment[]] {
  const matching = (own: Klass, peer: Klass, d: 'in' | 'out', slot: 0 | 1 | 2): RuleRef[] | undefined => {
    if (!own.endpoint || decided === d) return undefined;
    const high = highRules(rulesOf(own.group, d), slot);
    return rulesOf(own.group, d).filter((r) => peerMatches(r.rule, viewOf(peer)) && !high.has(r));
  };
  return ([0, 1, 2] as const).map((slot) => {
    // The high rules (above every rule with a peer of their side on their ports) are decided ahead of the pairs.
    const sides = { egress: matching(src, dst, 'out', slot), ingress: matching(dst, src, 'in', slot) };
    const alone = { egress: sides.egress?.filter(peerless), ingress: sides.ingress?.filter(peerless) };
    const peered = [...(sides.egress ?? []), ...(sides.ingress ?? [])].some((r) => !peerless(r) && inSlot(r, slot));
    if (!peered) return [];
    const all = slotSegments(sides, slot, s.tenant.defaultAction);
    const side = slotSegments(alone, slot, s.tenant.defaultAction);
    // Piece by piece between every segment boundary of either.
    const cuts = [...new Set([...all, ...side].flatMap((g) => [g.first, g.last + 1]))].sort((x, y) => x - y);
    const out: Segment[] = [];
    cuts.forEach((x, i) => {
      const a = all.find((g) => g.first <= x && g.last >= x);
      const b = side.find((g) => g.first <= x && g.last >= x);
      if (!a || !b || a.verdict === b.verdict) return;
      const last = (cuts[i + 1] as number) - 1;
      const prev = out[out.length - 1];
      if (prev && prev.verdict === a.verdict && prev.last + 1 === x) prev.last = last;
      else out.push({ first: x, last, verdict: a.verdict });
    });
    return out;
  }) as [Segment[], Segment[], Segment[]];
}

/** A side's rules without a peer that no rule with a peer of the side meets on their ports at their priority or above. */
function highRules(rules: readonly RuleRef[], slot: 0 | 1 | 2): Set<RuleRef> {
  const meets = (a: RuleRef, b: RuleRef) => { const x = coverage(a.rule, slot); const y = coverage(b.rule, slot); return !!x && !!y && x[0] <= y[1] && y[0] <= x[1]; };
  const peered = rules.filter((r) => !peerless(r) && inSlot(r, slot));
  return new Set(rules.filter((r) => peerless(r) && inSlot(r, slot) && !peered.some((q) => q.rule.priority >= r.rule.priority && meets(q, r))));
}

/** A side's high profile from first principles: port by port, the highest priority's verdict where a high rule is at it. */
function highSegments(rules: readonly RuleRef[], slot: 0 | 1 | 2): Segment[] {
  const high = highRules(rules, slot);
  const alone = rules.filter((r) => peerless(r) && inSlot(r, slot));
  const cuts = [...new Set([0, ...alone.flatMap((r) => { const c = coverage(r.rule, slot) as [number, number]; return [c[0], c[1] + 1]; }), ...(slot === 2 ? [6, 7, 17, 18] : [])])].sort((a, b) => a - b);
  const last = slot === 2 ? 255 : 65535;
  const out: Segment[] = [];
  cuts.forEach((x, i) => {
    if (x > last || (slot === 2 && (x === 6 || x === 17))) return;
    const end = Math.min(last, (cuts[i + 1] ?? last + 1) - 1);
    const at = alone.filter((r) => { const c = coverage(r.rule, slot) as [number, number]; return c[0] <= x && c[1] >= x; });
    const top = Math.max(...at.map((r) => r.rule.priority));
    const level = at.filter((r) => r.rule.priority === top);
    if (!level.some((r) => high.has(r))) return;
    const verdict = level.some((r) => r.rule.action === 'deny') ? 'drop' : 'accept';
    const prev = out[out.length - 1];
    if (prev && prev.verdict === verdict && prev.last + 1 === x) prev.last = end;
    else out.push({ first: x, last: end, verdict });
  });
  return out;
}

/** Each enforced class's high profiles, from first principles. */
function assertHighs(c: CompiledPolicy, rulesOf: (g: string | undefined, d: 'in' | 'out') => RuleRef[], at: string): void {
  const byId = new Map(c.highProfiles.map((p) => [p.id, p]));
  const entries = new Map(c.highs.map((x) => [x.cls, x]));
  for (const k of c.classification.classes) {
    if (!k.endpoint) { assert.equal(entries.has(k.id), false, `${at}: class ${k.id} is not enforced: no high profile`); continue; }
    for (const d of ['in', 'out'] as const) {
      for (const slot of [0, 1, 2] as const) {
        assert.deepEqual(byId.get(entries.get(k.id)?.[d][slot] ?? 0)?.segs ?? [], highSegments(rulesOf(k.group, d), slot), `${at}: class ${k.id} ${d} slot ${slot} high`);
      }
    }
  }
}

/** Each enforced class's side profiles: what its rules without a peer drop, per direction and protocol. */
function assertSides(s: PolicyState, c: CompiledPolicy, rulesOf: (g: string | undefined, d: 'in' | 'out') => RuleRef[], at: string): void {
  const byId = new Map(c.sideProfiles.map((p) => [p.id, p]));
  const entries = new Map(c.sides.map((x) => [x.cls, x]));
  for (const k of c.classification.classes) {
    const e = entries.get(k.id);
    assert.equal(e !== undefined, k.endpoint, `${at}: class ${k.id} has side profiles exactly when it is an endpoint enforced here`);
    if (!e) continue;
    for (const d of ['in', 'out'] as const) {
      for (const slot of [0, 1, 2] as const) {
        const drops = slotSegments({ egress: rulesOf(k.group, d).filter(peerless), ingress: undefined }, slot, s.tenant.defaultAction).filter((g) => g.verdict === 'drop');
        assert.deepEqual(byId.get(e[d][slot] as number)?.segs ?? [], drops, `${at}: class ${k.id} ${d} slot ${slot}`);
      }
    }
  }
}

function assertSameAsPerPair(s: PolicyState, c: CompiledPolicy, at: string): void {
  const profiles = new Map(c.profiles.map((p) => [p.id, p]));
  const pairs = new Map(c.pairs.map((p) => [`${p.src}.${p.dst}`, p]));
  const texts = c.profiles.map((p) => `${p.proto}:${p.text}`);
  assert.equal(new Set(texts).size, texts.length, `${at}: a function is stored once`);
  const lists = new Map<string, RuleRef[]>();
  const rulesOf = (g: string | undefined, d: 'in' | 'out') => {
    const k = `${d}/${g ?? ''}`;
    return lists.get(k) ?? lists.set(k, groupRules(s, g, d)).get(k) as RuleRef[];
  };
  // Pairs are kept by role (roles.ts): each pair of classes is its roles' pair, and decides as the per-pair compile did.
  const [srcRole, dstRole] = [(k: Klass) => c.roles.src.get(k.id) ?? k.id, (k: Klass) => c.roles.dst.get(k.id) ?? k.id];
  for (const src of c.classification.classes) for (const dst of c.classification.classes) {
    const pair = pairs.get(`${srcRole(src)}.${dstRole(dst)}`);
    const got = [pair?.tcp, pair?.udp, pair?.other].map((id) => (id ? profiles.get(id)?.segs : []));
    assert.deepEqual(got, oldSegments(s, src, dst, rulesOf), `${at}: pair ${src.id} ${JSON.stringify(src)} -> ${dst.id} ${JSON.stringify(dst)}`);
    // Between two enforced classes: the functions once a high stage decided a direction open (high.ts).
    for (const [decided, bit] of [['in', DECIDED_IN], ['out', DECIDED_OUT]] as const) {
      const v = pairs.get(`${srcRole(src)}.${dstRole(dst) + bit}`);
      // Only where that side has a high rule: the destination's ingress (in), the source's egress (out).
      const [side, dir] = decided === 'in' ? [dst, 'in' as const] : [src, 'out' as const];
      const high = ([0, 1, 2] as const).some((slot) => highRules(rulesOf(side.group, dir), slot).size > 0);
      const want = src.endpoint && dst.endpoint && high ? oldSegments(s, src, dst, rulesOf, decided) : [[], [], []];
      assert.deepEqual([v?.tcp, v?.udp, v?.other].map((id) => (id ? profiles.get(id)?.segs : [])), want, `${at}: pair ${src.id} -> ${dst.id}, ${decided} decided`);
    }
  }
  assertSides(s, c, rulesOf, at);
  assertHighs(c, rulesOf, at);
}

function assertExplained(s: PolicyState, c: CompiledPolicy, at: string): void {
  const cls = (ip: string) => c.classification.byIp(ip).id;
  const eps = new Set(s.endpoints.map((e) => e.ip));
  for (const a of IPS) for (const b of IPS) {
    // Between two addresses that are not endpoints no host of the tenant sees a packet.
    if (a === b || (!eps.has(a) && !eps.has(b))) continue;
    for (const [proto, name, ports] of [[6, 'tcp', [0, 53, 54, 80, 443, 2000, 65535]], [17, 'udp', [53, 80, 8030]], [1, 'icmp', [0]], [47, '47', [0]]] as const) {
      for (const port of ports) {
        const want = explainFlow(s, a, b, name, proto === 6 || proto === 17 ? port : undefined).allowed;
        assert.equal(lookupVerdict(c, cls(a), cls(b), proto, port) === 'accept', want, `${at}: ${a} -> ${b} ${name}/${port}`);
      }
    }
  }
}

test('profiles hold exactly what the per-pair compile decided, for 40 random rule sets and 10 incremental edits of each', () => {
  let incremental = 0;
  for (let seed = 1; seed <= 40; seed++) {
    const rnd = rng(seed);
    let s = randomState(rnd);
    let c = compilePolicy(s);
    assertSameAsPerPair(s, c, `seed ${seed} cold`);
    // explain classifies the tenant again for every flow: probed once per seed, cold or after the edits.
    if (seed % 2) assertExplained(s, c, `seed ${seed} cold`);
    for (let step = 0; step < 10; step++) {
      const i = rnd(3);
      const p = s.policies[i] as Policy;
      const j = rnd(p.rules.length + 1);
      // Add a rule, drop one, or give one the shape of another (same id): each bucket's stamp moves.
      const rules = rnd(3) === 0 || j === p.rules.length ? [...p.rules, randomRule(rnd)] : rnd(2) ? p.rules.filter((_, x) => x !== j) : p.rules.map((r, x) => (x === j ? { ...randomRule(rnd), id: r.id } : r));
      s = { ...s, policies: s.policies.map((x, k) => (k === i ? { ...p, revision: p.revision + 1, rules } : x)) };
      c = compilePolicy({ ...s, previous: c });
      if (c.how === 'incremental') incremental++;
      assertSameAsPerPair(s, c, `seed ${seed} step ${step}`);
      if (step === 9 && seed % 2 === 0) assertExplained(s, c, `seed ${seed} step ${step}`);
    }
  }
  assert.ok(incremental > 40 * 10 * 0.8, `${incremental} of 400 edits compiled incrementally`);
});

test('pairs whose sides match the same rules share a profile: 300 classes behind one network rule are one profile', () => {
  const rules: Rule[] = [{ id: 'u', direction: 'in', action: 'deny', protocol: 'udp', priority: 2, ports: '53', fromNetwork: 'a' },
    ...Array.from({ length: 300 }, (_, i): Rule => ({ id: `c${i}`, direction: 'in', action: 'deny', protocol: 'tcp', priority: 3, ports: String(1000 + i), fromCidr: `10.1.${i >> 2}.${(i & 3) * 64}/26` }))];
  const s = randomState(rng(7));
  const state: PolicyState = { ...s, tenant: { ...s.tenant, defaultAction: 'allow' }, policies: [{ ...meta, tenant: 't', name: 'p0', rules }],
    groups: s.groups.map((g) => ({ ...g, policies: g.name === 'g0' ? ['p0'] : [] })), endpoints: s.endpoints.map((e, i) => (i === 0 ? { ...e, group: 'g0' } : e)) };
  const c = compilePolicy(state);
  assert.equal(c.profiles.filter((p) => p.proto === 'udp').length, 1, 'one udp function');
  assert.ok(c.pairs.filter((p) => p.udp).length >= 300, 'held by every class of network a');
  assert.equal(c.profiles.filter((p) => p.proto === 'tcp').length, 300, 'and each /26 its own tcp port');
  assertSameAsPerPair(state, c, 'shared');
});
