import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import http from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { parseConfig } from './config.js';
import { startDockerProxy, type RunningProxy } from './proxy.js';

/**
 * The proxy's HTTP handling against a stand-in for Docker's API on a unix socket and adapters written
 * here (a protocol test without root; agent/docker-proxy.e2e.test.ts runs the real docker CLI and dockerd).
 */
const dir = mkdtempSync(join(tmpdir(), 'weft-dproxy-'));
const dockerSock = join(dir, 'docker.sock');
const proxySock = join(dir, 'proxy.sock');
let docker: http.Server;
let adapter: http.Server;
let adapterUrl = '';
let proxy: RunningProxy;
const seen: string[] = [];
let releaseSecond: () => void = () => undefined;
let releaseWait: () => void = () => undefined;
let lastType: string | undefined;

before(async () => {
  docker = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      seen.push(`${req.method} ${req.url} ${body}`);
      lastType = req.headers['content-type'];
      if (req.url === '/v1.47/containers/c1/json') {
        // Larger answers come chunked from Docker (Go's net/http past ~2 kB): post-hooks must still see them.
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write('{"Id":"c1",');
        return res.end(`"pad":"${'x'.repeat(5000)}"}`);
      }
      if (req.url?.startsWith('/v1.47/containers/create')) {
        // As Docker (Go's net/http) sends a small answer: with its length.
        const text = JSON.stringify({ Id: 'c1', got: JSON.parse(body || 'null') });
        res.writeHead(201, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
        return res.end(text);
      }
      if (req.url === '/v1.47/events') {
        // A stream: the second line waits for the test to see the first through the proxy.
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write('{"n":1}\n');
        releaseSecond = () => res.end('{"n":2}\n');
        return;
      }
      if (req.url === '/v1.47/containers/c1/start') return res.writeHead(204).end();
      if (req.url?.startsWith('/v1.47/containers/c1/wait')) {
        // A long poll: the headers at once (docker run waits for them before it starts the container), the body at exit.
        res.writeHead(200, { 'content-type': 'application/json' });
        res.flushHeaders();
        releaseWait = () => res.end('{"StatusCode":0}\n');
        return;
      }
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"message":"page not found"}');
    });
  });
  docker.on('upgrade', (req, socket) => {
    if (req.url?.includes('nosuch')) {
      // Refused, the connection kept (as Go's server does): whatever follows would be a new request.
      socket.write('HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}');
      socket.on('data', (d: Buffer) => seen.push(`RAW ${d.toString()}`));
      socket.on('end', () => socket.end());
      return;
    }
    socket.write('HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n');
    socket.on('data', (d: Buffer) => socket.write(Buffer.concat([Buffer.from('echo:'), d])));
    socket.on('end', () => socket.end()); // an upgraded socket is half-open until its side ends too
  });
  await new Promise<void>((r) => docker.listen(dockerSock, r));
  adapter = http.createServer((req, res) => {
    let text = '';
    req.on('data', (d) => (text += d));
    req.on('end', () => {
      const env = JSON.parse(text);
      const mode = req.url;
      const reply = (o: unknown) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(o));
      if (mode === '/refuse') return res.writeHead(403, { 'content-type': 'application/json' }).end('{"message":"no containers today"}');
      if (mode === '/garbage') return res.writeHead(200).end('<html>');
      if (mode === '/slow') return setTimeout(() => reply({}), 3000);
      if (mode === '/move') return reply({ PowerstripProtocolVersion: 1, ModifiedClientRequest: { ...env.ClientRequest, Request: '/v1.47/containers/c1/kill' } });
      if (env.Type === 'pre-hook') {
        const body = JSON.parse(env.ClientRequest.Body);
        body.Env = [...(body.Env ?? []), `HOOKED=${mode}`];
        return reply({ PowerstripProtocolVersion: 1, ModifiedClientRequest: { ...env.ClientRequest, Body: JSON.stringify(body) } });
      }
      const got = JSON.parse(env.ServerResponse.Body);
      return reply({ PowerstripProtocolVersion: 1, ModifiedServerResponse: { ContentType: 'application/json', Code: env.ServerResponse.Code, Body: JSON.stringify({ ...got, post: mode, sawCode: env.ServerResponse.Code }) } });
    });
  });
  await new Promise<void>((r) => adapter.listen(0, '127.0.0.1', r));
  adapterUrl = `http://127.0.0.1:${(adapter.address() as { port: number }).port}`;
});

after(async () => {
  await proxy?.close();
  docker?.closeAllConnections();
  await new Promise((r) => docker?.close(r));
  adapter?.closeAllConnections(); // fetch keeps its connections to adapters alive
  await new Promise((r) => adapter?.close(r));
  rmSync(dir, { recursive: true, force: true });
});

async function start(endpoints: Record<string, unknown>): Promise<void> {
  await proxy?.close();
  const adapters = Object.fromEntries(['a', 'b', 'refuse', 'garbage', 'slow', 'move'].map((n) => [n, `${adapterUrl}/${n}`]));
  proxy = await startDockerProxy({ listen: { kind: 'unix', path: proxySock }, upstream: dockerSock, config: parseConfig({ endpoints, adapters }), driver: 'weft', hookTimeoutMs: 1000, log: () => undefined });
}

function call(method: string, path: string, body?: unknown, headers: Record<string, string> = { 'content-type': 'application/json' }): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: proxySock, method, path, agent: false, headers }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

test('pre-hooks chain in order, post-hooks see Docker\'s answer and replace it; the socket is 0600', async () => {
  await start({ 'POST /*/containers/create': { pre: ['a', 'b'], post: ['a', 'b'] } });
  assert.equal(statSync(proxySock).mode & 0o777, 0o600);
  const r = await call('POST', '/v1.47/containers/create?name=x', { Image: 'bb', Env: ['X=1'] });
  assert.equal(r.status, 201);
  const j = JSON.parse(r.text);
  assert.deepEqual(j.got.Env, ['X=1', 'HOOKED=/a', 'HOOKED=/b'], 'each pre-hook got the one before\'s request');
  assert.equal(j.post, '/b');
  assert.equal(j.sawCode, 201);
  assert.match(seen.at(-1)!, /^POST \/v1\.47\/containers\/create\?name=x /);
});

test('calls without hooks pass through; Docker\'s errors too', async () => {
  await start({ 'POST /*/containers/create': { pre: ['a'] } });
  const r = await call('GET', '/v1.47/nothing');
  assert.deepEqual([r.status, r.text], [404, '{"message":"page not found"}']);
  const s = await call('POST', '/v1.47/containers/c1/start');
  assert.equal(s.status, 204);
});

test('an adapter that refuses, answers garbage, is slow or moves the call stops it before Docker', async () => {
  for (const [name, status, re] of [['refuse', 403, /no containers today/], ['garbage', 502, /adapter 'garbage' \(pre-hook\) failed: its answer is not JSON/],
    ['slow', 502, /adapter 'slow' \(pre-hook\) failed: no answer within 1 s/], ['move', 502, /may change the query, not the path/]] as const) {
    await start({ 'POST /*/containers/create': { pre: [name] } });
    const before = seen.length;
    const r = await call('POST', '/v1.47/containers/create', { Image: 'bb' });
    assert.equal(r.status, status, `${name}: ${r.text}`);
    assert.match(JSON.parse(r.text).message, re);
    assert.equal(seen.length, before, `${name}: Docker never got the call`);
  }
});

test('streams pass chunk by chunk, upgraded connections are spliced both ways', async () => {
  await start({ '* /*/events': { post: ['a'] } });
  const lines = await new Promise<string[]>((resolve, reject) => {
    const got: string[] = [];
    http.get({ socketPath: proxySock, path: '/v1.47/events', agent: false }, (res) => {
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        got.push(d);
        if (got.length === 1) releaseSecond(); // the first line came before Docker sent the second
      });
      res.on('end', () => resolve(got));
    }).on('error', reject);
  });
  assert.deepEqual(lines.join('').split('\n').filter(Boolean), ['{"n":1}', '{"n":2}'], 'a hooked stream passes untouched too');

  const echoed = await new Promise<string>((resolve, reject) => {
    const s = connect(proxySock, () => s.write('POST /v1.47/containers/c1/attach?stream=1 HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n'));
    let text = '';
    s.on('data', (d) => {
      text += d;
      if (text.includes('\r\n\r\n') && !text.includes('echo:')) s.write('ping');
      if (text.includes('echo:ping')) { s.destroy(); resolve(text); }
    });
    s.on('error', reject);
  });
  assert.match(echoed, /^HTTP\/1.1 101 UPGRADED/);
});

test('a long poll\'s headers reach the client before its body exists (docker run holds `wait` open, then starts)', { timeout: 10_000 }, async () => {
  for (const hooked of [false, true]) {
    await start(hooked ? { 'POST /*/containers/*/wait': { post: ['a'] } } : {});
    const body = await new Promise<string>((resolve, reject) => {
      const req = http.request({ socketPath: proxySock, method: 'POST', path: '/v1.47/containers/c1/wait?condition=next-exit', agent: false }, (res) => {
        assert.equal(res.statusCode, 200);
        let text = '';
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve(text));
        releaseWait(); // only now that the headers came through
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(body, '{"StatusCode":0}\n', hooked ? 'hooked: a chunked answer passes untouched' : 'not hooked');
  }
});

/** Raw bytes to the proxy; what it answers until it closes (or 3 s). */
function raw(bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(proxySock, () => s.write(bytes));
    let text = '';
    const t = setTimeout(() => { s.destroy(); resolve(text); }, 3000);
    s.on('data', (d) => (text += d));
    s.on('close', () => { clearTimeout(t); resolve(text); });
    s.on('error', reject);
  });
}

test('hooks cannot be walked around: encoded or absolute paths, Upgrade on a call Docker does not upgrade, requests behind a refused upgrade', async () => {
  await start({ 'POST /*/containers/create': { pre: ['a'] } });
  const before = seen.length;
  for (const p of ['/v1.47/containers/%63reate', '/v1.47//containers/create', '/v1.47/x/../containers/create']) {
    const r = await call('POST', p, { Image: 'bb' });
    assert.equal(r.status, 400, p);
  }
  const abs = await raw('POST http://docker/v1.47/containers/create HTTP/1.1\r\nHost: docker\r\nContent-Length: 2\r\n\r\n{}');
  assert.match(abs, /^HTTP\/1\.1 400 /, 'absolute form refused');
  const smuggle = 'GET /v1.47/nothing HTTP/1.1\r\nHost: d\r\n\r\n';
  const up = await raw(`POST /v1.47/containers/create HTTP/1.1\r\nHost: d\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 2\r\n\r\n{}${smuggle}`);
  assert.match(up, /^HTTP\/1\.1 400 .*not a call Docker upgrades/s);
  const refused = await raw(`POST /v1.47/containers/nosuch/attach?stream=1 HTTP/1.1\r\nHost: d\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n${smuggle}`);
  assert.match(refused, /^HTTP\/1\.1 404 /, 'Docker\'s refusal goes back');
  await new Promise((r) => setTimeout(r, 200));
  assert.deepEqual(seen.slice(before), [], `nothing reached Docker: ${JSON.stringify(seen.slice(before))}`);
});

test('a hooked call keeps the client\'s content type (none made up) and its bytes when no adapter changed them', async () => {
  await start({ 'POST /*/containers/create': { pre: ['weft'] } });
  const body = '{"Image":"bb","Big":12345678901234567890}';
  const r = await call('POST', '/v1.47/containers/create', undefined, {});
  assert.equal(r.status, 201);
  assert.equal(lastType, undefined, 'no Content-Type invented (Docker refuses a create without one: a browser POST stays refused)');
  await new Promise<void>((resolve, reject) => {
    const req = http.request({ socketPath: proxySock, method: 'POST', path: '/v1.47/containers/create', agent: false, headers: { 'content-type': 'application/json' } }, (res) => { res.resume(); res.on('end', resolve); });
    req.on('error', reject);
    req.end(body);
  });
  assert.equal(seen.at(-1), `POST /v1.47/containers/create ${body}`, 'bytes untouched: no JSON round trip');
});

test('post-hooks see chunked JSON answers whole', async () => {
  await start({ 'GET /*/containers/*/json': { post: ['a'] } });
  const r = await call('GET', '/v1.47/containers/c1/json');
  assert.equal(JSON.parse(r.text).post, '/a');
});

test('the proxy never listens on Docker\'s own socket nor over a live socket', async () => {
  await proxy.close();
  await assert.rejects(startDockerProxy({ listen: { kind: 'unix', path: dockerSock }, upstream: dockerSock, config: parseConfig({ endpoints: {} }), driver: 'weft', log: () => undefined }), /would call itself/);
  await start({});
  await assert.rejects(startDockerProxy({ listen: { kind: 'unix', path: proxySock }, upstream: dockerSock, config: parseConfig({ endpoints: {} }), driver: 'weft', log: () => undefined }), /something already serves it/);
});
