// npm run bench:macvlan — issue 17's macvlan figures, in one run on one simulated host (root):
// iperf3 between two Weft containers on a macvlan network (bridge-mode children of one parent, each
// holding the tenant's policy table), from one of them to a machine on the parent's segment, the same
// two paths hand-built (two macvlan children with no table: the anchor), and between two Weft containers
// on a veth+bridge (VXLAN) network under the same policy; the macvlan network is dual-stack, and the
// container → container paths (Weft's and the anchor's) are measured over IPv6 too. Rounds alternate the paths; each figure is the
// median of the rounds, each ratio the median of per-round ratios. The agent is paused during streams
// (the datapath is kernel state); removes everything it made, also when interrupted.
import { ProcessRunner } from '../exec/index.js';
import { startTestHost, within, type TestHost } from '../testkit/host.js';
import { onInterrupt } from './interrupt.js';
import { assertRefused, comparePaths, costBook, iperfGbits, printPaths, type NsExec } from './paths.js';

const ROUNDS = Number(process.env['BENCH_MACVLAN_ROUNDS'] ?? 5);
const SECONDS = Number(process.env['BENCH_MACVLAN_SECONDS'] ?? 3);
const PARENT = 'bmvpar';
const runner = new ProcessRunner();

let h: TestHost | undefined;
const cleanup = async () => { await h?.cleanup(); h = undefined; };
const offInterrupt = onInterrupt(cleanup);
try {
  h = await startTestHost('bmv');
  const host = h;
  const ns = (n: string) => `${host.tag}-${n}`;
  const weft = async (args: string[]) => {
    const r = await host.weft(args);
    if (r.code !== 0) throw new Error(`weft ${args.join(' ')}: ${r.stderr}`);
  };
  // The segment: the host's parent and a machine on it (the router's address).
  await host.container('phys');
  await runner.run(['ip', '-n', host.hostNs, 'link', 'add', PARENT, 'type', 'veth', 'peer', 'name', 'lan0', 'netns', ns('phys')]);
  await runner.run(['ip', '-n', host.hostNs, 'link', 'set', PARENT, 'up']);
  await runner.run(['ip', '-n', ns('phys'), '-batch', '-'], { input: 'addr add 192.168.70.1/24 dev lan0\naddr add fd70::1/64 dev lan0 nodad\nlink set lan0 up\n' });
  // The same policy on both networks: tcp denied, iperf3's port allowed from the client's group.
  for (const args of [
    ['net', 'create', '-s', '192.168.70.0/24', '-g', '192.168.70.1', '--subnet6', 'fd70::/64', '--gateway6', 'fd70::1', '--ip-range6', 'fd70::100-fd70::1ff',
      '--encap', 'macvlan', '--parent', PARENT, 'lan'],
    ['net', 'create', '-s', '10.70.0.0/24', 'br'],
    ['group', 'create', 'lan', 'mcli'], ['group', 'create', 'br', 'bcli'],
    ['policy', 'create', 'srv'],
    ['policy', 'rule-add', 'srv', '1', '-direction=in', '-protocol=tcp', '-action=deny'],
    ['policy', 'rule-add', 'srv', '2', '-direction=in', '-protocol=tcp', '-port=5201', '-from-group=mcli', '-action=allow', '-priority=10'],
    ['policy', 'rule-add', 'srv', '3', '-direction=in', '-protocol=tcp', '-port=5201', '-from-group=bcli', '-action=allow', '-priority=10'],
    ['group', 'create', '-policy=srv', 'lan', 'msrv'], ['group', 'create', '-policy=srv', 'br', 'bsrv'],
  ]) await weft(args);
  const ip = new Map<string, string>();
  const ip6 = new Map<string, string>();
  const add = async (name: string, group: string) => {
    const conf = `weft-default-${group}`;
    if (await within(10_000, async () => (await runner.run(['test', '-e', `${host.cniConfDir}/${conf}.conflist`], { allowFailure: true })).code === 0) < 0) throw new Error(`${conf} was not written`);
    const r = await host.cni('ADD', { conflist: conf, containerId: name, netns: await host.container(name) });
    if (r.code !== 0) throw new Error(`ADD ${name}: ${r.stdout}`);
    ip.set(name, r.json.ips[0].address.split('/')[0]);
    if (r.json.ips[1]) ip6.set(name, r.json.ips[1].address.split('/')[0]);
  };
  await add('msrv', 'msrv');
  await add('mcli', 'mcli');
  await add('bsrv', 'bsrv');
  await add('bcli', 'bcli');
  // The anchor: two macvlan children of the same parent, addressed by hand, no table.
  for (const [n, a, a6] of [['asrv', '192.168.70.201', 'fd70::c9'], ['acli', '192.168.70.202', 'fd70::ca']] as const) {
    await host.container(n);
    await runner.run(['ip', '-n', host.hostNs, 'link', 'add', 'link', PARENT, 'name', 'eth0', 'netns', ns(n), 'type', 'macvlan', 'mode', 'bridge']);
    await runner.run(['ip', '-n', ns(n), '-batch', '-'], { input: `addr add ${a}/24 dev eth0\naddr add ${a6}/64 dev eth0 nodad\nlink set eth0 up\n` });
    ip.set(n, a);
    ip6.set(n, a6);
  }
  ip.set('phys', '192.168.70.1');

  const agent = (sig: NodeJS.Signals) => { const pid = host.agentPid(); if (pid) process.kill(pid, sig); };
  const exec: NsExec = (n, argv, timeoutMs) => host.exec(ns(n), argv, { timeoutMs });
  // A path's server: a name ending in 6 is that container over IPv6.
  const addr = (to: string) => (to.endsWith('6') ? ip6.get(to.slice(0, -1)) : ip.get(to)) as string;
  const costs = costBook();
  const iperf = (from: string, to: string): Promise<number> => iperfGbits(exec, from, to.endsWith('6') ? to.slice(0, -1) : to, addr(to), SECONDS, costs.note(from, to));
  for (const [from, to] of [['mcli', 'msrv6'], ['acli', 'asrv6']] as const) {
    if (await within(10_000, async () => (await exec(from, ['ping', '-6', '-c', '1', '-W', '1', addr(to)], 5_000)).code === 0) < 0) throw new Error(`${from} does not reach ${to.slice(0, -1)} over IPv6 (${addr(to)})`);
  }
  // The policy decides on the measured paths: port 5202 from the client is refused on both networks, both families.
  await assertRefused(exec, [['mcli', 'msrv', ip.get('msrv') as string], ['bcli', 'bsrv', ip.get('bsrv') as string], ['mcli', 'msrv', addr('msrv6')]]);

  const paths = {
    'Weft macvlan, container → container': ['mcli', 'msrv'],
    'hand-built macvlan, container → container (anchor)': ['acli', 'asrv'],
    'Weft macvlan, container → segment machine': ['mcli', 'phys'],
    'hand-built macvlan, container → segment machine (anchor)': ['acli', 'phys'],
    'Weft veth + bridge (VXLAN network), container → container': ['bcli', 'bsrv'],
    'Weft macvlan over IPv6, container → container': ['mcli', 'msrv6'],
    'hand-built macvlan over IPv6, container → container (anchor)': ['acli', 'asrv6'],
  } as const;
  const got = await comparePaths({ name: 'bench:macvlan', rounds: ROUNDS, paths, measure: iperf, pause: () => agent('SIGSTOP'), resume: () => agent('SIGCONT') });
  const keys = Object.keys(paths);
  printPaths(got, ROUNDS, [
    ['Weft macvlan ÷ hand-built, container → container', keys[0]!, keys[1]!],
    ['Weft macvlan ÷ hand-built, container → segment', keys[2]!, keys[3]!],
    ['Weft macvlan ÷ Weft veth + bridge, container → container', keys[0]!, keys[4]!],
    ['Weft macvlan IPv6 ÷ hand-built IPv6, container → container', keys[5]!, keys[6]!],
    ['Weft macvlan IPv6 ÷ Weft macvlan IPv4', keys[5]!, keys[0]!],
    ['hand-built IPv6 ÷ hand-built IPv4 (the kernel\'s share)', keys[6]!, keys[1]!],
  ], costs.of(paths));
} finally {
  offInterrupt();
  await cleanup();
}
