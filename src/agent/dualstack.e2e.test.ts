import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { startLab, type Lab } from '../testkit/lab.js';
import { within } from '../testkit/host.js';
import { endpointId, linkLocalOf } from '../model/index.js';

/**
 * Dual stack on a 2-host lab (issue 19): tenants default and blue with the same dual-stack network
 * (10.1.2.0/24 and fd00:1:2::/64), red with an IPv4-only one. Real CNI ADDs, real packets: IPv6 on one
 * host and across the overlay, tenants isolated, the policy deciding both families alike, and the guard
 * refusing forged IPv6 sources, neighbour advertisements and all IPv6 in an IPv4-only tenant.
 */
const root = process.getuid?.() === 0;
let lab: Lab;
const ip = new Map<string, string>();
const ip6 = new Map<string, string>();

before(async () => {
  if (!root) return;
  lab = await startLab('ds', 2);
  const ok = async (m: string, p: string, b?: unknown) => { const r = await lab.api(m, p, b); assert.ok(r.status < 300, `${m} ${p}: ${r.status} ${JSON.stringify(r.json)}`); };
  for (const t of ['blue', 'red']) await ok('POST', '/api/v1/tenants', { name: t });
  for (const t of ['default', 'blue']) {
    await ok('POST', `/api/v1/tenants/${t}/networks`, { name: 'net', subnet: '10.1.2.0/24', subnet6: 'fd00:1:2::/64', encrypt: false });
    for (const g of ['db', 'web', 'other']) await ok('POST', `/api/v1/tenants/${t}/groups`, { name: g, network: 'net' });
  }
  await ok('POST', '/api/v1/tenants/red/networks', { name: 'net', subnet: '10.1.2.0/24', encrypt: false });
  await ok('POST', '/api/v1/tenants/red/groups', { name: 'db', network: 'net' });
  for (const h of lab.hosts) assert.ok(await within(5000, async () => existsSync(join(h.dir, 'net.d', 'weft-red-db.conflist'))) >= 0);
});
after(async () => lab?.cleanup());

async function run(name: string, host: number, conflist: string): Promise<any> {
  const netns = await lab.container(name);
  const r = await lab.hosts[host]!.cni('ADD', { conflist, containerId: name, netns });
  assert.equal(r.code, 0, r.stdout);
  ip.set(name, r.json.ips[0].address.split('/')[0]);
  if (r.json.ips[1]) ip6.set(name, r.json.ips[1].address.split('/')[0]);
  return r.json;
}
const c = (name: string) => `${lab.tag}-${name}`;
const ping = async (from: string, to: string, extra: string[] = []) => (await lab.exec(c(from), ['ping', '-c', '1', '-W', '1', ...extra, to])).code === 0;
/**
 * A one-shot iperf3 server in `name` on `port`; `stop` ends it by the pid it wrote (a namespace does not
 * separate processes: a `pkill -f` there would match any such iperf3 on the machine).
 */
async function iperfServer(name: string, port: number, timeoutMs: number): Promise<{ stop(): Promise<void> }> {
  const pidFile = join(lab.hosts[0]!.dir, `iperf3-${name}-${port}.pid`);
  const done = lab.exec(c(name), ['iperf3', '-s', '-1', '-p', String(port), '-I', pidFile], { timeoutMs }).catch(() => undefined);
  // iperf3 writes its pid file before it listens: then it is there to be connected to, and stopped.
  await within(3000, async () => existsSync(pidFile), 50);
  return {
    async stop() {
      const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8').trim()) : 0;
      if (pid > 0) try { process.kill(pid, 'SIGTERM'); } catch { /* it had ended */ }
      await done;
      rmSync(pidFile, { force: true });
    },
  };
}

/** A TCP connection from `from` to `addr`:`port`, where `to` listens on `listen` (a service's VIP: its target port) (iperf3, 1 s). */
async function tcp(from: string, to: string, addr: string, port: number, listen = port): Promise<boolean> {
  const srv = await iperfServer(to, listen, 10_000);
  const cli = await lab.exec(c(from), ['iperf3', '-c', addr, '-p', String(port), '-t', '1', '--connect-timeout', '1000'], { timeoutMs: 8000 });
  await srv.stop();
  return cli.code === 0;
}

test('a dual-stack ADD: both addresses and both default routes in the CNI result and in the container', { skip: !root && 'needs root' }, async () => {
  const r = await run('a1', 0, 'weft-default-db');
  assert.deepEqual(r.ips.map((x: any) => [x.address, x.gateway]), [['10.1.2.2/24', '10.1.2.1'], ['fd00:1:2::2/64', 'fd00:1:2::1']]);
  assert.deepEqual(r.routes, [{ dst: '0.0.0.0/0', gw: '10.1.2.1' }, { dst: '::/0', gw: 'fd00:1:2::1' }]);
  const addrs = JSON.parse((await lab.exec(c('a1'), ['ip', '-6', '-j', 'addr', 'show', 'dev', 'eth0'])).stdout)[0].addr_info as Array<{ local: string; prefixlen: number; tentative?: boolean }>;
  assert.deepEqual(addrs.map((a) => `${a.local}/${a.prefixlen}`).sort(), ['fd00:1:2::2/64', 'fe80::57:aff:fe01:202/64'], 'the IPAM address and the MAC-derived link-local, nothing the kernel chose');
  assert.ok(addrs.every((a) => !a.tentative), 'no address left tentative (no DAD)');
  const route = (await lab.exec(c('a1'), ['ip', '-6', 'route', 'show', 'default'])).stdout;
  assert.match(route, /default via fd00:1:2::1 dev eth0/);
  assert.ok(await within(3000, () => ping('a1', 'fd00:1:2::1')) >= 0, 'the gateway answers on IPv6');
  const netns = `/run/netns/${c('a1')}`;
  assert.deepEqual(await lab.hosts[0]!.cni('CHECK', { conflist: 'weft-default-db', containerId: 'a1', netns }).then((x) => [x.code, x.stdout]), [0, '']);
  await lab.exec(c('a1'), ['ip', 'addr', 'del', 'fd00:1:2::2/64', 'dev', 'eth0']);
  const broken = await lab.hosts[0]!.cni('CHECK', { conflist: 'weft-default-db', containerId: 'a1', netns });
  assert.match(broken.stdout, /lacks fd00:1:2::2\/64/, 'CHECK sees the IPv6 address gone');
  await lab.exec(c('a1'), ['ip', 'addr', 'add', 'fd00:1:2::2/64', 'dev', 'eth0', 'nodad']);
});

test('IPv6 between containers on one host and across hosts over VXLAN, at full MTU', { skip: !root && 'needs root' }, async () => {
  await run('a2', 0, 'weft-default-web');
  await run('a3', 1, 'weft-default-web');
  assert.ok(await within(3000, () => ping('a2', ip6.get('a1') as string)) >= 0, 'same host');
  const t = await within(5000, () => ping('a3', ip6.get('a1') as string), 100);
  assert.ok(t >= 0, 'across hosts');
  console.log(`# cross-host IPv6 reachable ${t} ms after the ADD`);
  // 1450 - 40 (IPv6) - 8 (ICMPv6) = 1402 bytes of payload, not fragmented.
  assert.ok(await ping('a3', ip6.get('a1') as string, ['-M', 'do', '-s', '1402']), 'a full-size IPv6 packet crosses the overlay');
  assert.ok(await ping('a3', ip.get('a1') as string), 'and IPv4 still does');
});

test('tenants reusing the same IPv6 subnet stay apart; an IPv4-only tenant carries no IPv6 at all', { skip: !root && 'needs root' }, async () => {
  await run('b1', 0, 'weft-blue-db');
  await run('b2', 1, 'weft-blue-db');
  await run('b3', 1, 'weft-blue-db');
  assert.equal(ip6.get('b1'), ip6.get('a1'), 'blue reuses default\'s IPv6 addresses');
  assert.ok(await within(5000, () => ping('b1', ip6.get('b2') as string), 100) >= 0, 'blue reaches blue across hosts');
  assert.equal(ip6.get('b3'), 'fd00:1:2::4');
  assert.equal(ip6.get('a3'), 'fd00:1:2::4', 'default has its own fd00:1:2::4 (a3)');
  await run('b4', 1, 'weft-blue-db');
  assert.equal(ip6.get('b4'), 'fd00:1:2::5');
  assert.ok(await within(3000, () => ping('b1', 'fd00:1:2::5')) >= 0, 'blue reaches its fd00:1:2::5 on the other host');
  assert.equal(await ping('a1', 'fd00:1:2::5'), false, 'default cannot reach blue\'s fd00:1:2::5 (default has none)');

  const r1 = await run('r1', 0, 'weft-red-db');
  const r2 = await run('r2', 0, 'weft-red-db');
  assert.equal(r1.ips.length, 1, 'an IPv4-only network gives one address');
  assert.equal(r2.ips.length, 1);
  // A container in red adds IPv6 itself: nothing of it crosses the bridge.
  for (const [n, a] of [['r1', 'fd00:9::1'], ['r2', 'fd00:9::2']] as const) {
    assert.equal((await lab.exec(c(n), ['ip', 'addr', 'add', `${a}/64`, 'dev', 'eth0', 'nodad'])).code, 0);
  }
  assert.equal(await ping('r1', 'fd00:9::2'), false, 'no IPv6 in an IPv4-only tenant, even between its own containers');
  assert.ok(await ping('r1', ip.get('r2') as string), 'its IPv4 works');
});

test('policy decides IPv6 as it decides IPv4: the same group rule, the same verdict for each family', { skip: !root && 'needs root' }, async () => {
  const ok = async (m: string, p: string, b?: unknown) => { const r = await lab.api(m, p, b); assert.ok(r.status < 300, `${m} ${p}: ${r.status} ${JSON.stringify(r.json)}`); };
  await ok('POST', '/api/v1/tenants/default/policies', { name: 'db-in', rules: [
    { id: 'deny-tcp', priority: 1, direction: 'in', action: 'deny', protocol: 'tcp' },
    { id: 'web', priority: 10, direction: 'in', action: 'allow', protocol: 'tcp', ports: '5201', fromGroup: 'web' },
  ] });
  await run('a4', 1, 'weft-default-other');
  await ok('PATCH', '/api/v1/tenants/default/groups/db', { policies: ['db-in'] });
  // a1 is db (host 1); a2 is web (host 1), a3 web (host 2), a4 other (host 2).
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline && await tcp('a4', 'a1', ip6.get('a1') as string, 5202)) await new Promise((r) => setTimeout(r, 200));
  for (const fam of [ip, ip6]) {
    const to = fam.get('a1') as string;
    assert.equal(await tcp('a2', 'a1', to, 5201), true, `web → db ${to}:5201 allowed (same host)`);
    assert.equal(await tcp('a3', 'a1', to, 5201), true, `web → db ${to}:5201 allowed (across hosts)`);
    assert.equal(await tcp('a3', 'a1', to, 5202), false, `web → db ${to}:5202 denied`);
    assert.equal(await tcp('a4', 'a1', to, 5201), false, `other → db ${to}:5201 denied`);
  }
  assert.ok(await ping('a4', ip6.get('a1') as string), 'ICMPv6 is not tcp: still allowed');
  // An icmp rule decides ping in both families (ICMPv6 is ICMP to the compiler).
  await ok('POST', '/api/v1/tenants/default/policies/db-in/rules', { id: 'no-ping', priority: 5, direction: 'in', action: 'deny', protocol: 'icmp' });
  assert.ok(await within(5000, async () => !(await ping('a4', ip6.get('a1') as string)), 200) >= 0, 'ping6 to db denied by an icmp rule');
  assert.equal(await ping('a4', ip.get('a1') as string), false, 'and ping');
  assert.ok(await ping('a4', ip6.get('a3') as string), 'ping6 to web (no such rule) still passes');
  // Link-local unicast has no class: not forwarded, so it cannot slip past db's rules.
  const ll = linkLocalOf((await lab.exec(c('a1'), ['cat', '/sys/class/net/eth0/address'])).stdout.trim());
  // (iperf3 takes no zone index: a Python connect does.)
  const srv = await iperfServer('a1', 5202, 8000);
  const connect = (addr: string) => lab.exec(c('a2'), ['python3', '-c', `import socket; socket.create_connection(('${addr}', 5202), timeout=1).close()`], { timeoutMs: 5000 });
  assert.notEqual((await connect(`${ll}%eth0`)).code, 0, 'what db refuses on its address (a2 on its host) is not reached at its link-local one');
  await srv.stop();
  await ok('PATCH', '/api/v1/tenants/default/groups/db', { policies: [] });
  assert.ok(await within(5000, () => tcp('a4', 'a1', ip6.get('a1') as string, 5202), 200) >= 0, 'and with the policy gone, allowed again');
});

test('an IPv6 CIDR rule selects the endpoints whose IPv6 address it covers, deciding both families, on both hosts; a rule added later too', { skip: !root && 'needs root' }, async () => {
  const ok = async (m: string, p: string, b?: unknown) => { const r = await lab.api(m, p, b); assert.ok(r.status < 300, `${m} ${p}: ${r.status} ${JSON.stringify(r.json)}`); };
  // a1 is db (host 1); a2 web (host 1), a3 web (host 2), a4 other (host 2).
  await ok('POST', '/api/v1/tenants/default/policies', { name: 'db-six', rules: [
    { id: 'deny-tcp', priority: 1, direction: 'in', action: 'deny', protocol: 'tcp' },
    { id: 'a4', priority: 10, direction: 'in', action: 'allow', protocol: 'tcp', ports: '5201', fromCidr: `${ip6.get('a4')}/128` },
  ] });
  await ok('PATCH', '/api/v1/tenants/default/groups/db', { policies: ['db-six'] });
  try {
    assert.ok(await within(8000, () => tcp('a4', 'a1', ip6.get('a1') as string, 5201), 200) >= 0, 'a4 → db over IPv6 allowed by the /128 of its IPv6 address');
    for (const fam of [ip, ip6]) {
      const to = fam.get('a1') as string;
      assert.equal(await tcp('a4', 'a1', to, 5201), true, `a4 → db ${to}:5201 allowed (across hosts): its IPv6 address is in the CIDR`);
      assert.equal(await tcp('a3', 'a1', to, 5201), false, `a3 → db ${to}:5201 denied (across hosts): its IPv6 address is not`);
      assert.equal(await tcp('a2', 'a1', to, 5201), false, `a2 → db ${to}:5201 denied (same host)`);
    }
    // A rule added while the others are in force (an incremental compile): the whole /64.
    await ok('POST', '/api/v1/tenants/default/policies/db-six/rules', { id: 'net', priority: 5, direction: 'in', action: 'allow', protocol: 'tcp', ports: '5202', fromCidr: 'fd00:1:2::/64' });
    assert.ok(await within(8000, () => tcp('a2', 'a1', ip6.get('a1') as string, 5202), 200) >= 0, 'the /64 rule is in force');
    for (const fam of [ip, ip6]) {
      const to = fam.get('a1') as string;
      assert.equal(await tcp('a3', 'a1', to, 5202), true, `a3 → db ${to}:5202 allowed by the /64`);
      assert.equal(await tcp('a3', 'a1', to, 5201), false, `a3 → db ${to}:5201 still denied`);
    }
  } finally {
    await ok('PATCH', '/api/v1/tenants/default/groups/db', { policies: [] });
  }
});

test('IPv6 connections are flow records: named endpoints, the deciding rule, the verdict the datapath gave', { skip: !root && 'needs root' }, async () => {
  const ok = async (m: string, p: string, b?: unknown) => { const r = await lab.api(m, p, b); assert.ok(r.status < 300, `${m} ${p}: ${r.status} ${JSON.stringify(r.json)}`); return r.json; };
  // db-in (the group rule test's policy): tcp denied into db, 5201 allowed from web. a1 db (host 1), a2 web (host 1), a4 other (host 2).
  await ok('PATCH', '/api/v1/tenants/default/groups/db', { policies: ['db-in'] });
  try {
    assert.ok(await within(8000, () => tcp('a2', 'a1', ip6.get('a1') as string, 5201), 200) >= 0, 'web → db over IPv6 allowed');
    assert.equal(await tcp('a4', 'a1', ip6.get('a1') as string, 5202), false, 'other → db:5202 over IPv6 denied');
    type End = { ip: string; port: number; name?: string; group?: string };
    type F = { verdict: string; protocol: string; src: End; dst: End; decidedBy: { policy?: string; rule: string | null }; agrees: boolean };
    const seen = (f: F) => `${f.verdict} ${f.src.ip}/${f.src.group} > ${f.dst.ip}:${f.dst.port}/${f.dst.group} ${f.protocol} by ${f.decidedBy.policy}/${f.decidedBy.rule}${f.agrees ? '' : ' (disagrees)'}`;
    // A SYN behind 48 bytes of destination options (an unknown option the receiver skips): its ports lie
    // past the first 80 bytes, and must still be recorded (the copy is 128 bytes, the walk skips the header).
    const opts = "bytes([0, 5, 0x1e, 44]) + bytes(44)";
    const padded = await lab.exec(c('a4'), ['python3', '-c', `import socket; s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM); s.setsockopt(socket.IPPROTO_IPV6, 59, ${opts}); s.settimeout(1)
try: s.connect(('${ip6.get('a1')}', 5203))
except OSError: pass`], { timeoutMs: 5000 });
    assert.equal(padded.code, 0, `the destination options were set: ${padded.stderr}`);
    const want = [
      `allow ${ip6.get('a2')}/web > ${ip6.get('a1')}:5201/db tcp by db-in/web`,
      `deny ${ip6.get('a4')}/other > ${ip6.get('a1')}:5202/db tcp by db-in/deny-tcp`,
      `deny ${ip6.get('a4')}/other > ${ip6.get('a1')}:5203/db tcp by db-in/deny-tcp`,
    ];
    let all: string[] = [];
    const found = await within(8000, async () => {
      all = ((await ok('GET', '/api/v1/flows?tenant=default&limit=1000')).items as F[]).map(seen);
      return want.every((w) => all.includes(w));
    }, 300);
    assert.ok(found >= 0, `both recorded, named and explained; records: ${all.filter((x) => x.includes(':')).join('; ')}`);
  } finally {
    await ok('PATCH', '/api/v1/tenants/default/groups/db', { policies: [] });
  }
});

test('a tenant that filters nothing records its bridged IPv6 connections from its bridge table, as IPv4 ones', { skip: !root && 'needs root' }, async () => {
  // Blue has no policy, services or marks: its bridged packets skip IP netfilter, and its bridge table logs them.
  assert.ok(await within(8000, () => tcp('b3', 'b2', ip6.get('b2') as string, 5204), 200) >= 0, 'b3 → b2 over IPv6 (one host)');
  assert.ok(await within(8000, () => tcp('b1', 'b2', ip6.get('b2') as string, 5205), 200) >= 0, 'b1 → b2 over IPv6 (across hosts)');
  type End = { ip: string; port: number };
  type F = { verdict: string; protocol: string; src: End; dst: End };
  const want = [`allow ${ip6.get('b3')} > ${ip6.get('b2')}:5204 tcp`, `allow ${ip6.get('b1')} > ${ip6.get('b2')}:5205 tcp`];
  let all: string[] = [];
  const found = await within(8000, async () => {
    const r = await lab.api('GET', '/api/v1/flows?tenant=blue&limit=1000');
    all = ((r.json.items ?? []) as F[]).map((f) => `${f.verdict} ${f.src.ip} > ${f.dst.ip}:${f.dst.port} ${f.protocol}`);
    return want.every((w) => all.includes(w));
  }, 300);
  assert.ok(found >= 0, `both recorded; records: ${all.filter((x) => x.includes(':')).join('; ')}`);
});

test('the guard: a forged IPv6 source and a neighbour advertisement for another\'s address never arrive', { skip: !root && 'needs root' }, async () => {
  const spoofed = async () => Number(/packets (\d+)/.exec((await lab.exec(lab.hosts[0]!.ns, ['ip', 'netns', 'exec', `${lab.tag}1-t1`, 'nft', 'list', 'counter', 'bridge', 'weft', 'spoofed'])).stdout)?.[1] ?? -1);
  const before = await spoofed();
  assert.equal((await lab.exec(c('a2'), ['ip', 'addr', 'add', 'fd00:1:2::99/64', 'dev', 'eth0', 'nodad'])).code, 0);
  assert.equal(await ping('a2', ip6.get('a1') as string, ['-I', 'fd00:1:2::99']), false, 'from a forged IPv6 source: no answer');
  await lab.exec(c('a2'), ['ip', 'addr', 'del', 'fd00:1:2::99/64', 'dev', 'eth0']);
  assert.ok((await spoofed()) > before, 'counted as spoofed');
  // a2 claims a1's address in an unsolicited neighbour advertisement: a1's neighbours must not learn it.
  await lab.exec(c('a2'), ['ip', '-6', 'neigh', 'flush', 'dev', 'eth0']);
  const na = `
import socket, struct
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
target = socket.inet_pton(socket.AF_INET6, '${ip6.get('a1')}')
mac = bytes.fromhex(open('/sys/class/net/eth0/address').read().strip().replace(':', ''))
msg = struct.pack('!BBHI', 136, 0, 0, 0x20000000) + target + bytes([2, 1]) + mac
for _ in range(3): s.sendto(msg, ('ff02::1%eth0', 0, 0, 0))
`;
  const beforeNa = await spoofed();
  assert.equal((await lab.exec(c('a2'), ['python3', '-c', na])).code, 0);
  await new Promise((r) => setTimeout(r, 300));
  assert.ok((await spoofed()) >= beforeNa + 3, 'the advertisements were dropped and counted');
  const mac2 = (await lab.exec(c('a2'), ['cat', '/sys/class/net/eth0/address'])).stdout.trim();
  const learnt = (await lab.exec(c('a3'), ['ip', '-6', 'neigh', 'show'])).stdout + (await lab.exec(c('a1'), ['ip', '-6', 'neigh', 'show'])).stdout;
  assert.ok(!learnt.includes(`${ip6.get('a1')} dev eth0 lladdr ${mac2}`), `no container learnt a1's address at a2's MAC:\n${learnt}`);
  assert.ok(await ping('a2', ip6.get('a1') as string), 'a2\'s own IPv6 still works');
});

test('DNS answers AAAA with a dual-stack container\'s IPv6 address, A with its IPv4 one, and nothing to another tenant', { skip: !root && 'needs root' }, async () => {
  const netns = await lab.container('named');
  const r = await lab.hosts[1]!.cni('ADD', { conflist: 'weft-default-web', containerId: 'named', netns, env: { CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAME=web6' } });
  assert.equal(r.code, 0, r.stdout);
  const [v4, v6] = [r.json.ips[0].address.split('/')[0], r.json.ips[1].address.split('/')[0]];
  const lookup = async (from: string, type: string, name: string) => {
    const out = await lab.exec(c(from), ['busybox', 'nslookup', `-type=${type}`, name, '10.1.2.1'], { timeoutMs: 20_000 });
    return out.stdout + out.stderr;
  };
  assert.ok(await within(5000, async () => (await lookup('a2', 'aaaa', 'web6.default.weft')).includes(`Address: ${v6}`), 200) >= 0, 'AAAA from another host\'s container');
  assert.match(await lookup('a2', 'a', 'web6'), new RegExp(`Address: ${v4.replace(/\./g, '\\.')}`));
  assert.doesNotMatch(await lookup('a2', 'aaaa', 'web6'), /Address: 10\./, 'no IPv4 address in an AAAA answer');
  const blue = await lookup('b1', 'aaaa', 'web6.default.weft');
  assert.ok(!blue.includes(v6), `blue learns nothing of default's names: ${blue}`);
});

test('a service\'s IPv6 VIP balances to its backends\' IPv6 addresses, from this host and the other, and resolves by AAAA', { skip: !root && 'needs root' }, async () => {
  const r = await lab.api('POST', '/api/v1/tenants/default/services', { name: 'dbsvc', network: 'net', selector: { group: 'db' }, ports: [{ port: 80, targetPort: 5301, protocol: 'TCP' }] });
  assert.equal(r.status, 201, JSON.stringify(r.json));
  const vip6 = r.json.vip6 as string;
  assert.match(vip6, /^fd00:1:2::/);
  const via = (from: string) => tcp(from, 'a1', vip6, 80, 5301);
  assert.ok(await within(8000, () => via('a2'), 300) >= 0, `a2 (host 1) reaches db through [${vip6}]:80`);
  assert.ok(await within(8000, () => via('a3'), 300) >= 0, 'a3 (host 2) too');
  const aaaa = await lab.exec(c('a2'), ['busybox', 'nslookup', '-type=aaaa', 'dbsvc', '10.1.2.1'], { timeoutMs: 20_000 });
  assert.ok((aaaa.stdout + aaaa.stderr).includes(`Address: ${vip6}`), aaaa.stdout + aaaa.stderr);
  assert.equal((await lab.api('DELETE', '/api/v1/tenants/default/services/dbsvc')).status, 204);
});

/** A server in `ns` telling each connection its peer's address; stopped by its pid. */
function echoServer(ns: string, addr: string, port: number): ChildProcess {
  return spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', `require('net').createServer((c) => c.end(c.remoteAddress + '\\n')).listen(${port}, '${addr}')`], { stdio: 'ignore' });
}

test('NAT66: IPv6 to the outside leaves as the host, from tenants reusing one subnet; a published port answers over IPv6; the host\'s listeners stay out of reach', { skip: !root && 'needs root' }, async () => {
  // An "outside" network on host 1: 2001:db8:<n>::/64 between its namespace and a machine of its own.
  const hostNs = lab.hosts[0]!.ns;
  await lab.container('out6');
  const out = c('out6');
  const octet = Number(lab.hosts[0]!.vtep.split('.')[2]);
  const [hostAddr, outAddr] = [`2001:db8:${octet}::1`, `2001:db8:${octet}::2`];
  const must = async (ns: string, argv: string[]) => { const r = await lab.exec(ns, argv); assert.equal(r.code, 0, `${argv.join(' ')}: ${r.stderr}`); };
  await must(hostNs, ['ip', 'link', 'add', 'outside6', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', out]);
  await must(hostNs, ['ip', 'addr', 'add', `${hostAddr}/64`, 'dev', 'outside6', 'nodad']);
  await must(hostNs, ['ip', 'addr', 'add', '192.0.2.1/24', 'dev', 'outside6']);
  await must(hostNs, ['ip', 'link', 'set', 'outside6', 'up']);
  await must(out, ['ip', 'addr', 'add', `${outAddr}/64`, 'dev', 'eth0', 'nodad']);
  await must(out, ['ip', 'addr', 'add', '192.0.2.2/24', 'dev', 'eth0']);
  await must(out, ['ip', 'link', 'set', 'eth0', 'up']);
  assert.equal((await lab.exec(hostNs, ['sysctl', '-n', 'net.ipv6.conf.all.forwarding'])).stdout.trim(), '1', 'the host forwards IPv6 while a tenant here has it');
  // The ends of a tenant's IPv6 uplink: fd9f:5e3a:b17c:ffff:: + 4 × its id + 1 (the host's), + 2 (the tenant's).
  const uplink = async (t: string, end = 1) => `fd9f:5e3a:b17c:ffff::${(((await lab.api('GET', `/api/v1/tenants/${t}`)).json.id as number) * 4 + end).toString(16)}`;
  const servers = [echoServer(out, outAddr, 7777), echoServer(hostNs, hostAddr, 7778)];
  try {
    // What a server at addr:port says to a connection from `ns` (bound to `bind`): its peer's address, or '' when none answered.
    const ask = (ns: string, addr: string, port: number, bind?: string) => lab.exec(ns, ['python3', '-c', [
      'import socket', 's = socket.socket(socket.AF_INET6 if ":" in "' + addr + '" else socket.AF_INET)', 's.settimeout(2)', ...(bind ? [`s.bind(('${bind}', 0))`] : []),
      `s.connect(('${addr}', ${port}))`, 'print(s.recv(100).decode().strip())'].join('; ')], { timeoutMs: 8000 }).then((r) => r.stdout.trim());
    const seen = (from: string, addr: string, port: number) => ask(c(from), addr, port);
    const fromOut = (addr: string, port: number, bind?: string) => ask(out, addr, port, bind);
    // Both servers answer (from the host, and from outside) before anything is concluded from silence.
    assert.ok(await within(5000, async () => (await ask(hostNs, outAddr, 7777)) === hostAddr, 100) >= 0, 'the outside server answers the host');
    assert.ok(await within(5000, async () => (await fromOut(hostAddr, 7778)) === outAddr, 100) >= 0, 'the host\'s own listener answers the outside');
    // a1 is default on host 1; b1 is blue on host 1 with the same IPv6 address.
    assert.equal(ip6.get('b1'), ip6.get('a1'));
    for (const from of ['a1', 'b1']) {
      assert.equal(await seen(from, outAddr, 7777), hostAddr, `${from}: the outside sees the host's address`);
    }
    assert.equal(await seen('a1', hostAddr, 7778), '', 'but no tenant over IPv6');
    assert.equal(await ping('a1', await uplink('default')), false, 'its own uplink\'s host end answers nothing');
    assert.equal(await ping('a1', await uplink('blue', 2)), false, 'another tenant\'s uplink is not reached through the host');
    // An outside machine routing the uplinks' /64 through the host reaches no tenant by it.
    await must(out, ['ip', '-6', 'route', 'add', 'fd9f:5e3a:b17c:ffff::/64', 'via', hostAddr]);
    assert.equal((await lab.exec(out, ['ping', '-c', '1', '-W', '1', await uplink('default', 2)])).code === 0, false, 'a tenant\'s uplink is no door from outside');

    // A published port (18081 → 80) of a dual-stack container: reached over IPv6 and IPv4 from outside.
    const netns = await lab.container('pub6');
    const r = await lab.hosts[0]!.cni('ADD', { conflist: 'weft-default-web', containerId: 'pub6', netns, patch: { runtimeConfig: { portMappings: [{ hostPort: 18081, containerPort: 80, protocol: 'tcp' }] } } });
    assert.equal(r.code, 0, r.stdout);
    servers.push(echoServer(c('pub6'), '::', 80));
    const from = (addr: string) => ask(out, addr, 18081);
    assert.ok(await within(5000, async () => (await from(hostAddr)) === outAddr, 200) >= 0, `the published port answers over IPv6 and the container sees the client (${await from(hostAddr)})`);
    assert.equal(await from('192.0.2.1'), '::ffff:192.0.2.2', 'and over IPv4');
    assert.equal(await seen('b1', await uplink('default'), 18081), '', 'not published on an uplink address (blue trying default\'s)');
    // A source inside the uplinks' /64 from outside (blue's tenant end): the reply would go into blue.
    await must(out, ['ip', 'addr', 'add', `${await uplink('blue', 2)}/128`, 'dev', 'eth0', 'nodad']);
    const forged = async () => Number(/packets (\d+) .*uplink addresses only come from/.exec((await lab.exec(hostNs, ['nft', 'list', 'chain', 'inet', 'weft', 'forward'])).stdout)?.[1] ?? NaN);
    const before = await forged();
    assert.equal(await fromOut(hostAddr, 18081, await uplink('blue', 2)), '', 'a forged uplink source from outside gets no answer');
    assert.ok(await forged() > before, 'it was dropped on its way in (the reply would have gone into blue\'s namespace)');
    // A source of the tenant's own subnet6 from outside (posing as a2, fd00:1:2::3: the policy classes by source).
    const posing = async () => Number(/ip6 saddr .*packets (\d+) .*its own addresses never come from outside/.exec((await lab.exec(`${lab.tag}1-t1`, ['nft', 'list', 'chain', 'inet', 'weft', 'uplink_in'])).stdout)?.[1] ?? NaN);
    const was = await posing();
    await must(out, ['ip', 'addr', 'add', `${ip6.get('a2')}/128`, 'dev', 'eth0', 'nodad']);
    assert.equal(await fromOut(hostAddr, 18081, ip6.get('a2')), '', 'an endpoint\'s address from outside gets no answer');
    assert.ok(await posing() > was, 'it was dropped entering the tenant, before its policy could take it for a2');

    // IPv6 CIDRs decide outside addresses by address, as IPv4 CIDRs do: egress from db (a1) to the outside
    // machine's /128 on 7777 denied, to its 7779 not; ingress to web (pub6) from the outside /64 only.
    const ok = async (m: string, path: string, b?: unknown) => { const x = await lab.api(m, path, b); assert.ok(x.status < 300, `${m} ${path}: ${x.status} ${JSON.stringify(x.json)}`); };
    servers.push(echoServer(out, outAddr, 7779));
    assert.ok(await within(5000, async () => (await ask(hostNs, outAddr, 7779)) === hostAddr, 100) >= 0, 'the second outside server answers');
    await ok('POST', '/api/v1/tenants/default/policies', { name: 'db-out6', rules: [
      { id: 'no-7777', priority: 1, direction: 'out', action: 'deny', protocol: 'tcp', ports: '7777', toCidr: `${outAddr}/128` },
    ] });
    await ok('POST', '/api/v1/tenants/default/policies', { name: 'web-in6', rules: [
      { id: 'deny-tcp', priority: 1, direction: 'in', action: 'deny', protocol: 'tcp' },
      { id: 'outside', priority: 10, direction: 'in', action: 'allow', protocol: 'tcp', ports: '80', fromCidr: `2001:db8:${octet}::/64` },
    ] });
    await ok('PATCH', '/api/v1/tenants/default/groups/db', { policies: ['db-out6'] });
    await ok('PATCH', '/api/v1/tenants/default/groups/web', { policies: ['web-in6'] });
    try {
      assert.ok(await within(8000, async () => (await seen('a1', outAddr, 7777)) === '', 200) >= 0, 'db → the outside /128 on 7777 denied');
      assert.equal(await seen('a1', outAddr, 7779), hostAddr, 'db → the outside on 7779 allowed');
      assert.equal(await seen('a2', outAddr, 7777), hostAddr, 'web (no egress rule) → the outside on 7777 allowed');
      assert.ok(await within(8000, async () => (await from('192.0.2.1')) === '', 200) >= 0, 'the published port over IPv4: its source is in no allowed CIDR, denied');
      assert.equal(await from(hostAddr), outAddr, 'over IPv6 from the allowed /64: allowed');
    } finally {
      await ok('PATCH', '/api/v1/tenants/default/groups/db', { policies: [] });
      await ok('PATCH', '/api/v1/tenants/default/groups/web', { policies: [] });
    }
  } finally {
    for (const p of servers) p.kill('SIGKILL');
  }
});

/**
 * IPv6-only networks (subnet6 alone): CNI results with one IPv6 address, no IPv4 in the container, IPv6
 * on one host and across the overlay at full MTU, two tenants reusing the subnet apart, the policy
 * deciding endpoints that have no IPv4 address (classes of their own), and DNS over IPv6 answering AAAA.
 */
test('an IPv6-only network: one IPv6 address, traffic on one host and across hosts, tenants apart, policy by group, DNS over IPv6', { skip: !root && 'needs root' }, async () => {
  const ok = async (m: string, p: string, b?: unknown) => { const r = await lab.api(m, p, b); assert.ok(r.status < 300, `${m} ${p}: ${r.status} ${JSON.stringify(r.json)}`); };
  for (const t of ['default', 'blue']) {
    await ok('POST', `/api/v1/tenants/${t}/networks`, { name: 'six', subnet6: 'fd00:6::/64', encrypt: false });
    for (const g of ['s-db', 's-web', 's-other']) await ok('POST', `/api/v1/tenants/${t}/groups`, { name: g, network: 'six' });
  }
  for (const h of lab.hosts) assert.ok(await within(5000, async () => existsSync(join(h.dir, 'net.d', 'weft-blue-s-other.conflist'))) >= 0);
  const six = new Map<string, string>();
  const add = async (name: string, host: number, conflist: string, env?: Record<string, string>) => {
    const netns = await lab.container(name);
    const r = await lab.hosts[host]!.cni('ADD', { conflist, containerId: name, netns, ...(env ? { env } : {}) });
    assert.equal(r.code, 0, r.stdout);
    assert.equal(r.json.ips.length, 1, `one address: ${r.stdout}`);
    assert.match(r.json.ips[0].address, /^fd00:6::[0-9a-f]+\/64$/);
    assert.deepEqual(r.json.routes, [{ dst: '::/0', gw: 'fd00:6::1' }]);
    six.set(name, r.json.ips[0].address.split('/')[0]);
    return r.json;
  };
  const s1 = await add('s1', 0, 'weft-default-s-db');
  assert.deepEqual(s1.dns?.nameservers, ['fd00:6::1'], 'the resolver is the IPv6 gateway');
  assert.equal((await lab.exec(c('s1'), ['ip', '-4', 'addr', 'show', 'dev', 'eth0'])).stdout.trim(), '', 'no IPv4 address in the container');
  assert.match((await lab.exec(c('s1'), ['ip', '-6', 'route', 'show', 'default'])).stdout, /default via fd00:6::1 dev eth0/);
  await add('s2', 0, 'weft-default-s-web');
  await add('s3', 1, 'weft-default-s-web');
  assert.ok(await within(3000, () => ping('s2', six.get('s1') as string)) >= 0, 'same host');
  assert.ok(await within(5000, () => ping('s3', six.get('s1') as string), 100) >= 0, 'across hosts');
  assert.ok(await ping('s3', six.get('s1') as string, ['-M', 'do', '-s', '1402']), 'a full-size IPv6 packet crosses the overlay');
  assert.ok(await ping('s2', 'fd00:6::1'), 'the gateway answers');

  // Blue reuses the subnet: its fd00:6::5 exists, default's does not.
  for (const [n, h] of [['u1', 1], ['u2', 0], ['u3', 0], ['u4', 1]] as const) await add(n, h, 'weft-blue-s-db');
  assert.deepEqual([six.get('u1'), six.get('s1')], ['fd00:6::2', 'fd00:6::2']);
  assert.equal(six.get('u4'), 'fd00:6::5');
  assert.ok(await within(3000, () => ping('u1', 'fd00:6::5')) >= 0, 'blue reaches its own fd00:6::5');
  assert.equal(await ping('s1', 'fd00:6::5'), false, 'default cannot reach blue\'s fd00:6::5');

  // Policy on endpoints without an IPv4 address: db denies tcp but 5201 from web.
  await add('s4', 1, 'weft-default-s-other');
  await ok('POST', '/api/v1/tenants/default/policies', { name: 's-db-in', rules: [
    { id: 'deny-tcp', priority: 1, direction: 'in', action: 'deny', protocol: 'tcp' },
    { id: 'web', priority: 10, direction: 'in', action: 'allow', protocol: 'tcp', ports: '5201', fromGroup: 's-web' },
  ] });
  await ok('PATCH', '/api/v1/tenants/default/groups/s-db', { policies: ['s-db-in'] });
  const to = six.get('s1') as string;
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline && await tcp('s4', 's1', to, 5202)) await new Promise((r) => setTimeout(r, 200));
  assert.equal(await tcp('s2', 's1', to, 5201), true, 'web → db 5201 allowed (same host)');
  assert.equal(await tcp('s3', 's1', to, 5201), true, 'web → db 5201 allowed (across hosts)');
  assert.equal(await tcp('s3', 's1', to, 5202), false, 'web → db 5202 denied');
  assert.equal(await tcp('s4', 's1', to, 5201), false, 'other → db 5201 denied');
  const explained = await lab.api('GET', `/api/v1/tenants/default/explain?from=${six.get('s4')}&to=${to}&protocol=tcp&port=5201`);
  assert.deepEqual([explained.status, explained.json.allowed, explained.json.to.ip, typeof explained.json.to.endpoint], [200, false, to, 'string'], JSON.stringify(explained.json));

  // weft verify probes over the family both ends have: IPv6 to and from the IPv6-only endpoints (from a
  // dual-stack one too), and agrees with the policy.
  const v = await lab.api('POST', '/api/v1/tenants/default/verify', { flows: ['5201/tcp', '5202/tcp'], timeoutMs: 500 });
  assert.equal(v.status, 200, JSON.stringify(v.json));
  type Probe = { from: string; to: string; flow: string; expected: boolean; observed: boolean };
  const probe = (from: string, to: string, flow: string) => (v.json.results as Probe[]).find((x) => x.from === endpointId(from, 'eth0') && x.to === endpointId(to, 'eth0') && x.flow === flow);
  assert.deepEqual(v.json.differ, [], JSON.stringify(v.json.differ));
  assert.deepEqual([probe('s2', 's1', '5201/tcp')?.observed, probe('s3', 's1', '5202/tcp')?.observed, probe('s4', 's1', '5201/tcp')?.observed], [true, false, false]);
  assert.equal(probe('a2', 's1', '5201/tcp')?.expected, false, 'a dual-stack endpoint (group web of the other network) probes an IPv6-only one over IPv6');
  assert.equal(probe('a2', 's1', '5201/tcp')?.observed, false);

  // A service on the IPv6-only network: an IPv6 VIP alone, balancing to db from both hosts (web may reach
  // db's 5201 through it; other may not), named by AAAA.
  const svc = await lab.api('POST', '/api/v1/tenants/default/services', { name: 'six-svc', network: 'six', selector: { group: 's-db' }, ports: [{ port: 80, targetPort: 5201, protocol: 'TCP' }] });
  assert.equal(svc.status, 201, JSON.stringify(svc.json));
  assert.deepEqual([svc.json.vip, typeof svc.json.vip6], [undefined, 'string']);
  const vip6 = svc.json.vip6 as string;
  const via = (from: string) => tcp(from, 's1', vip6, 80, 5201);
  assert.ok(await within(8000, () => via('s2'), 300) >= 0, `s2 (host 1) reaches db through [${vip6}]:80`);
  assert.ok(await within(8000, () => via('s3'), 300) >= 0, 's3 (host 2) too');
  assert.equal(await via('s4'), false, 'other may not reach db through the VIP either');

  // DNS over IPv6: the gateway answers AAAA for a container of the tenant, nothing for another tenant's.
  await add('s5', 1, 'weft-default-s-web', { CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAME=web6only' });
  await add('u5', 1, 'weft-blue-s-web', { CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAME=blue6only' });
  const lookup = async (from: string, name: string) => {
    const out = await lab.exec(c(from), ['busybox', 'nslookup', '-type=aaaa', name, 'fd00:6::1'], { timeoutMs: 20_000 });
    return out.stdout + out.stderr;
  };
  assert.ok(await within(5000, async () => (await lookup('s2', 'web6only.default.weft')).includes(`Address: ${six.get('s5')}`), 200) >= 0, 'AAAA over IPv6 from another host\'s container');
  assert.match(await lookup('s2', 'six-svc'), new RegExp(`Address: ${vip6}`), 'the service by AAAA');
  const blue = await lookup('u2', 'web6only.default.weft');
  assert.ok(!blue.includes(six.get('s5') as string), `blue learns nothing of default's names: ${blue}`);
  assert.match(await lookup('u2', 'blue6only'), new RegExp(`Address: ${six.get('u5')}`), 'blue resolves its own');
  // A tenant that denies by default still resolves over IPv6 (the query DNATed to its uplink is exempt),
  // while its containers no longer reach each other.
  await ok('PATCH', '/api/v1/tenants/blue', { defaultAction: 'deny' });
  assert.ok(await within(5000, async () => !(await ping('u2', six.get('u3') as string)), 200) >= 0, 'blue denies by default now');
  assert.match(await lookup('u2', 'blue6only'), new RegExp(`Address: ${six.get('u5')}`), 'and still resolves over IPv6');
});
