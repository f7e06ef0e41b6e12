import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { startTestHost, within, type TestHost } from '../testkit/host.js';
import { startPodman, IMAGE, RUN_FLAGS, type Podman } from '../testkit/podman.js';

const root = process.getuid?.() === 0;
let h: TestHost;
let pm: Podman;

const file = (name: string) => join(h.cniConfDir, `${name}.conflist`);
const appears = (name: string) => within(5000, async () => existsSync(file(name)));
const goes = (name: string) => within(5000, async () => !existsSync(file(name)));
async function weft(...args: string[]): Promise<string> {
  const r = await h.weft(args);
  assert.equal(r.code, 0, `weft ${args.join(' ')}: ${r.stderr}`);
  return r.stderr;
}

before(async () => {
  if (!root) return;
  h = await startTestHost('cf');
  pm = await startPodman(h.cniConfDir, [dirname(h.pluginPath)], h.hostNs);
});
after(async () => {
  await pm?.cleanup();
  await h?.cleanup();
});

test('acme/prod-db and acme-prod/db both work through their dotted conflists and stay apart; the short name only while unambiguous', { skip: !root && 'needs root' }, async () => {
  await weft('tenant', 'create', 'acme');
  await weft('net', 'create', '-t', 'acme', '-s', '10.7.1.0/24', 'n1');
  assert.equal(await weft('group', 'create', '-t', 'acme', 'n1', 'prod-db'), '', 'no warning while the short name is unambiguous');
  assert.ok(await appears('weft-acme-prod-db') >= 0, 'the short name is written while only acme/prod-db has it');
  assert.equal(JSON.parse(readFileSync(file('weft-acme-prod-db'), 'utf8')).plugins[0].tenant, 'acme');

  await weft('tenant', 'create', 'acme-prod');
  await weft('net', 'create', '-t', 'acme-prod', '-s', '10.7.2.0/24', 'n2');
  const warned = await weft('group', 'create', '-t', 'acme-prod', 'n2', 'db');
  assert.match(warned, /^warning: .*weft-acme-prod-db is ambiguous.*select this one as weft\.acme-prod\.db\n$/, 'the CLI says so, naming the name to use');
  assert.ok(await goes('weft-acme-prod-db') >= 0, 'neither tenant keeps the ambiguous short name');
  assert.ok(existsSync(file('weft.acme.prod-db')) && existsSync(file('weft.acme-prod.db')), 'both dotted names are there');
  assert.ok(existsSync(file('weft-acme-n1')), 'unambiguous short names stay');

  // Real podman: the dotted names select each tenant's group; the ambiguous short name selects nothing.
  const addr = /inet (10\.7\.\d+\.\d+)\//;
  const a = await pm.run(['run', '-d', '--name', 'a', ...RUN_FLAGS, '--network', 'weft.acme.prod-db', IMAGE, 'sleep', '60']);
  assert.equal(a.code, 0, a.stderr);
  const b = await pm.run(['run', '-d', '--name', 'b', ...RUN_FLAGS, '--network', 'weft.acme-prod.db', IMAGE, 'sleep', '60']);
  assert.equal(b.code, 0, b.stderr);
  const ipOf = async (c: string) => addr.exec((await pm.run(['exec', c, 'ip', '-4', '-o', 'addr', 'show', 'eth0'])).stdout)?.[1] ?? '';
  const [ipA, ipB] = [await ipOf('a'), await ipOf('b')];
  const eps = (await h.api('GET', '/api/v1/endpoints')).json.items as any[];
  assert.deepEqual(eps.map((e) => [e.tenant, e.group, e.ip]).sort(), [['acme', 'prod-db', ipA], ['acme-prod', 'db', ipB]], 'each container is in its own tenant and group');
  assert.match(ipA, /^10\.7\.1\./);
  assert.match(ipB, /^10\.7\.2\./);
  const ping = async (c: string, to: string) => (await pm.run(['exec', c, 'ping', '-c', '1', '-W', '1', to])).code === 0;
  assert.ok(await ping('a', '10.7.1.1') && await ping('b', '10.7.2.1'), 'each reaches its gateway');
  assert.equal(await ping('a', ipB), false, 'acme cannot reach acme-prod');
  assert.equal(await ping('b', ipA), false, 'acme-prod cannot reach acme');
  const short = await pm.run(['run', '--rm', ...RUN_FLAGS, '--network', 'weft-acme-prod-db', IMAGE, 'true']);
  assert.notEqual(short.code, 0, 'the ambiguous short name lands nowhere');
  assert.match(short.stderr, /not found/i, short.stderr);

  // With acme-prod/db gone, the short name is unambiguous again, and acme's.
  assert.equal((await pm.run(['rm', '-f', '-t', '0', 'b'])).code, 0);
  await weft('group', 'rm', '-t', 'acme-prod', 'db');
  assert.ok(await appears('weft-acme-prod-db') >= 0, 'the short name comes back');
  assert.equal(JSON.parse(readFileSync(file('weft-acme-prod-db'), 'utf8')).plugins[0].tenant, 'acme');
  assert.equal((await pm.run(['rm', '-f', '-t', '0', 'a'])).code, 0);
});
