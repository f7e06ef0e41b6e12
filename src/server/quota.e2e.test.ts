import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { http, runWeft, serverFleet, type ServerProcess } from '../testkit/server.js';
import { startEtcd, type EtcdProcess } from '../testkit/etcd.js';

// Quotas against real server processes: a bulk rule add past the limit, and creates racing the limit on
// one SQLite server and on three servers sharing etcd (optimistic transactions that retry).
const etcdAvailable = (() => { try { execFileSync('etcd', ['--version'], { stdio: 'ignore' }); return true; } catch { return false; } })();
const fleet = serverFleet();
let etcd: EtcdProcess | undefined;
after(async () => {
  await fleet.stopAll();
  await etcd?.stop();
});
const T = '/api/v1/tenants/default';
const rules = (n: number, tag: string) => Array.from({ length: n }, (_, i) => ({ id: `${tag}${i}`, protocol: 'tcp', ports: String(1000 + i) }));

async function tenantUser(s: ServerProcess, token: string, name: string): Promise<string> {
  assert.equal((await http(s.url, token, 'POST', '/api/v1/users', { name, role: 'tenant', tenants: ['default'], password: 'correct horse' })).status, 201);
  return (await http(s.url, '', 'POST', '/api/v1/login', { username: name, password: 'correct horse' })).json.token;
}

/** `n` creates at once, spread over `servers`; returns the statuses. */
async function race(servers: ServerProcess[], token: string, n: number): Promise<number[]> {
  return Promise.all(Array.from({ length: n }, (_, i) =>
    http(servers[i % servers.length]!.url, token, 'POST', `${T}/netprofiles`, { name: `np${i}` }).then((r) => r.status)));
}

const count = (xs: number[], x: number) => xs.filter((y) => y === x).length;

test('one server: a bulk rule add past --quota-rules writes nothing; 40 racing creates stop at exactly --quota-objects', async () => {
  const s = await fleet.start(['--quota-objects', '10', '--quota-rules', '10']);
  const bob = await tenantUser(s, s.token, 'bob');
  const bulk = await http(s.url, bob, 'POST', `${T}/policies`, { name: 'p', rules: rules(11, 'r') });
  assert.deepEqual([bulk.status, bulk.json.code, bulk.json.field], [429, 'WEFT_QUOTA_EXCEEDED', 'rules']);
  assert.match(bulk.json.detail, /would add 11, past the limit of 10 \(--quota-rules 10\)/);
  assert.equal((await http(s.url, s.token, 'GET', `${T}/policies/p`)).status, 404, 'the refused bulk add left no policy and no rule');
  assert.equal((await http(s.url, bob, 'POST', `${T}/policies`, { name: 'p', rules: rules(10, 'r') })).status, 201);
  const cli = await runWeft(['policy', 'rule-add', 'p', 'one-more', '-l', 'tcp', '--server', s.url, '--token', bob], {});
  assert.equal(cli.code, 4, 'the CLI exits with the conflict status');
  assert.match(cli.stderr, /--quota-rules 10/);
  const statuses = await race([s], bob, 40);
  assert.deepEqual([count(statuses, 201), count(statuses, 429)], [9, 31], 'the policy is one of the 10 objects');
  assert.equal((await http(s.url, s.token, 'GET', `${T}/netprofiles`)).json.items.length, 9);
  assert.deepEqual((await http(s.url, bob, 'GET', '/api/v1/users/bob/quota')).json.used, { objects: 10, rules: 10 });
});

test('three servers on one etcd: creates racing the quota from every server never pass it', { skip: !etcdAvailable && 'etcd is not installed' }, async () => {
  etcd = await startEtcd();
  const store = `etcd://${etcd.endpoint.slice('http://'.length)}`;
  const servers: ServerProcess[] = [];
  for (let i = 0; i < 3; i++) servers.push(await fleet.start(['--store', store, '--quota-objects', '12', '--quota-rules', '10']));
  const admin = servers.map((s) => s.token).find(Boolean) as string;
  const bob = await tenantUser(servers[0]!, admin, 'bob');
  const statuses = await race(servers, bob, 45);
  assert.deepEqual([count(statuses, 201), count(statuses, 429)], [12, 33], `statuses: ${statuses.join(' ')}`);
  const listed = await http(servers[2]!.url, admin, 'GET', `${T}/netprofiles`);
  assert.equal(listed.json.items.length, 12, 'what the servers agreed to is what the store holds');
  assert.equal((await http(servers[1]!.url, bob, 'GET', '/api/v1/users/bob/quota')).json.used.objects, 12);
  // Two bulk adds of 6 rules on different servers, with room for 10: one wins, the other writes nothing.
  for (const np of listed.json.items.slice(0, 2)) assert.equal((await http(servers[0]!.url, bob, 'DELETE', `${T}/netprofiles/${np.name}`)).status, 204);
  const bulks = await Promise.all([0, 1].map((i) => http(servers[i]!.url, bob, 'POST', `${T}/policies`, { name: `bulk${i}`, rules: rules(6, 'b') })));
  assert.deepEqual(bulks.map((r) => r.status).sort(), [201, 429]);
  const policies = await http(servers[2]!.url, admin, 'GET', `${T}/policies`);
  assert.deepEqual(policies.json.items.map((p: { rules: unknown[] }) => p.rules.length), [6]);
  assert.deepEqual((await http(servers[2]!.url, bob, 'GET', '/api/v1/users/bob/quota')).json.used, { objects: 11, rules: 6 });
});
