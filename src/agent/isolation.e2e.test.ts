import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { transit } from '../datapath/index.js';
import { startTestHost, within, type TestHost } from '../testkit/host.js';
import { startServerProcess, tlsFetch, type ServerProcess } from '../testkit/server.js';

const root = process.getuid?.() === 0;
let h: TestHost;
let api: ServerProcess | undefined;
let apiPort = 0;
const bg: ChildProcess[] = [];
const ip = new Map<string, string>();
/** Each tenant's uplink: the host end (its DNS listener) and the tenant end. */
const uplink = new Map<string, { host: string; tenant: string }>();
const DNS_PORT = 15353;
const PUBLISHED = 18090;

const ns = (n: string) => `${h.tag}-${n}`;
const background = (argv: string[]) => bg.push(spawn('ip', ['netns', 'exec', ...argv], { stdio: 'ignore' }));

/** Sends one A query from inside `from` and prints the first answer's address, its rcode, or "no answer". */
const PROBE = `
const [proto, ip, port, name] = process.argv.slice(1);
const q = Buffer.concat([Buffer.from([0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]),
  ...name.split('.').flatMap((l) => [Buffer.from([l.length]), Buffer.from(l)]), Buffer.from([0, 0, 1, 0, 1])]);
const done = (b) => { console.log(!b || b.length < 12 ? 'no answer' : (b[3] & 15) ? 'rcode ' + (b[3] & 15) : [...b.subarray(-4)].join('.')); process.exit(0); };
setTimeout(() => done(undefined), 1500);
if (proto === 'udp') {
  const s = require('dgram').createSocket('udp4');
  s.on('message', done);
  s.send(q, +port, ip);
} else {
  let got = Buffer.alloc(0);
  const c = require('net').connect(+port, ip, () => c.write(Buffer.concat([Buffer.from([0, q.length]), q])));
  c.on('data', (d) => { got = Buffer.concat([got, d]); if (got.length >= 2 && got.length >= 2 + got.readUInt16BE(0)) done(got.subarray(2)); });
  c.on('error', () => done(undefined));
}`;
async function dns(from: string, proto: 'udp' | 'tcp', server: string, port: number, name: string): Promise<string> {
  return (await h.exec(ns(from), [process.execPath, '-e', PROBE, proto, server, String(port), name], { timeoutMs: 10_000 })).stdout.trim();
}
/** GET /healthz of the API (HTTPS) from a namespace; the answer's authenticity is not the point here, reachability is. */
const HEALTHZ = `
const [host, port] = process.argv.slice(1);
setTimeout(() => { console.log('no answer'); process.exit(0); }, 2000);
require('https').get({ host, port: +port, path: '/healthz', rejectUnauthorized: false }, (r) => { console.log('status ' + r.statusCode); process.exit(0); })
  .on('error', () => { console.log('no answer'); process.exit(0); });`;
const healthz = async (netns: string, host: string) =>
  (await h.exec(netns, [process.execPath, '-e', HEALTHZ, host, String(apiPort)], { timeoutMs: 10_000 })).stdout.trim() === 'status 200';
const ping = async (from: string, to: string) => (await h.exec(ns(from), ['ping', '-c', '1', '-W', '1', to])).code === 0;

async function add(name: string, conflist: string, patch?: Record<string, unknown>): Promise<void> {
  const netns = await h.container(name);
  const r = await h.cni('ADD', { conflist, containerId: name, netns, env: { CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAME=${name}` }, ...(patch ? { patch } : {}) });
  assert.equal(r.code, 0, `ADD ${name}: ${r.stdout}`);
  ip.set(name, r.json.ips[0].address.split('/')[0]);
}

before(async () => {
  if (!root) return;
  h = await startTestHost('iso');
  for (const [t, octet] of [['blue', 1], ['red', 2]] as const) {
    assert.ok((await h.api('POST', '/api/v1/tenants', { name: t })).status < 300);
    assert.ok((await h.api('POST', `/api/v1/tenants/${t}/networks`, { name: 'net', subnet: `10.7.${octet}.0/24` })).status < 300);
    const id = (await h.api('GET', `/api/v1/tenants/${t}`)).json.id as number;
    uplink.set(t, transit(id));
  }
  assert.ok(await within(5000, async () => existsSync(join(h.cniConfDir, 'weft.red.net.conflist'))) >= 0, 'conflists written');
  await add('a1', 'weft.blue.net');
  await add('web', 'weft.blue.net', { runtimeConfig: { portMappings: [{ hostPort: PUBLISHED, containerPort: 80, protocol: 'tcp' }] } });
  await add('b1', 'weft.red.net');
  background([ns('web'), 'busybox', 'nc', '-ll', '-p', '80', '-e', '/bin/cat']);
  // This host's own API server, listening on every address of the host, as `weft up` may run it.
  api = await startServerProcess({ netns: h.hostNs, listen: '0.0.0.0:0' });
  apiPort = Number(/:(\d+)$/.exec(api.url)?.[1]);
});
after(async () => {
  for (const p of bg) p.kill('SIGKILL');
  await api?.stop();
  await h?.cleanup();
});

test('a container reaches on its host only its own DNS and published ports; tenants never meet there', { skip: !root && 'needs root' }, async () => {
  const blue = uplink.get('blue') as { host: string; tenant: string };
  const red = uplink.get('red') as { host: string; tenant: string };
  // Still working: names through the gateway, the own listener, the API from the host itself.
  assert.ok(await within(3000, async () => (await dns('a1', 'udp', '10.7.1.1', 53, 'web.blue.weft')) === ip.get('web')) >= 0, 'a1 resolves its tenant\'s names through its gateway');
  for (const proto of ['udp', 'tcp'] as const) {
    assert.equal(await dns('a1', proto, blue.host, DNS_PORT, 'web.blue.weft'), ip.get('web'), `${proto}: its own tenant's listener answers`);
    assert.equal(await dns('a1', proto, red.host, DNS_PORT, 'b1.red.weft'), 'no answer', `${proto}: red's listener (${red.host}) is closed to blue`);
  }
  assert.ok(await healthz(h.hostNs, h.hostIp), 'the API answers on the host');
  assert.equal(await healthz(ns('a1'), h.hostIp), false, 'not to a container, on the underlay address');
  assert.equal(await healthz(ns('a1'), blue.host), false, 'nor on its own uplink address');
  assert.equal(await ping('a1', h.hostIp), false, 'the host\'s underlay address does not answer a container');
  assert.equal(await ping('a1', red.tenant), false, 'no forwarding from one uplink into another');
  assert.ok(await ping('b1', '10.7.2.1'), 'red reaches its own gateway');

  // NAT to the outside and the published port keep working.
  const octet = Number(h.hostIp.split('.')[2]);
  await h.container('out');
  const run = (argv: string[]) => h.exec(h.hostNs, argv);
  await run(['ip', 'link', 'add', 'outside', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns('out')]);
  await run(['ip', 'addr', 'add', `198.19.${octet}.1/24`, 'dev', 'outside']);
  await run(['ip', 'link', 'set', 'outside', 'up']);
  await h.exec(ns('out'), ['ip', 'addr', 'add', `198.19.${octet}.2/24`, 'dev', 'eth0']);
  await h.exec(ns('out'), ['ip', 'link', 'set', 'eth0', 'up']);
  background([ns('out'), process.execPath, '-e', `require('net').createServer((s) => s.end(s.remoteAddress + '\\n')).listen(7777, '198.19.${octet}.2')`]);
  await new Promise((r) => setTimeout(r, 500));
  const seen = await h.exec(ns('a1'), ['busybox', 'nc', '-w', '2', `198.19.${octet}.2`, '7777'], { input: '' });
  assert.equal(seen.stdout.trim(), `198.19.${octet}.1`, `the outside sees the host's address (${seen.stderr})`);
  const echoed = await h.exec(ns('out'), ['busybox', 'nc', '-w', '2', `198.19.${octet}.1`, String(PUBLISHED)], { input: 'hi\n' });
  assert.equal(echoed.stdout.trim(), 'hi', `the published port answers from outside (${echoed.stderr})`);
  const fromRed = await h.exec(ns('b1'), ['busybox', 'nc', '-w', '2', h.hostIp, String(PUBLISHED)], { input: 'hi\n' });
  assert.equal(fromRed.stdout.trim(), 'hi', 'a published port is published to other tenants too, like to the world');
});

test('a flushed host table is repaired within 5 s, and the isolation with it', { skip: !root && 'needs root' }, async () => {
  const flushed = await h.exec(h.hostNs, ['nft', 'flush', 'table', 'inet', 'weft']);
  assert.equal(flushed.code, 0, flushed.stderr);
  const t = await within(5000, async () => /jump from_tenant/.test((await h.exec(h.hostNs, ['nft', 'list', 'table', 'inet', 'weft'])).stdout), 200);
  assert.ok(t >= 0, 'the filter is back');
  assert.equal(await healthz(ns('a1'), h.hostIp), false, 'the API is closed to containers again');
  const echoed = await h.exec(h.hostNs, ['busybox', 'nc', '-w', '2', h.hostIp, String(PUBLISHED)], { input: 'hi\n' });
  assert.equal(echoed.stdout.trim(), 'hi', 'published ports are back');
  console.log(`# host table repaired in ${t} ms`);
});

/** What a watch from revision 0 streams within `ms`. */
async function watched(token: string, ms: number): Promise<string> {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), ms);
  let text = '';
  try {
    const res = await tlsFetch(`${h.server.url}/api/v1/watch?since=0`, { headers: { authorization: `Bearer ${token}` }, signal: ctl.signal });
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) text += Buffer.from(chunk).toString();
  } catch (e) {
    if (!ctl.signal.aborted) throw e;
  } finally {
    clearTimeout(timer);
  }
  return text;
}

test('a tenant user sees hosts without their underlay address, in lists, reads and the watch stream', { skip: !root && 'needs root' }, async () => {
  assert.equal((await h.api('POST', '/api/v1/users', { name: 'bob', role: 'tenant', tenants: ['blue'], password: 'correct horse battery' })).status, 201);
  const login = await tlsFetch(`${h.server.url}/api/v1/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'bob', password: 'correct horse battery' }) });
  const bob = ((await login.json()) as { token: string }).token;
  const asBob = async (path: string) => (await tlsFetch(`${h.server.url}${path}`, { headers: { authorization: `Bearer ${bob}` } })).json() as Promise<any>;
  const hostName = `${h.tag}-h`;
  assert.equal((await h.api('GET', `/api/v1/hosts/${hostName}`)).json.vtepIp, h.hostIp, 'admin (and the agents) see it');
  const listed = await asBob('/api/v1/hosts');
  assert.deepEqual(listed.items.map((x: any) => [x.name, x.vtepIp]), [[hostName, undefined]]);
  assert.equal((await asBob(`/api/v1/hosts/${hostName}`)).vtepIp, undefined);
  assert.ok((await watched(h.token, 1000)).includes(h.hostIp), 'an admin\'s watch carries host registrations');
  assert.ok(!(await watched(bob, 1000)).includes(h.hostIp), 'a tenant user\'s watch never shows the underlay address');
});
