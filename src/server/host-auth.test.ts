import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { Control, CredentialRefused } from '../control/index.js';
import { SqliteStore } from '../store/index.js';
import { createCsr, normalSerial } from '../pki/index.js';
import { buildApp } from './app.js';
import { hostPrincipal, type PeerHost } from './auth.js';
import { prepareTls } from './tls.js';

/**
 * A host's certificate is checked against its identity on every request, also on a kept-alive connection
 * whose earlier answers were served from what the server remembers of that check (auth.ts: per
 * connection, by the identity object the SQLite store shares). In-process over real TLS, SQLite (the
 * store that shares its values), one connection throughout.
 */
test('on one kept-alive connection, a host certificate stops working the moment its host is removed, and stays refused after the host joins again', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-hostauth-'));
  const control = new Control(new SqliteStore(join(dir, 'weft.db')));
  await control.bootstrap();
  const tls = await prepareTls({ dataDir: dir, listenHost: '127.0.0.1', flags: {}, ca: control.ca });
  const app = await buildApp({ control, logger: false, tls });
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  t.after(async () => {
    agent.destroy();
    await app.close();
    await control.store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const port = (app.server.address() as AddressInfo).port;

  const { token } = await control.identities.invite('admin', 'h1');
  const csr = await createCsr('host:h1');
  const joined = await control.identities.redeem(token, csr.csrPem);
  const ports = new Set<number>();
  const whoami = () => new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/api/v1/whoami', agent, ca: joined.ca, cert: joined.certificate, key: csr.keyPem }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('socket', (s) => s.once('secureConnect', () => ports.add(s.localPort ?? 0)));
    req.on('error', reject).end();
  });

  for (let i = 0; i < 3; i++) {
    const r = await whoami();
    assert.equal(r.status, 200, r.body);
    assert.equal(JSON.parse(r.body).user, 'host:h1');
  }
  assert.ok(await control.identities.revoke('admin', 'h1'));
  const gone = await whoami();
  assert.equal(gone.status, 401, `a removed host's certificate is refused on its open connection: ${gone.body}`);
  assert.match(gone.body, /revoked or expired/);

  // Joined again: a new certificate; the old one (still on this connection) stays refused.
  const again = await control.identities.invite('admin', 'h1');
  await control.identities.redeem(again.token, (await createCsr('host:h1')).csrPem);
  const old = await whoami();
  assert.equal(old.status, 401, old.body);
  assert.equal(ports.size, 1, 'every request went over the one connection');
});

test('a host principal is one object for a connection\'s requests, and its certificate is checked each time: refused once it ends or its host is removed', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-hostauth-'));
  const control = new Control(new SqliteStore(join(dir, 'weft.db')));
  t.after(async () => {
    await control.store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  await control.bootstrap();
  const { token } = await control.identities.invite('admin', 'h2');
  const joined = await control.identities.redeem(token, (await createCsr('host:h2')).csrPem);
  const cert = new X509Certificate(joined.certificate);
  const peer: PeerHost = { host: 'h2', serial: normalSerial(cert.serialNumber), notAfter: Date.parse(cert.validTo) };
  const first = await hostPrincipal(control, peer);
  assert.equal(await hostPrincipal(control, peer), first, 'the same principal for the next request');
  assert.ok(Object.isFrozen(first), 'which no request may change');
  await assert.rejects(hostPrincipal(control, peer, peer.notAfter), CredentialRefused, 'refused at its end, though a principal was made for it');
  await assert.rejects(hostPrincipal(control, { ...peer, serial: 'ff' }), CredentialRefused, 'another serial of the same host is not listed');
  await control.identities.revoke('admin', 'h2');
  await assert.rejects(hostPrincipal(control, peer), CredentialRefused);
});
