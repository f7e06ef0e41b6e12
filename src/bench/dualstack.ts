// npm run bench:dualstack — issue 19's throughput figure, in one run on two simulated hosts (root): iperf3
// from a Weft container on host 1 to one on host 2 of a dual-stack VXLAN network, once to the server's
// IPv4 address and once to its IPv6 address, same containers, same overlay. First with one group rule in
// force (tcp denied to the server's group, iperf3's port allowed from the client's: one rule deciding both
// families), then with bench:policy's `mix` shape at each size of BENCH_DUAL_RULES (default 10,000 and
// 50,000 rules: distinct /32 sources and destinations with ports, nested prefixes with port ranges, group
// and protocol rules, both directions, attached to both groups; the measured flows decided deep inside
// by IPv4 CIDRs, which decide the endpoints' IPv6 traffic too). In each phase the rounds alternate the two
// families; each figure is the median of the rounds, the ratio the median of per-round ratios. Each phase
// starts only once its policy is seen in force in both families (a port it alone opens connects, one it
// denies is refused while a server listens). The agents are paused during streams (the datapath is
// kernel state); removes everything it made, also when interrupted.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ProcessRunner } from '../exec/index.js';
import { startLab, type Lab } from '../testkit/lab.js';
import { within } from '../testkit/host.js';
import { onInterrupt } from './interrupt.js';
import { assertRefused, comparePaths, connects, costBook, iperfGbits, printPaths, type NsExec } from './paths.js';
import { BASE_RULES, makeShape } from './policy-shapes.js';

const ROUNDS = Number(process.env['BENCH_DUAL_ROUNDS'] ?? 10);
const SECONDS = Number(process.env['BENCH_DUAL_SECONDS'] ?? 3);
const SIZES = (process.env['BENCH_DUAL_RULES'] ?? '10000,50000').split(',').filter(Boolean).map(Number);
const runner = new ProcessRunner();

let lab: Lab | undefined;
const cleanup = async () => { await lab?.cleanup(); lab = undefined; };
const offInterrupt = onInterrupt(cleanup);
try {
  lab = await startLab('bds', 2);
  const l = lab;
  const ok = async (m: string, p: string, b?: unknown) => {
    const r = await l.api(m, p, b);
    if (r.status >= 300) throw new Error(`${m} ${p}: ${JSON.stringify(r.json)}`);
  };
  await ok('POST', '/api/v1/tenants/default/networks', { name: 'ds', subnet: '10.80.0.0/24', subnet6: 'fd00:80::/64', encrypt: false });
  // The groups bench:policy's shapes name: `app` (the client) and `db` (the server).
  for (const g of ['app', 'db']) await ok('POST', '/api/v1/tenants/default/groups', { name: g, network: 'ds' });
  await ok('POST', '/api/v1/tenants/default/policies', { name: 'base', rules: BASE_RULES });
  await ok('POST', '/api/v1/tenants/default/policies', { name: 'one', rules: [
    { id: '2', priority: 10, direction: 'in', action: 'allow', protocol: 'tcp', ports: '5201', fromGroup: 'app' },
  ] });
  await ok('PATCH', '/api/v1/tenants/default/groups/db', { policies: ['base', 'one'] });
  const addr = new Map<string, string>();
  for (const [name, host] of [['app', 0], ['db', 1]] as const) {
    const h = l.hosts[host]!;
    const conf = `weft-default-${name}`;
    if (await within(10_000, async () => existsSync(join(h.dir, 'net.d', `${conf}.conflist`))) < 0) throw new Error(`${conf} was not written`);
    const r = await h.cni('ADD', { conflist: conf, containerId: name, netns: await l.container(name) });
    if (r.code !== 0 || r.json.ips.length !== 2) throw new Error(`ADD ${name}: ${r.stdout}`);
    addr.set(name, r.json.ips[0].address.split('/')[0]);
    addr.set(`${name}6`, r.json.ips[1].address.split('/')[0]);
  }
  // A path's destination names the server and the family: `db` (IPv4) or `db6` (IPv6), one namespace.
  const exec: NsExec = (n, argv, timeoutMs) => runner.run(['ip', 'netns', 'exec', `${l.tag}-${n.replace(/6$/, '')}`, ...argv], { allowFailure: true, timeoutMs });
  for (const to of ['db', 'db6']) {
    if (await within(10_000, async () => (await exec('app', ['ping', '-c', '1', '-W', '1', addr.get(to) as string], 5000)).code === 0) < 0) throw new Error(`app does not reach ${addr.get(to)}`);
  }
  const both = [['app', 'db', addr.get('db') as string], ['app', 'db6', addr.get('db6') as string]] as const;
  await assertRefused(exec, both);
  const paths = { IPv4: ['app', 'db'], IPv6: ['app', 'db6'] } as const;
  const agents = (sig: NodeJS.Signals) => { for (const h of l.hosts) { const pid = h.agent.pid(); if (pid) process.kill(pid, sig); } };
  let costs = costBook();
  const measure = (from: string, to: string): Promise<number> => iperfGbits(exec, from, to, addr.get(to) as string, SECONDS, costs.note(from, to));
  const phase = async (label: string) => {
    costs = costBook();
    const got = await comparePaths({ name: `bench:dualstack, ${label}`, rounds: ROUNDS, paths, measure, pause: () => agents('SIGSTOP'), resume: () => agents('SIGCONT') });
    console.log(`\n#### ${label}`);
    printPaths(got, ROUNDS, [[`IPv6 ÷ IPv4, cross-host, ${label} (target ≥ 0.95×)`, 'IPv6', 'IPv4']], costs.of(paths));
  };
  await phase('one group rule');
  for (const n of SIZES) {
    const shape = makeShape('mix', n, { app: addr.get('app') as string, db: addr.get('db') as string });
    const t0 = Date.now();
    for (const p of shape.policies) await ok('POST', '/api/v1/tenants/default/policies', p);
    const names = shape.policies.map((p) => p.name);
    await ok('PATCH', '/api/v1/tenants/default/groups/db', { policies: ['base', ...names] });
    await ok('PATCH', '/api/v1/tenants/default/groups/app', { policies: names });
    // 5202 is opened by the shape's rules alone (the one group rule refused it); 5203 stays denied.
    const inForce = async () => {
      for (const [from, to, a] of both) if (!(await connects(exec, from, to, a, 5202))) return false;
      return true;
    };
    if (await within(300_000, inForce, 1000) < 0) throw new Error(`the mix of ${n} rules is not in force after 300 s`);
    await assertRefused(exec, both, 5203);
    console.error(`bench:dualstack: ${n} mixed rules in force after ${((Date.now() - t0) / 1000).toFixed(1)} s (from the first POST)`);
    await phase(`${n.toLocaleString('en')} mixed rules`);
    await ok('PATCH', '/api/v1/tenants/default/groups/app', { policies: [] });
    await ok('PATCH', '/api/v1/tenants/default/groups/db', { policies: ['base', 'one'] });
    for (const p of names) await ok('DELETE', `/api/v1/tenants/default/policies/${p}`);
  }
} finally {
  offInterrupt();
  await cleanup();
}
