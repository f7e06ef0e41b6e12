// The policy compiler alone (issue 13: rule change → enforced ≤ 100 ms with 50,000 rules): no root, no
// kernel. `npm run bench:policy-compile -- [shape...] [--sizes 10000,50000] [--runs 3]` builds each rule
// shape of policy-shapes.ts (and `agent`, the 50,000 mixed rules of policy-agent.ts) on one host and times
// a cold compilePolicy, then warm recompiles after one rule changed, as the agent does them (with
// `previous`): a rule's port changed (no new address class), a rule with a new /32 source added (a
// new class; in `six`, the /128 of an endpoint's IPv6 address), a rule with no peer added (it matches every class: the edit that costs most),
// a rule from group app added (in `agent`, 10,000 rules name app: one bucket's events patched, policy/segments.ts),
// and an endpoint of db added (what a CNI ADD compiles).
// `one`: agent's rules in one policy (a rule changed in it diffs that policy); `endpoints` and
// `endpoints-ports`: sizes count endpoints, each allowed in by its own /32 (endpointsState); `selectors`:
// sizes count pods, NetworkPolicy peers each selecting one of them, written four ways (selectorsState). Heap after each cold compile (a full GC first); entries: the pairs plus the segments of the distinct profiles
// (pairs.ts), and the elements and text of the table the agent writes. Pure CPU on one core: the machine's other
// work shows up as noise, so compare figures of one run only. `--nft` (root) also loads that table with
// `nft -f` into a new, empty namespace (what a drift repair writes), deleted after. Then a second table:
// changes as the agent makes them (agentChanges), each kind's compile, render and diff.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Endpoint, Group, Network, Policy, Rule, Tenant } from '../model/index.js';
import { renderPolicy } from '../datapath/policy-nft.js';
import { policyTableOf } from '../datapath/flows-nft.js';
import { diffTables } from '../datapath/table-delta.js';
import { allMaps, tableText } from '../datapath/table.js';
import { ProcessRunner } from '../exec/index.js';
import { classify, compilePolicy, explainer, type CompiledPolicy, type PolicyState } from '../policy/index.js';
import { BASE_RULES, SHAPES, makeShape, type ShapeName } from './policy-shapes.js';
import { mixedRule } from './policy-agent.js';

const SELECTOR_SHAPES = ['selectors', 'selectors-in', 'selectors-shared', 'selectors-ns'] as const;
type SelectorShape = (typeof SELECTOR_SHAPES)[number];
const isSelectorShape = (x: string): x is SelectorShape => (SELECTOR_SHAPES as readonly string[]).includes(x);
export type BenchShape = ShapeName | 'agent' | 'six' | 'one' | 'endpoints' | 'endpoints-ports' | SelectorShape;
const ALL: readonly BenchShape[] = [...SHAPES, 'agent', 'six', 'one', 'endpoints', 'endpoints-ports', ...SELECTOR_SHAPES];
const meta = { revision: 1, createdAt: '', updatedAt: '' };
/** The addresses of db and app in every shape's tenant. */
export const ips = { app: '10.40.0.3', db: '10.40.0.2' };

/** A tenant with `n` rules of one shape on db (and app, for the shapes with egress), as one host sees it. */
export function shapeState(name: BenchShape, n: number): PolicyState {
  if (name === 'six') return sixState(n);
  if (name === 'endpoints' || name === 'endpoints-ports') return endpointsState(n, name === 'endpoints-ports');
  if (isSelectorShape(name)) return selectorsState(n, name);
  const lists = name === 'agent' || name === 'one' ? agentPolicies(n, name === 'one' ? n : 1000) : shapePolicies(name, n);
  const policies: Policy[] = [{ ...meta, tenant: 't', name: 'base', rules: BASE_RULES }, ...lists.policies.map((p) => ({ ...meta, tenant: 't', ...p }))];
  const attach = (g: 'db' | 'app') => [...(g === 'db' ? ['base'] : []), ...(lists.groups.includes(g) ? lists.policies.map((p) => p.name) : [])];
  const group = (g: 'db' | 'app'): Group => ({ ...meta, tenant: 't', name: g, network: 'bench', policies: attach(g), labels: {} });
  const ep = (g: 'db' | 'app'): Endpoint => ({ ...meta, id: g, tenant: 't', network: 'bench', group: g, ip: ips[g], prefixLength: 16, gateway: '10.40.0.1',
    mac: '', mtu: 1450, vni: 1, host: 'h', ifname: 'eth0', containerId: g, labels: {}, state: 'created' });
  const tenant: Tenant = { ...meta, name: 't', id: 1, defaultAction: 'allow' };
  const networks: Network[] = [{ ...meta, tenant: 't', name: 'bench', subnet: '10.40.0.0/16', gateway: '10.40.0.1', encap: 'vxlan', vni: 1, mtu: 1450 }];
  return { tenant, networks, groups: [group('db'), group('app')], policies, endpoints: [ep('db'), ep('app')], host: 'h' };
}

const SIX_ENDPOINTS = 2000;

/**
 * IPv6 CIDRs (issue 19), the shapes that would hurt them: 2,000 dual-stack endpoints on this host (db and
 * app, alternating), and `n` rules on db: /128s of app endpoints' IPv6 addresses with a port each, /64s
 * of no endpoint distinct only in their top 64 bits (one hash chain, were they keyed by bigint), and /124s
 * around runs of endpoints with port ranges.
 */
function sixState(n: number): PolicyState {
  const ip6 = (i: number) => `fd00:40::${i.toString(16)}`;
  const endpoints: Endpoint[] = Array.from({ length: SIX_ENDPOINTS }, (_, i) => ({ ...meta, id: `e${i}`, tenant: 't', network: 'bench', group: i % 2 ? 'app' : 'db',
    ip: `10.40.${(i >> 8) + 1}.${i & 255}`, prefixLength: 16, gateway: '10.40.0.1', ip6: ip6(i), prefixLength6: 64, gateway6: 'fd00:40::1',
    mac: '', mtu: 1450, vni: 1, host: 'h', ifname: 'eth0', containerId: `e${i}`, labels: {}, state: 'created' }));
  const rule = (j: number): Rule => {
    const port = 10000 + (j % 50000);
    const base = { id: `s${j}`, direction: 'in', action: j % 7 ? 'allow' : 'deny', protocol: 'tcp', priority: 2 + (j % 5) } as const;
    if (j % 3 === 0) return { ...base, ports: String(port), fromCidr: `${ip6((j % SIX_ENDPOINTS) | 1)}/128` };
    if (j % 3 === 1) return { ...base, ports: String(port), fromCidr: `fd00:0:${(j >> 16).toString(16)}:${(j & 0xffff).toString(16)}::/64` };
    return { ...base, ports: `${port}-${port + 9}`, fromCidr: `${ip6((j % SIX_ENDPOINTS) & ~15)}/124` };
  };
  const policies: Policy[] = [{ ...meta, tenant: 't', name: 'base', rules: BASE_RULES }];
  for (let k = 0; k * 1000 < n; k++) policies.push({ ...meta, tenant: 't', name: `six-${k}`, rules: Array.from({ length: Math.min(1000, n - k * 1000) }, (_, j) => rule(k * 1000 + j)) });
  const group = (g: 'db' | 'app'): Group => ({ ...meta, tenant: 't', name: g, network: 'bench', policies: g === 'db' ? policies.map((p) => p.name) : [], labels: {} });
  const tenant: Tenant = { ...meta, name: 't', id: 1, defaultAction: 'allow' };
  const networks: Network[] = [{ ...meta, tenant: 't', name: 'bench', subnet: '10.40.0.0/16', gateway: '10.40.0.1', subnet6: 'fd00:40::/64', gateway6: 'fd00:40::1', encap: 'vxlan', vni: 1, mtu: 1450 }];
  return { tenant, networks, groups: [group('db'), group('app')], policies, endpoints, host: 'h' };
}

function shapePolicies(name: ShapeName, n: number): { policies: Array<{ name: string; rules: Rule[] }>; groups: string[] } {
  const s = makeShape(name, n, ips);
  return { policies: s.policies, groups: s.groups };
}

/** The mixed rules of policy-agent.ts, `per` to a policy (`one`: all of them in one, the edits in it). */
function agentPolicies(n: number, per: number): { policies: Array<{ name: string; rules: Rule[] }>; groups: string[] } {
  const policies = [];
  for (let k = 0; k * per < n; k++) {
    const rules = Array.from({ length: Math.min(per, n - k * per) }, (_, j) => ({ direction: 'in', ...mixedRule(k * per + j) }) as Rule);
    policies.push({ name: `bulk-${k}`, rules });
  }
  return { policies, groups: ['db'] };
}

/**
 * The shape of a hostile review (issue 13, session 46): `n` endpoints on this host, nine in ten in db, each
 * db endpoint allowed in by a rule naming its own /32 (tcp 5432; `ports`: each its own port), app on 80,
 * egress open, the tenant's default deny. Alike rules make one class (policy/aliases.ts); each its own
 * port, a class per endpoint and pairs as their square. `n` counts endpoints (the rules are 0.9 n).
 */
function endpointsState(n: number, ports: boolean): PolicyState {
  const ip = (i: number) => `10.40.${(i >> 8) + 1}.${i & 255}`;
  const endpoints: Endpoint[] = Array.from({ length: n }, (_, i) => ({ ...meta, id: `e${i}`, tenant: 't', network: 'bench', group: i % 10 === 0 ? 'app' : 'db', ip: ip(i),
    prefixLength: 16, gateway: '10.40.0.1', mac: '', mtu: 1450, vni: 1, host: 'h', ifname: 'eth0', containerId: `e${i}`, labels: {}, state: 'created' }));
  const rules: Rule[] = endpoints.filter((e) => e.group === 'db').map((e, i) => ({ id: `ep${i}`, direction: 'in', action: 'allow', protocol: 'tcp', priority: 5, ports: ports ? String(10000 + i) : '5432', fromCidr: `${e.ip}/32` }));
  rules.push({ id: 'out', direction: 'out', action: 'allow', protocol: 'any', priority: 1 }, { id: 'web', direction: 'in', action: 'allow', protocol: 'tcp', priority: 3, ports: '80', fromGroup: 'app' });
  const policies: Policy[] = [{ ...meta, tenant: 't', name: 'each', rules }];
  const group = (g: 'db' | 'app'): Group => ({ ...meta, tenant: 't', name: g, network: 'bench', policies: ['each'], labels: {} });
  const tenant: Tenant = { ...meta, name: 't', id: 1, defaultAction: 'deny' };
  const networks: Network[] = [{ ...meta, tenant: 't', name: 'bench', subnet: '10.40.0.0/16', gateway: '10.40.0.1', encap: 'vxlan', vni: 1, mtu: 1450 }];
  return { tenant, networks, groups: [group('db'), group('app')], policies, endpoints, host: 'h' };
}

/**
 * NetworkPolicy peers that each select one pod by a label of its own (the reviews' shapes, session 55): n
 * pods of the tenant, db (10.40.0.2) the only one on this host, and 10 NetworkPolicies selecting db, each
 * letting in n/10 pods, a peer a pod: `selectors` by `podSelector: {app: aN}`, `selectors-in` by
 * `app In [aN]`, `selectors-shared` by `{tier: web, app: aN}` (every pod is tier web: the label listed first
 * selects all), `selectors-ns` by a namespace selector alone (`team: tN`, no namespace has it). The base
 * policy on db (Weft's rules) takes the edits.
 */
function selectorsState(n: number, shape: SelectorShape): PolicyState {
  const ip = (i: number) => `10.40.${(i + 2) >> 8}.${(i + 2) & 255}`;
  const endpoints: Endpoint[] = Array.from({ length: n }, (_, i) => ({ ...meta, id: `e${i}`, tenant: 't', network: 'bench', ...(i === 0 ? { group: 'db' } : {}), ip: ip(i),
    prefixLength: 16, gateway: '10.40.0.1', mac: '', mtu: 1450, vni: 1, host: i === 0 ? 'h' : 'h2', ifname: 'eth0', containerId: `e${i}`, labels: { tier: 'web', app: `a${i}`, ...(i === 0 ? { role: 'db' } : {}) }, state: 'created' }));
  const per = Math.max(1, Math.floor(n / 10));
  const peer = (app: string, j: number) => shape === 'selectors' ? { podSelector: { matchLabels: { app } } }
    : shape === 'selectors-in' ? { podSelector: { matchExpressions: [{ key: 'app', operator: 'In' as const, values: [app] }] } }
      : shape === 'selectors-shared' ? { podSelector: { matchLabels: { tier: 'web', app } } }
        : { namespaceSelector: { matchLabels: { team: `t${j}` } } };
  const policies = Array.from({ length: 10 }, (_, k) => ({ name: `np${k}`, namespace: 'default', revision: 1,
    spec: { podSelector: { matchLabels: { role: 'db' } }, ingress: [{ from: Array.from({ length: per }, (_, j) => peer(`a${(k * per + j) % n}`, k * per + j)) }] } }));
  const tenant: Tenant = { ...meta, name: 't', id: 1, defaultAction: 'allow' };
  const networks: Network[] = [{ ...meta, tenant: 't', name: 'bench', subnet: '10.40.0.0/16', gateway: '10.40.0.1', encap: 'vxlan', vni: 1, mtu: 1450 }];
  return { tenant, networks, groups: [{ ...meta, tenant: 't', name: 'db', network: 'bench', policies: ['base'], labels: {} }], policies: [{ ...meta, tenant: 't', name: 'base', rules: BASE_RULES }],
    endpoints, host: 'h', netpol: { policies, namespaces: [] } };
}

/** The state after one edit of the middle policy (a new revision of it, as the store hands it over). */
export type Edit = 'port' | 'add' | 'wide' | 'peer' | 'endpoint';

export function edited(s: PolicyState, kind: Edit): PolicyState {
  if (kind === 'endpoint') {
    // A new endpoint of db on this host (a CNI ADD): its address swept again, its class made.
    const db = (s.endpoints.find((e) => e.group === 'db') ?? s.endpoints[0]) as Endpoint;
    return { ...s, endpoints: [...s.endpoints, { ...db, id: 'bench-ep', containerId: 'bench-ep', ip: '10.40.250.7', ...(db.ip6 !== undefined ? { ip6: 'fd00:40::fa07' } : {}) }] };
  }
  const i = Math.floor(s.policies.length / 2);
  const p = s.policies[i] as Policy;
  const mid = p.rules.length >> 1;
  const added: Record<Exclude<Edit, 'port' | 'endpoint'>, Rule> = {
    // A dual-stack tenant's added rule names one endpoint's IPv6 address (a new class for it).
    add: { id: 'bench-added', direction: 'in', action: 'allow', protocol: 'tcp', priority: 7, ports: '7778', fromCidr: s.endpoints.some((e) => e.ip6 !== undefined) ? 'fd00:40::7/128' : '10.99.1.1/32' } as Rule,
    wide: { id: 'bench-wide', direction: 'in', action: 'deny', protocol: 'udp', priority: 7, ports: '7779' } as Rule,
    // From the group the agent shape's 10,000 rules name (its bucket's events: segments.ts patchEvents).
    peer: { id: 'bench-peer', direction: 'in', action: 'allow', protocol: 'tcp', priority: 7, ports: '7780', fromGroup: 'app' } as Rule,
  };
  const rules = kind === 'port' ? p.rules.map((r, j) => (j === mid ? { ...r, ports: '7777' } : r)) : [...p.rules, added[kind]];
  return { ...s, policies: s.policies.map((x, j) => (j === i ? { ...p, revision: p.revision + 1, rules } : x)) };
}

function gc(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

function time<T>(f: () => T): { ms: number; value: T } {
  const t0 = performance.now();
  const value = f();
  return { ms: performance.now() - t0, value };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1] as number;

interface Row { shape: BenchShape; rules: number; cold: number; port: number; add: number; wide: number; peer: number; endpoint: number; render: number; explain: number; sweep: number; heapMb: number; classes: number; entries: number; elements: number; bytes: number; text: string }

function measure(shape: BenchShape, n: number, runs: number): Row {
  const s = shapeState(shape, n);
  gc();
  const before = process.memoryUsage().heapUsed;
  const cold = time(() => compilePolicy(s));
  gc();
  const heapMb = (process.memoryUsage().heapUsed - before) / 2 ** 20;
  const warm = (kind: Edit) => {
    const ts: number[] = [];
    for (let r = 0; r < runs; r++) {
      // Alternate the edit and its undo, each against the compile before it, as a toggled rule does.
      const next = r % 2 === 0 ? edited(s, kind) : s;
      const t = time(() => compilePolicy({ ...next, previous: prev }));
      ts.push(t.ms);
      prev = t.value;
    }
    return median(ts);
  };
  let prev: CompiledPolicy = cold.value;
  const [port, add, wide, peer, endpoint] = [warm('port'), warm('add'), warm('wide'), warm('peer'), warm('endpoint')];
  // What the agent does next with a compile (datapath/policy-nft.ts): for scale, not this bench's subject.
  const render = time(() => renderPolicy(compilePolicy({ ...edited(s, 'port'), previous: prev }))).ms;
  // What the server pays for naming flow records after a change (and `weft explain` per call): an
  // evaluator and one flow app → db, against the sweep of the whole address space it used to make.
  // Medians of `runs`, as the warm compiles.
  const explain = median(Array.from({ length: runs }, () => time(() => explainer(s)(ips.app, ips.db, 'tcp', 5201)).ms));
  const sweep = median(Array.from({ length: runs }, () => time(() => classify(s.networks, s.groups, s.policies, s.endpoints)).ms));
  const c = cold.value;
  // The table the agent writes with `nft -f` (its size is most of that command's time).
  const nft = renderPolicy(c);
  const text = tableText({ family: 'inet', name: 'weft', ...nft });
  const elements = allMaps(nft).reduce((k, m) => k + m.elements.length, 0);
  return { shape, rules: n, cold: cold.ms, port, add, wide, peer, endpoint, render, explain, sweep, heapMb, classes: c.classification.classes.length, entries: c.pairs.length + c.profiles.reduce((k, x) => k + x.segs.length, 0), elements, bytes: text.length, text };
}

/** A change's three steps in the agent, medians in ms (and the first change's, which V8 meets cold). */
interface Steps { compile: number; render: number; diff: number; first: string }
const CHANGE_KINDS: readonly Edit[] = ['wide', 'peer', 'port'];

/**
 * Changes as the agent makes them, `count` of each kind (an edit, then its undo, in turn): compiled
 * against the last compile, rendered (patched from the last render), diffed against the table the last
 * delta left (keepGone, as a change pass writes). One lineage from a cold compile, as an agent has.
 */
function agentChanges(s: PolicyState, count: number): Map<Edit, Steps> {
  let c = compilePolicy(s);
  let table = policyTableOf(renderPolicy(c));
  const out = new Map<Edit, Steps>();
  for (const kind of CHANGE_KINDS) {
    const xs = { compile: [] as number[], render: [] as number[], diff: [] as number[] };
    for (let i = 0; i < count; i++) {
      const next = time(() => compilePolicy({ ...(i % 2 === 0 ? edited(s, kind) : s), previous: c }));
      const t = time(() => policyTableOf(renderPolicy(next.value)));
      const d = time(() => diffTables(table, t.value, { keepGone: true, elements: true }));
      if (!d.value) throw new Error(`${kind}: no delta`);
      xs.compile.push(next.ms);
      xs.render.push(t.ms);
      xs.diff.push(d.ms);
      c = next.value;
      table = d.value.table;
    }
    const first = `${(xs.compile[0] as number).toFixed(0)} / ${(xs.render[0] as number).toFixed(0)} / ${(xs.diff[0] as number).toFixed(0)}`;
    out.set(kind, { compile: median(xs.compile), render: median(xs.render), diff: median(xs.diff), first });
  }
  return out;
}

/** `nft -f` of a whole table into a new, empty namespace of its own. */
async function loadMs(text: string): Promise<number> {
  const runner = new ProcessRunner();
  const ns = `wbench-pc-${process.pid}`;
  await runner.run(['ip', 'netns', 'add', ns]);
  try {
    const t0 = performance.now();
    await runner.run(['ip', 'netns', 'exec', ns, 'nft', '-f', '-'], { input: text, timeoutMs: 300_000 });
    return performance.now() - t0;
  } finally {
    await runner.run(['ip', 'netns', 'del', ns], { allowFailure: true });
  }
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const nftAt = args.indexOf('--nft');
  if (nftAt >= 0) args.splice(nftAt, 1);
  const opt = (k: string) => { const i = args.indexOf(k); return i < 0 ? undefined : args.splice(i, 2)[1]; };
  const sizes = (opt('--sizes') ?? '10000,50000').split(',').map(Number);
  const runs = Number(opt('--runs') ?? 3);
  const shapes = (args.length ? args : ALL) as BenchShape[];
  for (const x of shapes) if (!ALL.includes(x)) throw new Error(`unknown shape ${x}: one of ${ALL.join(', ')}`);
  console.log(`| shape | rules | cold compile | warm: port changed | warm: rule with a new /32 added | warm: rule with no peer added | warm: rule from group app added | warm: an endpoint of db added | warm compile + render | explainer + one flow (the sweep alone, which it no longer makes) | heap after cold | classes | entries | table elements | table text |${nftAt >= 0 ? ' nft -f |' : ''}`);
  console.log(`| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |${nftAt >= 0 ? ' --- |' : ''}`);
  const changes: string[] = [];
  for (const shape of shapes) {
    for (const n of sizes) {
      const steps = agentChanges(shapeState(shape, n), runs * 10);
      changes.push(`| ${shape} | ${n.toLocaleString('en')} | ${CHANGE_KINDS.map((k) => { const x = steps.get(k) as Steps; return `${x.compile.toFixed(1)} / ${x.render.toFixed(1)} / ${x.diff.toFixed(1)} (first ${x.first})`; }).join(' | ')} |`);
      const r = measure(shape, n, runs);
      const load = nftAt >= 0 ? ` ${(await loadMs(r.text)).toFixed(0)} ms |` : '';
      console.log(`| ${r.shape} | ${r.rules.toLocaleString('en')} | ${r.cold.toFixed(0)} ms | ${r.port.toFixed(1)} ms | ${r.add.toFixed(1)} ms | ${r.wide.toFixed(1)} ms | ${r.peer.toFixed(1)} ms | ${r.endpoint.toFixed(1)} ms | ${r.render.toFixed(0)} ms | ${r.explain.toFixed(0)} ms (${r.sweep.toFixed(0)} ms) | ${r.heapMb.toFixed(1)} MB | ${r.classes.toLocaleString('en')} | ${r.entries.toLocaleString('en')} | ${r.elements.toLocaleString('en')} | ${(r.bytes / 2 ** 20).toFixed(2)} MB |${load}`);
    }
  }
  console.log(`\nA change as the agent makes it (${runs * 10} of each kind, an edit and its undo in turn, one lineage): compile / render / diff, medians in ms (the first change's in brackets)\n`);
  console.log('| shape | rules | a rule without a peer (udp/7779) | a rule from group app (tcp/7780) | a rule\'s port changed |');
  console.log('| --- | --- | --- | --- | --- |');
  for (const l of changes) console.log(l);
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
