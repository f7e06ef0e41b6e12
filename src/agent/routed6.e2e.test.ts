import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startLab, type Lab } from '../testkit/lab.js';
import { within } from '../testkit/host.js';
import { OUTSIDE, startTor, type Tor } from '../testkit/tor.js';
import { ProcessRunner } from '../exec/index.js';
import { WEFT_BIN } from '../testkit/server.js';

/**
 * Routed networks with IPv6 (issue 19) on two simulated hosts with an IPv6 underlay (fd99:6::/64 beside
 * the IPv4 one) and a top-of-rack router running bird (AS 64512) with an "outside" namespace behind it.
 * Red's `fabric` is dual-stack and announced by BGP (an ipv6 channel on each IPv4 session); blue's `flat`
 * is dual-stack without BGP (hosts route each other's IPv6 blocks to their IPv6 underlay addresses).
 */
const root = process.getuid?.() === 0;
const hasBird = ['/usr/sbin/bird', '/usr/bin/bird'].some((f) => existsSync(f));
const skip = (!root && 'needs root') || (!hasBird && 'needs bird2 (scripts/setup.sh installs it)');
const runner = new ProcessRunner();
const U6 = 'fd99:6::';
const OUT6 = OUTSIDE.ip6;
let lab: Lab;
let tor: Tor | undefined;
const bg: ChildProcess[] = [];
const ip = new Map<string, string>();
const ip6 = new Map<string, string>();

const api = async (m: string, p: string, b?: unknown) => {
  const r = await lab.api(m, p, b);
  assert.ok(r.status < 300, `${m} ${p}: ${r.status} ${JSON.stringify(r.json)}`);
  return r.json;
};
const ns = (n: string) => `${lab.tag}-${n}`;
const sh = (n: string, argv: string[], input?: string) => lab.exec(ns(n), argv, input === undefined ? {} : { input });
const ping6 = async (from: string, to: string) => (await sh(from, ['ping', '-6', '-c', '1', '-W', '1', to])).code === 0;
/** The TCP echo in `to` answers with the address it sees the connection come from. */
const peerSeenBy = async (from: string, to: string) => (await sh(from, ['busybox', 'nc', '-w', '1', to, '8888'], 'x\n')).stdout.trim().replace(/^::ffff:/, '');
const torRoutes6 = async () => (tor as Tor).routes('-6');

/** What red's namespaces hold on both hosts (tables, IPv6 routes, conntrack), for a failure's message. */
async function tenantState(): Promise<string> {
  const id = (await api('GET', '/api/v1/tenants/red')).id as number;
  const out: string[] = [];
  for (const i of [1, 2]) {
    const tns = `${lab.tag}${i}-t${id}`;
    for (const argv of [['nft', 'list', 'ruleset'], ['ip', '-6', 'route'], ['conntrack', '-L', '-f', 'ipv6']]) {
      const r = await runner.run(['ip', 'netns', 'exec', tns, ...argv], { allowFailure: true });
      out.push(`--- h${i} ${argv.join(' ')}\n${r.stdout}${r.stderr}`);
    }
  }
  return out.join('\n');
}

async function run(name: string, host: number, conflist: string): Promise<void> {
  const netns = await lab.container(name);
  const r = await lab.hosts[host]!.cni('ADD', { conflist, containerId: name, netns });
  assert.equal(r.code, 0, r.stdout);
  const addrs = (r.json.ips as Array<{ address: string }>).map((x) => x.address.split('/')[0] as string);
  ip.set(name, addrs.find((a) => !a.includes(':')) as string);
  ip6.set(name, addrs.find((a) => a.includes(':')) as string);
  whoami(name);
}

/** A TCP server on 8888 (both families) saying who connected. */
function whoami(name: string): void {
  bg.push(spawn('ip', ['netns', 'exec', ns(name), process.execPath, '-e',
    "require('net').createServer((s) => s.end(s.remoteAddress + '\\n')).listen(8888, '::')"], { stdio: 'ignore' }));
}

before(async () => {
  if (skip) return;
  lab = await startLab('r6', 2, { underlay6: U6 });
  tor = await startTor(runner, lab, U6);
  whoami('out');
  await api('POST', '/api/v1/tenants', { name: 'red' });
  await api('POST', '/api/v1/tenants', { name: 'blue' });
  await api('POST', '/api/v1/tenants/red/networks', { name: 'fabric', subnet: '10.77.0.0/16', subnet6: 'fd00:77::/64', encap: 'routed', bgpPeers: [tor.ip], bgpPeerAs: 64512 });
  await api('POST', '/api/v1/tenants/blue/networks', { name: 'flat', subnet: '10.78.0.0/24', subnet6: 'fd00:78::/64', encap: 'routed', blockSize: 27 });
  for (const [t, n, g] of [['red', 'fabric', 'db'], ['blue', 'flat', 'web']] as const) await api('POST', `/api/v1/tenants/${t}/groups`, { name: g, network: n });
  for (const h of lab.hosts) assert.ok(await within(5000, async () => existsSync(join(h.dir, 'net.d', 'weft-blue-web.conflist'))) >= 0);
  for (const [name, host, conflist] of [['r1', 0, 'weft-red-db'], ['r2', 1, 'weft-red-db'], ['r3', 0, 'weft-red-db'], ['b1', 0, 'weft-blue-web'], ['b2', 1, 'weft-blue-web']] as const) {
    await run(name, host, conflist);
  }
});
after(async () => {
  for (const c of bg) c.kill('SIGKILL');
  await tor?.stop();
  await lab?.cleanup();
});

test('hosts report their IPv6 underlay; each endpoint\'s IPv6 address is in the block paired with its IPv4 one; the router learns the IPv6 blocks by BGP', { skip }, async () => {
  const hosts = (await api('GET', '/api/v1/hosts')).items as Array<{ name: string; vtepIp6?: string }>;
  assert.deepEqual(hosts.map((h) => h.vtepIp6).sort(), [`${U6}2`, `${U6}3`]);
  assert.deepEqual(['r1', 'r2', 'r3'].map((n) => [ip.get(n), ip6.get(n)]), [
    ['10.77.0.2', 'fd00:77::2'], ['10.77.0.64', 'fd00:77:0:0:40::'], ['10.77.0.3', 'fd00:77::3'],
  ], 'a /26 and its /74 per host');
  const t = await within(20_000, async () => {
    const r = await torRoutes6();
    return r.includes(`fd00:77::/74 via ${U6}2`) && r.includes(`fd00:77:0:0:40::/74 via ${U6}3`);
  }, 200);
  assert.ok(t >= 0, `the router learns both IPv6 blocks, each through its host's IPv6 underlay address: ${await torRoutes6()}`);
  assert.doesNotMatch(await torRoutes6(), /fd00:78/, "blue's network is not announced");
  // A container's IPv6 has no on-link prefix: its subnet and the rest go through the gateway.
  const routes = (await sh('r1', ['ip', '-6', 'route', 'show'])).stdout;
  assert.match(routes, /fd00:77::\/64 via fd00:77::1 dev eth0/);
  assert.match(routes, /default via fd00:77::1 dev eth0/);
});

test('over IPv6, containers on different hosts and on one host talk by their addresses, without NAT; blue routes host to host without BGP', { skip }, async () => {
  assert.ok(await within(10_000, () => ping6('r1', ip6.get('r2') as string), 200) >= 0, 'r1 reaches r2 on another host');
  assert.equal(await peerSeenBy('r2', ip6.get('r1') as string), ip6.get('r2'), 'r1 sees r2\'s own IPv6 address');
  assert.equal(await peerSeenBy('r1', ip6.get('r2') as string), ip6.get('r1'));
  assert.ok(await within(5000, () => ping6('r1', ip6.get('r3') as string), 200) >= 0, 'r1 reaches r3 on its own host (routed by the tenant, never bridged)');
  assert.equal(await peerSeenBy('r3', ip6.get('r1') as string), ip6.get('r3'));
  assert.ok(await within(10_000, () => ping6('b1', ip6.get('b2') as string), 200) >= 0, 'blue: b1 reaches b2 across hosts without BGP');
  assert.equal(await peerSeenBy('b2', ip6.get('b1') as string), ip6.get('b2'));
  const hostRoutes = (await runner.run(['ip', '-n', lab.hosts[0]!.ns, '-6', 'route', 'show', 'proto', '87'])).stdout;
  assert.match(hostRoutes, new RegExp(`fd00:78:0:0:2000::/67 via ${U6}3`), `blue's h2 IPv6 block straight to h2's IPv6 underlay: ${hostRoutes}`);
  assert.equal(await peerSeenBy('r2', ip.get('r1') as string), ip.get('r2'), 'IPv4 still works beside it');
});

test('an outside machine behind the router reaches a container by its IPv6 address and is seen as itself; a network without BGP leaves as its host', { skip }, async () => {
  assert.ok(await within(10_000, () => ping6('out', ip6.get('r2') as string), 200) >= 0, 'outside → r2 over IPv6');
  assert.equal(await peerSeenBy('out', ip6.get('r2') as string), OUT6, 'r2 sees the outside machine\'s address (no NAT either way)');
  assert.equal(await peerSeenBy('r2', OUT6), ip6.get('r2'), 'r2 → outside by its own IPv6 address (its network is announced)');
  assert.equal(await peerSeenBy('b1', OUT6), `${U6}2`, "blue's IPv6 is known to no router: b1 goes out as its host's IPv6 address");
});

test('tenants stay apart over IPv6: another tenant\'s routed addresses are refused on every host', { skip }, async () => {
  assert.ok(!(await ping6('b1', ip6.get('r2') as string)), 'blue b1 (h1) cannot reach red r2 (h2)');
  assert.ok(!(await ping6('b1', ip6.get('r1') as string)), 'nor red r1 on its own host');
  assert.ok(!(await ping6('r2', ip6.get('b2') as string)), 'nor red blue');
  assert.equal(await peerSeenBy('b2', ip6.get('r1') as string), '', 'nor by TCP');
});

test('policy holds on routed IPv6: a group rule refuses one endpoint\'s IPv6 connections, the rest pass', { skip }, async () => {
  await api('POST', '/api/v1/tenants/red/policies', { name: 'db-apart', rules: [{ id: '1', direction: 'in', action: 'deny', protocol: 'tcp', ports: '8888', fromGroup: 'db' }] });
  await api('PATCH', '/api/v1/tenants/red/groups/db', { policies: ['db-apart'] });
  assert.ok(await within(5000, async () => (await peerSeenBy('r1', ip6.get('r2') as string)) === '', 100) >= 0, 'r1 → r2:8888 over IPv6 refused across hosts');
  assert.equal(await peerSeenBy('r3', ip6.get('r1') as string), '', 'and on one host');
  assert.ok(await ping6('r1', ip6.get('r2') as string), 'what it does not deny still passes');
  const why = (await api('GET', `/api/v1/tenants/red/explain?from=${ip6.get('r1')}&to=${ip6.get('r2')}&protocol=tcp&port=8888`)).allowed;
  assert.equal(why, false, 'explain says the same');
  await api('PATCH', '/api/v1/tenants/red/groups/db', { policies: [] });
  // (A clean-clone CI run once saw this stay refused for 5 s; not reproduced since: if it comes back, the
  // message says what both tenant namespaces held.)
  // Each try is kept (when, exit code, what nc printed), so a failure says whether the connection was
  // refused, timed out, or answered with something else.
  const tries: string[] = [];
  const since = Date.now();
  const redId = (await api('GET', '/api/v1/tenants/red')).id as number;
  // Whether each host's tenant namespace still has a policy (its forward chain) when the try fails.
  const held = async () => (await Promise.all([1, 2].map((i) => runner.run(['ip', 'netns', 'exec', `${lab.tag}${i}-t${redId}`, 'nft', 'list', 'chain', 'inet', 'weft', 'forward'], { allowFailure: true }))))
    .map((r, i) => `h${i + 1} ${r.code === 0 ? 'has' : 'has no'} forward chain`).join(', ');
  const passes = async () => {
    const r = await sh('r1', ['busybox', 'nc', '-w', '1', ip6.get('r2') as string, '8888'], 'x\n');
    const ok = r.stdout.trim().replace(/^::ffff:/, '') === ip6.get('r1');
    // What the hosts held, at the first failed try only (two more commands a try would eat the window).
    const first = !ok && !tries.some((t) => t.includes('forward chain'));
    tries.push(`+${Date.now() - since} ms: exit ${r.code}, out ${JSON.stringify(r.stdout)}, err ${JSON.stringify(r.stderr)}${first ? `; ${await held()}` : ''}`);
    return ok;
  };
  const agentLogs = () => lab.hosts.map((h) => `--- ${h.name} agent.log\n${existsSync(join(h.dir, 'agent.log')) ? readFileSync(join(h.dir, 'agent.log'), 'utf8').split('\n').slice(-20).join('\n') : '(none)'}`).join('\n');
  if (await within(5000, passes, 100) < 0) assert.fail(`and passes again: tries:\n${tries.join('\n')}\nat the end: ${await held()}\n${agentLogs()}\n${await tenantState()}`);
  // Outside IPv6 addresses are decided by the IPv6 CIDRs they are in.
  await api('POST', '/api/v1/tenants/red/policies', { name: 'no-outside', rules: [{ id: '1', direction: 'in', action: 'deny', protocol: 'tcp', ports: '8888', fromCidr: 'fd98::/64' }] });
  await api('PATCH', '/api/v1/tenants/red/groups/db', { policies: ['no-outside'] });
  assert.ok(await within(5000, async () => (await peerSeenBy('out', ip6.get('r2') as string)) === '', 100) >= 0, 'the outside no longer gets to r2:8888 over IPv6');
  assert.equal(await peerSeenBy('r1', ip6.get('r2') as string), ip6.get('r1'), 'r1 still does');
  assert.equal(await peerSeenBy('out', ip.get('r2') as string), OUTSIDE.ip, 'nor does an IPv6 rule touch IPv4 from outside');
  await api('PATCH', '/api/v1/tenants/red/groups/db', { policies: [] });
});

test('an endpoint deleted gives its IPv6 block back: the host stops routing and announcing it', { skip }, async () => {
  assert.match(await torRoutes6(), /fd00:77:0:0:40::\/74/);
  const r = await lab.hosts[1]!.cni('DEL', { conflist: 'weft-red-db', containerId: 'r2', netns: `/run/netns/${ns('r2')}` });
  assert.equal(r.code, 0, r.stdout);
  assert.ok(await within(8000, async () => !(await torRoutes6()).includes('fd00:77:0:0:40::/74'), 100) >= 0, `withdrawn from the router: ${await torRoutes6()}`);
  const h2 = (await runner.run(['ip', '-n', lab.hosts[1]!.ns, '-6', 'route', 'show', 'proto', '87'])).stdout;
  assert.doesNotMatch(h2, /fd00:77:0:0:40::\/74/, `h2 no longer routes it into red: ${h2}`);
});

test('--uninstall stops bird and removes the IPv6 routes with the IPv4 ones', { skip }, async () => {
  const h1 = lab.hosts[0]!;
  assert.match((await runner.run(['ip', '-n', h1.ns, '-6', 'route', 'show', 'proto', '87'])).stdout, /fd00:77::\/74/);
  await h1.agent.stop('SIGTERM');
  const un = await runner.run(['nsenter', `--net=/run/netns/${h1.ns}`, process.execPath, WEFT_BIN, 'agent', '--uninstall', '--state-dir', join(h1.dir, 'agent-state'),
    '--netns-prefix', `${lab.tag}1-`, '--cni-conf-dir', join(h1.dir, 'net.d'), '--cni-bin-dir', join(h1.dir, 'bin'), '--run-dir', join(h1.dir, 'run'), '--docker-plugin', 'none'], { allowFailure: true });
  assert.equal(un.code, 0, un.stderr);
  assert.match(un.stdout, /routed networks' routes/);
  for (const family of ['-4', '-6']) assert.equal((await runner.run(['ip', '-n', h1.ns, family, 'route', 'show', 'proto', '87'])).stdout.trim(), '', `no ${family} route of Weft's left`);
});
