import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startTestHost, within, type TestHost } from '../testkit/host.js';

const root = process.getuid?.() === 0;
let h: TestHost;

before(async () => {
  if (!root) return;
  h = await startTestHost('id');
  const ok = async (m: string, p: string, b?: unknown) => {
    const r = await h.api(m, p, b);
    assert.ok(r.status < 300, `${m} ${p}: ${JSON.stringify(r.json)}`);
  };
  await ok('POST', '/api/v1/tenants/default/networks', { name: 'net', subnet: '10.3.0.0/24' });
  await ok('POST', '/api/v1/tenants/default/policies', { name: 'p', rules: [{ id: 'a', protocol: 'tcp', ports: '80', fromCidr: '192.0.2.0/24', action: 'deny' }] });
  await ok('POST', '/api/v1/tenants/default/groups', { name: 'db', network: 'net', policies: ['p'] });
  assert.ok(await within(5000, async () => existsSync(join(h.cniConfDir, 'weft-default-db.conflist'))) >= 0, 'conflist');
});
after(async () => {
  await h?.cleanup();
});

/** CPU seconds of the finished children a process waited for (every `ip`, `nft`, `bridge` it ran). */
function childrenCpu(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ').map(Number);
  return (f[13] ?? NaN) + (f[14] ?? NaN);
}

test('an idle agent runs no command: drift is found by its watcher, and its own writes do not set it looping', { skip: !root && 'needs root' }, async () => {
  const netns = await h.container('c1');
  const r = await h.cni('ADD', { conflist: 'weft-default-db', containerId: 'ctr-c1', netns });
  assert.equal(r.code, 0, r.stdout);
  const pid = h.agentPid();
  assert.ok(pid, 'agent pid');
  // The ADD's own writes are reported once and checked once; after that the agent must go quiet.
  await new Promise((res) => setTimeout(res, 3000));
  const a = childrenCpu(pid);
  // Six resyncs of the testkit's 1 s interval.
  await new Promise((res) => setTimeout(res, 6000));
  const ticks = childrenCpu(pid) - a;
  assert.equal(ticks, 0, `the agent ran commands while idle: ${ticks} clock ticks of children's CPU in 6 s`);
  // And drift is still repaired: the endpoint's veth moved off its bridge by hand.
  const tns = `${h.tag}-t1`;
  const veth = (JSON.parse((await h.exec(tns, ['ip', '-j', 'link', 'show', 'type', 'veth'])).stdout) as Array<{ ifname: string }>).find((l) => l.ifname.startsWith('we'))?.ifname;
  assert.ok(veth, 'the endpoint veth');
  const off = await h.exec(tns, ['ip', 'link', 'set', veth, 'nomaster']);
  assert.equal(off.code, 0, off.stderr);
  const master = async () => (JSON.parse((await h.exec(tns, ['ip', '-j', 'link', 'show', veth])).stdout) as Array<{ master?: string }>)[0]?.master;
  const t = await within(5000, async () => (await master()) !== undefined, 50);
  assert.ok(t >= 0, 'the veth is back on its bridge within 5 s');
  console.log(`# idle: 0 commands in 6 s; a veth taken off its bridge was put back in ${t} ms`);
});
