import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { contivTutorial, startTestHost, within, type TestHost } from '../testkit/host.js';

const root = process.getuid?.() === 0;
let h: TestHost;
const bg = new Map<string, ChildProcess[]>();
const ip = new Map<string, string>();
let vip = '';

const ns = (n: string) => `${h.tag}-${n}`;
async function run(name: string, group: string): Promise<void> {
  const netns = await h.container(name);
  const r = await h.cni('ADD', { conflist: `weft-default-${group}`, containerId: name, netns, env: { CNI_ARGS: `K8S_POD_NAME=${name}` } });
  assert.equal(r.code, 0, r.stdout);
  ip.set(name, r.json.ips[0].address.split('/')[0]);
}
/** A backend that answers every connection with its own name. */
function serve(name: string, port: number): void {
  const p = spawn('ip', ['netns', 'exec', ns(name), 'busybox', 'nc', '-ll', '-p', String(port), '-e', 'echo', name], { stdio: 'ignore' });
  bg.set(name, [...(bg.get(name) ?? []), p]);
}
/** `n` connections to VIP:port from `from`, one after another; the name each was answered by ('' when refused). */
async function connect(from: string, n: number, port = 80): Promise<string[]> {
  const r = await h.exec(ns(from), ['sh', '-c', `for i in $(seq ${n}); do echo "$(busybox nc -w 1 ${vip} ${port} </dev/null)"; done`], { timeoutMs: 120_000 });
  return r.stdout.split('\n').slice(0, n);
}

before(async () => {
  if (!root) return;
  h = await startTestHost('sv');
  await contivTutorial(h);
});
after(async () => {
  for (const list of bg.values()) for (const p of list) p.kill('SIGKILL');
  await h?.cleanup();
});

test('a service VIP spreads connections over every backend, follows them, and obeys their policy', { skip: !root && 'needs root' }, async () => {
  const svc = await h.weft(['service', 'create', '-s', 'contiv-net', '-l', 'group=db', '-p', '80:8888:TCP', '-p', '81:8889:TCP', 'dbsvc', '-o', 'json']);
  assert.equal(svc.code, 0, svc.stderr);
  vip = JSON.parse(svc.stdout).vip;
  for (const n of ['db-1', 'db-2', 'db-3']) {
    await run(n, 'db');
    serve(n, 8888);
    serve(n, 8889);
  }
  await run('app-1', 'app');
  assert.ok(await within(3000, async () => (await connect('app-1', 1))[0]?.startsWith('db-') === true) >= 0, 'the VIP answers');

  const answers = await connect('app-1', 300);
  const count = (name: string) => answers.filter((a) => a === name).length;
  assert.equal(answers.filter((a) => !a.startsWith('db-')).length, 0, `every connection is answered: ${answers.join(',')}`);
  for (const n of ['db-1', 'db-2', 'db-3']) assert.ok(count(n) >= 60, `${n} got ${count(n)} of 300 (at least 20 % expected)`);

  // A backend reaching its own service: some connections come back to itself (hairpin), all are answered.
  const own = await connect('db-1', 30);
  assert.equal(own.filter((a) => !a.startsWith('db-')).length, 0, `every connection from a backend is answered: ${own.join(',')}`);
  assert.ok(own.includes('db-1'), `db-1 reached itself through the VIP at least once: ${own.join(',')}`);

  // Policy allows only tcp/8888 into db: through the VIP as straight to a backend.
  assert.deepEqual(await connect('app-1', 3, 81), ['', '', ''], 'VIP:81 → 8889 is denied by db-policy');
  const direct = await h.exec(ns('app-1'), ['busybox', 'nc', '-w', '1', ip.get('db-1') as string, '8889'], { input: '' });
  assert.equal(direct.stdout.trim(), '', 'and so is db-1:8889 directly');

  // One backend stops: after one second no connection reaches it.
  for (const p of bg.get('db-3') ?? []) p.kill('SIGKILL');
  const del = await h.cni('DEL', { conflist: 'weft-default-db', containerId: 'db-3', netns: `/run/netns/${ns('db-3')}` });
  assert.equal(del.code, 0, del.stdout);
  await new Promise((r) => setTimeout(r, 1000));
  const later = await connect('app-1', 100);
  assert.equal(later.filter((a) => a === 'db-3').length, 0, 'db-3 gets nothing after it stopped');
  assert.equal(later.filter((a) => a === 'db-1' || a === 'db-2').length, 100, `all 100 went to db-1 and db-2: ${later.join(',')}`);

  // No backends left: connections are refused at the VIP, not sent anywhere.
  for (const n of ['db-1', 'db-2']) assert.equal((await h.cni('DEL', { conflist: 'weft-default-db', containerId: n, netns: `/run/netns/${ns(n)}` })).code, 0);
  assert.ok(await within(2000, async () => (await connect('app-1', 1))[0] === '') >= 0, 'an empty service refuses');
  const rm = await h.weft(['service', 'rm', 'dbsvc']);
  assert.equal(rm.code, 0, rm.stderr);
});
