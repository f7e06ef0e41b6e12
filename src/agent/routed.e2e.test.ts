import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startLab, type Lab } from '../testkit/lab.js';
import { within } from '../testkit/host.js';
import { OUTSIDE, startTor } from '../testkit/tor.js';
import { ProcessRunner, startLineProcess } from '../exec/index.js';
import { WEFT_BIN } from '../testkit/server.js';

/**
 * Routed networks (issue 17) on three simulated hosts and a top-of-rack router: a namespace on the
 * underlay running bird as AS 64512, with an "outside" namespace behind it. Tenant red's network `fabric`
 * is routed and announced by BGP; tenant blue's `flat` is routed without BGP (hosts route to each other on
 * the segment); red also has an overlay network, to mix modes.
 */
const root = process.getuid?.() === 0;
const hasBird = ['/usr/sbin/bird', '/usr/bin/bird'].some((f) => existsSync(f));
const skip = (!root && 'needs root') || (!hasBird && 'needs bird2 (scripts/setup.sh installs it)');
const runner = new ProcessRunner();
let lab: Lab;
let stopTor: (() => Promise<void>) | undefined;
const bg: ChildProcess[] = [];
const ip = new Map<string, string>();
let tor = '';
let torIp = '';
const OUT = OUTSIDE.ip;

const api = async (m: string, p: string, b?: unknown) => {
  const r = await lab.api(m, p, b);
  assert.ok(r.status < 300, `${m} ${p}: ${r.status} ${JSON.stringify(r.json)}`);
  return r.json;
};
const ns = (n: string) => `${lab.tag}-${n}`;
/** Runs in a container (or the outside namespace) of this lab, by its short name. */
const sh = (n: string, argv: string[], input?: string) => lab.exec(ns(n), argv, input === undefined ? {} : { input });
const ping = async (from: string, to: string) => (await sh(from, ['ping', '-c', '1', '-W', '1', to])).code === 0;
/** The TCP echo in `to` answers with the address it sees the connection come from. */
const peerSeenBy = async (from: string, to: string) => (await sh(from, ['busybox', 'nc', '-w', '1', to, '8888'], 'x\n')).stdout.trim();
const torRoutes = async () => (await runner.run(['ip', '-n', tor, '-4', 'route', 'show', 'proto', 'bird'], { allowFailure: true })).stdout;

async function run(name: string, host: number, conflist: string): Promise<void> {
  const netns = await lab.container(name);
  const r = await lab.hosts[host]!.cni('ADD', { conflist, containerId: name, netns });
  assert.equal(r.code, 0, r.stdout);
  ip.set(name, r.json.ips[0].address.split('/')[0]);
  whoami(name);
}

/** A TCP server on 8888 saying who connected (the source address it sees, to tell NAT from none). */
function whoami(name: string): void {
  bg.push(spawn('ip', ['netns', 'exec', ns(name), process.execPath, '-e',
    "require('net').createServer((s) => s.end(s.remoteAddress + '\\n')).listen(8888, '0.0.0.0')"], { stdio: 'ignore' }));
}

before(async () => {
  if (skip) return;
  lab = await startLab('rt', 3);
  const t = await startTor(runner, lab);
  tor = t.ns;
  torIp = t.ip;
  stopTor = t.stop;
  whoami('out');
  await api('POST', '/api/v1/tenants', { name: 'red' });
  await api('POST', '/api/v1/tenants', { name: 'blue' });
  await api('POST', '/api/v1/tenants/red/networks', { name: 'fabric', subnet: '10.77.0.0/16', encap: 'routed', bgpPeers: [torIp], bgpPeerAs: 64512 });
  await api('POST', '/api/v1/tenants/red/networks', { name: 'vx', subnet: '10.1.2.0/24', encrypt: false });
  await api('POST', '/api/v1/tenants/blue/networks', { name: 'flat', subnet: '10.78.0.0/24', encap: 'routed', blockSize: 27 });
  await api('POST', '/api/v1/tenants/blue/networks', { name: 'bvx', subnet: '10.1.3.0/24', encrypt: false });
  for (const [t, n, g] of [['red', 'fabric', 'db'], ['red', 'vx', 'app'], ['blue', 'flat', 'web'], ['blue', 'bvx', 'lb']] as const) await api('POST', `/api/v1/tenants/${t}/groups`, { name: g, network: n });
  for (const h of lab.hosts) assert.ok(await within(5000, async () => existsSync(join(h.dir, 'net.d', 'weft-blue-web.conflist')) && existsSync(join(h.dir, 'net.d', 'weft-blue-lb.conflist'))) >= 0);
  for (const [name, host, conflist] of [['r1', 0, 'weft-red-db'], ['r2', 1, 'weft-red-db'], ['r3', 2, 'weft-red-db'], ['v2', 1, 'weft-red-app'], ['b1', 0, 'weft-blue-web'], ['b2', 1, 'weft-blue-web'], ['bv1', 0, 'weft-blue-lb']] as const) {
    await run(name, host, conflist);
  }
});
after(async () => {
  for (const c of bg) c.kill('SIGKILL');
  await stopTor?.();
  await lab?.cleanup();
});

test('each host holds its own block; the router learns every host\'s block by BGP; no VXLAN device carries the routed network', { skip }, async () => {
  const [r1, r2, r3] = ['r1', 'r2', 'r3'].map((n) => ip.get(n) as string);
  assert.deepEqual([r1, r2, r3], ['10.77.0.2', '10.77.0.64', '10.77.0.128'], 'one /26 per host');
  const t = await within(20_000, async () => {
    const routes = await torRoutes();
    return lab.hosts.every((h, i) => routes.includes(`10.77.0.${i * 64}/26 via ${h.vtep}`));
  }, 200);
  assert.ok(t >= 0, `the router learns all three blocks: ${await torRoutes()}`);
  console.log(`# all three blocks on the router ${t} ms after the last ADD`);
  assert.doesNotMatch(await torRoutes(), /10\.78\./, 'blue\'s network is not announced (it has no BGP peers)');
  const vx = JSON.parse((await runner.run(['ip', '-n', `${lab.tag}1-t2`, '-d', '-j', 'link', 'show', 'type', 'vxlan'])).stdout || '[]') as Array<{ ifname: string }>;
  const vni = (await api('GET', '/api/v1/tenants/red/networks/vx')).vni;
  assert.deepEqual(vx.map((l) => l.ifname), [`wx${vni}`], 'only the overlay network has a VXLAN device');
});

test('containers on different hosts talk by their addresses, without NAT; blue\'s network routes host to host without BGP', { skip }, async () => {
  assert.ok(await within(10_000, () => ping('r1', ip.get('r2') as string), 200) >= 0, 'r1 reaches r2 on another host');
  assert.ok(await within(5000, () => ping('r1', ip.get('r3') as string), 200) >= 0, 'and r3');
  assert.equal(await peerSeenBy('r1', ip.get('r3') as string), ip.get('r1'), 'r3 sees r1\'s own address');
  assert.ok(await within(10_000, () => ping('b1', ip.get('b2') as string), 200) >= 0, 'blue: b1 reaches b2 across hosts without BGP');
  assert.equal(await peerSeenBy('b2', ip.get('b1') as string), ip.get('b2'));
  const hostRoutes = (await runner.run(['ip', '-n', lab.hosts[0]!.ns, '-4', 'route', 'show', 'proto', '87'])).stdout;
  assert.match(hostRoutes, /10\.78\.0\.32\/27 via 198\.19\.\d+\.12/, `blue's h2 block straight to h2: ${hostRoutes}`);
});

test('an outside machine behind the router reaches a container by its address, and is seen by its own', { skip }, async () => {
  assert.ok(await within(10_000, () => ping('out', ip.get('r2') as string), 200) >= 0, 'outside → r2');
  assert.equal(await peerSeenBy('out', ip.get('r2') as string), OUT, 'r2 sees the outside machine\'s address (no NAT either way)');
  assert.equal(await peerSeenBy('r2', OUT), ip.get('r2'), 'r2 → outside by its own address (its network is announced)');
  assert.equal(await peerSeenBy('b1', OUT), lab.hosts[0]!.vtep, 'blue\'s network is known to no router: b1 goes out as its host');
});

test('modes mix in one tenant: red\'s overlay endpoint and its routed ones on other hosts reach each other', { skip }, async () => {
  assert.ok(await within(5000, () => ping('r1', ip.get('v2') as string), 200) >= 0, 'routed r1 (h1) → overlay v2 (h2)');
  assert.ok(await ping('v2', ip.get('r1') as string), 'overlay v2 (h2) → routed r1 (h1)');
  assert.equal(await peerSeenBy('v2', ip.get('r1') as string), ip.get('v2'), 'r1 sees v2 as itself');
  assert.equal(await peerSeenBy('r1', ip.get('v2') as string), ip.get('r1'));
});

test('tenants stay apart: another tenant\'s routed addresses are refused on every host, and nothing reaches a tenant through another', { skip }, async () => {
  assert.ok(!(await ping('b1', ip.get('r2') as string)), 'blue b1 (h1) cannot reach red r2 (h2)');
  assert.ok(!(await ping('b1', ip.get('r1') as string)), 'nor red r1 on its own host');
  assert.ok(!(await ping('r2', ip.get('b2') as string)), 'nor red blue');
  assert.ok(await ping('bv1', OUT), 'blue\'s overlay endpoint reaches the outside (masqueraded)');
  assert.ok(!(await ping('bv1', ip.get('r2') as string)), 'but not red\'s routed r2 on another host: its host drops it before masquerading');
  assert.equal(await peerSeenBy('bv1', ip.get('r2') as string), '', 'nor by TCP');
  const drops = (await runner.run(['ip', 'netns', 'exec', lab.hosts[1]!.ns, 'nft', 'list', 'chain', 'inet', 'weft', 'to_routed'])).stdout;
  assert.match(drops, /ip saddr @routed drop/, 'h2 refuses blue\'s routed source into red');
});

test('policy holds on routed networks: a fromCidr rule refuses the outside, the tenant still passes', { skip }, async () => {
  await api('POST', '/api/v1/tenants/red/policies', { name: 'no-outside', rules: [{ id: '1', direction: 'in', action: 'deny', protocol: 'tcp', ports: '8888', fromCidr: '198.51.100.0/24' }] });
  await api('PATCH', '/api/v1/tenants/red/groups/db', { policies: ['no-outside'] });
  assert.ok(await within(5000, async () => (await peerSeenBy('out', ip.get('r2') as string)) === '', 100) >= 0, 'the outside no longer gets to r2:8888');
  assert.equal(await peerSeenBy('r1', ip.get('r2') as string), ip.get('r1'), 'r1 still does');
  // weft explain and the flow records say the same of the routed endpoint.
  const why = async (from: string) => (await api('GET', `/api/v1/tenants/red/explain?from=${from}&to=${ip.get('r2')}&protocol=tcp&port=8888`)).allowed;
  assert.deepEqual([await why(OUT), await why(ip.get('r1') as string)], [false, true]);
  type F = { host: string; verdict: string; src: { ip: string }; dst: { ip: string; port: number }; decidedBy: { policy?: string; rule: string | null } };
  const denied = async () => ((await api('GET', '/api/v1/flows?tenant=red&protocol=tcp')).items as F[])
    .some((f) => f.host === lab.hosts[1]!.name && f.verdict === 'deny' && f.src.ip === OUT && f.dst.ip === ip.get('r2') && f.dst.port === 8888 && f.decidedBy.policy === 'no-outside' && f.decidedBy.rule === '1');
  assert.ok(await within(5000, denied, 200) >= 0, 'h2 recorded the outside connection it denied, and by which rule');
  await api('PATCH', '/api/v1/tenants/red/groups/db', { policies: [] });
});

test('two routed endpoints on one host reach each other through the tenant\'s routing and its policy, never bridged', { skip }, async () => {
  await run('r4', 0, 'weft-red-db');
  assert.ok(await within(5000, () => ping('r4', ip.get('r1') as string), 100) >= 0, 'r4 reaches r1 on the same host');
  assert.equal(await peerSeenBy('r4', ip.get('r1') as string), ip.get('r4'));
  const tns = `${lab.tag}1-t2`;
  const vni = (await api('GET', '/api/v1/tenants/red/networks/fabric')).vni;
  const ports = JSON.parse((await runner.run(['ip', '-n', tns, '-d', '-j', 'link', 'show', 'master', `wb${vni}`])).stdout) as Array<{ ifname: string; linkinfo?: { info_slave_data?: { isolated?: boolean } } }>;
  assert.ok(ports.length >= 2 && ports.every((l) => l.linkinfo?.info_slave_data?.isolated === true), `every port of the routed bridge is isolated: ${JSON.stringify(ports.map((l) => [l.ifname, l.linkinfo?.info_slave_data?.isolated]))}`);
  await api('POST', '/api/v1/tenants/red/policies', { name: 'db-apart', rules: [{ id: '1', direction: 'in', action: 'deny', protocol: 'tcp', ports: '8888', fromGroup: 'db' }] });
  await api('PATCH', '/api/v1/tenants/red/groups/db', { policies: ['db-apart'] });
  assert.ok(await within(5000, async () => (await peerSeenBy('r4', ip.get('r1') as string)) === '', 100) >= 0, 'the policy now refuses r4 → r1:8888 on the same host');
  assert.equal(await peerSeenBy('r2', ip.get('r1') as string), '', 'and across hosts');
  assert.ok(await ping('r4', ip.get('r1') as string), 'what it does not deny still passes');
  const filtering = JSON.parse((await runner.run(['ip', '-n', tns, '-d', '-j', 'link', 'show', 'type', 'bridge'])).stdout) as Array<{ ifname: string; linkinfo?: { info_data?: { nf_call_iptables?: number } } }>;
  const nf = new Map(filtering.map((b) => [b.ifname, b.linkinfo?.info_data?.nf_call_iptables]));
  const vxVni = (await api('GET', '/api/v1/tenants/red/networks/vx')).vni;
  assert.deepEqual([nf.get(`wb${vni}`), nf.get(`wb${vxVni}`), (await runner.run(['ip', 'netns', 'exec', tns, 'sysctl', '-n', 'net.bridge.bridge-nf-call-iptables'])).stdout.trim()], [0, 1, '0'],
    'while red filters: its overlay bridge passes bridged frames to the policy, the routed one has none to pass, the namespace-wide switch is off');
  await api('PATCH', '/api/v1/tenants/red/groups/db', { policies: [] });
});

test('a host that goes down is withdrawn within the hold time (3 s); the others stop routing to it', { skip }, async () => {
  const h3 = lab.hosts[2]!;
  assert.match(await torRoutes(), /10\.77\.0\.128\/26/);
  // The router's route deletions, stamped by `ip monitor` as the kernel reports them: polling the table
  // instead added a spawn and a sleep to the figure (3,399 ms once on a loaded CI machine).
  let withdrawnAt = 0;
  let listening = false;
  const monitor = startLineProcess(['ip', '-n', tor, '-ts', 'monitor', 'route'], (line) => {
    if (line.includes('blackhole 192.0.2.77')) listening = true;
    const m = /^\[([\d-]+T[\d:.]+)\] Deleted 10\.77\.0\.128\/26 /.exec(line);
    if (m && !withdrawnAt) withdrawnAt = new Date(m[1]!).getTime(); // local time, as ip prints it
  }, () => undefined);
  try {
    // A marker route the monitor must see first: then it is listening.
    await runner.run(['ip', '-n', tor, 'route', 'add', 'blackhole', '192.0.2.77/32']);
    await runner.run(['ip', '-n', tor, 'route', 'del', 'blackhole', '192.0.2.77/32']);
    assert.ok(await within(3000, async () => listening, 20) >= 0, 'the route monitor listens');
    const t0 = Date.now();
    // The host stops answering: its underlay link goes down on its side (the router sees no carrier change).
    await runner.run(['ip', '-n', h3.ns, 'link', 'set', 'underlay', 'down']);
    assert.ok(await within(6000, async () => withdrawnAt > 0, 50) >= 0, `the router withdraws host 3's block: ${await torRoutes()}`);
    const ms = withdrawnAt - t0;
    console.log(`# host 3's block withdrawn from the router ${ms} ms after it went down`);
    // The hold timer runs from the last keepalive received, which came before the link went down.
    assert.ok(ms >= 0 && ms <= 3300, `withdrawn within the 3 s hold time (+ bird's work): ${ms} ms`);
  } finally {
    monitor.stop();
  }
  const h1 = async () => (await runner.run(['ip', '-n', lab.hosts[0]!.ns, '-4', 'route', 'show', '10.77.0.128/26'])).stdout.trim();
  assert.ok(await within(2000, async () => (await h1()) === '', 50) >= 0, `host 1 forgets the route: ${await h1()}`);
  assert.ok(await ping('r1', ip.get('r2') as string), 'the rest keep talking');
});

test('bird outlives an agent restart (this host stays announced) and the restarted agent keeps it; --uninstall stops it and removes the routes', { skip }, async () => {
  const h1 = lab.hosts[0]!;
  const pidFile = join(h1.dir, 'agent-state', 'bird', 'bird.pid');
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  // A bird that exited may stay a zombie until whoever inherited it reaps it: dead all the same.
  const alive = (p: number) => existsSync(`/proc/${p}`) && !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${p}/stat`, 'utf8'));
  assert.ok(alive(pid), 'the agent runs bird');
  await h1.agent.stop('SIGTERM');
  await new Promise((r) => setTimeout(r, 3500));
  assert.ok(alive(pid), 'bird still runs without its agent');
  assert.match(await torRoutes(), /10\.77\.0\.0\/26/, 'and host 1 stays announced past the hold time');
  await h1.agent.start();
  await new Promise((r) => setTimeout(r, 2000));
  assert.equal(Number(readFileSync(pidFile, 'utf8').trim()), pid, 'the restarted agent keeps the same bird');
  assert.ok(await ping('r2', ip.get('r1') as string), 'r1 still reachable');
  await h1.agent.stop('SIGTERM');
  const un = await runner.run(['nsenter', `--net=/run/netns/${h1.ns}`, process.execPath, WEFT_BIN, 'agent', '--uninstall', '--state-dir', join(h1.dir, 'agent-state'),
    '--netns-prefix', `${lab.tag}1-`, '--cni-conf-dir', join(h1.dir, 'net.d'), '--cni-bin-dir', join(h1.dir, 'bin'), '--run-dir', join(h1.dir, 'run'), '--docker-plugin', 'none'], { allowFailure: true });
  assert.equal(un.code, 0, un.stderr);
  assert.match(un.stdout, /the BGP daemon \(bird\)/);
  assert.match(un.stdout, /routed networks' routes/);
  assert.ok(!alive(pid), 'bird is stopped');
  assert.equal((await runner.run(['ip', '-n', h1.ns, '-4', 'route', 'show', 'proto', '87'])).stdout.trim(), '', 'no route of Weft\'s left');
  assert.ok(await within(3300, async () => !(await torRoutes()).includes('10.77.0.0/26'), 50) >= 0, 'the router no longer has host 1\'s block');
});
