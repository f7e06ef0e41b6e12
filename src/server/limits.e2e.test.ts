import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { http, serverFleet, sleep, tlsFetch } from '../testkit/server.js';
import { parseRawResponse, rawConnect } from '../testkit/raw.js';

// Bad clients replayed against real `weft server` processes: each is cut off or refused with a
// problem+json naming the flag, and well-behaved clients on the same server are still served.
const fleet = serverFleet();
after(() => fleet.stopAll());
const server = (args: string[]) => fleet.start(args);
const T = '/api/v1/tenants/default';

test('slowloris: a client dribbling its headers gets 408 naming --headers-timeout and is cut off; others are served meanwhile', async () => {
  const s = await server(['--headers-timeout', '1000', '--body-timeout', '2000']);
  const c = await rawConnect(s);
  c.socket.write('GET /api/v1/tenants HTTP/1.1\r\nHost: weft\r\n');
  let n = 0;
  const drip = setInterval(() => c.socket.write(`X-Slow-${n++}: y\r\n`), 200);
  try {
    assert.equal((await http(s.url, s.token, 'GET', '/api/v1/tenants')).status, 200, 'a normal client is served while the slow one dribbles');
    const at = await c.closed;
    assert.ok(at >= 900 && at < 2500, `cut off after ${at} ms (limit 1000 ms)`);
  } finally {
    clearInterval(drip);
  }
  const res = parseRawResponse(c.received());
  assert.equal(res.status, 408);
  assert.equal(res.headers['content-type'], 'application/problem+json');
  const p = JSON.parse(res.body);
  assert.equal(p.code, 'WEFT_REQUEST_TIMEOUT');
  assert.match(p.detail, /headers did not arrive within 1000 ms \(--headers-timeout\)/);
});

test('a client dribbling its body gets 408 naming --body-timeout, and nothing is written', async () => {
  const s = await server(['--headers-timeout', '1000', '--body-timeout', '2000']);
  const c = await rawConnect(s);
  const body = JSON.stringify({ name: 'slow' });
  c.socket.write(`POST /api/v1/tenants HTTP/1.1\r\nHost: weft\r\nAuthorization: Bearer ${s.token}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`);
  let i = 0;
  // One byte every 300 ms: the whole body would take 4.5 s.
  const drip = setInterval(() => { if (i < body.length - 1) c.socket.write(body[i++] ?? ''); }, 300);
  const at = await c.closed.finally(() => clearInterval(drip));
  assert.ok(at >= 1800 && at < 4000, `cut off after ${at} ms (limit 2000 ms)`);
  const res = parseRawResponse(c.received());
  assert.equal(res.status, 408);
  assert.match(JSON.parse(res.body).detail, /body did not arrive within 2000 ms \(--body-timeout\)/);
  assert.equal((await http(s.url, s.token, 'GET', `/api/v1/tenants/slow`)).status, 404);
});

test('a body over --body-limit gets 413 naming the flag, with or without a Content-Length', async () => {
  const s = await server(['--body-limit', '64KiB']);
  const huge = JSON.stringify({ name: 'n1', subnet: '10.9.0.0/24', pad: 'x'.repeat(200 * 1024) });
  // Sized: refused on the Content-Length alone, before a byte of the body is read.
  const sized = await rawConnect(s);
  sized.socket.write(`POST ${T}/networks HTTP/1.1\r\nHost: weft\r\nAuthorization: Bearer ${s.token}\r\nContent-Type: application/json\r\nContent-Length: ${huge.length}\r\n\r\n`);
  for (let i = 0; i < 200 && !sized.received().includes('WEFT_TOO_LARGE'); i++) await sleep(50);
  const r = parseRawResponse(sized.received());
  sized.socket.destroy();
  assert.equal(r.status, 413, sized.received().toString().slice(0, 300));
  assert.match(JSON.parse(r.body).detail, /larger than 65536 bytes \(--body-limit\)/);
  // Chunked: the server cannot know the size up front and must stop reading at the limit.
  const c = await rawConnect(s);
  c.socket.write(`POST ${T}/networks HTTP/1.1\r\nHost: weft\r\nAuthorization: Bearer ${s.token}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`);
  // 80 KB and no end: a server still reading would wait for more; one that counts answers at 64 KiB. (Sending
  // the rest would make the server close with unread bytes, and the reset could drop its answer here.)
  for (let i = 0; i < 8; i++) {
    const part = huge.slice(i * 10_240, (i + 1) * 10_240);
    c.socket.write(`${Buffer.byteLength(part).toString(16)}\r\n${part}\r\n`);
  }
  for (let i = 0; i < 200 && !c.received().includes('WEFT_TOO_LARGE'); i++) await sleep(50);
  const chunked = parseRawResponse(c.received());
  c.socket.destroy();
  assert.equal(chunked.status, 413, c.received().toString().slice(0, 300));
  assert.equal((await http(s.url, s.token, 'GET', `${T}/networks`)).json.items.length, 0, 'nothing was created');
});

test('a client that never reads a large answer is cut off at --request-timeout; a watch stream outlives it', async () => {
  const s = await server(['--headers-timeout', '1000', '--body-timeout', '2000', '--request-timeout', '2000']);
  const rules = (k: number) => Array.from({ length: 3000 }, (_, i) => ({ id: `r${i}`, protocol: 'tcp', ports: String(1 + ((i + k) % 60000)) }));
  for (let k = 0; k < 60; k++) assert.equal((await http(s.url, s.token, 'POST', `${T}/policies`, { name: `p${k}`, rules: rules(k) })).status, 201);
  const watch = await tlsFetch(`${s.url}/api/v1/watch`, { headers: { authorization: `Bearer ${s.token}` } });
  const c = await rawConnect(s);
  c.socket.pause();
  c.socket.write(`GET ${T}/policies HTTP/1.1\r\nHost: weft\r\nAuthorization: Bearer ${s.token}\r\n\r\n`);
  await sleep(3500);
  c.socket.resume();
  await c.closed;
  const got = c.received();
  const length = Number(parseRawResponse(got).headers['content-length']);
  assert.ok(length > 10 * 1024 * 1024, `a large answer (${length} bytes)`);
  assert.ok(got.length < length, `the connection was cut: ${got.length} of ${length} bytes arrived`);
  // The watch opened before is still live 3.5 s later, beyond the 2 s request timeout.
  await http(s.url, s.token, 'POST', '/api/v1/tenants', { name: 'after' });
  const reader = (watch.body as ReadableStream<Uint8Array>).getReader();
  let text = '';
  while (!text.includes('tenants/after')) {
    const { value, done } = await reader.read();
    if (done) break;
    text += new TextDecoder().decode(value);
  }
  await reader.cancel();
  assert.match(text, /"key":"tenants\/after"/);
});

test('an idle kept-alive connection is closed after --keepalive-timeout', async () => {
  const s = await server(['--keepalive-timeout', '500']);
  const c = await rawConnect(s);
  c.socket.write('GET /healthz HTTP/1.1\r\nHost: weft\r\n\r\n');
  while (!c.received().includes('"status":"ok"')) await sleep(20);
  const answeredAt = Date.now();
  await c.closed;
  const idle = Date.now() - answeredAt;
  assert.ok(idle >= 400 && idle < 2000, `closed after ${idle} ms idle (limit 500 ms)`);
});
