import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { http, startServerProcess, type ServerProcess } from '../testkit/server.js';
import { startEtcd, type EtcdProcess } from '../testkit/etcd.js';

// `weft apply` on the etcd store: one apply is one etcd transaction, bounded by etcd's --max-txn-ops.
const available = (() => { try { execFileSync('etcd', ['--version'], { stdio: 'ignore' }); return true; } catch { return false; } })();
const skip = available ? false : 'etcd is not installed';
const stops: Array<() => Promise<unknown>> = [];
after(async () => { for (const s of stops.reverse()) await s().catch(() => undefined); });

const networks = (n: number) => ({ tenant: 'default', documents: Array.from({ length: n }, (_, i) => ({ kind: 'Network', metadata: { name: `n${i}` }, spec: { subnet: `10.${60 + (i >> 8)}.${i & 255}.0/24` } })) });

test('apply on etcd: 60 networks are refused at etcd\'s default, naming the flag; with --etcd-max-txn-ops (and etcd told the same) they go in as one transaction', { skip, timeout: 120_000 }, async () => {
  const small: EtcdProcess = await startEtcd();
  stops.push(() => small.stop());
  const a: ServerProcess = await startServerProcess({ args: ['--store', `etcd://${small.endpoint.replace(/^https?:\/\//, '')}`] });
  stops.push(() => a.stop());
  const refused = await http(a.url, a.token, 'POST', '/api/v1/apply', networks(60));
  assert.equal(refused.status, 413, JSON.stringify(refused.json));
  assert.equal(refused.json.code, 'WEFT_TOO_LARGE');
  assert.match(refused.json.detail, /--max-txn-ops 128 operations \(its default; if etcd runs with more, tell the server: --etcd-max-txn-ops\)/);
  assert.deepEqual((await http(a.url, a.token, 'GET', '/api/v1/tenants/default/networks')).json.items, [], 'nothing of it was written');

  const big: EtcdProcess = await startEtcd({ args: ['--max-txn-ops', '1024'] });
  stops.push(() => big.stop());
  const b: ServerProcess = await startServerProcess({ args: ['--store', `etcd://${big.endpoint.replace(/^https?:\/\//, '')}`, '--etcd-max-txn-ops', '1024'] });
  stops.push(() => b.stop());
  const r = await http(b.url, b.token, 'POST', '/api/v1/apply', networks(60));
  assert.equal(r.status, 200, JSON.stringify(r.json));
  assert.equal(r.json.results.filter((x: { action: string }) => x.action === 'created').length, 60);
  const again = await http(b.url, b.token, 'POST', '/api/v1/apply', networks(60));
  assert.deepEqual([...new Set(again.json.results.map((x: { action: string }) => x.action))], ['unchanged'], 'applying it again writes nothing');
});
