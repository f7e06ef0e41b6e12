import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { contivTutorial, startTestHost, tutorialPods, within, type TestHost } from '../testkit/host.js';

// A tenant's policy past the agent's --max-policy-pairs, on a real agent and kernel: the tables stay as
// they were, a new endpoint is refused with the reason (and nothing of it is left), and once the policy is
// back within the budget the tenant is converged and its ADDs work again.

const root = process.getuid?.() === 0;
let h: TestHost;
const bg: ChildProcess[] = [];

before(async () => {
  if (!root) return;
  h = await startTestHost('pb', { agentArgs: ['--max-policy-pairs', '1000'] });
  await contivTutorial(h);
});
after(async () => {
  for (const p of bg) p.kill('SIGKILL');
  await h?.cleanup();
});

const { ns, run, listen, reach } = tutorialPods(() => h, bg);
const agentLog = () => (existsSync(join(h.dir, 'agent.log')) ? readFileSync(join(h.dir, 'agent.log'), 'utf8') : '');

test('a policy past --max-policy-pairs keeps the last tables, refuses new endpoints with the reason, and converges once within', { skip: !root && 'needs root' }, async () => {
  await run('db-1', 'db');
  await run('app-1', 'app');
  await listen('db-1', 8888);
  await listen('db-1', 8889);
  assert.ok(await reach('app-1', 'db-1', 8888));
  assert.ok(!(await reach('app-1', 'db-1', 8889)), 'db:8889 is denied by db-policy');

  // 8889 opened, and 300 addresses of no endpoint each named as a source and as a destination with a port
  // of its own: ~300 classes on each side against the 2 enforced here (db-1's and app-1's), ~1,200 pairs,
  // past the agent's 1,000 (named one way only, the roles would make ~600: policy/roles.ts).
  const peer = (i: number) => `172.20.${i >> 8}.${i & 255}/32`;
  const rules = [{ id: 'open', direction: 'in', action: 'allow', protocol: 'tcp', ports: '8889', priority: 50 },
    ...Array.from({ length: 300 }, (_, i) => ({ id: `s${i}`, direction: 'in', action: 'allow', protocol: 'tcp', ports: String(20000 + i), priority: 5, fromCidr: peer(i) })),
    ...Array.from({ length: 300 }, (_, i) => ({ id: `d${i}`, direction: 'out', action: 'allow', protocol: 'tcp', ports: String(20000 + i), priority: 5, toCidr: peer(i) }))];
  const made = await h.api('POST', '/api/v1/tenants/default/policies', { name: 'many', rules });
  assert.equal(made.status, 201, JSON.stringify(made.json));
  const attach = await h.weft(['group', 'update', '-p', 'db-policy', '-p', 'many', 'db']);
  assert.equal(attach.code, 0, attach.stderr);
  assert.ok(await within(10_000, async () => agentLog().includes('policy refused')) >= 0, 'the agent refuses the policy');
  assert.match(agentLog(), /"tenant":"default","pairs":1\d{3},"classes":\d+,"limit":1000/);
  // Fail-static: what the kernel enforces is the last policy applied.
  assert.ok(!(await reach('app-1', 'db-1', 8889)), 'the refused policy\'s allow is not applied');
  assert.ok(await reach('app-1', 'db-1', 8888), 'the last applied policy still is');

  // A new endpoint of the tenant on this host is refused with the reason; nothing of it is left.
  const netns = await h.container('db-2');
  const add = await h.cni('ADD', { conflist: 'weft-default-db', containerId: 'db-2', netns });
  assert.notEqual(add.code, 0, 'the ADD fails');
  assert.match(add.stdout, /would make 1,\d{3} pairs of address classes .*the limit is weft agent --max-policy-pairs, 1,000 on this host/);
  const eps = await h.api('GET', '/api/v1/endpoints?tenant=default');
  assert.deepEqual(eps.json.items.map((e: { containerId: string }) => e.containerId).sort(), ['app-1', 'db-1'], 'the refused endpoint was released');
  const links = await h.exec(ns('db-2'), ['ip', '-o', 'link', 'show']);
  assert.doesNotMatch(links.stdout, /eth0/, 'and the container has no interface of it');

  // Back within the budget: converged (its tables written again), and the ADD works.
  const detach = await h.weft(['group', 'update', '-p', 'db-policy', 'db']);
  assert.equal(detach.code, 0, detach.stderr);
  // (the agent learns of the detach by its watch: an ADD before that is refused and released, as above)
  const added = await within(10_000, async () => { try { await run('db-2', 'db', true); return true; } catch { return false; } }, 200);
  assert.ok(added >= 0, 'the ADD works once the policy is within the budget');
  await listen('db-2', 8888);
  assert.ok(await reach('app-1', 'db-2', 8888), 'the new endpoint is reachable as db-policy says');
  assert.ok(!(await reach('app-1', 'db-2', 8889)));
});
