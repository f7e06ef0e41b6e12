import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { http, runWeft, startServerProcess, tlsFetch, type ServerProcess } from '../testkit/server.js';
import { startEtcd, type EtcdProcess } from '../testkit/etcd.js';

const available = (() => { try { execFileSync('etcd', ['--version'], { stdio: 'ignore' }); return true; } catch { return false; } })();
let etcd: EtcdProcess;
const servers: ServerProcess[] = [];

before(async () => {
  if (!available) return;
  etcd = await startEtcd();
  const store = `etcd://${etcd.endpoint.slice('http://'.length)}`;
  for (let i = 0; i < 3; i++) servers.push(await startServerProcess({ args: ['--store', store] }));
});
after(async () => {
  for (const s of servers) await s.stop();
  await etcd?.stop();
});

test('three servers on one etcd: one admin token, any server serves any request, watches see every server', { skip: !available && 'etcd is not installed' }, async () => {
  const tokens = servers.map((s) => s.token).filter(Boolean);
  assert.equal(tokens.length, 1, 'only the first server to start creates the admin token');
  const token = tokens[0] as string;
  const [a, b, c] = servers as [ServerProcess, ServerProcess, ServerProcess];
  const since = (await http(c.url, token, 'GET', '/healthz')).json.revision;
  const watch = await tlsFetch(`${c.url}/api/v1/watch?since=${since}`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal((await http(a.url, token, 'POST', '/api/v1/tenants/default/networks', { name: 'n', subnet: '10.6.0.0/24' })).status, 201);
  assert.equal((await http(b.url, token, 'GET', '/api/v1/tenants/default/networks/n')).json.subnet, '10.6.0.0/24');
  assert.equal((await http(b.url, token, 'POST', '/api/v1/tenants/default/networks', { name: 'm', subnet: '10.6.0.128/25' })).status, 409, 'overlap is checked across servers');
  const reader = (watch.body as ReadableStream<Uint8Array>).getReader();
  const { value } = await reader.read();
  await reader.cancel();
  const line = JSON.parse(new TextDecoder().decode(value).split('\n')[0] as string);
  assert.deepEqual([line.kind, line.key, line.actor], ['network', 'networks/default/n', 'admin'], 'server C streams the write made through A');
});

test('500 concurrent endpoint creates spread over 3 servers on a 500-address range: all distinct, one more fails cleanly', { skip: !available && 'etcd is not installed' }, async () => {
  const token = servers.map((s) => s.token).find(Boolean) as string;
  const net = await http(servers[0]!.url, token, 'POST', '/api/v1/tenants/default/networks', { name: 'big', subnet: '10.7.0.0/23', ipRange: '10.7.0.2-10.7.1.245' });
  assert.equal(net.status, 201, JSON.stringify(net.json));
  const results = await Promise.all(Array.from({ length: 501 }, (_, i) => http(servers[i % 3]!.url, token, 'POST', '/api/v1/endpoints', {
    tenant: 'default', network: 'big', containerId: `c${i}`, host: 'node1', ifname: 'eth0',
  })));
  const ips = results.filter((r) => r.status === 201).map((r) => r.json.ip as string);
  const failed = results.filter((r) => r.status !== 201);
  assert.equal(new Set(ips).size, ips.length, 'no address handed out twice');
  assert.equal(ips.length, 500);
  assert.deepEqual(failed.map((r) => r.json.code), ['WEFT_POOL_EXHAUSTED']);
  const listed = await http(servers[2]!.url, token, 'GET', '/api/v1/endpoints');
  assert.equal(listed.json.items.length, 500, 'no lost allocation');
  const cli = await runWeft(['tenant', 'ls', '-q', '--server', `https://127.0.0.1:9,${servers[1]!.url}`, '--token', token], {});
  assert.deepEqual([cli.code, cli.stdout.trim()], [0, 'default'], 'the CLI fails over past a dead server in its list');
});
