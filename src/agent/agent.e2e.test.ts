import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { ProcessRunner } from '../exec/index.js';
import { join } from 'node:path';
import { startTestHost, within, type TestHost } from '../testkit/host.js';
import { WEFT_BIN } from '../testkit/server.js';

const root = process.getuid?.() === 0;
let h: TestHost;
const bg: ChildProcess[] = [];
const ips = new Map<string, string>();

before(async () => {
  if (!root) return;
  h = await startTestHost('ag');
  const ok = async (m: string, p: string, b?: unknown) => {
    const r = await h.api(m, p, b);
    assert.ok(r.status < 300, `${m} ${p}: ${JSON.stringify(r.json)}`);
  };
  await ok('POST', '/api/v1/tenants', { name: 'blue' });
  for (const t of ['default', 'blue']) {
    await ok('POST', `/api/v1/tenants/${t}/networks`, { name: 'contiv-net', subnet: '10.1.2.0/24' });
    await ok('POST', `/api/v1/tenants/${t}/groups`, { name: 'db', network: 'contiv-net' });
  }
  const ready = await within(5000, async () => existsSync(join(h.cniConfDir, 'weft-blue-db.conflist')));
  assert.ok(ready >= 0, 'the agent writes a conflist per group');
});
after(async () => {
  for (const p of bg) p.kill('SIGKILL');
  await h?.cleanup();
});

async function add(name: string, conflist: string, patch?: Record<string, unknown>): Promise<any> {
  const netns = await h.container(name);
  const r = await h.cni('ADD', { conflist, containerId: `ctr-${name}`, netns, ...(patch ? { patch } : {}) });
  assert.equal(r.code, 0, `ADD ${name}: ${r.stdout}`);
  ips.set(name, r.json.ips[0].address.split('/')[0]);
  return r.json;
}
const ns = (name: string) => `${h.tag}-${name}`;
const ping = async (from: string, ip: string) => (await h.exec(ns(from), ['ping', '-c', '1', '-W', '1', ip])).code === 0;
function background(argv: string[]): void {
  const p = spawn('ip', ['netns', 'exec', ...argv], { stdio: 'ignore' });
  bg.push(p);
}

test('ADD wires containers that reach each other; CHECK passes; results follow the CNI version', { skip: !root && 'needs root' }, async () => {
  const r1 = await add('c1', 'weft-default-db');
  await add('c2', 'weft-default-db');
  assert.equal(r1.cniVersion, '1.0.0');
  assert.deepEqual(r1.ips, [{ address: '10.1.2.2/24', gateway: '10.1.2.1', interface: 1 }]);
  assert.equal(r1.interfaces[1].name, 'eth0');
  assert.equal(r1.interfaces[1].sandbox, `/run/netns/${ns('c1')}`);
  assert.equal(r1.interfaces[1].mtu, 1390, 'an encrypted network by default: room for VXLAN and WireGuard');
  assert.deepEqual(r1.routes, [{ dst: '0.0.0.0/0', gw: '10.1.2.1' }]);
  assert.equal(ips.get('c2'), '10.1.2.3');
  assert.ok(await ping('c1', '10.1.2.3'), 'c1 reaches c2');
  const mtu = await h.exec(ns('c1'), ['ip', '-j', 'link', 'show', 'eth0']);
  assert.equal(JSON.parse(mtu.stdout)[0].mtu, 1390, 'the container gets the network MTU');
  const check = await h.cni('CHECK', { conflist: 'weft-default-db', containerId: 'ctr-c1', netns: `/run/netns/${ns('c1')}` });
  assert.deepEqual([check.code, check.stdout], [0, '']);
  const old = await add('c3', 'weft-default-db', { cniVersion: '0.4.0' });
  assert.equal(old.ips[0].version, '4', '0.4.0 results carry the ip version');
  const listed = await h.api('GET', '/api/v1/endpoints?tenant=default');
  assert.ok(listed.json.items.some((e: any) => e.containerId === 'ctr-c1' && e.host === `${h.tag}-h` && e.netns === `/run/netns/${ns('c1')}`));
});

test('tenants with the same subnet on one host hold the same address and never see each other', { skip: !root && 'needs root' }, async () => {
  for (const b of ['b1', 'b2', 'b3', 'b4']) await add(b, 'weft-blue-db');
  assert.equal(ips.get('b1'), '10.1.2.2', 'blue also holds 10.1.2.2, like default');
  assert.ok(await ping('b1', '10.1.2.3'), 'blue reaches its own peer');
  assert.ok(await ping('b1', '10.1.2.5'), 'blue reaches b4');
  assert.ok(!(await ping('c1', '10.1.2.5')), 'default cannot reach blue\'s 10.1.2.5');
  // The other way needs an address only default holds (blue holds .2-.5 like default's .2-.4), live in default.
  await add('c9', 'weft-default-db', { runtimeConfig: { ips: ['10.1.2.50/24'] } });
  assert.equal(ips.get('c9'), '10.1.2.50');
  assert.ok(![...ips].some(([n, ip]) => n.startsWith('b') && ip === '10.1.2.50'), 'no blue container holds 10.1.2.50');
  assert.ok(await ping('c1', '10.1.2.50'), 'default reaches its own 10.1.2.50');
  assert.ok(!(await ping('b4', '10.1.2.50')), 'blue cannot reach default\'s 10.1.2.50');
});

test('outside access is masqueraded to the host address; a published port reaches the container', { skip: !root && 'needs root' }, async () => {
  const out = ns('out');
  const octet = Number(h.hostIp.split('.')[2]);
  await h.container('out');
  const run = (argv: string[]) => h.exec(h.hostNs, argv);
  await run(['ip', 'link', 'add', 'outside', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', out]);
  await run(['ip', 'addr', 'add', `198.19.${octet}.1/24`, 'dev', 'outside']);
  await run(['ip', 'link', 'set', 'outside', 'up']);
  await h.exec(out, ['ip', 'addr', 'add', `198.19.${octet}.2/24`, 'dev', 'eth0']);
  await h.exec(out, ['ip', 'link', 'set', 'eth0', 'up']);
  background([out, process.execPath, '-e', `require('net').createServer((s) => s.end(s.remoteAddress + '\\n')).listen(7777, '198.19.${octet}.2')`]);
  await new Promise((r) => setTimeout(r, 500));
  const seen = await h.exec(ns('c1'), ['busybox', 'nc', '-w', '2', `198.19.${octet}.2`, '7777'], { input: '' });
  assert.equal(seen.stdout.trim(), `198.19.${octet}.1`, `the outside sees the host's address (${seen.stderr})`);

  await add('web', 'weft-default-db', { runtimeConfig: { portMappings: [{ hostPort: 18080, containerPort: 80, protocol: 'tcp' }] } });
  background([ns('web'), 'busybox', 'nc', '-ll', '-p', '80', '-e', '/bin/cat']);
  await new Promise((r) => setTimeout(r, 300));
  const echoed = await h.exec(out, ['busybox', 'nc', '-w', '2', `198.19.${octet}.1`, '18080'], { input: 'hi\n' });
  assert.equal(echoed.stdout.trim(), 'hi', `the published port answers from outside (${echoed.stderr})`);
});

test('bad input gets the right CNI error code and creates nothing', { skip: !root && 'needs root' }, async () => {
  const netns = await h.container('bad');
  const before = (await h.api('GET', '/api/v1/endpoints')).json.items.length;
  const cases: Array<[string, Parameters<TestHost['cni']>[1], number, RegExp]> = [
    ['missing CNI_CONTAINERID', { conflist: 'weft-default-db', netns }, 4, /CNI_CONTAINERID/],
    // Unparseable stdin names no agentSocket, so the relay uses the default socket; point it at ours.
    ['malformed stdin', { conflist: 'weft-default-db', containerId: 'x1', netns, stdin: '{"cniVersion": ', env: { WEFT_AGENT_SOCK: join(h.dir, 'run', 'agent.sock') } }, 6, /decode/],
    ['unsupported version', { conflist: 'weft-default-db', containerId: 'x1', netns, patch: { cniVersion: '0.2.0' } }, 1, /0\.2\.0/],
    ['unknown tenant', { conflist: 'weft-default-db', containerId: 'x1', netns, patch: { tenant: 'nope' } }, 7, /tenant nope/],
    ['unknown group', { conflist: 'weft-default-db', containerId: 'x1', netns, patch: { group: 'ghost' } }, 7, /group default\/ghost/],
    ['ifname of 16 characters', { conflist: 'weft-default-db', containerId: 'x1', netns, ifname: 'sixteen-chars-xx' }, 4, /CNI_IFNAME/],
    ['netns that does not exist', { conflist: 'weft-default-db', containerId: 'x1', netns: '/run/netns/nowhere-at-all' }, 4, /CNI_NETNS/],
    ['bad network name', { conflist: 'weft-default-db', containerId: 'x1', netns, patch: { network: 'Bad_Name' } }, 7, /network/],
  ];
  for (const [what, o, code, msg] of cases) {
    const r = await h.cni('ADD', o);
    assert.equal(r.code, 1, what);
    assert.equal(r.json?.code, code, `${what}: ${r.stdout}`);
    assert.match(r.json.msg, msg, what);
  }
  assert.equal((await h.api('GET', '/api/v1/endpoints')).json.items.length, before, 'no endpoint was created');
  const links = await h.exec(ns('bad'), ['ip', '-j', 'link', 'show']);
  assert.deepEqual(JSON.parse(links.stdout).map((l: any) => l.ifname), ['lo'], 'nothing appeared in the container');
});

test('DEL is idempotent, works without a netns, and releases the address; the gateway keeps its MAC', { skip: !root && 'needs root' }, async () => {
  const tns = `${h.tag}-t1`;
  const vni = (await h.api('GET', '/api/v1/tenants/default/networks/contiv-net')).json.vni as number;
  const links = async () => JSON.parse((await h.exec(h.hostNs, ['ip', '-n', tns, '-j', 'link', 'show'])).stdout) as Array<{ ifname: string; address: string; master?: string }>;
  const macOf = async () => (await links()).find((l) => l.ifname === `wb${vni}`)?.address;
  const mac = await macOf();
  // Its own MAC, no port's: a bridge without one takes its lowest port's, and changes it when that port goes.
  assert.match(mac ?? '', /^06:/);
  assert.ok(!(await links()).some((l) => l.master === `wb${vni}` && l.address === mac), 'no port has the bridge\'s MAC');
  for (let i = 0; i < 2; i++) {
    const r = await h.cni('DEL', { conflist: 'weft-default-db', containerId: 'ctr-c2', netns: '' });
    assert.deepEqual([r.code, r.stdout], [0, ''], `DEL #${i + 1}`);
  }
  const gone = await h.exec(ns('c2'), ['ip', 'link', 'show', 'eth0']);
  assert.notEqual(gone.code, 0, 'the container interface is gone');
  assert.ok(!(await h.api('GET', '/api/v1/endpoints?tenant=default')).json.items.some((e: any) => e.containerId === 'ctr-c2'));
  const again = await h.cni('ADD', { conflist: 'weft-default-db', containerId: 'ctr-c2b', netns: `/run/netns/${ns('c2')}` });
  assert.equal(again.json.ips[0].address, '10.1.2.3/24', 'the released address is handed out again');
  assert.equal(await macOf(), mac, 'ports came and went: the gateway\'s MAC stayed');
});

test('drift is repaired within 5 s: a deleted bridge, a flushed nft table, a deleted chain, an emptied set', { skip: !root && 'needs root' }, async () => {
  const tns = `${h.tag}-t1`;
  const net = (await h.api('GET', '/api/v1/tenants/default/networks/contiv-net')).json;
  const index = async () => JSON.parse((await h.exec(h.hostNs, ['ip', '-n', tns, '-j', 'link', 'show', `wb${net.vni}`])).stdout || '[{}]')[0].ifindex as number | undefined;
  const before = await index();
  const del = await h.exec(h.hostNs, ['ip', '-n', tns, 'link', 'del', `wb${net.vni}`]);
  assert.equal(del.code, 0, del.stderr);
  // The resync may repair it at any moment, so the proof is identity: the bridge that comes back is new.
  assert.ok(await within(5000, async () => { const now = await index(); return now !== undefined && now !== before; }, 100) >= 0, 'a new bridge replaces the deleted one');
  const t1 = await within(5000, () => ping('c1', '10.1.2.3'), 200);
  assert.ok(t1 >= 0, 'connectivity is back within 5 s');
  await h.exec(tns, ['nft', 'flush', 'table', 'inet', 'weft']);
  const t2 = await within(5000, async () => /masquerade/.test((await h.exec(tns, ['nft', 'list', 'table', 'inet', 'weft'])).stdout), 200);
  assert.ok(t2 >= 0, 'the flushed table is restored within 5 s');
  const delChain = await h.exec(tns, ['nft', '-f', '-'], { input: 'flush chain inet weft postrouting\ndelete chain inet weft postrouting\n' });
  assert.equal(delChain.code, 0, delChain.stderr);
  const t3 = await within(5000, async () => /masquerade/.test((await h.exec(tns, ['nft', 'list', 'chain', 'inet', 'weft', 'postrouting'])).stdout), 200);
  assert.ok(t3 >= 0, 'the deleted chain is back within 5 s');
  // Only elements change here: the table's chains and set headers stay as they were, so nothing that lists
  // them can tell; c1's frames are dropped as spoofed until the set is refilled.
  const guard = async () => (await h.exec(tns, ['nft', 'list', 'set', 'bridge', 'weft', 'endpoints'])).stdout;
  const flushSet = await h.exec(tns, ['nft', 'flush', 'set', 'bridge', 'weft', 'endpoints']);
  assert.equal(flushSet.code, 0, flushSet.stderr);
  const t4 = await within(5000, async () => /10\.1\.2\.2 /.test(await guard()) && ping('c1', '10.1.2.3'), 200);
  assert.ok(t4 >= 0, `the emptied anti-spoofing set is refilled within 5 s:\n${await guard()}`);
  console.log(`# repaired: bridge in ${t1} ms, nft table in ${t2} ms, chain in ${t3} ms, set in ${t4} ms`);
});

test('VERSION lists 0.3.0-1.1.0 (also with the agent down); STATUS reports readiness; GC releases what is not valid', { skip: !root && 'needs root' }, async () => {
  const v = await h.cni('VERSION', { conflist: 'weft-default-db', stdin: '{"cniVersion":"1.1.0"}' });
  assert.equal(v.code, 0);
  assert.deepEqual(v.json.supportedVersions, ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0']);
  const status = await h.cni('STATUS', { conflist: 'weft-default-db', patch: { cniVersion: '1.1.0' } });
  assert.deepEqual([status.code, status.stdout], [0, '']);

  await add('g1', 'weft-blue-db');
  await add('g2', 'weft-blue-db');
  const blueBefore = (await h.api('GET', '/api/v1/endpoints?tenant=blue')).json.items.map((e: any) => e.containerId).sort();
  const keep = blueBefore.filter((c: string) => c !== 'ctr-g2').map((c: string) => ({ containerID: c, ifname: 'eth0' }));
  const gc = await h.cni('GC', { conflist: 'weft-blue-db', patch: { cniVersion: '1.1.0', 'cni.dev/valid-attachments': keep } });
  assert.deepEqual([gc.code, gc.stdout], [0, '']);
  const blueAfter = (await h.api('GET', '/api/v1/endpoints?tenant=blue')).json.items.map((e: any) => e.containerId).sort();
  assert.deepEqual(blueAfter, blueBefore.filter((c: string) => c !== 'ctr-g2'), 'only the attachment missing from the valid list was released');
  const gone = await h.exec(ns('g2'), ['ip', 'link', 'show', 'eth0']);
  assert.notEqual(gone.code, 0, 'its interface is gone');

  await h.stopAgent();
  try {
    const down = await h.cni('VERSION', { conflist: 'weft-default-db', stdin: '{"cniVersion":"1.1.0"}' });
    assert.equal(down.code, 0, 'VERSION needs no agent');
    const add2 = await h.cni('ADD', { conflist: 'weft-default-db', containerId: 'while-down', netns: `/run/netns/${ns('g2')}` });
    assert.equal(add2.json.code, 11, 'ADD while the agent is down: try again later');
  } finally {
    await h.startAgent();
  }
});

test('weft agent --uninstall removes what the agent built on its host', { skip: !root && 'needs root' }, async () => {
  await h.stopAgent();
  const bin = join(h.pluginPath, '..');
  const dockerSocket = join(h.dir, 'weft-docker.sock');
  writeFileSync(dockerSocket, '');
  // nsenter --net, like the agent itself: under `ip netns exec` the namespace unmounts would stay private.
  const un = await new ProcessRunner().run(['nsenter', `--net=/run/netns/${h.hostNs}`, process.execPath, WEFT_BIN, 'agent', '--uninstall',
    '--netns-prefix', `${h.tag}-`, '--cni-conf-dir', h.cniConfDir, '--cni-bin-dir', bin, '--run-dir', join(h.dir, 'run'), '--docker-plugin', dockerSocket], { allowFailure: true });
  assert.equal(un.code, 0, un.stderr);
  assert.match(un.stdout, new RegExp(`namespace ${h.tag}-t1`));
  const left = (await h.exec(h.hostNs, ['ip', 'netns', 'list'])).stdout.split('\n').filter((l) => new RegExp(`^${h.tag}-t[0-9]+`).test(l));
  assert.deepEqual(left, [], 'no tenant namespace left');
  assert.doesNotMatch(readFileSync('/proc/mounts', 'utf8'), new RegExp(`/run/netns/${h.tag}-t[0-9]+ `), 'and no namespace mount left behind');
  assert.doesNotMatch((await h.exec(h.hostNs, ['ip', '-br', 'link'])).stdout, /^wu[0-9]+/m, 'no uplink left');
  for (const family of ['inet', 'ip']) assert.notEqual((await h.exec(h.hostNs, ['nft', 'list', 'table', family, 'weft'])).code, 0, `no host table (${family}) left`);
  assert.ok(!existsSync(join(h.cniConfDir, 'weft-default-db.conflist')) && !existsSync(h.pluginPath), 'no conflist or plugin left');
  assert.ok(!existsSync(dockerSocket), 'no Docker plugin socket left');
  await h.startAgent();
});
