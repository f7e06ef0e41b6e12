import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { startLab, type Lab } from '../testkit/lab.js';
import { within } from '../testkit/host.js';

const root = process.getuid?.() === 0;
let lab: Lab;
const ip = new Map<string, string>();

before(async () => {
  if (!root) return;
  lab = await startLab('ov', 2);
  const ok = async (m: string, p: string, b?: unknown) => assert.ok((await lab.api(m, p, b)).status < 300, `${m} ${p}`);
  await ok('POST', '/api/v1/tenants', { name: 'blue' });
  for (const t of ['default', 'blue']) {
    await ok('POST', `/api/v1/tenants/${t}/networks`, { name: 'contiv-net', subnet: '10.1.2.0/24' });
    await ok('POST', `/api/v1/tenants/${t}/groups`, { name: 'db', network: 'contiv-net' });
  }
  for (const h of lab.hosts) assert.ok(await within(5000, async () => existsSync(join(h.dir, 'net.d', 'weft-blue-db.conflist'))) >= 0);
});
after(async () => lab?.cleanup());

async function run(name: string, host: number, conflist: string): Promise<void> {
  const netns = await lab.container(name);
  const r = await lab.hosts[host]!.cni('ADD', { conflist, containerId: name, netns });
  assert.equal(r.code, 0, r.stdout);
  ip.set(name, r.json.ips[0].address.split('/')[0]);
}
const ping = async (from: string, to: string) => (await lab.exec(`${lab.tag}-${from}`, ['ping', '-c', '1', '-W', '1', to])).code === 0;

test('containers on two hosts reach each other over VXLAN; the MTU leaves room for it', { skip: !root && 'needs root' }, async () => {
  await run('a1', 0, 'weft-default-db');
  await run('a2', 1, 'weft-default-db');
  const t = await within(5000, () => ping('a1', ip.get('a2') as string), 100);
  assert.ok(t >= 0, 'a1 on h1 reaches a2 on h2');
  console.log(`# cross-host reachable ${t} ms after the second ADD`);
  const big = await lab.exec(`${lab.tag}-a1`, ['ping', '-c', '1', '-W', '1', '-M', 'do', '-s', '1422', ip.get('a2') as string]);
  assert.equal(big.code, 0, 'a full 1450-byte packet crosses without fragmentation');
});

test('tenants with the same subnet stay isolated across hosts', { skip: !root && 'needs root' }, async () => {
  await run('b1', 0, 'weft-blue-db');
  await run('b2', 1, 'weft-blue-db');
  await run('b3', 1, 'weft-blue-db');
  assert.equal(ip.get('b1'), ip.get('a1'), 'blue reuses default\'s addresses');
  assert.ok(await within(5000, () => ping('b1', ip.get('b2') as string), 100) >= 0, 'blue reaches blue across hosts');
  assert.equal(ip.get('b3'), '10.1.2.4');
  assert.ok(!(await ping('a1', '10.1.2.4')), 'default cannot reach blue\'s 10.1.2.4 on the other host');
});

test('policy holds across hosts', { skip: !root && 'needs root' }, async () => {
  const ok = async (m: string, p: string, b?: unknown) => assert.ok((await lab.api(m, p, b)).status < 300, `${m} ${p}`);
  await ok('POST', '/api/v1/tenants/default/policies', { name: 'no-icmp', rules: [{ id: '1', protocol: 'icmp', action: 'deny' }] });
  await ok('PATCH', '/api/v1/tenants/default/groups/db', { policies: ['no-icmp'] });
  assert.ok(await within(3000, async () => !(await ping('a1', ip.get('a2') as string)), 100) >= 0, 'icmp to db on the other host is now denied');
  await ok('PATCH', '/api/v1/tenants/default/groups/db', { policies: [] });
  assert.ok(await within(3000, () => ping('a1', ip.get('a2') as string), 100) >= 0, 'and allowed again');
});
