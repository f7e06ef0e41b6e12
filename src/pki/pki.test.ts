import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { createCa, createCsr, fingerprint, formatJoinToken, issueWithKey, issuedBy, newJoinSecret, parseJoinToken, signCsr, summarize } from './index.js';
import { WeftError } from '../model/index.js';

test('a CA signs a server certificate naming its addresses, and a host certificate from a CSR', async () => {
  const ca = await createCa('Weft CA test');
  const caCert = new X509Certificate(ca.certPem);
  assert.equal(caCert.ca, true);
  const srv = await issueWithKey(ca, { commonName: 'weft-server', usage: 'server', ttlMs: 3_600_000, dnsNames: ['localhost', 'node1'], ips: ['127.0.0.1', '10.0.0.1'] });
  const s = new X509Certificate(srv.certPem);
  assert.equal(s.checkIP('10.0.0.1'), '10.0.0.1');
  assert.equal(s.checkHost('node1'), 'node1');
  assert.equal(s.checkIP('10.0.0.2'), undefined);
  assert.ok(issuedBy(srv.certPem, ca.certPem));

  const { csrPem, keyPem } = await createCsr('whatever-the-host-asks');
  const cert = await signCsr(ca, csrPem, { commonName: 'host:node2', usage: 'client', ttlMs: 60_000 });
  const sum = summarize(cert);
  assert.equal(sum.commonName, 'host:node2', 'the signer decides the name, not the CSR');
  assert.ok(sum.notAfter.getTime() - Date.now() <= 60_000 && sum.notAfter.getTime() - Date.now() > 50_000);
  assert.match(sum.serial, /^[0-9a-f]+$/);
  assert.ok(new X509Certificate(cert).checkPrivateKey((await import('node:crypto')).createPrivateKey(keyPem)));
  assert.ok(issuedBy(cert, ca.certPem));
  assert.ok(!issuedBy(cert, (await createCa('other')).certPem), 'another CA did not sign it');
  assert.ok(!issuedBy(cert, ca.certPem, new Date(Date.now() + 120_000)), 'expired later');
});

test('a CSR whose signature does not verify, or garbage, is refused naming the field', async () => {
  const ca = await createCa('Weft CA test');
  const { csrPem } = await createCsr('x');
  // Flip one byte of the signature (the end of the DER).
  const b64 = csrPem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
  const der = Buffer.from(b64, 'base64');
  der[der.length - 3] = (der[der.length - 3] as number) ^ 0xff;
  const bad = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
  for (const text of [bad, 'not a csr', '']) {
    await assert.rejects(signCsr(ca, text, { commonName: 'host:x', usage: 'client', ttlMs: 1000 }), (e: unknown) => e instanceof WeftError && e.field === 'csr');
  }
});

test('a join token carries the CA pin and the host, and garbage is refused naming the field', async () => {
  const ca = await createCa('Weft CA test');
  const hash = fingerprint(ca.certPem);
  assert.match(hash, /^sha256:[0-9a-f]{64}$/);
  const secret = newJoinSecret();
  const text = formatJoinToken({ caHash: hash, host: 'node-2', secret });
  assert.deepEqual(parseJoinToken(text), { caHash: hash, host: 'node-2', secret });
  for (const t of ['', 'weftjoin1', text.replace('node-2', 'Node_2'), text.slice(0, -1), `${text}x`, text.replace('weftjoin1', 'weftjoin2'), `${text}\n.x`]) {
    assert.throws(() => parseJoinToken(t, '--join'), (e: unknown) => e instanceof WeftError && e.field === '--join', t);
  }
});

test('writeFileAtomic never writes through a symlink at PATH.tmp, and sets the mode of a file that existed', async () => {
  const { mkdtempSync, rmSync, writeFileSync, readFileSync, symlinkSync, statSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { tmpdir } = await import('node:os');
  const { writeFileAtomic } = await import('./files.js');
  const dir = mkdtempSync(join(tmpdir(), 'weft-atomic-'));
  try {
    const victim = join(dir, 'victim');
    writeFileSync(victim, 'precious\n');
    const path = join(dir, 'agent.key');
    writeFileSync(path, 'old', { mode: 0o644 });
    symlinkSync(victim, `${path}.tmp`);
    writeFileAtomic(path, 'new key\n', 0o600);
    assert.equal(readFileSync(victim, 'utf8'), 'precious\n', "the symlink's target is untouched");
    assert.equal(readFileSync(path, 'utf8'), 'new key\n');
    assert.equal(statSync(path).mode & 0o777, 0o600);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
