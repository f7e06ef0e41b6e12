import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startTestHost, within, type TestHost } from '../testkit/host.js';
import { startLab, type Lab } from '../testkit/lab.js';
import type { RunResult } from '../exec/index.js';
import { ECHO_SERVER, PROBER } from '../testkit/echo.js';

const root = process.getuid?.() === 0;
let h: TestHost;
let lab: Lab | undefined;
const bg: ChildProcess[] = [];
const T = '/api/v1/tenants/mx';
type Flow = [string, number];
const FLOWS: Flow[] = [['tcp', 80], ['tcp', 53], ['udp', 80], ['udp', 53]];
const CONTAINERS: Array<[string, string]> = [['c1', 'g1'], ['c2', 'g2'], ['c3', 'g3'], ['c4', 'g4'], ['c5', 'na']];

type Api = (m: string, p: string, b?: unknown) => Promise<{ status: number; json: any }>;
const okWith = (api: Api) => async (m: string, p: string, b?: unknown) => {
  const r = await api(m, p, b);
  assert.ok(r.status < 300, `${m} ${p}: ${JSON.stringify(r.json)}`);
};

before(async () => {
  if (!root) return;
  h = await startTestHost('mx');
  const ok = okWith(h.api);
  await ok('POST', '/api/v1/tenants', { name: 'mx', defaultAction: 'deny' });
  await ok('POST', `${T}/networks`, { name: 'na', subnet: '10.2.1.0/24' });
  await ok('POST', `${T}/networks`, { name: 'nb', subnet: '10.2.2.0/24' });
  for (const [g, n] of [['g1', 'na'], ['g2', 'na'], ['g3', 'nb'], ['g4', 'nb']]) await ok('POST', `${T}/groups`, { name: g, network: n });
  const r = (id: string, x: Record<string, unknown>) => ({ id, ...x });
  await ok('POST', `${T}/policies`, { name: 'egress-all', rules: [r('1', { direction: 'out' })] });
  await ok('POST', `${T}/policies`, { name: 'p-g1', rules: [
    r('1', { fromNetwork: 'nb', protocol: 'tcp', ports: '80', priority: 5 }),
    r('2', { fromGroup: 'g4', action: 'deny', priority: 10 }),
    r('3', { fromGroup: 'g2', protocol: 'udp', ports: '53', priority: 3 }),
  ] });
  await ok('POST', `${T}/policies`, { name: 'p-g2', rules: [
    r('1', { protocol: 'tcp', ports: '80' }),
    r('2', { fromCidr: '10.2.2.0/25', protocol: 'tcp', ports: '80', action: 'deny', priority: 2 }),
  ] });
  await ok('POST', `${T}/policies`, { name: 'p-g3', rules: [r('1', { fromGroup: 'g1' }), r('2', { fromGroup: 'g2', protocol: 'tcp', ports: '53' })] });
  await ok('POST', `${T}/policies`, { name: 'p-g4', rules: [
    r('1', { fromNetwork: 'na', protocol: 'udp' }),
    r('2', { fromNetwork: 'na', protocol: 'udp', ports: '53', action: 'deny' }),
  ] });
  await ok('POST', `${T}/policies`, { name: 'g2-out', rules: [r('1', { direction: 'out', toGroup: 'g3', action: 'deny', priority: 10 })] });
  await ok('PATCH', `${T}/groups/g1`, { policies: ['egress-all', 'p-g1'] });
  await ok('PATCH', `${T}/groups/g2`, { policies: ['egress-all', 'p-g2', 'g2-out'] });
  await ok('PATCH', `${T}/groups/g3`, { policies: ['egress-all', 'p-g3'] });
  await ok('PATCH', `${T}/groups/g4`, { policies: ['egress-all', 'p-g4'] });
  assert.ok(await within(5000, async () => existsSync(join(h.cniConfDir, 'weft-mx-g4.conflist'))) >= 0);
  writeFileSync(join(h.dir, 'server.js'), ECHO_SERVER);
  writeFileSync(join(h.dir, 'prober.js'), PROBER);
});
after(async () => {
  for (const p of bg) p.kill('SIGKILL');
  await lab?.cleanup();
  await h?.cleanup();
});

interface Bed {
  api: Api;
  tenant: string;
  exec(ns: string, argv: string[], o?: { timeoutMs?: number }): Promise<RunResult>;
  /** The namespace name of a container. */
  ns(name: string): string;
}

/**
 * Every container probes every other on every flow, concurrently; explain is asked about each cell.
 * Prints both matrices and returns the cells where the packets and explain disagree.
 */
async function matrix(b: Bed, ip: ReadonlyMap<string, string>, flows: Flow[], dir: string): Promise<{ diff: string[]; allowed: number; cells: number }> {
  const names = [...ip.keys()];
  const expected = new Map<string, boolean>();
  const observed = new Map<string, boolean>();
  for (const src of names) {
    const targets = names.filter((d) => d !== src).flatMap((dst) => flows.map(([proto, port]) => [dst, proto, port] as const));
    for (const [dst, proto, port] of targets) {
      const e = await b.api('GET', `/api/v1/tenants/${b.tenant}/explain?from=${ip.get(src)}&to=${ip.get(dst)}&protocol=${proto}&port=${port}`);
      assert.equal(e.status, 200, JSON.stringify(e.json));
      expected.set(`${src}>${dst}:${port}/${proto}`, e.json.allowed);
    }
    const probe = await b.exec(b.ns(src), [process.execPath, join(dir, 'prober.js'), JSON.stringify(targets.map(([d, p, port]) => [ip.get(d), p, port])), '700'], { timeoutMs: 10_000 });
    assert.equal(probe.code, 0, `prober in ${src}: ${probe.stderr}`);
    const results = JSON.parse(probe.stdout) as boolean[];
    targets.forEach(([dst, proto, port], i) => observed.set(`${src}>${dst}:${port}/${proto}`, results[i] as boolean));
  }
  const cols = names.flatMap((d) => flows.map(([p, port]) => `${d}:${port}/${p}`));
  const render = (m: Map<string, boolean>) => [
    `      ${cols.map((c) => c.padEnd(12)).join('')}`,
    ...names.map((s) => `${s.padEnd(6)}${cols.map((c) => (c.startsWith(`${s}:`) ? '·' : m.get(`${s}>${c}`) ? '✓' : '✗').padEnd(12)).join('')}`),
  ].join('\n');
  console.log(`# expected (explain):\n${render(expected).replace(/^/gm, '# ')}\n# observed (probes):\n${render(observed).replace(/^/gm, '# ')}`);
  const diff = [...expected.keys()].filter((k) => expected.get(k) !== observed.get(k))
    .map((k) => `${k}: expected ${expected.get(k) ? 'allowed' : 'denied'}, observed ${observed.get(k) ? 'allowed' : 'denied'}`);
  return { diff, allowed: [...expected.values()].filter(Boolean).length, cells: expected.size };
}

const hostBed = (tenant: string): Bed => ({ api: h.api, tenant, exec: h.exec, ns: (n) => `${h.tag}-${n}` });

/** Adds containers on the test host and starts echo servers in them; their addresses by name. */
async function containersOnHost(tenant: string, list: Array<[string, string]>, ports: number[]): Promise<Map<string, string>> {
  const ip = new Map<string, string>();
  for (const [name, conflist] of list) {
    const netns = await h.container(name);
    const r = await h.cni('ADD', { conflist: `weft-${tenant}-${conflist}`, containerId: name, netns });
    assert.equal(r.code, 0, r.stdout);
    ip.set(name, r.json.ips[0].address.split('/')[0]);
    bg.push(spawn('nsenter', [`--net=${netns}`, process.execPath, join(h.dir, 'server.js'), ...ports.map(String)], { stdio: 'ignore' }));
  }
  await new Promise((r) => setTimeout(r, 800));
  return ip;
}

test('reachability matrix: real probes match the explain evaluator in every cell', { skip: !root && 'needs root' }, async () => {
  const ip = await containersOnHost('mx', CONTAINERS, [80, 53]);
  const m = await matrix(hostBed('mx'), ip, FLOWS, h.dir);
  assert.ok(m.allowed > 5 && m.allowed < m.cells - 5, `the policy set mixes allowed (${m.allowed}) and denied cells`);
  assert.deepEqual(m.diff, []);
});

const SHAPE_FLOWS: Flow[] = [['tcp', 80], ['tcp', 443], ['tcp', 8080], ['tcp', 8095], ['udp', 53], ['udp', 8080]];

/**
 * Every shape of rule at once, around real addresses: distinct /32 sources with a port each (300 of
 * them, most for addresses no container has), nested prefixes with port ranges and allow/deny by
 * priority, egress toCidr beside ingress fromCidr on the same groups, group-to-group, protocol-only.
 */
function shapeRules(): Record<string, Array<Record<string, unknown>>> {
  const distinct = Array.from({ length: 300 }, (_, i) => ({ id: `d${i}`, fromCidr: `10.3.${1 + (i % 2)}.${2 + (i >> 1)}/32`, protocol: 'tcp', ports: String([80, 443, 8080][i % 3]! + (i % 7 === 0 ? 0 : 10000)), priority: 5 }));
  return {
    'db-in': [
      { id: 'base', protocol: 'tcp', action: 'deny', priority: 1 },
      ...distinct,
      { id: 'n16', fromCidr: '10.3.0.0/16', protocol: 'tcp', ports: '8000-8100', priority: 3 },
      { id: 'n24', fromCidr: '10.3.2.0/24', protocol: 'tcp', ports: '8050-8090', action: 'deny', priority: 4 },
      { id: 'n29', fromCidr: '10.3.2.0/29', protocol: 'tcp', ports: '8080', priority: 6 },
      { id: 'udp-nb', fromNetwork: 'nb', protocol: 'udp', action: 'deny', priority: 2 },
      { id: 'udp-low', fromCidr: '10.3.2.2/31', protocol: 'udp', priority: 3 },
      { id: 'web-443', fromGroup: 'web', protocol: 'tcp', ports: '443-445', action: 'deny', priority: 7 },
      { id: 'gre', fromGroup: 'web', protocol: '47', action: 'deny', priority: 8 },
    ],
    'web-out': [
      { id: 'base-out', direction: 'out', protocol: 'tcp', toCidr: '10.3.2.0/24', action: 'deny', priority: 1 },
      { id: 'out-8080', direction: 'out', protocol: 'tcp', ports: '8080', toCidr: '10.3.2.0/28', priority: 3 },
      { id: 'out-dns', direction: 'out', protocol: 'udp', ports: '53', toGroup: 'db', action: 'deny', priority: 2 },
      { id: 'icmp', direction: 'out', protocol: 'icmp', toCidr: '192.0.2.0/24', action: 'deny' },
      { id: 'in-any', fromCidr: '10.3.1.0/24', protocol: 'udp', ports: '8000-8100', action: 'deny', priority: 4 },
    ],
  };
}

async function shapeObjects(api: Api, tenant: string): Promise<void> {
  const ok = okWith(api);
  const t = `/api/v1/tenants/${tenant}`;
  await ok('POST', '/api/v1/tenants', { name: tenant });
  await ok('POST', `${t}/networks`, { name: 'na', subnet: '10.3.1.0/24' });
  await ok('POST', `${t}/networks`, { name: 'nb', subnet: '10.3.2.0/24' });
  await ok('POST', `${t}/groups`, { name: 'web', network: 'na' });
  await ok('POST', `${t}/groups`, { name: 'db', network: 'nb' });
  for (const [name, rules] of Object.entries(shapeRules())) await ok('POST', `${t}/policies`, { name, rules });
  await ok('PATCH', `${t}/groups/web`, { policies: ['web-out'] });
  await ok('PATCH', `${t}/groups/db`, { policies: ['db-in', 'web-out'] });
}

test('rule shapes (distinct CIDRs with ports, nested ranges, both directions, groups, protocols): probes match explain', { skip: !root && 'needs root' }, async () => {
  await shapeObjects(h.api, 'sh');
  assert.ok(await within(5000, async () => existsSync(join(h.cniConfDir, 'weft-sh-db.conflist'))) >= 0);
  const ip = await containersOnHost('sh', [['s1', 'web'], ['s2', 'db'], ['s3', 'na'], ['s4', 'db'], ['s5', 'web'], ['s6', 'nb']], [80, 443, 8080, 8095, 53]);
  const m = await matrix(hostBed('sh'), ip, SHAPE_FLOWS, h.dir);
  assert.ok(m.allowed > 10 && m.allowed < m.cells - 10, `the rules mix allowed (${m.allowed}) and denied cells`);
  assert.deepEqual(m.diff, []);
});

test('two hosts, each compiling only its own groups: probes across them match explain', { skip: !root && 'needs root' }, async () => {
  lab = await startLab('mxh', 2);
  const l = lab;
  await shapeObjects(l.api, 'sh');
  for (const x of l.hosts) assert.ok(await within(5000, async () => existsSync(join(x.dir, 'net.d', 'weft-sh-db.conflist'))) >= 0);
  // A group only host 2 has, with rules naming addresses nothing else names: host 1 must hold none of them.
  await okWith(l.api)('POST', '/api/v1/tenants/sh/policies', { name: 'far-in', rules: Array.from({ length: 50 }, (_, i) => ({ id: `f${i}`, fromCidr: `203.0.113.${i}/32`, protocol: 'tcp', ports: '80', action: 'deny', priority: 9 })) });
  await okWith(l.api)('POST', '/api/v1/tenants/sh/groups', { name: 'far', network: 'na', policies: ['far-in', 'web-out'] });
  for (const x of l.hosts) assert.ok(await within(5000, async () => existsSync(join(x.dir, 'net.d', 'weft-sh-far.conflist'))) >= 0);
  const ip = new Map<string, string>();
  // web only on host 1, db on both, far and the ungrouped ones on host 2.
  for (const [name, conflist, host] of [['w1', 'web', 0], ['d1', 'db', 0], ['d2', 'db', 1], ['f2', 'far', 1], ['x2', 'na', 1], ['y2', 'nb', 1]] as const) {
    const netns = await l.container(name);
    const r = await l.hosts[host]!.cni('ADD', { conflist: `weft-sh-${conflist}`, containerId: name, netns });
    assert.equal(r.code, 0, r.stdout);
    ip.set(name, r.json.ips[0].address.split('/')[0]);
    bg.push(spawn('nsenter', [`--net=${netns}`, process.execPath, join(h.dir, 'server.js'), '80', '443', '8080', '8095', '53'], { stdio: 'ignore' }));
  }
  await new Promise((r) => setTimeout(r, 1500));
  const id = (await l.api('GET', '/api/v1/tenants/sh')).json.id as number;
  const table = async (host: number) => (await l.exec(`${l.tag}${host + 1}-t${id}`, ['nft', 'list', 'table', 'inet', 'weft'])).stdout;
  // The 50 rules are alike but for their address: one class, its addresses one range (policy/aliases.ts).
  assert.ok((await table(1)).includes('203.0.113.0-203.0.113.49'), "host 2 holds far's rules");
  assert.ok(!(await table(0)).includes('203.0.113.'), "host 1, with no far endpoint, holds none of far's rules");
  const m = await matrix({ api: l.api, tenant: 'sh', exec: l.exec, ns: (n) => `${l.tag}-${n}` }, ip, SHAPE_FLOWS, h.dir);
  assert.ok(m.allowed > 10 && m.allowed < m.cells - 10, `the rules mix allowed (${m.allowed}) and denied cells`);
  assert.deepEqual(m.diff, []);
});
