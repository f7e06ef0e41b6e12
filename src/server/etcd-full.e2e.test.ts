import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { tlsFetch } from '../testkit/server.js';
import { startEtcd, type EtcdProcess } from '../testkit/etcd.js';
import { etcdAlarms, fillEtcd, freeEtcd } from '../testkit/etcd-space.js';
import { startTestHost, within, type TestHost } from '../testkit/host.js';

// A server on a real etcd with a 16 MiB space quota and an agent on a test host; the test fills etcd
// with keys outside Weft's prefix until etcd raises NOSPACE, keeps it full past --host-grace, then
// recovers it the operator's way (delete, compact, defragment, disarm) through etcd's JSON gateway.
const available = process.getuid?.() === 0 && (() => { try { execFileSync('etcd', ['--version'], { stdio: 'ignore' }); return true; } catch { return false; } })();
const skip = !available && 'needs root and etcd';
const GRACE = 15_000;
const T = '/api/v1/tenants/default';
let etcd: EtcdProcess | undefined;
let h: TestHost | undefined;

before(async () => {
  if (!available) return;
  etcd = await startEtcd({ args: ['--quota-backend-bytes', String(16 * 1024 * 1024)] });
  h = await startTestHost('efull', { serverArgs: ['--store', `etcd://${etcd.endpoint.slice('http://'.length)}`, '--host-grace', String(GRACE)] });
});
after(async () => {
  await h?.cleanup();
  await etcd?.stop();
});

/** Reads a watch stream's NDJSON lines into `lines` until it ends (then `ended` is set). */
function follow(res: Response): { lines: Array<{ key?: string }>; ended: boolean } {
  const out = { lines: [] as Array<{ key?: string }>, ended: false };
  void (async () => {
    let buf = '';
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buf += Buffer.from(chunk).toString();
        for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
          out.lines.push(JSON.parse(buf.slice(0, i)));
          buf = buf.slice(i + 1);
        }
      }
    } catch { /* cancelled at the end of the test */ }
    out.ended = true;
  })();
  return out;
}

test('etcd past its space quota: writes refused (503 WEFT_STORE_FULL with the way out), reads, watches and the agent go on, no endpoint released past the grace; the operator frees it and writes resume within 10 s', { skip, timeout: 240_000 }, async () => {
  const host = h!;
  const api = host.api;
  assert.equal((await api('POST', `${T}/networks`, { name: 'net', subnet: '10.98.0.0/24' })).status, 201);
  assert.equal((await api('POST', `${T}/groups`, { name: 'web', network: 'net' })).status, 201);
  assert.ok(await within(10_000, async () => existsSync(join(host.cniConfDir, 'weft-default-net.conflist'))) >= 0);
  const add = async (id: string) => host.cni('ADD', { conflist: 'weft-default-net', containerId: id, netns: await host.container(id) });
  for (const id of ['k1', 'k2']) assert.equal((await add(id)).code, 0);
  const held = async () => ((await api('GET', '/api/v1/endpoints')).json.items as Array<{ containerId: string; ip: string }>).map((e) => `${e.containerId} ${e.ip}`).sort();
  const endpoints = await held();
  const since = (await api('GET', '/healthz')).json.revision as number;
  const res = await tlsFetch(`${host.server.url}/api/v1/watch?since=${since}`, { headers: { authorization: `Bearer ${host.token}` } });
  const watch = follow(res);

  const filled = await fillEtcd(etcd!.endpoint);
  const t0 = Date.now();
  assert.ok(filled.keys > 0);
  for (const [method, path, body] of [['POST', `${T}/networks`, { name: 'refused', subnet: '10.99.0.0/24' }], ['POST', `${T}/policies`, { name: 'refused' }], ['PATCH', `${T}/groups/web`, { labels: { tier: 'refused' } }]] as const) {
    const r = await api(method, path, body);
    assert.equal(r.status, 503, `${method} ${path}: ${JSON.stringify(r.json)}`);
    assert.equal(r.json.code, 'WEFT_STORE_FULL');
    assert.match(r.json.detail, /etcd at 127\.0\.0\.1:\d+: etcd's space quota \(--quota-backend-bytes\) is exhausted/);
    assert.match(r.json.detail, /compact its history, defragment each member, then disarm the alarm/);
  }
  const refused = await add('k3');
  assert.equal(refused.json?.code, 11, `ADD: a runtime is told to try again: ${refused.stdout}`);
  assert.match(refused.json.msg, /space quota/);
  assert.deepEqual(((await api('GET', `${T}/networks`)).json.items as Array<{ name: string }>).map((n) => n.name), ['net'], 'reads answer');
  assert.equal((await api('GET', `${T}/groups/web`)).json.labels?.tier, undefined, 'nothing half-made');
  const health = (await api('GET', '/healthz')).json;
  assert.deepEqual([health.status, health.store.writable, health.store.code], ['degraded', false, 'WEFT_STORE_FULL']);

  await new Promise((r) => setTimeout(r, GRACE + 10_000 - (Date.now() - t0)));
  const silent = Date.now() - Date.parse((await api('GET', '/api/v1/hosts')).json.items[0].lastSeen);
  assert.ok(silent > GRACE, `no heartbeat recorded for ${silent} ms: longer than the grace`);
  assert.doesNotThrow(() => process.kill(host.agentPid()!, 0), 'the agent runs');
  assert.equal(watch.ended, false, 'the watch stream stayed open');

  await freeEtcd([etcd!.endpoint]);
  assert.deepEqual(await etcdAlarms(etcd!.endpoint), []);
  const t1 = Date.now();
  const took = await within(10_000, async () => (await api('POST', `${T}/networks`, { name: 'n2', subnet: '10.99.0.0/24' })).status === 201, 200);
  assert.ok(took >= 0, 'writes succeed within 10 s of the recovery');
  assert.ok(await within(5000, async () => watch.lines.some((l) => l.key === 'networks/default/n2')) >= 0, 'the same watch stream delivers the new write');
  assert.equal((await api('POST', `${T}/groups`, { name: 'g2', network: 'net' })).status, 201);
  assert.ok(await within(10_000, async () => existsSync(join(host.cniConfDir, 'weft-default-g2.conflist'))) >= 0, "the agent's watch delivered it: its conflist is written");
  while (Date.now() - t1 < GRACE + 5000) {
    assert.deepEqual(await held(), endpoints, `no endpoint released ${Date.now() - t1} ms after the recovery`);
    await new Promise((r) => setTimeout(r, 250));
  }
  assert.equal((await host.cni('ADD', { conflist: 'weft-default-net', containerId: 'k3', netns: `/run/netns/${host.tag}-k3` })).code, 0, 'ADD works again');
  assert.equal((await api('GET', '/healthz')).json.status, 'ok');
  await res.body?.cancel().catch(() => undefined);
});
