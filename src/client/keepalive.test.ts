import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeTestPki } from '../testkit/pki.js';
import { Client } from './client.js';

/**
 * The server closes a kept-alive connection after its keep-alive timeout (Weft's: 10 s), the agent
 * heartbeats every 10 s: a request sent on a connection as the server gives it up gets ECONNRESET (seen
 * by bench:scale as failed heartbeats and writes). This server announces `Keep-Alive: timeout=2` and
 * drops any connection a request reaches after 1.5 s idle, as a server does whose close crossed the
 * request; a client that retires idle connections before the announced timeout never meets it.
 */
test('a kept-alive connection is retired before the server\'s announced keep-alive timeout, so a request never races its close', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-client-'));
  const pki = await makeTestPki(dir, []);
  const idleSince = new WeakMap<Socket, number>();
  const server = createServer({ cert: readFileSync(pki.server.cert), key: readFileSync(pki.server.key), keepAliveTimeout: 2000 }, (req, res) => {
    const since = idleSince.get(req.socket);
    if (since !== undefined && Date.now() - since > 1500) {
      req.socket.destroy();
      return;
    }
    res.once('finish', () => idleSince.set(req.socket, Date.now()));
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
  });
  const port = await new Promise<number>((r) => server.listen(0, '127.0.0.1', () => r((server.address() as AddressInfo).port)));
  const client = new Client({ servers: [`https://127.0.0.1:${port}`], token: undefined, tls: { ca: readFileSync(pki.ca, 'utf8') } });
  try {
    assert.deepEqual(await client.request('GET', '/healthz'), { ok: true });
    await new Promise((r) => setTimeout(r, 1700));
    assert.deepEqual(await client.request('GET', '/healthz'), { ok: true });
  } finally {
    client.close();
    server.closeAllConnections();
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
