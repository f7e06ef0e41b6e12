import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { http, startServerProcess, tlsFetch, type ServerProcess } from '../testkit/server.js';

const started: ServerProcess[] = [];
after(async () => {
  for (const s of started) await s.stop();
});
async function server(args: string[] = [], dataDir?: string): Promise<ServerProcess> {
  const s = await startServerProcess({ args, ...(dataDir ? { dataDir, keepDir: true } : {}) });
  started.push(s);
  return s;
}

test('401 concurrent endpoint creates for a 400-address range: 400 distinct addresses and one clean exhaustion', async () => {
  const s = await server();
  const net = await http(s.url, s.token, 'POST', '/api/v1/tenants/default/networks', { name: 'big', subnet: '10.2.0.0/23', ipRange: '10.2.0.2-10.2.1.145' });
  assert.equal(net.status, 201, JSON.stringify(net.json));
  const results = await Promise.all(Array.from({ length: 401 }, (_, i) => http(s.url, s.token, 'POST', '/api/v1/endpoints', {
    tenant: 'default', network: 'big', containerId: `c${i}`, host: 'node1', ifname: 'eth0',
  })));
  const okIps = results.filter((r) => r.status === 201).map((r) => r.json.ip as string);
  const failed = results.filter((r) => r.status !== 201);
  assert.equal(okIps.length, 400);
  assert.equal(new Set(okIps).size, 400, 'no address handed out twice');
  assert.ok(!okIps.includes('10.2.0.1') && !okIps.includes('10.2.0.0'), 'gateway and network address are reserved');
  assert.equal(failed.length, 1);
  assert.equal(failed[0]?.status, 409);
  assert.equal(failed[0]?.json.code, 'WEFT_POOL_EXHAUSTED');
  assert.match(failed[0]?.json.detail, /network default\/big has no free address/);
  const listed = await http(s.url, s.token, 'GET', '/api/v1/endpoints?tenant=default');
  assert.equal(listed.json.items.length, 400, 'the failed create left no endpoint behind');
});

async function readLines(res: Response, n: number, timeoutMs = 5000): Promise<any[]> {
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  let buf = '';
  const out: any[] = [];
  const deadline = Date.now() + timeoutMs;
  while (out.length < n && Date.now() < deadline) {
    const chunk = await Promise.race([reader.read(), new Promise<null>((r) => setTimeout(() => r(null), deadline - Date.now()))]);
    if (!chunk || chunk.done) break;
    buf += decoder.decode(chunk.value, { stream: true });
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      out.push(JSON.parse(buf.slice(0, nl)));
      buf = buf.slice(nl + 1);
    }
  }
  await reader.cancel();
  return out;
}

test('watch replays from a revision, then streams live changes in order', async () => {
  const s = await server();
  const t = '/api/v1/tenants/default';
  await http(s.url, s.token, 'POST', `${t}/networks`, { name: 'n1', subnet: '10.3.0.0/24' });
  const from = (await http(s.url, s.token, 'GET', '/healthz')).json.revision as number;
  await http(s.url, s.token, 'POST', `${t}/policies`, { name: 'p1' });
  const res = await tlsFetch(`${s.url}/api/v1/watch?since=${from}`, { headers: { authorization: `Bearer ${s.token}` } });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'application/x-ndjson');
  const reading = readLines(res, 3);
  await http(s.url, s.token, 'POST', `${t}/groups`, { name: 'g1', network: 'n1', policies: ['p1'] });
  await http(s.url, s.token, 'DELETE', `${t}/groups/g1`);
  const lines = await reading;
  assert.deepEqual(lines.map((l) => [l.op, l.kind, l.key]), [
    ['put', 'policy', 'policies/default/p1'],
    ['put', 'group', 'groups/default/g1'],
    ['delete', 'group', 'groups/default/g1'],
  ]);
  assert.ok(lines.every((l, i) => l.revision > from && (i === 0 || l.revision > lines[i - 1].revision)));
  assert.equal(lines[1].actor, 'admin');
});

test('a watch with nothing to replay answers at once, before any change', async () => {
  const s = await server();
  const t0 = Date.now();
  const res = await tlsFetch(`${s.url}/api/v1/watch`, { headers: { authorization: `Bearer ${s.token}` } });
  assert.equal(res.status, 200);
  assert.ok(Date.now() - t0 < 5000, 'the headers did not wait for the first change or bookmark (15 s)');
  await res.body?.cancel();
});

test('a server asked to stop ends its watch streams and exits promptly', async () => {
  const s = await startServerProcess();
  const res = await tlsFetch(`${s.url}/api/v1/watch`, { headers: { authorization: `Bearer ${s.token}` } });
  assert.equal(res.status, 200);
  const t0 = Date.now();
  assert.equal(await s.stop(), 0, 'a clean exit');
  assert.ok(Date.now() - t0 < 3000, `exited in ${Date.now() - t0} ms, not after the 5 s kill fallback`);
  await res.body?.cancel().catch(() => undefined);
});

test('a watch from a compacted revision answers 410 so the client re-lists', async () => {
  const s = await server(['--history-limit', '10']);
  for (let i = 0; i < 30; i++) await http(s.url, s.token, 'POST', '/api/v1/tenants', { name: `t${i}` });
  const res = await tlsFetch(`${s.url}/api/v1/watch?since=1`, { headers: { authorization: `Bearer ${s.token}` } });
  assert.equal(res.status, 410);
  assert.equal((await res.json()).code, 'WEFT_HISTORY_COMPACTED');
  const recent = (await http(s.url, s.token, 'GET', '/healthz')).json.revision - 5;
  const ok = await tlsFetch(`${s.url}/api/v1/watch?since=${recent}`, { headers: { authorization: `Bearer ${s.token}` } });
  assert.equal(ok.status, 200);
  await ok.body?.cancel();
});

test('a store restored from an older copy answers 410 to a watch or history from past its revision, so clients re-list', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-restore-'));
  const copy = `${dir}.copy`;
  try {
    const a = await server([], dir);
    await http(a.url, a.token, 'POST', '/api/v1/tenants', { name: 'kept' });
    assert.equal(await a.stop(), 0);
    cpSync(dir, copy, { recursive: true });
    const b = await server([], dir);
    for (let i = 0; i < 5; i++) await http(b.url, a.token, 'POST', '/api/v1/tenants', { name: `later${i}` });
    const seen = (await http(b.url, a.token, 'GET', '/healthz')).json.revision as number;
    assert.equal(await b.stop(), 0);
    rmSync(dir, { recursive: true, force: true });
    cpSync(copy, dir, { recursive: true });
    const c = await server([], dir);
    const now = (await http(c.url, a.token, 'GET', '/healthz')).json.revision as number;
    assert.ok(now < seen, `the restored store is behind (${now} < ${seen})`);
    const auth = { headers: { authorization: `Bearer ${a.token}` } };
    const res = await tlsFetch(`${c.url}/api/v1/watch?since=${seen}`, auth);
    assert.equal(res.status, 410, 'a watch from past the store is refused, not left waiting for revisions it will not send');
    const body = await res.json();
    assert.equal(body.code, 'WEFT_REVISION_AHEAD');
    assert.match(body.detail, new RegExp(`revision ${seen} is ahead of this store's \\(${now}\\).*re-list`));
    const hist = await http(c.url, a.token, 'GET', `/api/v1/history?since=${seen}`);
    assert.equal(hist.status, 410);
    assert.equal(hist.json.code, 'WEFT_REVISION_AHEAD');
    // From the store's own revision the stream works, and the next change comes on it.
    const ok = await tlsFetch(`${c.url}/api/v1/watch?since=${now}`, auth);
    assert.equal(ok.status, 200);
    await http(c.url, a.token, 'POST', '/api/v1/tenants', { name: 'after' });
    const [line] = await readLines(ok, 1);
    assert.equal(line.key, 'tenants/after');
    assert.equal(line.revision, now + 1, 'the restored store numbers on from its own revision');
    await ok.body?.cancel().catch(() => undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    rmSync(copy, { recursive: true, force: true });
  }
});

test('a restarted server keeps every object and address, and prints no new token', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-restart-'));
  try {
    const a = await server([], dir);
    await http(a.url, a.token, 'POST', '/api/v1/tenants/default/networks', { name: 'n', subnet: '10.4.0.0/24' });
    const ep = await http(a.url, a.token, 'POST', '/api/v1/endpoints', { tenant: 'default', network: 'n', containerId: 'c1', host: 'h', ifname: 'eth0' });
    assert.equal(await a.stop(), 0, 'SIGTERM stops the server cleanly');
    const b = await server([], dir);
    assert.equal(b.token, '', 'the admin token is printed only on the first start');
    const got = await http(b.url, a.token, 'GET', `/api/v1/endpoints/${ep.json.id}`);
    assert.equal(got.json.ip, '10.4.0.2');
    const next = await http(b.url, a.token, 'POST', '/api/v1/endpoints', { tenant: 'default', network: 'n', containerId: 'c2', host: 'h', ifname: 'eth0' });
    assert.equal(next.json.ip, '10.4.0.3', 'the address book survived the restart');
    const second = await startServerProcess({ dataDir: dir, keepDir: true }).then(async (x) => { await x.stop(); return 'started'; }, (e: Error) => e.message);
    assert.match(second, /in use by another weft server/, 'a second server on the same data dir is refused');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
