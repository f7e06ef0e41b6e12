import { test } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { ApiError, fetchPinnedCa } from '../client/index.js';
import { createCa, fingerprint, issueWithKey } from '../pki/index.js';

/** A TLS server (someone in between, say) that answers /api/v1/ca.crt with whatever it likes. */
async function serving(body: string, run: (url: string) => Promise<void>): Promise<void> {
  const own = await createCa('in between');
  const cert = await issueWithKey(own, { commonName: 'x', usage: 'server', ttlMs: 600_000, ips: ['127.0.0.1'] });
  const srv = https.createServer({ key: cert.keyPem, cert: cert.certPem }, (_req, res) => res.end(body));
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  try {
    await run(`https://127.0.0.1:${(srv.address() as AddressInfo).port}`);
  } finally {
    srv.close();
  }
}

test('the pinned CA is accepted alone, re-encoded; a second certificate, a non-CA or another CA is refused before anything is sent', async () => {
  const real = await createCa('Weft CA');
  const attacker = await createCa('attacker');
  const pin = fingerprint(real.certPem);
  await serving(real.certPem, async (url) => assert.equal((await fetchPinnedCa(url, pin)).trim(), real.certPem.trim()));
  const refused = (detail: RegExp) => (e: unknown) => e instanceof ApiError && e.code === 'tls' && detail.test(e.message);
  await serving(real.certPem + attacker.certPem, async (url) => {
    await assert.rejects(fetchPinnedCa(url, pin), refused(/2 certificates/), 'the real CA followed by the attacker\'s');
  });
  await serving(attacker.certPem + real.certPem, async (url) => assert.rejects(fetchPinnedCa(url, pin), refused(/2 certificates/)));
  await serving(attacker.certPem, async (url) => assert.rejects(fetchPinnedCa(url, pin), refused(/not the pinned/)));
  const leaf = await issueWithKey(real, { commonName: 'leaf', usage: 'server', ttlMs: 600_000 });
  await serving(leaf.certPem, async (url) => assert.rejects(fetchPinnedCa(url, fingerprint(leaf.certPem)), refused(/not a CA/)));
  await serving('garbage', async (url) => assert.rejects(fetchPinnedCa(url, pin), refused(/one CA certificate/)));
});

test('credentials cut short (a power loss while agent.crt was written) or not PEM are not whole: none, so a join makes them again', async () => {
  const { mkdtempSync, rmSync, writeFileSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { tmpdir } = await import('node:os');
  const { loadCredentials } = await import('./identity.js');
  const dir = mkdtempSync(join(tmpdir(), 'weft-identity-'));
  try {
    const ca = await createCa('weft');
    const host = await issueWithKey(ca, { commonName: 'host:node1', usage: 'client', ttlMs: 600_000 });
    writeFileSync(join(dir, 'agent.key'), host.keyPem);
    writeFileSync(join(dir, 'agent.crt'), host.certPem);
    writeFileSync(join(dir, 'ca.crt'), ca.certPem);
    assert.equal(loadCredentials(dir, 'node1')?.host, 'node1', 'whole: loaded');
    const cert = 'agent.crt';
    for (const damaged of [host.certPem.slice(0, host.certPem.length >> 1), 'garbage\n', '']) {
      writeFileSync(join(dir, cert), damaged);
      assert.equal(loadCredentials(dir, 'node1'), undefined, JSON.stringify(damaged.slice(0, 20)));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
