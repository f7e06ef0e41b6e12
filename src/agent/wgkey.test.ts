import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProcessRunner } from '../exec/index.js';
import { keyDue, rotateWireguardKey, wireguardKey } from './wgkey.js';

test('a WireGuard key pair is made once (0600), kept across calls, and its public half is what `wg pubkey` derives', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-wg-'));
  try {
    const a = wireguardKey(dir);
    assert.match(a.publicKey, /^[A-Za-z0-9+/]{43}=$/);
    assert.equal(statSync(join(dir, 'wireguard.key')).mode & 0o777, 0o600);
    assert.deepEqual(wireguardKey(dir), a, 'the same key on the next start');
    assert.notEqual(wireguardKey(mkdtempSync(join(dir, 'other-'))).publicKey, a.publicKey, 'another host, another key');
    // RFC 7748's test vector (Alice): the derivation is X25519's, not just any 32 bytes.
    writeFileSync(join(dir, 'wireguard.key'), `${Buffer.from('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a', 'hex').toString('base64')}\n`);
    assert.equal(Buffer.from(wireguardKey(dir).publicKey, 'base64').toString('hex'), '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a');
    // wireguard-tools (installed by scripts/setup.sh) derive the same public key from the same file.
    const wg = await new ProcessRunner().run(['wg', 'pubkey'], { input: readFileSync(join(dir, 'wireguard.key'), 'utf8') });
    assert.equal(wg.stdout.trim(), wireguardKey(dir).publicKey, 'wireguard-tools agree');
    const mine = mkdtempSync(join(dir, 'fresh-'));
    const fresh = wireguardKey(mine);
    const theirs = await new ProcessRunner().run(['wg', 'pubkey'], { input: `${fresh.privateKey}\n` });
    assert.equal(theirs.stdout.trim(), fresh.publicKey, 'and for a key made here');
    writeFileSync(join(dir, 'wireguard.key'), 'garbage\n');
    assert.throws(() => wireguardKey(dir), /not a WireGuard private key.*remove it to make a new one/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a key is due when a rotation was asked for since the last one, or when it is older than the rotation age', () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-wg-'));
  try {
    const first = wireguardKey(dir);
    assert.equal(keyDue(dir, 3, 30), false, 'a fresh state dir answers the current count without rotating');
    assert.equal(keyDue(dir, 3, 30), false);
    assert.equal(keyDue(dir, 4, 30), true, 'weft host rotate-key raised the count');
    const next = rotateWireguardKey(dir, 4);
    assert.notEqual(next.publicKey, first.publicKey);
    assert.deepEqual(wireguardKey(dir), next, 'the new pair is the one kept');
    assert.equal(statSync(join(dir, 'wireguard.key')).mode & 0o777, 0o600);
    assert.equal(keyDue(dir, 4, 30), false, 'answered');
    assert.equal(keyDue(dir, 1, 30), true, 'a host removed and joined again counts from 0: a new request still rotates');
    rotateWireguardKey(dir, 4);
    const in31days = Date.now() + 31 * 86_400_000;
    assert.equal(keyDue(dir, 4, 30, in31days), true, 'older than 30 days');
    assert.equal(keyDue(dir, 4, 0, in31days), false, '0: never by age');
    writeFileSync(join(dir, 'wireguard.rotated'), 'garbage\n');
    assert.equal(keyDue(dir, 4, 0), true, 'an unreadable record rotates rather than never again');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('making key pairs never hangs: 10,000 in a row, with a garbage collection every few allocations', async () => {
  // Node 20's generateKeyPairSync + export({ format: 'jwk' }) deadlocks when a collection runs inside the
  // export (the finished key job's destructor takes the lock the export holds): such a loop hung within
  // ~5,000 keys, and bench:scale's worker making 500 agents' keys froze for good. In a child process, so a
  // hang fails this test instead of the test runner.
  const script = `import { newKeyPair } from ${JSON.stringify(new URL('./wgkey.js', import.meta.url).href)};
    const seen = new Set();
    for (let i = 0; i < 10000; i++) seen.add(newKeyPair().publicKey);
    console.log(seen.size);`;
  const r = await new ProcessRunner().run([process.execPath, '--max-semi-space-size=1', '--input-type=module', '-e', script], { timeoutMs: 60_000 });
  assert.equal(r.stdout.trim(), '10000', 'every pair made, and all distinct');
});
