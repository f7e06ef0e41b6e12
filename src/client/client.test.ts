import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeTestPki } from '../testkit/pki.js';
import { ApiError, Client } from './client.js';

test('a server that accepts and never answers is given up on like an unreachable one; the next server is tried', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-client-'));
  const pki = await makeTestPki(dir, []);
  const tls = { cert: readFileSync(pki.server.cert), key: readFileSync(pki.server.key) };
  const silent = createServer(tls, () => undefined);
  const answering = createServer(tls, (_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}'));
  const listen = (s: typeof silent) => new Promise<number>((r) => s.listen(0, '127.0.0.1', () => r((s.address() as AddressInfo).port)));
  const [a, b] = [await listen(silent), await listen(answering)];
  const ca = readFileSync(pki.ca, 'utf8');
  try {
    const alone = new Client({ servers: [`https://127.0.0.1:${a}`], token: undefined, tls: { ca } });
    const t0 = Date.now();
    const e = await alone.request('GET', '/healthz', undefined, { timeoutMs: 300 }).catch((x: unknown) => x);
    assert.ok(e instanceof ApiError && e.status === 0, String(e));
    assert.match((e as ApiError).message, /ETIMEDOUT/);
    assert.ok(Date.now() - t0 < 3000, `gave up after ${Date.now() - t0} ms`);
    alone.close();
    const both = new Client({ servers: [`https://127.0.0.1:${a}`, `https://127.0.0.1:${b}`], token: undefined, tls: { ca } });
    assert.deepEqual(await both.request('GET', '/healthz', undefined, { timeoutMs: 300 }), { ok: true });
    both.close();
  } finally {
    silent.closeAllConnections();
    answering.closeAllConnections();
    silent.close();
    answering.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
