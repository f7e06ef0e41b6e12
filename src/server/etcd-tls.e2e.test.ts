import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3, Range } from 'etcd3';
import { http, serverFleet, startServerProcess } from '../testkit/server.js';
import { startEtcd, type EtcdProcess } from '../testkit/etcd.js';
import { makeTestPki, type KeyPair, type TestPki } from '../testkit/pki.js';

// A real etcd with TLS, client-certificate authentication (--client-cert-auth) and etcd auth enabled;
// Weft's etcd user may read and write only the /weft/ prefix.
const available = (() => { try { execFileSync('etcd', ['--version'], { stdio: 'ignore' }); execFileSync('openssl', ['version'], { stdio: 'ignore' }); return true; } catch { return false; } })();
const skip = !available && 'etcd or openssl is not installed';
const fleet = serverFleet();
const dir = mkdtempSync(join(tmpdir(), 'weft-etcd-tls-'));
let pki: TestPki;
let etcd: EtcdProcess | undefined;
let store = '';

const client = (who: KeyPair) => new Etcd3({
  hosts: [etcd!.endpoint],
  credentials: { rootCertificate: readFileSync(pki.ca), certChain: readFileSync(who.cert), privateKey: readFileSync(who.key) },
});
const secret = (name: string, text: string) => {
  writeFileSync(join(dir, name), `${text}\n`, { mode: 0o600 });
  return join(dir, name);
};

before(async () => {
  if (!available) return;
  pki = await makeTestPki(dir, ['root', 'weft']);
  etcd = await startEtcd({ tls: { pki, client: pki.clients['root']! } });
  store = `etcd://${etcd.endpoint.slice('https://'.length)}`;
  const root = client(pki.clients['root']!);
  try {
    await root.user('root').create('root-secret');
    await root.user('root').addRole('root');
    await root.role('weft').create();
    await root.role('weft').grant({ permission: 'Readwrite', range: Range.prefix('/weft/') });
    await root.user('weft').create('weft-secret');
    await root.user('weft').addRole('weft');
    await root.user('nobody').create('nobody-secret');
    await root.auth.authEnable();
  } finally {
    root.close();
  }
});
after(async () => {
  await fleet.stopAll();
  await etcd?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** The flags of a correctly configured server, with `change` applied (a flag mapped to undefined is left out). */
function flags(change: Record<string, string | undefined> = {}): string[] {
  const all: Record<string, string | undefined> = {
    '--etcd-ca': pki.ca, '--etcd-cert': pki.clients['weft']!.cert, '--etcd-key': pki.clients['weft']!.key,
    '--etcd-user': 'weft', '--etcd-password-file': secret('weft.password', 'weft-secret'), ...change,
  };
  return ['--store', store, ...Object.entries(all).flatMap(([k, v]) => (v === undefined ? [] : [k, v]))];
}

/** Starts a server expected to refuse to start; returns what it said. Its data dir is ours to remove (a failed start leaves it). */
async function refused(args: string[]): Promise<string> {
  const dataDir = mkdtempSync(join(dir, 'srv-'));
  return startServerProcess({ args, dataDir, keepDir: true }).then(async (s) => { await s.stop(); return 'started'; }, (e: Error) => e.message);
}

test('with the CA, its client certificate and its etcd user, the server works and its data lands under /weft/', { skip }, async () => {
  const s = await fleet.start(flags());
  assert.equal((await http(s.url, s.token, 'POST', '/api/v1/tenants/default/networks', { name: 'n', subnet: '10.8.0.0/24' })).status, 201);
  assert.equal((await http(s.url, s.token, 'GET', '/api/v1/tenants/default/networks/n')).json.subnet, '10.8.0.0/24');
  const root = new Etcd3({ hosts: [etcd!.endpoint], auth: { username: 'root', password: 'root-secret' },
    credentials: { rootCertificate: readFileSync(pki.ca), certChain: readFileSync(pki.clients['root']!.cert), privateKey: readFileSync(pki.clients['root']!.key) } });
  try {
    assert.match(String(await root.get('/weft/d/networks/default/n').string()), /10\.8\.0\.0\/24/);
  } finally {
    root.close();
  }
  assert.ok(!s.proc.spawnargs.join(' ').includes('weft-secret'), 'no password on the command line');
});

test('without a client certificate etcd refuses the TLS handshake, and the error names --etcd-cert', { skip }, async () => {
  const said = await refused(flags({ '--etcd-cert': undefined, '--etcd-key': undefined }));
  assert.match(said, /cannot reach etcd .*--etcd-cert\/--etcd-key/s);
});

test('with a wrong password the error names --etcd-password-file', { skip }, async () => {
  const said = await refused(flags({ '--etcd-password-file': secret('wrong.password', 'not-the-secret') }));
  assert.match(said, /--etcd-password-file: etcd at .* refused user weft: wrong password/);
});

test('an etcd user without a role on /weft/ is refused, naming --etcd-user and the prefix', { skip }, async () => {
  const said = await refused(flags({ '--etcd-user': 'nobody', '--etcd-password-file': secret('nobody.password', 'nobody-secret') }));
  assert.match(said, /--etcd-user: etcd user nobody may not read and write the \/weft\/ prefix/);
});

test('plain http to a TLS etcd fails with a hint to give --etcd-ca; half a key pair is refused before connecting', { skip }, async () => {
  assert.match(await refused(flags({ '--etcd-ca': undefined, '--etcd-cert': undefined, '--etcd-key': undefined })), /give --etcd-ca/);
  assert.match(await refused(flags({ '--etcd-key': undefined })), /--etcd-key: give --etcd-cert and --etcd-key together/);
});
