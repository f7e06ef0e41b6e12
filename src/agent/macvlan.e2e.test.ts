import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ProcessRunner } from '../exec/index.js';
import { startTestHost, within, type TestHost } from '../testkit/host.js';
import { WEFT_BIN } from '../testkit/server.js';

/**
 * macvlan networks against the kernel (issue 17): endpoints are children of a parent interface of the
 * host, on its segment (here a veth whose other end is a "physical" namespace holding the router's
 * address), not on a bridge; each container holds the tenant's policy, which must still decide.
 */
const root = process.getuid?.() === 0;
const runner = new ProcessRunner();
let h: TestHost;
const bg: ChildProcess[] = [];
const ip = new Map<string, string>();
const PARENT = 'mvpar';

before(async () => {
  if (!root) return;
  h = await startTestHost('mvl');
  // The segment: the host's parent interface, and a machine on it at the router's address.
  await h.container('phys');
  await runner.run(['ip', '-n', h.hostNs, 'link', 'add', PARENT, 'type', 'veth', 'peer', 'name', 'lan0', 'netns', `${h.tag}-phys`]);
  await runner.run(['ip', '-n', h.hostNs, 'link', 'set', PARENT, 'up']);
  await runner.run(['ip', '-n', `${h.tag}-phys`, '-batch', '-'], { input: 'addr add 192.168.50.1/24 dev lan0\nlink set lan0 up\n' });
  for (const args of [
    ['net', 'create', '-s', '192.168.50.0/24', '-g', '192.168.50.1', '--encap', 'macvlan', '--parent', PARENT, 'lan'],
    ['policy', 'create', 'lan-policy'],
    ['policy', 'rule-add', 'lan-policy', '1', '-direction=in', '-protocol=tcp', '-action=deny'],
    ['policy', 'rule-add', 'lan-policy', '2', '-direction=in', '-protocol=tcp', '-port=8888', '-from-cidr=192.168.50.1/32', '-action=allow', '-priority=10'],
    ['group', 'create', '-policy=lan-policy', 'lan', 'mdb'],
    ['group', 'create', 'lan', 'mapp'],
  ]) {
    const r = await h.weft(args);
    assert.equal(r.code, 0, `weft ${args.join(' ')}: ${r.stderr}`);
  }
  assert.ok(await within(5000, async () => existsSync(join(h.cniConfDir, 'weft-default-mapp.conflist'))) >= 0);
});
after(async () => {
  for (const p of bg) p.kill('SIGKILL');
  await h?.cleanup();
});

const ns = (n: string) => `${h.tag}-${n}`;
async function run(name: string, group: string): Promise<void> {
  const r = await h.cni('ADD', { conflist: `weft-default-${group}`, containerId: name, netns: await h.container(name) });
  assert.equal(r.code, 0, r.stdout);
  assert.equal(r.json.dns?.nameservers, undefined, 'no DNS server in the result: the gateway is the segment\'s router, not the agent');
  ip.set(name, r.json.ips[0].address.split('/')[0]);
}
async function listen(name: string, port: number): Promise<void> {
  bg.push(spawn('ip', ['netns', 'exec', ns(name), 'busybox', 'nc', '-ll', '-p', String(port), '-e', '/bin/cat'], { stdio: 'ignore' }));
  const self = async () => (await h.exec(ns(name), ['busybox', 'nc', '-w', '1', '127.0.0.1', String(port)], { input: 'hi\n' })).stdout.trim() === 'hi';
  assert.ok(await within(3000, self, 50) >= 0, `${name} listens on ${port} (loopback is not the table's business)`);
}
const reach = async (from: string, to: string, port: number) =>
  (await h.exec(ns(from), ['busybox', 'nc', '-w', '1', to, String(port)], { input: 'hi\n' })).stdout.trim() === 'hi';
const ping = async (from: string, to: string) => (await h.exec(ns(from), ['ping', '-c', '1', '-W', '1', to])).code === 0;

test('macvlan endpoints sit on the parent\'s segment, reach its machines and each other; the policy in each container decides', { skip: !root && 'needs root' }, async () => {
  await run('m1', 'mdb');
  await run('m2', 'mapp');
  const link = await h.exec(ns('m1'), ['ip', '-d', '-j', 'link', 'show', 'eth0']);
  assert.match(link.stdout, /"info_kind":"macvlan"/, 'a macvlan child, not a veth');
  assert.match(link.stdout, /"mode":"bridge"/);
  const tenantNs = (await runner.run(['ip', 'netns', 'list'])).stdout.split('\n').map((l) => l.split(' ')[0] ?? '').find((n) => /^mvl[0-9]*-t[0-9]+$/.test(n) && n.startsWith(h.tag));
  if (tenantNs) assert.doesNotMatch((await runner.run(['ip', '-n', tenantNs, 'link', 'show'])).stdout, /\bwe[0-9a-f]{12}/, 'no veth in the tenant namespace');
  assert.match((await h.exec(ns('m1'), ['ip', 'route', 'show', 'default'])).stdout, /via 192\.168\.50\.1 dev eth0/, 'the physical router is the gateway');

  await listen('m1', 8888);
  await listen('m1', 9999);
  assert.ok(await within(5000, () => ping('m1', '192.168.50.1')) >= 0, 'm1 reaches the machine on the segment');
  assert.ok(await ping('m2', ip.get('m1') as string), 'm2 reaches m1 (the policy denies only tcp)');
  assert.ok(await reach('phys', ip.get('m1') as string, 8888), 'the router may reach db on 8888 (-from-ip)');
  assert.equal(await reach('phys', ip.get('m1') as string, 9999), false, 'but not on 9999 (deny tcp)');
  assert.equal(await reach('m2', ip.get('m1') as string, 8888), false, 'm2 is not the router: tcp denied');

  // What the container's processes cannot do on the segment, even with raw sockets: send as another
  // address (the router's, say) or speak IPv6.
  assert.match((await h.exec(ns('m2'), ['cat', '/proc/sys/net/ipv6/conf/eth0/disable_ipv6'])).stdout, /^1/, 'IPv6 off on the macvlan interface');
  await h.exec(ns('m2'), ['ip', 'addr', 'add', '192.168.50.77/24', 'dev', 'eth0']);
  assert.equal(await ping('phys', '192.168.50.77'), false, 'an address the container gave itself gets nothing onto the segment');
  assert.equal((await h.exec(ns('m2'), ['ping', '-c', '1', '-W', '1', '-I', '192.168.50.77', '192.168.50.1'])).code === 0, false, 'nor does it send from it');
  await h.exec(ns('m2'), ['ip', 'addr', 'del', '192.168.50.77/24', 'dev', 'eth0']);
  assert.ok(await ping('m2', '192.168.50.1'), 'its own address still works');

  // weft explain says the same of macvlan endpoints, from the same compiled policy.
  const why = async (from: string, to: string, flow: string) => {
    const r = await h.weft(['explain', from, to, flow, '-o', 'json']);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout).allowed as boolean;
  };
  assert.equal(await why('192.168.50.1', ip.get('m1') as string, '8888/tcp'), true);
  assert.equal(await why('192.168.50.1', ip.get('m1') as string, '9999/tcp'), false);
  assert.equal(await why(ip.get('m2') as string, ip.get('m1') as string, '8888/tcp'), false);

  // weft flows: the containers' own tables log each new connection's verdict, and the agent reads them there.
  type F = { verdict: string; src: { ip: string }; dst: { ip: string; port: number }; decidedBy: { policy?: string; rule: string | null } };
  const flows = async () => ((await h.api('GET', '/api/v1/flows?tenant=default&protocol=tcp')).json.items as F[])
    .map((f) => `${f.src.ip} ${f.dst.ip}:${f.dst.port} ${f.verdict} ${f.decidedBy.policy ?? '-'}/${f.decidedBy.rule}`);
  const m1 = ip.get('m1') as string;
  const want = [`192.168.50.1 ${m1}:8888 allow lan-policy/2`, `192.168.50.1 ${m1}:9999 deny lan-policy/1`, `${ip.get('m2')} ${m1}:8888 deny lan-policy/1`];
  assert.ok(await within(5000, async () => { const f = await flows(); return want.every((w) => f.includes(w)); }, 200) >= 0, `the macvlan containers' connections are recorded: ${(await flows()).join('; ')}`);

  // A rule added later reaches the containers' tables.
  const r = await h.weft(['policy', 'rule-add', 'lan-policy', '3', '-direction=in', '-protocol=tcp', '-port=9999', '-from-group=mapp', '-action=allow', '-priority=10']);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(await within(5000, () => reach('m2', ip.get('m1') as string, 9999)) >= 0, 'the new rule lets mapp reach 9999');
  assert.equal(await reach('phys', ip.get('m1') as string, 9999), false, 'and only mapp');

  // An interface `weft attach` adds to a bare namespace works the same way.
  await h.container('probe');
  const a = await runner.run(['env', process.execPath, WEFT_BIN, 'attach', ns('probe'), '-n', 'lan', '-g', 'mapp', '-o', 'json', '--run-dir', join(h.dir, 'run')], { allowFailure: true, timeoutMs: 60_000 });
  assert.equal(a.code, 0, a.stderr);
  const att = JSON.parse(a.stdout) as { ip: string; ifname: string };
  assert.ok(await within(5000, () => reach('probe', ip.get('m1') as string, 9999)) >= 0, 'the attached macvlan interface is in mapp');
  assert.ok(await ping('phys', att.ip));

  // DEL removes the interface and its table; the namespace stays (the runtime's).
  const del = await h.cni('DEL', { conflist: 'weft-default-mapp', containerId: 'm2', netns: `/run/netns/${ns('m2')}` });
  assert.equal(del.code, 0, del.stdout);
  assert.notEqual((await h.exec(ns('m2'), ['ip', 'link', 'show', 'eth0'])).code, 0, 'eth0 is gone');
  assert.doesNotMatch((await h.exec(ns('m2'), ['nft', 'list', 'tables'])).stdout, /weft/, 'its policy table is gone');
  const d = await runner.run([process.execPath, WEFT_BIN, 'detach', ns('probe'), '-n', 'lan', '--run-dir', join(h.dir, 'run')], { allowFailure: true });
  assert.equal(d.code, 0, d.stderr);
  const left = (await h.api('GET', '/api/v1/endpoints?tenant=default')).json.items as Array<{ ip: string }>;
  assert.deepEqual(left.map((e) => e.ip), [ip.get('m1')]);
});

test('a macvlan network refuses what it cannot be, naming the field', { skip: !root && 'needs root' }, async () => {
  const cases: Array<[string[], RegExp]> = [
    [['net', 'create', '-s', '192.168.60.0/24', '--encap', 'macvlan', 'nopar'], /parent: encap macvlan needs the hosts' parent interface/],
    [['net', 'create', '-s', '192.168.61.0/24', '--parent', 'eth1', 'vx'], /--parent \(parent\): only a network with encap macvlan has a parent interface/],
    [['net', 'create', '-t', 'default', '-s', '192.168.50.128/25', '--encap', 'macvlan', '--parent', PARENT, 'lan2'], /--subnet \(subnet\): .* overlaps network default\/lan|overlaps macvlan network default\/lan/],
    [['service', 'create', '-s', 'lan', '-l', 'group=mapp', '-p', '80:8080:TCP', 'svc'], /macvlan network, which has no bridge to hold a service VIP/],
  ];
  for (const [args, message] of cases) {
    const r = await h.weft(args);
    assert.notEqual(r.code, 0, args.join(' '));
    assert.match(r.stderr, message, args.join(' '));
  }
  // Another tenant may not use the same segment's addresses either.
  assert.equal((await h.weft(['tenant', 'create', 'other'])).code, 0);
  const clash = await h.weft(['net', 'create', '-t', 'other', '-s', '192.168.50.0/24', '--encap', 'macvlan', '--parent', PARENT, 'lan']);
  assert.notEqual(clash.code, 0);
  assert.match(clash.stderr, /overlaps macvlan network default\/lan \(192\.168\.50\.0\/24\) on the same parent/);
});

test('a dual-stack macvlan network: IPv6 on the segment from Weft\'s range, the policy decides it, no other address, no router advertisement leaves', { skip: !root && 'needs root' }, async () => {
  const phys = ns('phys');
  await runner.run(['ip', '-n', phys, '-batch', '-'], { input: 'addr add 192.168.51.1/24 dev lan0\naddr add fd00:51::1/64 dev lan0 nodad\n' });
  for (const args of [
    ['net', 'create', '-s', '192.168.51.0/24', '-g', '192.168.51.1', '-r', '192.168.51.100-192.168.51.199', '--subnet6', 'fd00:51::/64', '--gateway6', 'fd00:51::1',
      '--ip-range6', 'fd00:51::100-fd00:51::1ff', '--encap', 'macvlan', '--parent', PARENT, 'lan6'],
    ['policy', 'create', 'lan6-policy'],
    ['policy', 'rule-add', 'lan6-policy', '1', '-direction=in', '-protocol=tcp', '-action=deny'],
    ['policy', 'rule-add', 'lan6-policy', '2', '-direction=in', '-protocol=tcp', '-port=8888', '-from-cidr=fd00:51::1/128', '-action=allow', '-priority=10'],
    ['group', 'create', '-policy=lan6-policy', 'lan6', 'm6db'],
    ['group', 'create', 'lan6', 'm6app'],
  ]) {
    const r = await h.weft(args);
    assert.equal(r.code, 0, `weft ${args.join(' ')}: ${r.stderr}`);
  }
  assert.ok(await within(5000, async () => existsSync(join(h.cniConfDir, 'weft-default-m6app.conflist'))) >= 0);
  const ip6 = new Map<string, string>();
  for (const [name, group] of [['d1', 'm6db'], ['d2', 'm6app']] as const) {
    const r = await h.cni('ADD', { conflist: `weft-default-${group}`, containerId: name, netns: await h.container(name) });
    assert.equal(r.code, 0, r.stdout);
    const addrs = (r.json.ips as Array<{ address: string; gateway?: string }>);
    assert.deepEqual(addrs.map((a) => a.gateway), ['192.168.51.1', 'fd00:51::1'], 'the segment\'s router is the gateway of both families');
    ip6.set(name, (addrs[1]?.address ?? '').split('/')[0] as string);
  }
  assert.deepEqual([...ip6.values()], ['fd00:51::100', 'fd00:51::101'], 'from ipRange6');
  const d1 = ip6.get('d1') as string;
  const d2 = ip6.get('d2') as string;
  const ping6 = async (from: string, to: string) => (await h.exec(ns(from), ['ping', '-6', '-c', '1', '-W', '1', to])).code === 0;
  assert.match((await h.exec(ns('d1'), ['ip', '-6', 'route', 'show', 'default'])).stdout, /via fd00:51::1 dev eth0/);
  assert.match((await h.exec(ns('d1'), ['cat', '/proc/sys/net/ipv6/conf/eth0/accept_ra'])).stdout, /^0/, 'no router advertisement taken from the segment');
  assert.ok(await within(5000, () => ping6('d1', 'fd00:51::1')) >= 0, 'd1 reaches the router over IPv6');
  assert.ok(await ping6('d2', d1), 'd2 reaches d1 (the policy denies only tcp)');
  assert.ok(await ping6('phys', d2));
  await listen('d1', 8888);
  await listen('d1', 9999);
  assert.ok(await reach('phys', d1, 8888), 'the router may reach db on 8888 over IPv6 (-from-cidr IPv6)');
  assert.equal(await reach('phys', d1, 9999), false, 'not on 9999 (deny tcp)');
  assert.equal(await reach('d2', d1, 8888), false, 'd2 is not the router: tcp denied');
  assert.equal(await reach('d2', '192.168.51.100', 8888), false, 'nor over IPv4');
  // What a container cannot send on the segment: another IPv6 address, a router advertisement.
  await h.exec(ns('d2'), ['ip', 'addr', 'add', 'fd00:51::77/64', 'dev', 'eth0', 'nodad']);
  assert.equal(await ping6('phys', 'fd00:51::77'), false, 'an address the container gave itself gets nothing onto the segment');
  assert.equal((await h.exec(ns('d2'), ['ping', '-6', '-c', '1', '-W', '1', '-I', 'fd00:51::77', 'fd00:51::1'])).code === 0, false, 'nor does it send from it');
  await h.exec(ns('d2'), ['ip', 'addr', 'del', 'fd00:51::77/64', 'dev', 'eth0']);
  const neigh = (await h.exec(phys, ['ip', '-6', 'neigh', 'show', 'fd00:51::77'])).stdout.trim();
  assert.ok(!/lladdr/.test(neigh), `the segment learned no neighbour for the forged address: ${neigh}`);
  // A raw router advertisement from the container (CAP_NET_RAW, as runtimes grant) never reaches the segment.
  await runner.run(['ip', 'netns', 'exec', phys, 'sysctl', '-q', '-w', 'net.ipv6.conf.lan0.accept_ra=2']);
  const before = (await h.exec(phys, ['ip', '-6', 'route', 'show', 'proto', 'ra'])).stdout.trim();
  const ra = "import socket,struct;s=socket.socket(socket.AF_INET6,socket.SOCK_RAW,socket.IPPROTO_ICMPV6);s.setsockopt(socket.IPPROTO_IPV6,socket.IPV6_MULTICAST_HOPS,255);" +
    "p=struct.pack('!BBHBBHII',134,0,0,64,0,1800,0,0)+struct.pack('!BBBBIII16s',3,4,64,0xc0,86400,14400,0,socket.inet_pton(socket.AF_INET6,'2001:db8:bad::'));" +
    "\ntry:\n  s.sendto(p,('ff02::1',0,0,socket.if_nametoindex('eth0')));print('sent')\nexcept OSError as e:\n  print('dropped' if e.errno==105 else e)";
  // The egress hook's drop comes back to the sender as ENOBUFS; what counts is what the segment learned.
  const sent = await h.exec(ns('d2'), ['python3', '-c', ra]);
  assert.match(sent.stdout.trim(), /^(sent|dropped)$/, `the advertisement went to the interface: ${sent.stdout}${sent.stderr}`);
  // The same advertisement as a whole frame from a packet socket that declares it IPv4 (the egress hook
  // parses by the declared protocol; the address checks read the frame's own type).
  const raw = await h.exec(ns('d2'), ['python3', '-c', RAW_RA]);
  assert.match(raw.stdout.trim(), /^(sent|dropped)$/, `the frame went to the interface: ${raw.stdout}${raw.stderr}`);
  await new Promise((r) => setTimeout(r, 500));
  assert.equal((await h.exec(phys, ['ip', '-6', 'route', 'show', 'proto', 'ra'])).stdout.trim(), before, 'the segment\'s machine learned no route from it');
  assert.ok(await ping6('d2', 'fd00:51::1'), 'its own address still works');
  // weft explain decides IPv6 addresses of macvlan endpoints as their IPv4 ones.
  const why = async (from: string, to: string, flow: string) => JSON.parse((await h.weft(['explain', from, to, flow, '-o', 'json'])).stdout).allowed as boolean;
  assert.deepEqual([await why('fd00:51::1', d1, '8888/tcp'), await why(d2, d1, '8888/tcp')], [true, false]);
  for (const name of ['d1', 'd2']) {
    const del = await h.cni('DEL', { conflist: `weft-default-${name === 'd1' ? 'm6db' : 'm6app'}`, containerId: name, netns: `/run/netns/${ns(name)}` });
    assert.equal(del.code, 0, del.stdout);
  }
});

test('an IPv6-only macvlan network: IPv6 alone on the segment, MACs from the addresses\' offsets, the policy decides, no IPv4 or ARP leaves', { skip: !root && 'needs root' }, async () => {
  const phys = ns('phys');
  await runner.run(['ip', '-n', phys, '-batch', '-'], { input: 'addr add 192.168.56.1/24 dev lan0\naddr add fd00:56::1/64 dev lan0 nodad\n' });
  for (const args of [
    ['net', 'create', '--subnet6', 'fd00:56::/64', '--gateway6', 'fd00:56::1', '--ip-range6', 'fd00:56::200-fd00:56::2ff', '--encap', 'macvlan', '--parent', PARENT, 'lan66'],
    ['policy', 'create', 'lan66-policy'],
    ['policy', 'rule-add', 'lan66-policy', '1', '-direction=in', '-protocol=tcp', '-action=deny'],
    ['policy', 'rule-add', 'lan66-policy', '2', '-direction=in', '-protocol=tcp', '-port=8888', '-from-cidr=fd00:56::1/128', '-action=allow', '-priority=10'],
    ['group', 'create', '-policy=lan66-policy', 'lan66', 'm66db'],
    ['group', 'create', 'lan66', 'm66app'],
  ]) {
    const r = await h.weft(args);
    assert.equal(r.code, 0, `weft ${args.join(' ')}: ${r.stderr}`);
  }
  assert.ok(await within(5000, async () => existsSync(join(h.cniConfDir, 'weft-default-m66app.conflist'))) >= 0);
  const ip6 = new Map<string, string>();
  for (const [name, group] of [['v1', 'm66db'], ['v2', 'm66app']] as const) {
    const r = await h.cni('ADD', { conflist: `weft-default-${group}`, containerId: name, netns: await h.container(name) });
    assert.equal(r.code, 0, r.stdout);
    const addrs = (r.json.ips as Array<{ address: string; gateway?: string }>);
    assert.deepEqual(addrs.map((a) => [a.address, a.gateway]), [[name === 'v1' ? 'fd00:56::200/64' : 'fd00:56::201/64', 'fd00:56::1']], 'one address, IPv6, the router its gateway');
    ip6.set(name, (addrs[0]?.address ?? '').split('/')[0] as string);
  }
  const [v1, v2] = [ip6.get('v1') as string, ip6.get('v2') as string];
  const link = JSON.parse((await h.exec(ns('v1'), ['ip', '-j', '-d', 'link', 'show', 'eth0'])).stdout)[0] as { address: string; linkinfo?: { info_kind?: string } };
  assert.deepEqual([link.address, link.linkinfo?.info_kind], ['02:58:00:00:02:00', 'macvlan'], 'a macvlan child whose MAC is its offset in subnet6');
  assert.equal((await h.exec(ns('v1'), ['ip', '-4', 'addr', 'show', 'dev', 'eth0'])).stdout.trim(), '', 'no IPv4 address');
  const ping6 = async (from: string, to: string) => (await h.exec(ns(from), ['ping', '-6', '-c', '1', '-W', '1', to])).code === 0;
  assert.ok(await within(5000, () => ping6('v1', 'fd00:56::1')) >= 0, 'v1 reaches the router');
  assert.ok(await ping6('v2', v1), 'v2 reaches v1 (the policy denies only tcp)');
  assert.ok(await ping6('phys', v2));
  await listen('v1', 8888);
  await listen('v1', 9999);
  assert.ok(await reach('phys', v1, 8888), 'the router may reach db on 8888 (-from-cidr IPv6)');
  assert.equal(await reach('phys', v1, 9999), false, 'not on 9999 (deny tcp)');
  assert.equal(await reach('v2', v1, 8888), false, 'v2 is not the router: tcp denied');
  // An IPv4 address the container gives itself: nothing of it reaches the segment, ARP neither.
  await h.exec(ns('v2'), ['ip', 'addr', 'add', '192.168.56.77/24', 'dev', 'eth0']);
  assert.equal(await ping('phys', '192.168.56.77'), false, 'the segment cannot reach a self-given IPv4 address');
  assert.equal(await ping('v2', '192.168.56.1'), false, 'nor does it reach the segment from one');
  const neigh = (await h.exec(phys, ['ip', '-4', 'neigh', 'show', '192.168.56.77'])).stdout.trim();
  assert.ok(!/lladdr/.test(neigh), `the segment learned no ARP entry for it: ${neigh}`);
  await h.exec(ns('v2'), ['ip', 'addr', 'del', '192.168.56.77/24', 'dev', 'eth0']);
  assert.ok(await ping6('v2', 'fd00:56::1'), 'its own IPv6 address still works');
  const why = async (from: string, to: string, flow: string) => JSON.parse((await h.weft(['explain', from, to, flow, '-o', 'json'])).stdout).allowed as boolean;
  assert.deepEqual([await why('fd00:56::1', v1, '8888/tcp'), await why(v2, v1, '8888/tcp')], [true, false]);
  for (const [name, group] of [['v1', 'm66db'], ['v2', 'm66app']] as const) {
    const del = await h.cni('DEL', { conflist: `weft-default-${group}`, containerId: name, netns: `/run/netns/${ns(name)}` });
    assert.equal(del.code, 0, del.stdout);
  }
  assert.equal((await h.exec(ns('v1'), ['ip', 'link', 'show', 'eth0'])).code === 0, false, 'DEL removes the interface');
});

/** A router advertisement (prefix 2001:db8:bad::/64) from eth0's link-local address, as a frame sent by a packet socket bound to ETH_P_IP. */
const RAW_RA = `import socket,struct
mac=open('/sys/class/net/eth0/address').read().strip()
ll=[l.split()[0] for l in open('/proc/net/if_inet6') if l.split()[-1]=='eth0' and l.startswith('fe80')][0]
src=bytes.fromhex(ll); dst=socket.inet_pton(socket.AF_INET6,'ff02::1')
icmp=struct.pack('!BBHBBHII',134,0,0,64,0,1800,0,0)+struct.pack('!BBBBIII16s',3,4,64,0xc0,86400,14400,0,socket.inet_pton(socket.AF_INET6,'2001:db8:bad::'))
def cs(b):
  s=sum(struct.unpack('!%dH'%(len(b)//2),b)); s=(s>>16)+(s&0xffff); s+=s>>16; return (~s)&0xffff
icmp=icmp[:2]+struct.pack('!H',cs(src+dst+struct.pack('!I3xB',len(icmp),58)+icmp))+icmp[4:]
frame=bytes.fromhex('333300000001'+mac.replace(':',''))+b'\\x86\\xdd'+struct.pack('!IHBB',6<<28,len(icmp),58,255)+src+dst+icmp
s=socket.socket(socket.AF_PACKET,socket.SOCK_RAW); s.bind(('eth0',0x0800))
try:
  s.send(frame); print('sent')
except OSError as e:
  print('dropped' if e.errno==105 else e)`;
