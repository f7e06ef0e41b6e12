import { test } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { createCa, issueWithKey } from '../pki/index.js';
import { LeanConnection, LeanPool } from './lean-https.js';

/** A local HTTPS server whose answers the test shapes (split in pieces, chunked). */
async function server(handler: (path: string, body: string, res: import('node:http').ServerResponse) => void) {
  const ca = await createCa('lean-test');
  const tls = await issueWithKey(ca, { commonName: '127.0.0.1', usage: 'server', ttlMs: 86_400_000, ips: ['127.0.0.1'] });
  const srv = https.createServer({ cert: tls.certPem, key: tls.keyPem }, (req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => (body += d));
    req.on('end', () => handler(req.url ?? '', body, res));
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return { url: new URL(`https://127.0.0.1:${(srv.address() as AddressInfo).port}`), ca: ca.certPem, close: () => new Promise((r) => srv.close(r)) };
}

test('lean client: answers framed by content-length arrive whole, split or not, multi-byte text included; requests go one at a time per connection', async () => {
  const s = await server((path, body, res) => {
    const text = JSON.stringify({ path, got: JSON.parse(body || 'null'), note: 'é✓'.repeat(3000) });
    res.writeHead(201, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    // Half now, half a moment later: the client must wait for the bytes, not the characters.
    const b = Buffer.from(text);
    res.write(b.subarray(0, 7001));
    setTimeout(() => res.end(b.subarray(7001)), 20);
  });
  const pool = await LeanPool.open(s.url, 2, { ca: s.ca });
  try {
    const answers = await Promise.all([1, 2, 3, 4, 5].map((i) => pool.request('POST', `/p/${i}`, { i })));
    assert.deepEqual(answers.map((a) => [a.status, JSON.parse(a.body).path, JSON.parse(a.body).got.i, JSON.parse(a.body).note.length]), [1, 2, 3, 4, 5].map((i) => [201, `/p/${i}`, i, 6000]));
  } finally {
    pool.close();
    await s.close();
  }
});

test('lean client: a chunked answer or a closed connection fails the request instead of hanging', async () => {
  const s = await server((path, _body, res) => {
    if (path === '/chunked') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('no length');
    } else res.socket?.destroy();
  });
  try {
    const c = await LeanConnection.open(s.url, { ca: s.ca });
    await assert.rejects(c.request('GET', '/chunked'), /chunked answers are not supported/);
    c.close();
    const d = await LeanConnection.open(s.url, { ca: s.ca });
    await assert.rejects(d.request('GET', '/drop'), /closed|reset|socket/i);
    d.close();
  } finally {
    await s.close();
  }
});
