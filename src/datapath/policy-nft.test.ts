import { test } from 'node:test';
import assert from 'node:assert/strict';
import { addressOf, parseIp, type Endpoint, type Group, type Network, type Policy, type Rule, type Tenant } from '../model/index.js';
import { compilePolicy, DECIDED_IN, explainFlow, lookupVerdict, protocolNumber, type CompiledPolicy, type PolicyState } from '../policy/index.js';
import { renderPolicy, SHARDS, type PolicyNft } from './policy-nft.js';
import { l4Of, partsOf, PROFILE_MARK, SIDE_MARK, splitSingles, withIcmp6, type Proto } from './policy-nft-parts.js';
import { DENY_CHAIN, policyTableOf } from './flows-nft.js';
import { allChains, allMaps } from './table.js';
import { diffTables } from './table-delta.js';
import { applyScript, contentOf } from './script-model.js';
import type { NftTable } from './table.js';

const meta = { revision: 1, createdAt: '', updatedAt: '' };
const tenant = (defaultAction: 'allow' | 'deny'): Tenant => ({ ...meta, name: 't', id: 1, defaultAction });
const net = (name: string, subnet: string): Network => ({ ...meta, tenant: 't', name, subnet, gateway: '', encap: 'vxlan', vni: 1, mtu: 1450 });
const group = (name: string, network: string, policies: string[]): Group => ({ ...meta, tenant: 't', name, network, policies, labels: {} });
const ep = (ip: string, network: string, host: string, g?: string): Endpoint => ({
  ...meta, id: ip, tenant: 't', network, ...(g ? { group: g } : {}), ip, prefixLength: 24, gateway: '', mac: '', mtu: 1450, vni: 1,
  host, ifname: 'eth0', containerId: ip, labels: {}, state: 'created',
});

/** A map's name without the content hash it carries (policy-nft.ts byContent). */
const baseName = (name: string) => name.replace(/_[0-9a-f]{12}$/, '');
/** A map's stage: its base name without its shard (`tcp_s17` → `tcp_s`). */
const stageOf = (name: string) => baseName(name).replace(/(_[psr])(\d+|d)$/, '$1').replace(/_prof$/, '_p').replace(/_singles$/, '_s').replace(/_rest$/, '_r');
/** Every element of a stage's maps (all shards). */
const stageElements = (nft: PolicyNft, stage: string) => flat(nft).maps.filter((m) => stageOf(m.name) === stage).flatMap((m) => m.elements);

/** Elements "KEY : VALUE" of a rendered map or anonymous vmap, as [key, value]. */
const pairsOf = (elements: readonly string[]) => elements.map((e) => [e.slice(0, e.lastIndexOf(' : ')), e.slice(e.lastIndexOf(' : ') + 3)] as const);
const inRange = (key: string, n: number, num: (x: string) => number) => {
  const [a, b] = key.split('-');
  return n >= num(a as string) && n <= num((b ?? a) as string);
};

/**
 * What the rendered table decides for a new connection, evaluated the way the kernel walks it: both
 * classes; the protocol's profile map (a pair without an element keeps its source class as the mark);
 * the profile's single ports; its rest (a verdict, or its chain's rules in order); then the tenant default.
 */
/** A map's elements by key, made once per rendered table and map (a scan per lookup made big tables slow to walk). */
const exactMaps = new WeakMap<PolicyNft, Map<string, Map<string, string>>>();
function exactMap(nft: PolicyNft, name: string): Map<string, string> {
  let byName = exactMaps.get(nft);
  if (!byName) exactMaps.set(nft, (byName = new Map()));
  let m = byName.get(name);
  if (!m) byName.set(name, (m = new Map(pairsOf(nft.maps.find((x) => x.name === name)?.elements ?? []))));
  return m;
}

/** A rendered policy with its shared chains and their maps among the rest, as a table's text holds them (once per render). */
const flats = new WeakMap<PolicyNft, PolicyNft>();
function flat(n: PolicyNft): PolicyNft {
  if (!n.shared) return n;
  let f = flats.get(n);
  if (!f) flats.set(n, (f = { maps: allMaps(n), chains: allChains(n) }));
  return f;
}

/** A policy's render as the tenant's table holds it: with the deny chain its drops go to (flows-nft.ts). */
export const policyTable = (c: CompiledPolicy): NftTable => policyTableOf(renderPolicy(c));

/** The verdict the table gives a flow: 'accept', 'drop' (a `goto deny`: the deny chain drops) or 'jump audit'. */
export function walk(whole: PolicyNft, fallback: string, src: string, dst: string, proto: number, port: number): string {
  const v = walkTo(whole, fallback, src, dst, proto, port);
  return v === `goto ${DENY_CHAIN}` ? 'drop' : v;
}

function walkTo(whole: PolicyNft, fallback: string, src: string, dst: string, proto: number, port: number): string {
  const nft = flat(whole);
  const map = (name: string) => nft.maps.find((m) => m.name === name)?.elements ?? [];
  // The maps the forward chain names (they are named by their content).
  const ref = (rule: string) => {
    const line = nft.chains.find((l) => l.trim().startsWith(`${rule} @`));
    assert.ok(line || nft.maps.length === 0, `the forward chain has "${rule} @MAP"`);
    return line ? line.trim().slice(rule.length + 2) : '';
  };
  // The source's role by its address into meta mark, the destination's into ct mark (policy/roles.ts): two maps, or one where they agree.
  const cls = (rule: string, ip: string) => pairsOf(map(ref(rule))).find(([k]) => inRange(k, parseIp(ip) as number, (x) => parseIp(x) as number))?.[1] ?? '0';
  const s = cls('meta mark set ip saddr map', src);
  const d = cls('ct mark set ip daddr map', dst);
  if (nft.maps.length === 0) return fallback;
  const exact = (name: string, key: string) => exactMap(nft, name).get(key);
  // SCTP by port where the table has its lookups (a rule compares SCTP ports), else one of the others.
  const sctp = nft.chains.some((l) => l.trim().startsWith('meta l4proto sctp ') || l.includes('meta l4proto != { tcp, udp, sctp }'));
  const x = proto === 6 ? 'tcp' : proto === 17 ? 'udp' : proto === 132 && sctp ? 'sctp' : 'x';
  const l4 = x === 'x' ? `meta l4proto != { tcp, udp${sctp ? ', sctp' : ''} }` : `meta l4proto ${x}`;
  // Each stage is a rule of its protocol's lookup chain that looks its map up, or (a large stage) jumps by the
  // mark's low bits to a shard chain whose one rule looks the shard's map up. A stage without elements may have none.
  const lines = nft.chains.map((l) => l.trim());
  const fwd = nft.chains.indexOf('\tchain forward {');
  // The lookup chains (`tcp_lookups`...) and the side and high stages' (`tcp_side`, `x_high`...) are jumped
  // to under their protocol's match: read in place of the jump (they end without a verdict of their own, so
  // the kernel returns to the next rule, as here).
  const body = (name: string) => { const i = nft.chains.indexOf(`\tchain ${name} {`); assert.ok(i >= 0, `chain ${name} exists`); return lines.slice(i + 1, nft.chains.indexOf('\t}', i)); };
  // Each protocol's stages are in its own chain (`tcp_lookups`...), jumped to from the forward chain the same way.
  const inline = (ls: readonly string[], kinds: RegExp): string[] => ls.flatMap((l) => {
    const m = /^(meta l4proto .+ )jump (\w+)_(high|side|lookups)$/.exec(l);
    if (!m || !kinds.test(m[3] as string)) return [l];
    assert.equal(m[1], `${l4Of(m[2] === 'x' ? 'other' : m[2] as Proto, sctp)}`, `a stage chain is jumped to under its own protocol's match: ${l}`);
    return inline(body(`${m[2]}_${m[3]}`), kinds);
  });
  const forward = inline(lines.slice(fwd, nft.chains.indexOf('\t}', fwd)), /^(high|side|lookups)$/);
  const jumps = new Map<string, { n: number; by: 'meta' | 'ct'; chains: Map<number, string> }>();
  for (const line of forward.filter((l) => l.startsWith(`${l4} meta mark and `) || l.startsWith(`${l4} ct mark and `))) {
    const m = / (meta|ct) mark and (\d+) vmap @(\S+)$/.exec(line);
    assert.ok(m, `a shard dispatch through a named map: ${line}`);
    const n = Number(m[2]) + 1;
    assert.ok(n > 1 && n <= SHARDS && (n & (n - 1)) === 0, `shards: a power of two up to ${SHARDS}: ${line}`);
    const chains = new Map<number, string>();
    let stage = '';
    for (const [k, v] of exactMap(nft, m[3] as string)) {
      const chain = v.replace(/^jump /, '');
      stage = /_([psr])\d+$/.exec(chain)?.[1] as string;
      assert.ok(chain === `${x}_${stage}${k}` && Number(k) < n, `a ${x} shard of ${n}: ${k} : ${v}`);
      chains.set(Number(k), chain);
    }
    assert.ok(m[1] === 'meta' || stage === 'p', 'only the pair stage splits by the destination (ct mark)');
    jumps.set(stage, { n, by: m[1] as 'meta' | 'ct', chains });
  }
  // (The side and high stages' lookups read like the pair stages' but name their own maps: `_ss_`, `_sr_`, `_his_`, `_hor_`...)
  // The kernel walks the stages in order: high, then the pair's (pair, single ports, rest), then sides.
  const kind = (l: string) => (/@\w+_h[io]s?r?6?_/.test(l) ? 0 : /@\w+_(in|out)6?_|@\w+_s[sr]_/.test(l) ? 2 : /@cls/.test(l) ? -1 : 1);
  const order = forward.filter((l) => l.includes('@') && (l.startsWith(l4) || l.includes(`${x} dport`))).map(kind).filter((k) => k >= 0);
  assert.deepEqual(order, [...order].sort(), `the ${x} stages in the kernel's order: high, pair, side`);
  const direct = (rule: string) => forward.find((l) => l.startsWith(`${rule} @`) && !/@\w+_(s[sr]|h[io][sr]?)_/.test(l))?.slice(rule.length + 2);
  const at = (stage: string, prefix: string, mark: string, rule: string, key: string) => {
    const sharded = jumps.get(stage);
    let m = direct(`${prefix}${rule}`);
    if (sharded) {
      assert.equal(m, undefined, 'a stage is one map or shards, not both');
      const chain = sharded.chains.get(Number(sharded.by === 'ct' ? d : mark) & (sharded.n - 1));
      if (!chain) return undefined;
      const i = nft.chains.indexOf(`\tchain ${chain} {`);
      const line = nft.chains[i + 1]?.trim() ?? '';
      assert.ok(i >= 0 && line.startsWith(`${rule} @`) && nft.chains[i + 2] === '\t}', `chain ${chain} is one "${rule} @MAP": ${line}`);
      m = line.slice(rule.length + 2);
    }
    return m === undefined ? undefined : exact(m, key);
  };
  const chainVerdict = (verdict: string | undefined): string | undefined => {
    if (verdict === undefined || !verdict.startsWith('jump ') || verdict.startsWith('jump open_') || verdict === 'jump audit') return verdict;
    const start = nft.chains.indexOf(`\tchain ${verdict.slice(5)} {`);
    assert.ok(start >= 0, `chain ${verdict} exists`);
    // A long pattern: its interval map gives a decision (data) into meta mark, which the rules after it act on.
    let decision: string | undefined;
    for (const line of nft.chains.slice(start + 1, nft.chains.indexOf('\t}', start)).map((l) => l.trim())) {
      const data = /^meta mark set (tcp dport|udp dport|sctp dport|meta l4proto) map @(\S+)$/.exec(line);
      if (data) {
        assert.equal(nft.maps.find((m) => m.name === data[2])?.type.endsWith(': mark'), true, `a map of decisions, not verdicts: ${data[2]}`);
        decision = pairsOf(map(data[2] as string)).find(([k]) => inRange(k, data[1] === 'meta l4proto' ? proto : port, Number))?.[1];
        continue;
      }
      const acts = /^meta mark (0x6[0-9a-f]{7}) (accept|goto deny|jump audit|jump open_in|jump open_out)$/.exec(line);
      if (acts) {
        if (decision === acts[1]) return acts[2];
        continue;
      }
      const m = /^(tcp dport|udp dport|sctp dport|meta l4proto) (\d+(?:-\d+)?) (accept|goto deny|jump audit|jump open_in|jump open_out)$/.exec(line);
      // (No verdict map: the kernel would walk its elements at every validation of the table.)
      assert.ok(m, `a chain rule this walker knows: ${line}`);
      const applies = m[1] === 'meta l4proto' ? x === 'x' && inRange(m[2] as string, proto, Number) : m[1] === `${x} dport` && inRange(m[2] as string, port, Number);
      if (applies) return m[3] as string;
    }
    return undefined;
  };
  // The high stages: each end's address → its high profile, whose ports drop or mark a direction decided
  // open (a bit in ct mark, which keys the pair stage); both open: accepted (policy-nft-high.ts).
  let ct = Number(d);
  for (const [ip, addr, dir, bit] of [[dst, 'daddr', 'i', 0x04000000], [src, 'saddr', 'o', 0x08000000]] as const) {
    const line = forward.find((l) => l.startsWith(`${l4} meta mark set ip ${addr} map @${x}_h${dir}_`));
    if (!line) continue;
    const hit = pairsOf(map(line.split('@')[1] as string)).find(([k]) => inRange(k, parseIp(ip) as number, (y) => parseIp(y) as number));
    if (!hit) continue;
    const singles = forward.find((l) => l.startsWith(`meta mark . ${x} dport vmap @${x}_h${dir}s_`))?.split('@')[1];
    const rest = forward.find((l) => l.startsWith(`${l4} meta mark vmap @${x}_h${dir}r_`))?.split('@')[1];
    // As the kernel walks it: a jump returns and the next rule runs, with the mark the chain left.
    let m = hit[1];
    for (const v of [() => (x === 'x' || !singles ? undefined : exact(singles, `${m} . ${port}`)), () => chainVerdict(rest && exact(rest, m))]) {
      const verdict = v();
      if (verdict === undefined) continue;
      if (verdict === `goto ${DENY_CHAIN}`) return verdict;
      assert.equal(verdict, `jump open_${dir === 'i' ? 'in' : 'out'}`, 'a high stage drops or opens its own direction');
      const open = nft.chains.indexOf(`\tchain open_${dir === 'i' ? 'in' : 'out'} {`);
      const body = nft.chains.slice(open + 1, nft.chains.indexOf('\t}', open)).map((l) => l.trim());
      assert.deepEqual(body, [`ct mark set ct mark or 0x${bit.toString(16)}`, 'meta mark set 0'], 'the open chain sets its bit and clears the mark');
      ct |= bit;
      m = '0';
    }
  }
  if ((ct & 0x0c000000) === 0x0c000000) {
    assert.ok(forward.includes(`${l4} ct mark & 0xc000000 == 0xc000000 accept`), 'both directions open: accepted');
    return 'accept';
  }
  const mark = at('p', `${l4} `, s, 'meta mark set meta mark . ct mark map', `${s} . ${ct}`) ?? s;
  const single = x === 'x' ? undefined : at('s', '', mark, `meta mark . ${x} dport vmap`, `${mark} . ${port}`);
  // A port the pair leaves undecided, between ports its rest decides: a goto past the rest to the
  // protocol's tail, which must hold what the forward chain does after the pair stages for this
  // protocol (its side stages' jump, then the last rules; no other protocol's stage matches its packets).
  const toTail = single === `goto ${x}_tail`;
  if (toTail) {
    const fwdLines = inline(lines.slice(fwd + 1, nft.chains.indexOf('\t}', fwd)), /^lookups$/);
    const after = fwdLines.filter((l) => l === `${l4} jump ${x}_side` || l === 'meta mark & 0xf0000000 == 0x20000000 accept' || l.endsWith('comment "tenant default"'));
    assert.deepEqual(body(`${x}_tail`), after, `${x}_tail is what follows the ${x} pair stages`);
    // Reached by a goto from the lookup chain: ending without a verdict would return to the forward chain
    // and run its last rules again, where from the forward chain itself it fell to the chain's policy.
    assert.match(after.at(-1) ?? '', /^(accept|goto deny) comment "tenant default"$/, `${x}_tail ends with the tenant default's verdict`);
  } else if (single) return single;
  const decided = toTail ? undefined : chainVerdict(at('r', `${l4} `, mark, 'meta mark vmap', mark));
  if (decided) return decided;
  // The side stages: each end's address → its side profile (where it has one), whose ports may drop.
  let m = mark;
  const sideSingles = forward.find((l) => l.startsWith(`meta mark . ${x} dport vmap @${x}_ss_`))?.split('@')[1];
  const sideRest = forward.find((l) => l.startsWith(`${l4} meta mark vmap @${x}_sr_`))?.split('@')[1];
  for (const [ip, addr] of [[dst, 'daddr'], [src, 'saddr']] as const) {
    const line = forward.find((l) => l.startsWith(`${l4} meta mark set ip ${addr} map @${x}_${addr === 'daddr' ? 'in' : 'out'}_`));
    if (!line) continue;
    const hit = pairsOf(map(line.split('@')[1] as string)).find(([k]) => inRange(k, parseIp(ip) as number, (y) => parseIp(y) as number));
    if (!hit) continue;
    m = hit[1];
    assert.ok(Number(m) >= 0x20000000 && Number(m) < 0x40000000, `a side mark: ${m}`);
    const v = (x === 'x' || !sideSingles ? undefined : exact(sideSingles, `${m} . ${port}`)) ?? chainVerdict(sideRest && exact(sideRest, m));
    if (v !== undefined) {
      assert.equal(v, `goto ${DENY_CHAIN}`, 'side stages only drop');
      return v;
    }
  }
  if (forward.includes('meta mark & 0xf0000000 == 0x20000000 accept') && (Number(m) & 0xf0000000) === 0x20000000) return 'accept';
  return fallback;
}

function randomState(seed: number): PolicyState {
  // mulberry32: an LCG's low bits repeat with a short period, which made every round alike.
  const rnd = (n: number) => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) % n;
  };
  const groups = ['g0', 'g1', 'g2', 'g3'];
  const cidrs = ['10.1.1.0/25', '10.1.2.3/32', '10.1.0.0/16', '10.1.1.2/32', '10.1.1.200/32', '10.0.0.0/8', '192.0.2.0/24', '10.1.2.4/31'];
  const ports = ['80', '443', '8000-8080', '53', '81', '79-81', '0-100', '65535', '0'];
  // SCTP in half the states: where a rule compares its ports it gets lookups of its own.
  const protos = ['tcp', 'udp', 'icmp', 'any', '47', ...(seed % 2 ? ['sctp'] : [])];
  const rules: Rule[] = Array.from({ length: 40 }, (_, i) => {
    const protocol = protos[rnd(protos.length)] as string;
    const dir = rnd(2) ? 'in' : 'out';
    const peer = rnd(5);
    const keys = dir === 'in' ? ['fromGroup', 'fromNetwork', 'fromCidr'] : ['toGroup', 'toNetwork', 'toCidr'];
    return {
      id: String(i), direction: dir, protocol, priority: 1 + rnd(6), action: rnd(2) ? 'allow' : 'deny',
      ...((protocol === 'tcp' || protocol === 'udp' || protocol === 'sctp') && rnd(3) ? { ports: ports[rnd(ports.length)] as string } : {}),
      ...(peer === 0 ? { [keys[0] as string]: groups[rnd(4)] } : peer === 1 ? { [keys[1] as string]: rnd(2) ? 'a' : 'b' } : peer >= 2 && rnd(4) ? { [keys[2] as string]: cidrs[rnd(cidrs.length)] } : {}),
    };
  });
  return {
    tenant: tenant(rnd(2) ? 'allow' : 'deny'),
    networks: [net('a', '10.1.1.0/24'), net('b', '10.1.2.0/24')],
    groups: groups.map((g, i) => group(g, i < 2 ? 'a' : 'b', [`p${i % 3}`])),
    policies: [0, 1, 2].map((i): Policy => ({ ...meta, tenant: 't', name: `p${i}`, rules: rules.filter((_, j) => j % 3 === i) })),
    endpoints: [ep('10.1.1.2', 'a', 'h1', 'g0'), ep('10.1.1.3', 'a', 'h2', 'g1'), ep('10.1.1.200', 'a', 'h2'), ep('10.1.2.3', 'b', 'h1', 'g2'),
      ep('10.1.2.4', 'b', 'h2', 'g3'), ep('10.1.2.5', 'b', 'h1'), ep('10.1.2.6', 'b', 'h2', 'g0')],
  };
}

const PROBES: Array<[number, string, number[]]> = [[6, 'tcp', [0, 53, 79, 80, 81, 82, 443, 8000, 8080, 8081, 65535]], [17, 'udp', [0, 53, 80, 81, 100, 101, 65535]], [132, 'sctp', [0, 53, 80, 81, 443, 8080, 65535]], [1, 'icmp', [0]], [47, '47', [0]]];
const byPort = (proto: number) => proto === 6 || proto === 17 || proto === 132;

test('two hosts, each compiling only its groups (after another policy): together their tables decide every flow as explain does', () => {
  for (let round = 0; round < 12; round++) {
    const s = randomState(1000 + round);
    const tables = new Map(['h1', 'h2'].map((h) => {
      // Compiled after another policy, as the agent does: class ids carried over, new ones past them.
      const c = compilePolicy({ ...s, host: h, previous: compilePolicy({ ...randomState(5000 + round), host: h }) });
      return [h, { c, nft: renderPolicy(c) }] as const;
    }));
    const hostOf = new Map(s.endpoints.map((e) => [e.ip, e.host]));
    const ips = [...s.endpoints.map(addressOf), '192.0.2.1', '10.1.1.77'];
    for (const a of ips) for (const b of ips) {
      if (a === b) continue;
      // The first packet passes the forward hook of the source's host and of the destination's.
      const hosts = new Set([hostOf.get(a), hostOf.get(b)].filter((h) => h !== undefined) as string[]);
      for (const [proto, name, ports] of PROBES) {
        for (const port of ports) {
          const want = explainFlow(s, a, b, name, byPort(proto) ? port : undefined).allowed;
          const got = [...hosts].every((h) => {
            const t = tables.get(h) as { c: CompiledPolicy; nft: PolicyNft };
            return walk(t.nft, t.c.fallback, a, b, proto, port) === 'accept';
          });
          assert.equal(got, want, `round ${round}: ${a} -> ${b} ${name}/${port} (hosts ${[...hosts].join(',')})`);
        }
      }
    }
  }
});

test('one host with every endpoint: the rendered table alone agrees with explain', () => {
  const sctp: boolean[] = [];
  const highs: string[] = [];
  for (let round = 0; round < 8; round++) {
    const s = randomState(77 + round);
    const one: PolicyState = { ...s, endpoints: s.endpoints.map((e) => ({ ...e, host: 'h1' })), host: 'h1' };
    const c = compilePolicy(one);
    const nft = flat(renderPolicy(c));
    sctp.push(c.sctp);
    highs.push(`${c.highs.length > 0 ? 'high' : '-'}/${c.pairs.some((x) => x.dst >= DECIDED_IN) ? 'variants' : '-'}`);
    assert.equal(nft.chains.some((l) => l.includes('sctp dport')), c.sctp, 'SCTP port lookups exactly where the compile decides SCTP by port');
    const ips = [...s.endpoints.map(addressOf), '192.0.2.1'];
    for (const a of ips) for (const b of ips) {
      if (a === b) continue;
      for (const [proto, name, ports] of PROBES) for (const port of ports) {
        const want = explainFlow(one, a, b, name, byPort(proto) ? port : undefined).allowed;
        assert.equal(walk(nft, c.fallback, a, b, proto, port) === 'accept', want, `round ${round}: ${a} -> ${b} ${name}/${port}`);
      }
    }
  }
  assert.ok(sctp.includes(true) && sctp.includes(false), `rounds with and without SCTP by port: ${sctp.join(',')}`);
  // The high stages and the pairs' functions once a direction was decided open (policy/high.ts) are walked too.
  assert.ok(highs.includes('high/variants'), `rounds with high stages and variant pairs: ${highs.join(',')}`);
});

test('distinct CIDRs with a port each: 10 or 2,000 rules, the same chains and maps, only more elements', () => {
  const shape = (n: number) => {
    const rules: Rule[] = [{ id: 'base', priority: 1, direction: 'in', action: 'deny', protocol: 'tcp' },
      ...Array.from({ length: n }, (_, i): Rule => ({ id: String(i), priority: 5, direction: 'in', action: 'allow', protocol: i % 3 ? 'tcp' : 'udp', ports: String(10000 + i), fromCidr: `10.9.${i >> 8}.${i & 255}/32` })),
      ...Array.from({ length: n }, (_, i): Rule => ({ id: `o${i}`, priority: 5, direction: 'out', action: 'deny', protocol: 'tcp', ports: String(20000 + i), toCidr: `10.8.${i >> 8}.${i & 255}/32` }))];
    const s: PolicyState = { tenant: tenant('allow'), networks: [net('a', '10.1.1.0/24')], groups: [group('db', 'a', ['p'])],
      policies: [{ ...meta, tenant: 't', name: 'p', rules }], endpoints: [ep('10.1.1.2', 'a', 'h1', 'db'), ep('10.1.1.3', 'a', 'h1')], host: 'h1' };
    const nft = flat(renderPolicy(compilePolicy(s)));
    const chains = nft.chains.filter((l) => l.startsWith('\tchain ')).map((l) => l.trim().split(' ')[1] as string);
    return { chains: chains.filter((c) => !/_[psr]\d+$/.test(c)).length, shards: chains.length, stages: [...new Set(nft.maps.map((m) => stageOf(m.name)))].sort().join(','), maps: nft.maps.length, elements: nft.maps.reduce((k, m) => k + m.elements.length, 0) };
  };
  const small = shape(10);
  const big = shape(2000);
  // The same stages; each split in at most SHARDS maps (a chain each), whatever the number of rules.
  assert.deepEqual([big.chains, big.stages], [small.chains, small.stages]);
  // The forward chain, the source's and the destination's role lookups, the deny and audit chains at most.
  assert.ok(big.chains <= 5, `${big.chains} chains`);
  const stages = big.stages.split(',').length - 1;
  // The two class maps (sources and destinations: these CIDRs are named one way each), then the stages'.
  assert.ok(big.maps <= 2 + stages * SHARDS && big.shards <= big.chains + stages * SHARDS, `${big.maps} maps, ${big.shards} chains`);
  // Per rule: its class, its class's pair → profile, the profile's port and its rest (the base deny applies
  // to every source). Each /32's function is its own (its own port): interning shares nothing here, and
  // the profile costs one element more per rule than a per-pair table did (its rest).
  assert.ok(big.elements > 4000 * 2 && big.elements <= 4000 * 4 + 20, `${big.elements} elements: at most four per rule`);
});

test('a rule whose peer covers many classes is stored once: 500 udp ports from a network with 200 CIDR classes in it', () => {
  const shape = (classes: number, ports: number) => {
    const rules: Rule[] = [{ id: 'base', priority: 1, direction: 'in', action: 'deny', protocol: 'tcp' },
      ...Array.from({ length: classes }, (_, i): Rule => ({ id: `c${i}`, priority: 5, direction: 'in', action: 'allow', protocol: 'tcp', ports: String(10000 + i), fromCidr: `10.40.${i}.0/24` })),
      ...Array.from({ length: ports }, (_, i): Rule => ({ id: `u${i}`, priority: 5, direction: 'in', action: i % 2 ? 'allow' : 'deny', protocol: 'udp', ports: String(20000 + i), fromNetwork: 'bench' }))];
    const s: PolicyState = { tenant: tenant('allow'), networks: [net('bench', '10.40.0.0/16')], groups: [group('db', 'bench', ['p'])],
      policies: [{ ...meta, tenant: 't', name: 'p', rules }], endpoints: [ep('10.40.255.2', 'bench', 'h1', 'db')], host: 'h1' };
    const c = compilePolicy(s);
    const nft = flat(renderPolicy(c));
    return { c, s, nft, elements: nft.maps.reduce((k, m) => k + m.elements.length, 0), udp: stageElements(nft, 'udp_s').length };
  };
  const { c, s, nft, elements, udp } = shape(200, 500);
  // Per pair before: 200 classes × 250 deny ports (the allowed ones are the default) = 50,000 udp elements.
  assert.equal(udp, 250, 'the udp function of every class in the network is one profile: its ports once');
  assert.ok(elements < (200 + 500) * 4, `${elements} elements: linear in classes plus rules, not their product`);
  for (const [src, port] of [['10.40.7.9', 20000], ['10.40.7.9', 20001], ['10.40.199.1', 20498], ['10.40.3.3', 10003], ['10.40.3.3', 10004], ['10.41.0.1', 20000]] as const) {
    for (const [proto, name] of [[6, 'tcp'], [17, 'udp']] as const) {
      assert.equal(walk(nft, c.fallback, src, '10.40.255.2', proto, port) === 'accept', explainFlow(s, src, '10.40.255.2', name, port).allowed, `${src} ${name}/${port}`);
    }
  }
});

test('one rule more among 3,000 distinct CIDRs (compiled against the last compile) changes a handful of elements, not every class', () => {
  const rules = (n: number): Rule[] => [{ id: 'base', priority: 1, direction: 'in', action: 'deny', protocol: 'tcp' },
    ...Array.from({ length: n }, (_, i): Rule => ({ id: String(i), priority: 5, direction: 'in', action: 'allow', protocol: 'tcp', ports: String(10000 + i), fromCidr: `10.9.${(i * 7) >> 8 & 255}.${(i * 7) & 255}/32` }))];
  const s = (r: Rule[], previous?: CompiledPolicy): PolicyState => ({ tenant: tenant('allow'), networks: [net('a', '10.1.1.0/24')], groups: [group('db', 'a', ['p'])],
    policies: [{ ...meta, tenant: 't', name: 'p', rules: r }], endpoints: [ep('10.1.1.2', 'a', 'h1', 'db')], host: 'h1', ...(previous ? { previous } : {}) });
  const before = compilePolicy(s(rules(3000)));
  // A new CIDR low in the address space: without the last compile's ids, every class after it moves.
  const more = [...rules(3000), { id: 'new', priority: 5, direction: 'in', action: 'allow', protocol: 'tcp', ports: '443', fromCidr: '10.9.0.3/32' } as Rule];
  const table = policyTable;
  // Counted on the tables themselves: the applier writes a changed map whole (table-delta.ts), so its
  // script says which maps changed, not how many of their elements did.
  const elements = (c: CompiledPolicy) => new Set(table(c).maps.flatMap((m) => m.elements.map((e) => `${baseName(m.name)} ${e}`)));
  const moved = (a: Set<string>, b: Set<string>) => [...a].filter((x) => !b.has(x)).length + [...b].filter((x) => !a.has(x)).length;
  const was = elements(before);
  const stable = moved(was, elements(compilePolicy(s(more, before))));
  assert.ok(stable <= 8, `a small change: ${stable} elements`);
  assert.ok(moved(was, elements(compilePolicy(s(more)))) > 1000, 'renumbered: thousands of elements');
});

test("a rule's port changed among 3,000 distinct CIDRs: its pair keeps its profile, only that port's elements change", () => {
  const rules = (port: string): Rule[] => [{ id: 'base', priority: 1, direction: 'in', action: 'deny', protocol: 'tcp' },
    ...Array.from({ length: 3000 }, (_, i): Rule => ({ id: String(i), priority: 5, direction: 'in', action: 'allow', protocol: 'tcp', ports: i === 1234 ? port : String(10000 + i), fromCidr: `10.9.${(i * 7) >> 8 & 255}.${(i * 7) & 255}/32` }))];
  const s = (r: Rule[], previous?: CompiledPolicy): PolicyState => ({ tenant: tenant('allow'), networks: [net('a', '10.1.1.0/24')], groups: [group('db', 'a', ['p'])],
    policies: [{ ...meta, tenant: 't', name: 'p', rules: r }], endpoints: [ep('10.1.1.2', 'a', 'h1', 'db')], host: 'h1', ...(previous ? { previous } : {}) });
  const before = compilePolicy(s(rules('11234')));
  const after = compilePolicy(s(rules('443'), before));
  assert.equal(after.how, 'incremental');
  const map = (c: CompiledPolicy, stage: string) => stageElements(renderPolicy(c), stage);
  // The applier rewrites a changed map whole (table-delta.ts): the pair map, one element per class, stays.
  for (const name of ['cls', 'tcp_p', 'tcp_r']) assert.deepEqual(map(after, name), map(before, name), `${name} unchanged`);
  const was = new Set(map(before, 'tcp_s'));
  const now = map(after, 'tcp_s');
  assert.deepEqual([now.filter((e) => !was.has(e)).length, now.length], [1, was.size], 'one port element replaced');
  // ... in one shard: the applier writes that shard's map, 1/SHARDS of the single ports, and nothing else.
  const old = new Set(flat(renderPolicy(before)).maps.map((m) => m.name));
  const written = flat(renderPolicy(after)).maps.filter((m) => !old.has(m.name));
  assert.deepEqual(written.map((m) => stageOf(m.name)), ['tcp_s'], 'one map written');
  assert.ok((written[0]?.elements.length ?? 0) <= was.size / 4, `${written[0]?.elements.length} of ${was.size} single ports rewritten`);
  assert.equal(walk(renderPolicy(after), after.fallback, '10.9.33.190', '10.1.1.2', 6, 443), 'accept', 'the new port passes');
  assert.equal(walk(renderPolicy(after), after.fallback, '10.9.33.190', '10.1.1.2', 6, 11234), 'drop', 'the old one no longer');
});

test('a rule without a peer that changes pairs all over a large stage rewrites a few small shards, not the stage', () => {
  // 3,000 sources with a port each; 30 of them, spread over the classes (10.9.0.0, 10.9.7.127, ...), also
  // deny 9000-9999. A rule with no peer allowing 9500 below that deny changes those 30 pairs' functions
  // (where their verdict differs from what db's side profile now gives, 9500 is theirs). Shards of
  // 256-512 elements (8 here) would be written whole: half of the stages' elements.
  const rules = (peerless: boolean): Rule[] => [{ id: 'base', priority: 1, direction: 'in', action: 'deny', protocol: 'tcp' },
    ...Array.from({ length: 3000 }, (_, i): Rule => ({ id: String(i), priority: 5, direction: 'in', action: 'allow', protocol: 'tcp', ports: String(10000 + i), fromCidr: `10.9.${i >> 8}.${i & 255}/32` })),
    ...Array.from({ length: 30 }, (_, k): Rule => ({ id: `d${k}`, priority: 7, direction: 'in', action: 'deny', protocol: 'tcp', ports: '9000-9999', fromCidr: `10.9.${((k * 7919) % 3000) >> 8}.${((k * 7919) % 3000) & 255}/32` })),
    ...(peerless ? [{ id: 'open', priority: 6, direction: 'in', action: 'allow', protocol: 'tcp', ports: '9500' } as Rule] : [])];
  const s = (r: Rule[], previous?: CompiledPolicy): PolicyState => ({ tenant: tenant('allow'), networks: [net('a', '10.1.1.0/24')], groups: [group('db', 'a', ['p'])],
    policies: [{ ...meta, tenant: 't', name: 'p', rules: r }], endpoints: [ep('10.1.1.2', 'a', 'h1', 'db')], host: 'h1', ...(previous ? { previous } : {}) });
  const before = compilePolicy(s(rules(false)));
  const after = compilePolicy(s(rules(true), before));
  assert.equal(after.how, 'incremental');
  const old = new Set(flat(renderPolicy(before)).maps.map((m) => m.name));
  const stages = ['tcp_p', 'tcp_s', 'tcp_r'];
  const maps = flat(renderPolicy(after)).maps.filter((m) => stages.includes(stageOf(m.name)));
  const all = maps.reduce((k, m) => k + m.elements.length, 0);
  const written = maps.filter((m) => !old.has(m.name)).reduce((k, m) => k + m.elements.length, 0);
  assert.ok(all > 6000, `${all} elements in the pair and profile stages`);
  assert.ok(written > 0 && written <= all / 4, `${written} of ${all} elements written`);
  for (const [src, port, verdict] of [['10.9.0.0', 9500, 'drop'], ['10.9.0.0', 10000, 'accept'], ['10.9.7.127', 9500, 'drop'], ['10.9.0.1', 9500, 'accept'], ['10.9.0.1', 10001, 'accept'], ['10.9.0.1', 10002, 'drop']] as const) {
    assert.equal(walk(renderPolicy(after), after.fallback, src, '10.1.1.2', 6, port), verdict, `${src} tcp/${port}`);
    assert.equal(explainFlow(s(rules(true)), src, '10.1.1.2', 'tcp', port).allowed, verdict === 'accept', `explain ${src} tcp/${port}`);
  }
});

test('a pair with more ranges than a chain holds as rules looks them up in a named map, with the same verdicts', () => {
  const ranges = Array.from({ length: 40 }, (_, i): Rule => ({ id: `r${i}`, priority: 2 + (i % 3), direction: 'in', action: i % 3 === 2 ? 'deny' : 'allow', protocol: 'tcp', ports: `${1000 + i * 50}-${1030 + i * 50}`, fromCidr: '10.9.0.0/16' }));
  const s: PolicyState = { tenant: tenant('allow'), networks: [net('a', '10.1.1.0/24')], groups: [group('db', 'a', ['p'])],
    policies: [{ ...meta, tenant: 't', name: 'p', rules: [{ id: 'base', priority: 1, direction: 'in', action: 'deny', protocol: 'tcp' }, ...ranges] }],
    endpoints: [ep('10.1.1.2', 'a', 'h1', 'db')], host: 'h1' };
  const c = compilePolicy(s);
  const nft = flat(renderPolicy(c));
  assert.ok(nft.maps.some((m) => m.name.startsWith('pp_') && m.elements.length > 16), 'the long pattern is a named map');
  for (let port = 990; port < 3100; port += 7) {
    assert.equal(walk(nft, c.fallback, '10.9.3.4', '10.1.1.2', 6, port) === 'accept', explainFlow(s, '10.9.3.4', '10.1.1.2', 'tcp', port).allowed, `tcp/${port}`);
  }
});

test('a change of classes never rewrites a map the forward chain uses: new maps, the chain pointed at them, the old ones deleted', () => {
  // The bench's transition that let denied connections through (policy-nft.ts byContent): from 3,000
  // CIDR classes below the network's addresses to none, where an endpoint's class id changes.
  const rules = (n: number): Rule[] => [{ id: 'base', priority: 1, direction: 'in', action: 'deny', protocol: 'tcp' },
    ...Array.from({ length: n }, (_, i): Rule => ({ id: String(i), priority: 5, direction: 'in', action: 'allow', protocol: 'tcp', ports: String(10000 + i), fromCidr: `10.0.${i >> 8}.${i & 255}/32` }))];
  const s = (r: Rule[], previous?: CompiledPolicy): PolicyState => ({ tenant: tenant('allow'), networks: [net('a', '10.1.1.0/24')], groups: [group('db', 'a', ['p']), group('app', 'a', [])],
    policies: [{ ...meta, tenant: 't', name: 'p', rules: r }], endpoints: [ep('10.1.1.2', 'a', 'h1', 'db'), ep('10.1.1.3', 'a', 'h1', 'app')], host: 'h1', ...(previous ? { previous } : {}) });
  const table = policyTable;
  const big = compilePolicy(s(rules(3000)));
  const classOf = (c: CompiledPolicy, ip: string) => c.classification.byIp(ip).id;
  const renumbered = compilePolicy(s(rules(0)));
  assert.notEqual(classOf(big, '10.1.1.3'), classOf(renumbered, '10.1.1.3'), "app's class changes (the transition that let connections through)");
  for (const next of [renumbered, compilePolicy(s(rules(10), big)), compilePolicy(s(rules(2999), big))]) {
    const d = diffTables(table(big), table(next));
    assert.ok(d && d.script !== '', 'a delta');
    // Applied as the kernel would (script-model.ts): nothing refused, no map the rules use rewritten in
    // place, and what results is the next table; its verdicts are walked on that result.
    const r = applyScript(table(big), d.script);
    assert.deepEqual([r.problems, r.inPlace], [[], []]);
    assert.equal(contentOf(r.table), contentOf(table(next)));
    for (const ip of ['10.1.1.3', '10.0.0.7', '10.0.11.1']) {
      assert.equal(walk(r.table, next.fallback, ip, '10.1.1.2', 6, 10007), explainFlow(s(rules(next.ruleCount - 1)), ip, '10.1.1.2', 'tcp', 10007).allowed ? 'accept' : 'drop', `${ip} tcp/10007`);
    }
  }
});

test('a large table in shards (each stage split by the low bits of its marks) decides as explain does, flow by flow', () => {
  // 3,000 /32 sources with a port (udp, tcp) or a range (tcp) each, peerless rules: every stage large
  // enough to be split, and side stages.
  const rules: Rule[] = [{ id: 'base', priority: 1, direction: 'in', action: 'deny', protocol: 'tcp' },
    { id: 'open', priority: 6, direction: 'in', action: 'allow', protocol: 'tcp', ports: '9500' },
    ...Array.from({ length: 3000 }, (_, i): Rule => ({ id: String(i), priority: 2 + (i % 4), direction: 'in', action: i % 5 ? 'allow' : 'deny', protocol: i % 3 ? 'tcp' : 'udp', ports: i % 3 === 1 ? `${10000 + i}-${10010 + i}` : String(10000 + i), fromCidr: `10.9.${i >> 8}.${i & 255}/32` }))];
  const s: PolicyState = { tenant: tenant('allow'), networks: [net('a', '10.1.1.0/24')], groups: [group('db', 'a', ['p'])],
    policies: [{ ...meta, tenant: 't', name: 'p', rules }], endpoints: [ep('10.1.1.2', 'a', 'h1', 'db')], host: 'h1' };
  const c = compilePolicy(s);
  const nft = flat(renderPolicy(c));
  const sharded = nft.chains.filter((l) => /meta mark and \d+ vmap/.test(l));
  assert.ok(sharded.length >= 3, `stages in shards: ${sharded.length}`);
  let seed = 7;
  const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) % n;
  // Against the compiled tables (lookupVerdict, itself checked against explain elsewhere): the shards are
  // the renderer's; explain (15 ms a flow at this size) for a sample.
  const dst = c.classification.byIp('10.1.1.2').id;
  for (let k = 0; k < 800; k++) {
    const i = rnd(3100);
    const src = `10.9.${(i >> 8) & 255}.${i & 255}`;
    const port = [10000 + i, 10005 + i, 9500, 10000 + rnd(3100), 80][rnd(5)] as number;
    for (const [proto, name] of [[6, 'tcp'], [17, 'udp']] as const) {
      const got = walk(nft, c.fallback, src, '10.1.1.2', proto, port);
      assert.equal(got, lookupVerdict(c, c.classification.byIp(src).id, dst, proto, port), `${src} ${name}/${port}`);
      if (k % 40 === 0) assert.equal(got === 'accept', explainFlow(s, src, '10.1.1.2', name, port).allowed, `${src} ${name}/${port} (explain)`);
    }
  }
});

test('stages growing into shards, changing their number, and shrinking back to one map apply as single transactions (older kernels\' chain references counted), and decide as the compile does', () => {
  // From 10 to 3,000 /32 sources and back, ingress and egress: one map, 16-64 shards, shards emptied, one map.
  const rules = (n: number, dir: 'in' | 'out'): Rule[] => [{ id: 'base', priority: 1, direction: dir, action: 'deny', protocol: 'tcp' },
    ...Array.from({ length: n }, (_, i): Rule => ({ id: String(i), priority: 5, direction: dir, action: i % 4 ? 'allow' : 'deny', protocol: 'tcp', ports: String(10000 + i),
      ...(dir === 'in' ? { fromCidr: `10.9.${i >> 8}.${i & 255}/32` } : { toCidr: `10.8.${i >> 8}.${i & 255}/32` }) }))];
  const s = (r: Rule[], previous?: CompiledPolicy): PolicyState => ({ tenant: tenant('allow'), networks: [net('a', '10.1.1.0/24')], groups: [group('db', 'a', ['p'])],
    policies: [{ ...meta, tenant: 't', name: 'p', rules: r }], endpoints: [ep('10.1.1.2', 'a', 'h1', 'db')], host: 'h1', ...(previous ? { previous } : {}) });
  const table = policyTable;
  const dispatch = (t: NftTable) => t.chains.filter((l) => / mark and \d+ vmap @/.test(l)).map((l) => l.trim().replace(/@\S+$/, '').replace(/^meta l4proto tcp /, '')).join('; ');
  for (const dir of ['in', 'out'] as const) {
    let prev = compilePolicy(s(rules(10, dir)));
    let kernel = table(prev);
    const seen = new Set<string>();
    for (const n of [700, 1500, 3000, 1200, 3000, 400, 10]) {
      const next = compilePolicy(s(rules(n, dir), prev));
      const d = diffTables(kernel, table(next));
      assert.ok(d, `${dir} ${n}: a delta, not a replace`);
      const r = applyScript(kernel, d.script);
      assert.deepEqual([r.problems, r.inPlace], [[], []], `${dir} ${n}: applied as one transaction`);
      assert.equal(contentOf(r.table), contentOf(table(next)));
      seen.add(dispatch(r.table));
      for (let i = 0; i < n + 20; i += Math.max(1, Math.floor(n / 60))) {
        const [src, dst] = dir === 'in' ? [`10.9.${i >> 8}.${i & 255}`, '10.1.1.2'] : ['10.1.1.2', `10.8.${i >> 8}.${i & 255}`];
        const want = lookupVerdict(next, next.classification.byIp(src).id, next.classification.byIp(dst).id, 6, 10000 + i);
        assert.equal(walk(r.table, next.fallback, src, dst, 6, 10000 + i), want, `${dir} ${n}: ${src} > ${dst} tcp/${10000 + i}`);
      }
      kernel = r.table;
      prev = next;
    }
    const counts = new Set([...seen].flatMap((x) => [...x.matchAll(/ and (\d+) vmap/g)].map((m) => Number(m[1]) + 1)));
    // 700 elements: 16 shards of ~44; 1,500: 32; 3,000: 64 (shards of 32-64 elements).
    assert.ok(seen.has('') && [16, 32, 64].every((n) => counts.has(n)) && [...counts].every((n) => n <= SHARDS), `${dir}: one map and 16, 32, 64 shards: ${[...seen].join(' | ')}`);
    // Egress rules name destinations: their pairs split by the destination's class (ct mark).
    if (dir === 'out') assert.ok([...seen].some((x) => x.includes('ct mark and')), `egress pairs by destination: ${[...seen].join(' | ')}`);
  }
});

test('ICMPv6 takes ICMP\'s verdict in every shape of protocol ranges, and nothing where ICMP has none', () => {
  const d = 'drop' as const;
  const a = 'accept' as const;
  assert.deepEqual(withIcmp6([{ first: 1, last: 1, verdict: d }]), [{ first: 1, last: 1, verdict: d }, { first: 58, last: 58, verdict: d }]);
  assert.deepEqual(withIcmp6([{ first: 0, last: 255, verdict: a }]), [{ first: 0, last: 57, verdict: a }, { first: 58, last: 58, verdict: a }, { first: 59, last: 255, verdict: a }]);
  assert.deepEqual(withIcmp6([{ first: 2, last: 255, verdict: d }]), [{ first: 2, last: 57, verdict: d }, { first: 59, last: 255, verdict: d }], 'all but ICMP: ICMPv6 is ICMP, so not in it');
  assert.deepEqual(withIcmp6([{ first: 0, last: 0, verdict: a }, { first: 1, last: 1, verdict: d }, { first: 58, last: 58, verdict: a }]),
    [{ first: 0, last: 0, verdict: a }, { first: 1, last: 1, verdict: d }, { first: 58, last: 58, verdict: d }], 'a verdict the compiler gave 58 alone is ICMP\'s');
  assert.deepEqual([protocolNumber('icmp'), protocolNumber('58'), protocolNumber('47'), protocolNumber('tcp')], [1, 1, 47, 6]);
});

test('high stages (rules without a peer above every rule with a peer on their ports): one open port in a profile that drops the rest, each direction, walked as the kernel walks jumps', () => {
  // db's ingress and app's egress: allow one tcp port, deny the rest of tcp, no rule with a peer on them:
  // the high profile is a single open port (its singles map: a jump that returns) and a rest that drops.
  for (const def of ['allow', 'deny'] as const) {
    const rules: Rule[] = [
      { id: 'in-open', priority: 20, direction: 'in', action: 'allow', protocol: 'tcp', ports: '5432' },
      { id: 'in-shut', priority: 10, direction: 'in', action: 'deny', protocol: 'tcp' },
      { id: 'out-open', priority: 20, direction: 'out', action: 'allow', protocol: 'tcp', ports: '5432' },
      { id: 'out-shut', priority: 10, direction: 'out', action: 'deny', protocol: 'tcp' },
      // A rule with a peer on another protocol: the pairs exist, and their functions once a direction is open.
      { id: 'udp', priority: 5, direction: 'in', action: 'allow', protocol: 'udp', ports: '53', fromGroup: 'app' },
    ];
    const s: PolicyState = { tenant: tenant(def), networks: [net('a', '10.1.1.0/24')], groups: [group('db', 'a', ['p']), group('app', 'a', ['p'])],
      policies: [{ ...meta, tenant: 't', name: 'p', rules }], endpoints: [ep('10.1.1.2', 'a', 'h1', 'db'), ep('10.1.1.3', 'a', 'h1', 'app'), ep('10.1.1.4', 'a', 'h1')], host: 'h1' };
    const c = compilePolicy(s);
    assert.ok(c.highs.length > 0, 'high profiles');
    const nft = renderPolicy(c);
    for (const [a, b] of [['10.1.1.3', '10.1.1.2'], ['10.1.1.4', '10.1.1.2'], ['10.1.1.2', '10.1.1.4'], ['10.1.1.2', '10.1.1.3']] as const) {
      for (const port of [5431, 5432, 5433]) {
        const want = explainFlow(s, a, b, 'tcp', port).allowed;
        assert.equal(walk(nft, c.fallback, a, b, 6, port) === 'accept', want, `${def}: ${a} -> ${b} tcp/${port}`);
        assert.equal(lookupVerdict(c, c.classification.byIp(a).id, c.classification.byIp(b).id, 6, port) !== 'drop', want, `${def}: lookups ${a} -> ${b} tcp/${port}`);
      }
      // Between db and app both directions are decided open ahead of the pairs.
      if (a !== '10.1.1.4' && b !== '10.1.1.4') assert.equal(walk(nft, c.fallback, a, b, 6, 5432), 'accept', `${def}: ${a} -> ${b} tcp/5432 open both ways`);
    }
  }
});

test('stage chains coming and going (a first or last rule without a peer, high or not, tcp and other protocols) apply as single transactions, kept or deleted, and decide as the compile does', () => {
  const peered: Rule = { id: 'dns', priority: 5, direction: 'in', action: 'allow', protocol: 'udp', ports: '53', fromGroup: 'app' };
  const steps: Rule[][] = [
    [peered],
    // A rule without a peer above every rule with a peer: high (tcp_high), nothing for the side stage.
    [peered, { id: 'shut', priority: 10, direction: 'in', action: 'deny', protocol: 'tcp', ports: '8000' }],
    // A rule with a peer above it on its port: no longer high, so the side stage (tcp_side) decides it.
    [peered, { id: 'shut', priority: 10, direction: 'in', action: 'deny', protocol: 'tcp', ports: '8000' }, { id: 'app', priority: 20, direction: 'in', action: 'allow', protocol: 'tcp', ports: '8000', fromGroup: 'app' }],
    // Other protocols: their own stage chains (x_...), egress too.
    [peered, { id: 'icmp', priority: 10, direction: 'out', action: 'deny', protocol: 'icmp' }, { id: 'gre', priority: 10, direction: 'in', action: 'deny', protocol: '47' }],
    [peered, { id: 'icmp', priority: 10, direction: 'out', action: 'deny', protocol: 'icmp' }, { id: 'shut', priority: 10, direction: 'in', action: 'deny', protocol: 'tcp', ports: '8000' }, { id: 'app', priority: 20, direction: 'in', action: 'allow', protocol: 'tcp', ports: '8000', fromGroup: 'app' }],
    [peered],
  ];
  const s = (rules: Rule[], previous?: CompiledPolicy): PolicyState => ({ tenant: tenant('allow'), networks: [net('a', '10.1.1.0/24')], groups: [group('db', 'a', ['p']), group('app', 'a', [])],
    policies: [{ ...meta, tenant: 't', name: 'p', rules }], endpoints: [ep('10.1.1.2', 'a', 'h1', 'db'), ep('10.1.1.3', 'a', 'h1', 'app'), ep('10.1.1.4', 'a', 'h1')], host: 'h1', ...(previous ? { previous } : {}) });
  const stageChains = (t: NftTable) => t.chains.filter((l) => /^\tchain \w+_(side|high) \{$/.test(l)).map((l) => l.trim().split(' ')[1]).sort().join(',');
  for (const keepGone of [false, true]) {
    let prev = compilePolicy(s(steps[0] as Rule[]));
    // As the agent does it: each delta from the table the last one said the kernel holds (its `table`),
    // applied to the kernel's model (script-model.ts) from the last script.
    let held = policyTable(prev);
    let kernel = held;
    const seen = new Set<string>();
    for (const [i, rules] of steps.entries()) {
      if (i === 0) continue;
      const next = compilePolicy(s(rules, prev));
      const d = diffTables(held, policyTable(next), { keepGone });
      assert.ok(d, `step ${i}: a delta`);
      const r = applyScript(kernel, d.script);
      assert.deepEqual([r.problems, r.inPlace], [[], []], `step ${i} (keepGone ${keepGone}): applied as one transaction`);
      assert.equal(contentOf(r.table), contentOf(d.table), `step ${i}: the kernel holds what the delta says`);
      for (const c of stageChains(policyTable(next)).split(',')) if (c) seen.add(c);
      for (const [src, dst] of [['10.1.1.3', '10.1.1.2'], ['10.1.1.4', '10.1.1.2'], ['10.1.1.2', '10.1.1.4']] as const) {
        for (const [proto, port] of [[6, 8000], [6, 8001], [17, 53], [1, 0], [47, 0]] as const) {
          const want = lookupVerdict(next, next.classification.byIp(src).id, next.classification.byIp(dst).id, proto, port);
          assert.equal(walk(r.table, next.fallback, src, dst, proto, port), want === 'drop' ? 'drop' : 'accept', `step ${i} (keepGone ${keepGone}): ${src} > ${dst} ${proto}/${port}`);
        }
      }
      kernel = r.table;
      held = d.table;
      prev = next;
    }
    assert.deepEqual([...seen].sort(), ['tcp_high', 'tcp_side', 'x_high', 'x_side'], `the stage chains the steps made (keepGone ${keepGone})`);
    assert.equal(stageChains(policyTable(prev)), '', 'none once only the rule with a peer is left');
  }
});

test('DNATed traffic passes as DNS only out of the tenant\'s uplink, never towards a bridge (a network made in 169.254/16 before such subnets were refused)', () => {
  for (let round = 0; round < 4; round++) {
    const s = randomState(300 + round);
    const nft = flat(renderPolicy(compilePolicy({ ...s, host: s.endpoints[0]?.host ?? 'h1' })));
    const dnat = nft.chains.filter((l) => l.includes('ct status dnat') && l.includes('accept'));
    assert.ok(dnat.length >= 1, `round ${round}: a forward chain with its DNS rule`);
    for (const l of dnat.filter((x) => x.includes(' ip daddr '))) assert.match(l, /^\s*ct status dnat oifname "up0" ip daddr 169\.254\.0\.0\/16 accept/, l);
  }
});

test('the class maps are bound only in the role chains: a forward chain written again (a stage\'s new map, a high stage) binds neither', () => {
  // Sources told apart by 10.9.x/32s, destinations by 10.8.x/32s: two class maps. A peerless udp deny above
  // every rule with a peer makes a high stage, whose end puts the source's role back in meta mark.
  const rules: Rule[] = [{ id: 'base', priority: 1, direction: 'in', action: 'deny', protocol: 'tcp' }, { id: 'dns', priority: 90, direction: 'in', action: 'deny', protocol: 'udp', ports: '53' },
    ...Array.from({ length: 20 }, (_, i): Rule => ({ id: `f${i}`, priority: 5, direction: 'in', action: 'allow', protocol: 'tcp', ports: String(10000 + i), fromCidr: `10.9.0.${i}/32` })),
    ...Array.from({ length: 20 }, (_, i): Rule => ({ id: `t${i}`, priority: 5, direction: 'out', action: 'deny', protocol: 'tcp', ports: String(20000 + i), toCidr: `10.8.0.${i}/32` }))];
  const s: PolicyState = { tenant: tenant('allow'), networks: [net('a', '10.1.1.0/24')], groups: [group('db', 'a', ['p'])],
    policies: [{ ...meta, tenant: 't', name: 'p', rules }], endpoints: [ep('10.1.1.2', 'a', 'h1', 'db'), ep('10.1.1.3', 'a', 'h1')], host: 'h1' };
  const c = compilePolicy(s);
  assert.ok(c.highs.length > 0, 'a high stage');
  const nft = flat(renderPolicy(c));
  const classMaps = nft.maps.filter((m) => baseName(m.name) === 'cls').map((m) => m.name);
  assert.equal(classMaps.length, 2, 'a source map and a destination map');
  const chainOf = new Map<string, string>();
  let current = '';
  for (const l of nft.chains) {
    const m = /^\tchain (\S+) \{$/.exec(l);
    if (m) current = m[1] as string;
    for (const name of classMaps) if (l.includes(`@${name}`)) chainOf.set(`${name} in ${current}`, l.trim());
  }
  assert.deepEqual([...chainOf.keys()].map((k) => k.split(' in ')[1]).sort(), ['dst_role', 'src_role'], [...chainOf.values()].join('\n'));
  assert.ok(nft.chains.some((l) => /^\t\tmeta l4proto udp jump src_role$/.test(l)), 'the high stage\'s end jumps to the source\'s lookup');
  const walked = walk(renderPolicy(c), 'accept', '10.9.0.3', '10.1.1.2', 6, 10003);
  assert.equal(walked, lookupVerdict(c, c.classification.byIp('10.9.0.3').id, c.classification.byIp('10.1.1.2').id, 6, 10003));
});

test("a port a rule without a peer leaves undecided inside a pair's ranges goes past the rest to the protocol's tail: the rest keeps its chain, as single transactions, deciding as the compile does", () => {
  // app → db: ranges of both verdicts (a rest that varies: a chain of its own), from a group and a CIDR.
  const peered: Rule[] = [
    { id: 'app', priority: 5, direction: 'in', action: 'allow', protocol: 'tcp', ports: '8000-8100', fromGroup: 'app' },
    { id: 'mid', priority: 6, direction: 'in', action: 'deny', protocol: 'tcp', ports: '8050-8060', fromGroup: 'app' },
    { id: 'cidr', priority: 7, direction: 'in', action: 'deny', protocol: 'tcp', ports: '8070-8080', fromCidr: '10.1.1.4/32' },
    // Above the rule without a peer on its ports: that rule is no high stage (policy-nft-high.ts).
    { id: 'above', priority: 12, direction: 'in', action: 'allow', protocol: 'tcp', ports: '8040-8090', fromCidr: '10.1.1.5/32' },
  ];
  const open = { id: 'one', priority: 10, direction: 'in', action: 'allow', protocol: 'tcp', ports: '8055' } as const;
  const steps: Rule[][] = [peered, [...peered, open], [...peered, { ...open, action: 'deny' }], [...peered, open, { ...open, id: 'two', ports: '8075' }], peered];
  for (const defaultAction of ['allow', 'deny'] as const) {
    const s = (rules: Rule[], previous?: CompiledPolicy): PolicyState => ({ tenant: tenant(defaultAction), networks: [net('a', '10.1.1.0/24')], groups: [group('db', 'a', ['p']), group('app', 'a', [])],
      policies: [{ ...meta, tenant: 't', name: 'p', rules }], endpoints: [ep('10.1.1.2', 'a', 'h1', 'db'), ep('10.1.1.3', 'a', 'h1', 'app'), ep('10.1.1.4', 'a', 'h1')], host: 'h1', ...(previous ? { previous } : {}) });
    // The pairs' rests: each profile's mark → its verdict or the chain of its remaining ports.
    const chainsOf = (c: CompiledPolicy) => stageElements(renderPolicy(c), 'tcp_r').sort().join('; ');
    for (const keepGone of [false, true]) {
      let prev = compilePolicy(s(steps[0] as Rule[]));
      const first = chainsOf(prev);
      assert.match(first, / : jump pp_/, 'a pair\'s rest is a chain');
      let held = policyTable(prev);
      let kernel = held;
      for (const [i, rules] of steps.entries()) {
        if (i === 0) continue;
        const next = compilePolicy(s(rules, prev));
        const t = policyTable(next);
        const holes = stageElements(renderPolicy(next), 'tcp_s').filter((e) => e.endsWith(': goto tcp_tail'));
        const hasTail = t.chains.includes('\tchain tcp_tail {');
        assert.equal(hasTail, holes.length > 0, `step ${i}: a tail chain while a single port goes there`);
        if (i === 1 || i === 3) {
          assert.ok(holes.length > 0, `step ${i}: the undecided port is a single port to the tail: ${holes.join('; ')}`);
          assert.equal(chainsOf(next), first, `step ${i}: the pairs' rests keep their chains`);
        }
        if (i === steps.length - 1) assert.ok(!hasTail, 'the tail goes with the last such port');
        const d = diffTables(held, t, { keepGone });
        assert.ok(d, `step ${i}: a delta`);
        const r = applyScript(kernel, d.script);
        assert.deepEqual([r.problems, r.inPlace], [[], []], `step ${i} (${defaultAction}, keepGone ${keepGone}): applied as one transaction`);
        assert.equal(contentOf(r.table), contentOf(d.table), `step ${i}: the kernel holds what the delta says`);
        for (const [src, dst] of [['10.1.1.3', '10.1.1.2'], ['10.1.1.4', '10.1.1.2'], ['10.1.1.5', '10.1.1.2'], ['10.1.1.2', '10.1.1.3']] as const) {
          for (const port of [7999, 8000, 8049, 8050, 8054, 8055, 8056, 8060, 8061, 8070, 8074, 8075, 8076, 8100, 8101]) {
            const want = lookupVerdict(next, next.classification.byIp(src).id, next.classification.byIp(dst).id, 6, port);
            assert.equal(walk(r.table, next.fallback, src, dst, 6, port), want === 'drop' ? 'drop' : 'accept', `step ${i} (${defaultAction}, keepGone ${keepGone}): ${src} > ${dst} tcp/${port}`);
          }
        }
        kernel = r.table;
        held = d.table;
        prev = next;
      }
    }
  }
});

test('splitSingles: an undecided single port between decided ones goes to the tail and the rest merges over it; at port 0 or beside undecided ports it stays a gap', () => {
  const split = (segs: Array<[number, number, 'accept' | 'drop' | 'none']>, hole?: string) => {
    const singles: string[] = [];
    const rest = splitSingles(segs.map(([first, last, verdict]) => ({ first, last, verdict })), 'K', singles, hole);
    return { singles, rest: rest.map((x) => `${x.first}-${x.last}:${x.verdict}`) };
  };
  const tail = 'goto tcp_tail';
  // The bench's shape: a drop range with one port left to the other stages.
  assert.deepEqual(split([[9477, 9499, 'drop'], [9501, 9510, 'drop']], tail), { singles: ['K . 9500 : goto tcp_tail'], rest: ['9477-9510:drop'] });
  assert.deepEqual(split([[9477, 9499, 'drop'], [9501, 9510, 'drop']]), { singles: [], rest: ['9477-9499:drop', '9501-9510:drop'] }, 'without a tail: a gap, as before');
  // Port 0 has no range before it: a gap (taking port 1's verdict would make port 2 a single too).
  assert.deepEqual(split([[1, 1, 'accept']], tail), split([[1, 1, 'accept']]));
  assert.deepEqual(split([[1, 1, 'accept'], [3, 9, 'drop']], tail), { singles: ['K . 1 : accept'], rest: ['3-9:drop'] });
  // Between a range and a decided single port that took its number: both singles, one rest.
  assert.deepEqual(split([[5, 9, 'drop'], [10, 10, 'accept'], [12, 20, 'drop']], tail), { singles: ['K . 10 : accept', 'K . 11 : goto tcp_tail'], rest: ['5-20:drop'] });
  // At 65535, after a range: a single.
  assert.deepEqual(split([[60000, 65534, 'accept']], tail), { singles: ['K . 65535 : goto tcp_tail'], rest: ['60000-65535:accept'] });
  // Two undecided ports together are a gap of two, not singles.
  assert.deepEqual(split([[1, 9, 'drop'], [12, 20, 'drop']], tail), { singles: [], rest: ['1-9:drop', '12-20:drop'] });
});

test('partsOf: a profile split under one base is split again under another (the hole goes to the tail only from a pair profile)', () => {
  const prof = { id: 7, proto: 'tcp' as const, segs: [{ first: 9477, last: 9499, verdict: 'drop' as const }, { first: 9501, last: 9510, verdict: 'drop' as const }] };
  const pair = partsOf(prof, PROFILE_MARK, false);
  assert.deepEqual(pair.singles, ['0x40000007 . 9500 : goto tcp_tail']);
  assert.deepEqual(pair.rest.map((s) => [s.first, s.last]), [[9477, 9510]]);
  assert.equal(partsOf(prof, PROFILE_MARK, false), pair, 'the same base and mode: the split kept');
  const side = partsOf(prof, SIDE_MARK, false);
  assert.deepEqual(side.singles, [], 'a side stage leaves the hole a gap');
  assert.deepEqual(side.rest.map((s) => [s.first, s.last]), [[9477, 9499], [9501, 9510]]);
  assert.deepEqual(partsOf(prof, PROFILE_MARK, false).singles, pair.singles, 'back under the pair base: its own split again');
});
