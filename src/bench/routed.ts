// npm run bench:routed — issue 17's routed figures, in one run on two simulated hosts (root): iperf3
// from a Weft container on host 1 to one on host 2 of a routed network (no encapsulation; the blocks are
// routed host to host over the underlay; policy in force), the same between two hand-built routed
// containers (a veth straight into each host namespace and a route to the other host: the anchor, no
// tenant namespace; once as the hosts track it, once exempted from their connection tracking), and
// between two Weft containers of a VXLAN network under the same policy; and (session 31) the same Weft
// routed pair over IPv6 (a dual-stack routed network, the hosts with an IPv6 underlay); and (session 32)
// the tracked anchor over IPv6 and a hand-built pair in Weft's shape, both families (a bridge and a
// router namespace per host: Weft's hops without Weft), which splits routed IPv6 ÷ IPv4 between the
// kernel and Weft. Rounds alternate the paths; each figure is the median of the rounds, each ratio the
// median of per-round ratios; CPU per GB beside each (paths.ts). The agents are paused during streams (the datapath is kernel state); removes
// everything it made, also when interrupted.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ProcessRunner } from '../exec/index.js';
import { startLab, type Lab } from '../testkit/lab.js';
import { within } from '../testkit/host.js';
import { onInterrupt } from './interrupt.js';
import { assertRefused, comparePaths, costBook, iperfGbits, printPaths } from './paths.js';

const ROUNDS = Number(process.env['BENCH_ROUTED_ROUNDS'] ?? 10);
const SECONDS = Number(process.env['BENCH_ROUTED_SECONDS'] ?? 3);
const runner = new ProcessRunner();

let lab: Lab | undefined;
const cleanup = async () => { await lab?.cleanup(); lab = undefined; };
const offInterrupt = onInterrupt(cleanup);
try {
  lab = await startLab('brt', 2, { underlay6: 'fd99:7::' });
  const l = lab;
  const ns = (n: string) => `${l.tag}-${n}`;
  const ok = async (m: string, p: string, b?: unknown) => {
    const r = await l.api(m, p, b);
    if (r.status >= 300) throw new Error(`${m} ${p}: ${JSON.stringify(r.json)}`);
  };
  // The same policy on both networks: tcp denied, iperf3's port allowed from the client's group.
  await ok('POST', '/api/v1/tenants/default/networks', { name: 'rt', subnet: '10.90.0.0/16', subnet6: 'fd00:90::/64', encap: 'routed' });
  await ok('POST', '/api/v1/tenants/default/networks', { name: 'vx', subnet: '10.70.0.0/24', encrypt: false });
  for (const [g, n] of [['rcli', 'rt'], ['vcli', 'vx'], ['rsrv', 'rt'], ['vsrv', 'vx']] as const) {
    await ok('POST', '/api/v1/tenants/default/groups', { name: g, network: n });
  }
  await ok('POST', '/api/v1/tenants/default/policies', { name: 'srv', rules: [
    { id: '1', direction: 'in', action: 'deny', protocol: 'tcp' },
    { id: '2', priority: 10, direction: 'in', action: 'allow', protocol: 'tcp', ports: '5201', fromGroup: 'rcli' },
    { id: '3', priority: 10, direction: 'in', action: 'allow', protocol: 'tcp', ports: '5201', fromGroup: 'vcli' },
  ] });
  for (const g of ['rsrv', 'vsrv']) await ok('PATCH', `/api/v1/tenants/default/groups/${g}`, { policies: ['srv'] });
  const ip = new Map<string, string>();
  const ip6 = new Map<string, string>();
  const add = async (name: string, host: number, group: string) => {
    const h = l.hosts[host]!;
    const conf = `weft-default-${group}`;
    if (await within(10_000, async () => existsSync(join(h.dir, 'net.d', `${conf}.conflist`))) < 0) throw new Error(`${conf} was not written`);
    const r = await h.cni('ADD', { conflist: conf, containerId: name, netns: await l.container(name) });
    if (r.code !== 0) throw new Error(`ADD ${name}: ${r.stdout}`);
    ip.set(name, r.json.ips[0].address.split('/')[0]);
    if (r.json.ips[1]) ip6.set(name, r.json.ips[1].address.split('/')[0]);
  };
  await add('rcli', 0, 'rcli');
  await add('rsrv', 1, 'rsrv');
  await add('vcli', 0, 'vcli');
  await add('vsrv', 1, 'vsrv');
  // The anchors: on each host a container whose veth ends in the host namespace, and a route to the
  // other. The first pair's packets pass the hosts' connection tracking, as Weft's do (Weft's host table
  // is there); the second pair's are exempted (a host running nothing but routes: the strictest anchor).
  const [h1, h2] = l.hosts as [Lab['hosts'][0], Lab['hosts'][0]];
  for (const [n, h, net, other] of [['acli', h1, '10.91.0', h2], ['asrv', h2, '10.91.1', h1], ['scli', h1, '10.92.0', h2], ['ssrv', h2, '10.92.1', h1]] as const) {
    const peerNet = `${net.slice(0, -1)}${net.endsWith('0') ? '1' : '0'}`;
    await l.container(n);
    await runner.run(['ip', '-n', h.ns, 'link', 'add', `a${n}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns(n)]);
    await runner.run(['ip', '-n', h.ns, '-batch', '-'], { input: `addr add ${net}.1/24 dev a${n}\nlink set a${n} up\nroute add ${peerNet}.0/24 via ${other.vtep}\n` });
    await runner.run(['ip', '-n', ns(n), '-batch', '-'], { input: `addr add ${net}.2/24 dev eth0\nlink set eth0 up\nroute add default via ${net}.1\n` });
    ip.set(n, `${net}.2`);
  }
  // The IPv6 anchor: the tracked pair gets IPv6 too, routed over the hosts' IPv6 underlay (the way Weft's
  // routed IPv6 goes), so routed IPv6 ÷ IPv4 splits into the kernel's share and Weft's.
  for (const [n, h, net, other] of [['acli', h1, 'fd91:0::', 1], ['asrv', h2, 'fd91:1::', 0]] as const) {
    const peerNet = net === 'fd91:0::' ? 'fd91:1::' : 'fd91:0::';
    await runner.run(['ip', '-n', h.ns, '-batch', '-'], { input: `addr add ${net}1/64 dev a${n} nodad\nroute add ${peerNet}/64 via fd99:7::${other + 2}\n` });
    await runner.run(['ip', '-n', ns(n), '-batch', '-'], { input: `addr add ${net}2/64 dev eth0 nodad\nroute add default via ${net}1\n` });
    ip6.set(n, `${net}2`);
  }
  // The Weft-shaped anchor, both families: each container behind a bridge in a router namespace of its
  // own, joined to its host by a veth (the hops a Weft routed packet takes: container, bridge, tenant
  // namespace, host, and the same on the other host), nothing else. Its IPv6 ÷ IPv4 is the kernel's share
  // of Weft's routed IPv6 ÷ IPv4; Weft ÷ it, per family, is Weft's own.
  for (const [i, h, other] of [[0, h1, h2], [1, h2, h1]] as const) {
    const [x, c, o] = [`wx${i}`, `wc${i}`, 1 - i];
    const otherV6 = `fd99:7::${o + 2}`;
    await l.container(x);
    await l.container(c);
    await runner.run(['ip', '-n', ns(x), '-batch', '-'], { input: [
      'link set lo up', 'link add br0 type bridge', 'link set br0 up', `link add v0 type veth peer name eth0 netns ${ns(c)}`,
      'link set v0 master br0 up', `addr add 10.93.${i}.1/24 dev br0`, `addr add fd93:${i}::1/64 dev br0 nodad`,
      `link add up0 type veth peer name xu${i} netns ${h.ns}`, `addr add 10.94.${i}.2/30 dev up0`, `addr add fd94:${i}::2/64 dev up0 nodad`,
      'link set up0 up', `route add default via 10.94.${i}.1`, `route add default via fd94:${i}::1`, '',
    ].join('\n') });
    await runner.run(['ip', 'netns', 'exec', ns(x), 'sysctl', '-qw', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1']);
    await runner.run(['ip', '-n', ns(c), '-batch', '-'], { input: [
      'link set lo up', `addr add 10.93.${i}.2/24 dev eth0`, `addr add fd93:${i}::2/64 dev eth0 nodad`, 'link set eth0 up',
      `route add default via 10.93.${i}.1`, `route add default via fd93:${i}::1`, '',
    ].join('\n') });
    await runner.run(['ip', '-n', h.ns, '-batch', '-'], { input: [
      `addr add 10.94.${i}.1/30 dev xu${i}`, `addr add fd94:${i}::1/64 dev xu${i} nodad`, `link set xu${i} up`,
      `route add 10.93.${i}.0/24 via 10.94.${i}.2`, `route add fd93:${i}::/64 via fd94:${i}::2`,
      `route add 10.93.${o}.0/24 via ${other.vtep}`, `route add fd93:${o}::/64 via ${otherV6}`, '',
    ].join('\n') });
    ip.set(c, `10.93.${i}.2`);
    ip6.set(c, `fd93:${i}::2`);
  }
  for (const h of [h1, h2]) {
    await runner.run(['ip', 'netns', 'exec', h.ns, 'nft', '-f', '-'], {
      input: 'table inet weftbench {\n\tchain raw {\n\t\ttype filter hook prerouting priority raw; policy accept;\n\t\tip saddr 10.92.0.0/16 notrack\n\t\tip daddr 10.92.0.0/16 notrack\n\t}\n}\n',
    });
  }
  const exec = (n: string, argv: string[], timeoutMs = 30_000) => runner.run(['ip', 'netns', 'exec', ns(n), ...argv], { allowFailure: true, timeoutMs });
  for (const [from, to] of [['rcli', 'rsrv'], ['vcli', 'vsrv'], ['acli', 'asrv'], ['scli', 'ssrv'], ['wc0', 'wc1']] as const) {
    if (await within(10_000, async () => (await exec(from, ['ping', '-c', '1', '-W', '1', ip.get(to) as string])).code === 0) < 0) throw new Error(`${from} does not reach ${to}`);
  }
  for (const [from, to] of [['rcli', 'rsrv'], ['acli', 'asrv'], ['wc0', 'wc1']] as const) {
    const to6 = ip6.get(to) as string;
    if (await within(10_000, async () => (await exec(from, ['ping', '-6', '-c', '1', '-W', '1', to6])).code === 0) < 0) throw new Error(`${from} does not reach ${to} over IPv6 (${to6})`);
  }
  const rsrv6 = ip6.get('rsrv') as string;
  // A path's server: a name ending in 6 is that container over IPv6.
  const addr = (to: string) => (to.endsWith('6') ? ip6.get(to.slice(0, -1)) : ip.get(to)) as string;
  // CPU per GB, per path (keyed by its ends) and round: throughput alone moves with the VM's neighbours.
  const costs = costBook();
  const iperf = (from: string, to: string): Promise<number> => iperfGbits(exec, from, to.endsWith('6') ? to.slice(0, -1) : to, addr(to), SECONDS, costs.note(from, to));
  await assertRefused(exec, [['rcli', 'rsrv', ip.get('rsrv') as string], ['vcli', 'vsrv', ip.get('vsrv') as string], ['rcli', 'rsrv', rsrv6]]);
  const paths = {
    'Weft routed network, host 1 → host 2': ['rcli', 'rsrv'],
    'hand-built routed containers, host 1 → host 2 (anchor)': ['acli', 'asrv'],
    'hand-built, the hosts not tracking its connections (strict anchor)': ['scli', 'ssrv'],
    'Weft VXLAN network, host 1 → host 2, same policy': ['vcli', 'vsrv'],
    'Weft routed network over IPv6, host 1 → host 2': ['rcli', 'rsrv6'],
    'hand-built routed containers over IPv6 (anchor)': ['acli', 'asrv6'],
    'hand-built in Weft\'s shape (bridge and router namespace per host), IPv4': ['wc0', 'wc1'],
    'hand-built in Weft\'s shape, IPv6': ['wc0', 'wc16'],
  } as const;
  const agents = (sig: NodeJS.Signals) => { for (const h of l.hosts) { const pid = h.agent.pid(); if (pid) process.kill(pid, sig); } };
  const got = await comparePaths({ name: 'bench:routed', rounds: ROUNDS, paths, measure: iperf, pause: () => agents('SIGSTOP'), resume: () => agents('SIGCONT') });
  const keys = Object.keys(paths);
  printPaths(got, ROUNDS, [
    ['Weft routed ÷ hand-built routed', keys[0]!, keys[1]!],
    ['Weft routed ÷ hand-built, hosts not tracking it', keys[0]!, keys[2]!],
    ['Weft routed ÷ Weft VXLAN', keys[0]!, keys[3]!],
    ['Weft routed IPv6 ÷ Weft routed IPv4', keys[4]!, keys[0]!],
    ['hand-built IPv6 ÷ hand-built IPv4', keys[5]!, keys[1]!],
    ['Weft routed IPv6 ÷ hand-built IPv6', keys[4]!, keys[5]!],
    ['Weft-shaped hand-built IPv6 ÷ IPv4 (the kernel\'s share on Weft\'s hops)', keys[7]!, keys[6]!],
    ['Weft routed IPv4 ÷ Weft-shaped hand-built IPv4 (Weft\'s share)', keys[0]!, keys[6]!],
    ['Weft routed IPv6 ÷ Weft-shaped hand-built IPv6 (Weft\'s share)', keys[4]!, keys[7]!],
  ], costs.of(paths));
} finally {
  offInterrupt();
  await cleanup();
}
