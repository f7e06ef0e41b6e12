// npm run bench:dualstack — issue 19's throughput figure, in one run on two simulated hosts (root): iperf3
// from a Weft container on host 1 to one on host 2 of a dual-stack VXLAN network, once to the server's
// IPv4 address and once to its IPv6 address, same containers, same overlay, the same policy in force
// (tcp denied to the server's group, iperf3's port allowed from the client's: one group rule deciding
// both families). Rounds alternate the two; each figure is the median of the rounds, the ratio the
// median of per-round ratios. The agents are paused during streams (the datapath is kernel state);
// removes everything it made, also when interrupted.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ProcessRunner } from '../exec/index.js';
import { startLab, type Lab } from '../testkit/lab.js';
import { within } from '../testkit/host.js';
import { onInterrupt } from './interrupt.js';
import { assertRefused, comparePaths, iperfGbits, printPaths, type NsExec } from './paths.js';

const ROUNDS = Number(process.env['BENCH_DUAL_ROUNDS'] ?? 10);
const SECONDS = Number(process.env['BENCH_DUAL_SECONDS'] ?? 3);
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
  for (const g of ['cli', 'srv']) await ok('POST', '/api/v1/tenants/default/groups', { name: g, network: 'ds' });
  await ok('POST', '/api/v1/tenants/default/policies', { name: 'srv', rules: [
    { id: '1', direction: 'in', action: 'deny', protocol: 'tcp' },
    { id: '2', priority: 10, direction: 'in', action: 'allow', protocol: 'tcp', ports: '5201', fromGroup: 'cli' },
  ] });
  await ok('PATCH', '/api/v1/tenants/default/groups/srv', { policies: ['srv'] });
  const addr = new Map<string, string>();
  for (const [name, host] of [['cli', 0], ['srv', 1]] as const) {
    const h = l.hosts[host]!;
    const conf = `weft-default-${name}`;
    if (await within(10_000, async () => existsSync(join(h.dir, 'net.d', `${conf}.conflist`))) < 0) throw new Error(`${conf} was not written`);
    const r = await h.cni('ADD', { conflist: conf, containerId: name, netns: await l.container(name) });
    if (r.code !== 0 || r.json.ips.length !== 2) throw new Error(`ADD ${name}: ${r.stdout}`);
    addr.set(name, r.json.ips[0].address.split('/')[0]);
    addr.set(`${name}6`, r.json.ips[1].address.split('/')[0]);
  }
  // A path's destination names the server and the family: `srv` (IPv4) or `srv6` (IPv6), one namespace.
  const exec: NsExec = (n, argv, timeoutMs) => runner.run(['ip', 'netns', 'exec', `${l.tag}-${n.replace(/6$/, '')}`, ...argv], { allowFailure: true, timeoutMs });
  for (const to of ['srv', 'srv6']) {
    if (await within(10_000, async () => (await exec('cli', ['ping', '-c', '1', '-W', '1', addr.get(to) as string], 5000)).code === 0) < 0) throw new Error(`cli does not reach ${addr.get(to)}`);
  }
  await assertRefused(exec, [['cli', 'srv', addr.get('srv') as string], ['cli', 'srv6', addr.get('srv6') as string]]);
  const paths = {
    'Weft VXLAN, host 1 → host 2, IPv4': ['cli', 'srv'],
    'the same containers, IPv6': ['cli', 'srv6'],
  } as const;
  const agents = (sig: NodeJS.Signals) => { for (const h of l.hosts) { const pid = h.agent.pid(); if (pid) process.kill(pid, sig); } };
  const measure = (from: string, to: string): Promise<number> => iperfGbits(exec, from, to, addr.get(to) as string, SECONDS);
  const got = await comparePaths({ name: 'bench:dualstack', rounds: ROUNDS, paths, measure, pause: () => agents('SIGSTOP'), resume: () => agents('SIGCONT') });
  const keys = Object.keys(paths);
  printPaths(got, ROUNDS, [['IPv6 ÷ IPv4, cross-host (target ≥ 0.95×)', keys[1]!, keys[0]!]]);
} finally {
  offInterrupt();
  await cleanup();
}
