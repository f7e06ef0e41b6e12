import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { startLab, type Lab } from '../testkit/lab.js';
import { within } from '../testkit/host.js';

// Flow records across two hosts (issue 16): a connection from app on h1 to db on h2 is decided twice, egress
// on h1 and ingress on h2, and each host's record names the side it enforced: h1's allows it by app's
// (absent) egress rules, h2's denies it by db-policy rule 1, and neither disagrees with the stored policy.

const root = process.getuid?.() === 0;
let lab: Lab;
const bg: ChildProcess[] = [];
const ip = new Map<string, string>();

before(async () => {
  if (!root) return;
  lab = await startLab('fh', 2);
  const ok = async (m: string, p: string, b?: unknown) => assert.ok((await lab.api(m, p, b)).status < 300, `${m} ${p}`);
  await ok('POST', '/api/v1/tenants/default/networks', { name: 'net', subnet: '10.1.2.0/24', encrypt: false });
  await ok('POST', '/api/v1/tenants/default/policies', { name: 'db-policy', rules: [
    { id: '1', direction: 'in', priority: 1, protocol: 'tcp', action: 'deny' },
    { id: '2', direction: 'in', priority: 10, protocol: 'tcp', ports: '8888', action: 'allow' },
  ] });
  await ok('POST', '/api/v1/tenants/default/groups', { name: 'db', network: 'net', policies: ['db-policy'] });
  await ok('POST', '/api/v1/tenants/default/groups', { name: 'app', network: 'net' });
  for (const h of lab.hosts) assert.ok(await within(5000, async () => existsSync(join(h.dir, 'net.d', 'weft-default-app.conflist'))) >= 0);
});
after(async () => {
  for (const p of bg) p.kill('SIGKILL');
  await lab?.cleanup();
});

async function run(name: string, host: number, group: string): Promise<void> {
  const r = await lab.hosts[host]!.cni('ADD', { conflist: `weft-default-${group}`, containerId: name, netns: await lab.container(name) });
  assert.equal(r.code, 0, r.stdout);
  ip.set(name, r.json.ips[0].address.split('/')[0]);
}
const nc = (from: string, to: string, port: number) => lab.exec(`${lab.tag}-${from}`, ['busybox', 'nc', '-w', '1', ip.get(to) as string, String(port)], { input: 'hi\n' });

test('a connection between two hosts is recorded by each, for the side it enforces', { skip: !root && 'needs root' }, async () => {
  await run('app-1', 0, 'app');
  await run('db-1', 1, 'db');
  bg.push(spawn('ip', ['netns', 'exec', `${lab.tag}-db-1`, 'busybox', 'nc', '-ll', '-p', '8888', '-e', '/bin/cat'], { stdio: 'ignore' }));
  assert.ok(await within(5000, async () => (await nc('app-1', 'db-1', 8888)).stdout.trim() === 'hi', 200) >= 0, 'db:8888 is reachable across hosts');
  assert.notEqual((await nc('app-1', 'db-1', 8889)).stdout.trim(), 'hi', 'db:8889 is denied');
  const [h1, h2] = lab.hosts.map((h) => h.name) as [string, string];
  type F = { host: string; verdict: string; dst: { port: number }; decidedBy: { side: string; layer: string; policy?: string; rule: string | null }; agrees: boolean };
  const seen = async () => ((await lab.api('GET', '/api/v1/flows?tenant=default&protocol=tcp')).json.items as F[])
    .filter((f) => f.dst.port === 8888 || f.dst.port === 8889)
    .map((f) => `${f.host} ${f.dst.port} ${f.verdict} ${f.decidedBy.policy ?? f.decidedBy.layer}/${f.decidedBy.rule} ${f.decidedBy.side} ${f.agrees}`);
  const want = [
    `${h1} 8888 allow default/null egress true`, `${h2} 8888 allow db-policy/2 ingress true`,
    `${h1} 8889 allow default/null egress true`, `${h2} 8889 deny db-policy/1 ingress true`,
  ];
  assert.ok(await within(5000, async () => { const s = await seen(); return want.every((w) => s.includes(w)); }, 200) >= 0, `each host's record: ${(await seen()).join('; ')}`);
  assert.ok(!(await seen()).some((s) => s.endsWith('false')), 'no record disagrees with the stored policy');
});
