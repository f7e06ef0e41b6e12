import { test } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { createCa, issueWithKey } from '../pki/index.js';
import { haveHttpload, httpload, parseLoad } from './httpload.js';

/** A local HTTPS server that asks for a client certificate and answers each POST with what it got. */
async function server(requireCert: boolean) {
  const ca = await createCa('httpload-test');
  const tls = await issueWithKey(ca, { commonName: '127.0.0.1', usage: 'server', ttlMs: 86_400_000, ips: ['127.0.0.1'] });
  const client = await issueWithKey(ca, { commonName: 'host:h', usage: 'client', ttlMs: 86_400_000 });
  const seen: string[] = [];
  const srv = https.createServer({ cert: tls.certPem, key: tls.keyPem, ca: ca.certPem, requestCert: requireCert, rejectUnauthorized: requireCert }, (req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => (body += d));
    req.on('end', () => {
      seen.push(body);
      const n = (JSON.parse(body) as { n: number }).n;
      const text = JSON.stringify({ id: n, ip: `10.0.${n >> 8}.${n & 255}`, note: 'é'.repeat(n % 50) });
      res.writeHead(n === 7 ? 409 : 201, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return {
    url: new URL(`https://127.0.0.1:${(srv.address() as AddressInfo).port}`), ca: ca.certPem, cert: client.certPem, key: client.keyPem, seen,
    close: () => new Promise((r) => { srv.closeAllConnections(); srv.close(r); }),
  };
}

const skip = !haveHttpload() && 'weft-httpload was not built (libssl-dev missing)';

test('weft-httpload: a closed and an open loop over mTLS, every request sent once with its number, each answer\'s status and address read', { skip }, async () => {
  const s = await server(true);
  try {
    const closed = await httpload({ url: s.url, ca: s.ca, cert: s.cert, key: s.key }, '/p', '{"n":%d}', 4, 300, 0);
    assert.equal(closed.lat.n, 300);
    assert.equal(closed.failed, 1, 'request 7 answered 409');
    assert.deepEqual(new Set(s.seen.map((b) => (JSON.parse(b) as { n: number }).n)), new Set(Array.from({ length: 300 }, (_, i) => i)));
    assert.equal(new Set(closed.ips).size, 300);
    assert.ok(closed.ips.includes('10.0.1.43'), 'request 299 → 10.0.1.43');
    assert.ok(closed.lat.p50 > 0 && closed.clientUs > 0);
    s.seen.length = 0;
    const t0 = performance.now();
    const open = await httpload({ url: s.url, ca: s.ca, cert: s.cert, key: s.key }, '/p', '{"n":%d}', 8, 400, 1000);
    const seconds = (performance.now() - t0) / 1000;
    assert.equal(open.lat.n, 400);
    assert.equal(s.seen.length, 400);
    // 400 requests due over 0.4 s: an open loop keeps to the clock, never faster (slower on a loaded machine).
    assert.ok(seconds >= 0.39, `took ${seconds} s`);
    assert.ok(open.rate > 200 && open.rate < 1100, `rate ${open.rate}`);
  } finally {
    await s.close();
  }
});

test('weft-httpload: a server its CA did not sign, or one that wants a certificate it was not given, fails the run with the reason', { skip }, async () => {
  const s = await server(true);
  const other = await createCa('someone-else');
  try {
    await assert.rejects(httpload({ url: s.url, ca: other.certPem }, '/p', '{"n":%d}', 1, 1, 0), /weft-httpload exited with 1: weft-httpload: TLS handshake/);
    await assert.rejects(httpload({ url: s.url, ca: s.ca }, '/p', '{"n":%d}', 1, 1, 0), /weft-httpload exited with 1/);
  } finally {
    await s.close();
  }
});

test('weft-httpload output: the summary and a line per request, or an error naming what is missing', () => {
  const r = parseLoad('done 2.000000 5000 3 1\n1500 201 10.0.0.1\n2500 409 -\n', 2);
  assert.deepEqual([r.rate, r.clientUs, r.waited, r.failed, r.ips, r.lat.max], [1, 2500, 3, 1, ['10.0.0.1', '-'], 2.5]);
  assert.throws(() => parseLoad('1500 201 -\n', 1), /no summary line/);
  assert.throws(() => parseLoad('done 1.0 10 0 0\n1500 201 -\n', 2), /1 answers for 2 requests/);
});
