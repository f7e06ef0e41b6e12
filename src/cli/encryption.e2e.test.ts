import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createCsr } from '../pki/index.js';
import { cliSession, http, tlsFetch } from '../testkit/server.js';
import { inviteHost } from '../testkit/host.js';
import { EXIT } from './errors.js';

/**
 * The encrypted overlay's control surface against a real server process (no root): the CLI's global,
 * net and host verbs, and what a host's own certificate may and may not do about keys and tunnels.
 */
const session = cliSession();
before(() => session.start());
after(() => session.stop());
const { weft, ok } = session;
const api = (method: string, path: string, body?: unknown) => http(session.srv.url, session.srv.token, method, path, body);
const key = (n: number) => Buffer.alloc(32, n).toString('base64');

test('weft global set: encryption, tunnel range and key rotation; bad values are usage errors naming the flag or field', async () => {
  const shown = JSON.parse(await ok('global -o json'));
  assert.deepEqual([shown.encryption, shown.tunnelRange, shown.keyRotationDays], ['none', '100.64.0.0/16', 30], '`weft global` alone shows the settings');
  const bad: Array<[string, RegExp]> = [
    ['global set --encryption ipsec', /--encryption.*'ipsec' is invalid.*none, wireguard/],
    ['global set --key-rotation-days 1.5', /--key-rotation-days: '1\.5' is not a whole number/],
    ['global set --key-rotation-days -1', /--key-rotation-days/],
    ['global set --tunnel-range garbage', /--tunnel-range \(tunnelRange\): 'garbage' is not a CIDR/],
    ['global set --tunnel-range 10.0.0.0/31', /--tunnel-range \(tunnelRange\): .*between \/8 and \/30/],
    ['global set', /give at least one of .*--encryption, --tunnel-range, --key-rotation-days/],
  ];
  for (const [args, msg] of bad) {
    const r = await weft(args);
    assert.equal(r.code, EXIT.usage, `${args}: ${r.stderr}`);
    assert.match(r.stderr, msg, args);
  }
  assert.match(await ok('global set --encryption wireguard --tunnel-range 10.210.0.0/24 --key-rotation-days 7'), /global settings updated/);
  const after = JSON.parse(await ok('global inspect -o json'));
  assert.deepEqual([after.encryption, after.tunnelRange, after.keyRotationDays], ['wireguard', '10.210.0.0/24', 7]);
});

test('weft net create --encrypt: default on (MTU 1390), --encrypt=false and -encrypt=false opt out (1450), anything else names --encrypt', async () => {
  assert.match(await ok('net create -s 10.9.0.0/24 enc'), /mtu 1390$/m);
  assert.match(await ok('net create --encrypt=false -s 10.9.1.0/24 bulk'), /mtu 1450 \(never encrypted\)$/m);
  assert.match(await ok('net create -encrypt=false -s 10.9.2.0/24 bulk2'), /mtu 1450/);
  assert.match(await ok('net create --encrypt true -s 10.9.3.0/24 enc2'), /mtu 1390$/m);
  for (const v of ['no', 'False', '0', '']) {
    const r = await weft(['net', 'create', `--encrypt=${v}`, '-s', '10.9.4.0/24', 'x']);
    assert.equal(r.code, EXIT.usage, `--encrypt=${v}: ${r.stderr}`);
    assert.match(r.stderr, v === '' ? /--encrypt.*empty; give a value/ : new RegExp(`--encrypt: '${v}' is not true or false`));
  }
  const rows = (await ok('net ls')).trim().split('\n');
  assert.match(rows[0] ?? '', /\sMTU\s+ENCRYPT$/);
  assert.ok(rows.some((r) => /^default\s+bulk\s.*\s1450\s+no$/.test(r)), rows.join('\n'));
  assert.ok(rows.some((r) => /^default\s+enc\s.*\s1390\s+yes$/.test(r)), rows.join('\n'));
  assert.equal((await weft('net ls -q')).stdout.trim().split('\n').length, 4, 'the bad creates made nothing');
});

test('weft host ls shows tunnel, mode, key, oldest handshake and traffic; rotate-key prints what happens', async () => {
  const now = Date.now();
  const status = { mode: 'wireguard-go', peers: 2, handshaken: 2, oldestHandshakeAt: new Date(now - 95_000).toISOString().replace(/\.\d+Z$/, 'Z'), rxBytes: 1_258_291, txBytes: 3_565_158 };
  assert.equal((await api('PUT', '/api/v1/hosts/node1', { name: 'node1', vtepIp: '192.0.2.1', wgPublicKey: key(1), wireguard: status })).status, 200);
  assert.equal((await api('PUT', '/api/v1/hosts/node2', { name: 'node2', vtepIp: '192.0.2.2', wgPublicKey: key(2), wireguard: { mode: 'kernel', error: 'no peers yet', peers: 0, handshaken: 0, rxBytes: 0, txBytes: 0 } })).status, 200);
  const rows = (await ok('host ls')).trim().split('\n');
  assert.match(rows[0] ?? '', /^HOST\s+STATE\s+VTEP\s+TUNNEL\s+WG\s+KEY\s+HANDSHAKE\s+TRAFFIC\s+AGENT\s+LAST SEEN/);
  const k1 = `${key(1).slice(0, 8)}…`.replace(/[+/]/g, '\\$&');
  assert.match(rows[1] ?? '', new RegExp(`^node1\\s+up\\s+192\\.0\\.2\\.1\\s+10\\.210\\.0\\.1\\s+wireguard-go\\s+${k1}\\s+1m\\s+1\\.2 MiB/3\\.4 MiB\\s`));
  assert.match(rows[2] ?? '', /^node2\s+up\s+192\.0\.2\.2\s+10\.210\.0\.2\s+error\s+\S+…\s+-\s+-\s/);
  const rot = await weft('host rotate-key node1');
  assert.equal(rot.code, 0, rot.stderr);
  assert.equal(rot.stdout.trim(), 'host node1 will make a new WireGuard key pair (rotation 1); its peers follow its new public key');
  assert.equal(JSON.parse(await ok('host rotate-key node1 -o json')).rotateKey, 2);
  assert.equal((await weft('host rotate-key ghost')).code, EXIT.notFound);
  for (const verb of ['host rotate-key', 'host ls', 'global set', 'global inspect', 'net create']) {
    const help = await ok(`${verb} --help`);
    assert.match(help, /Examples?:\n\s+\$ weft /, `${verb} has an example`);
  }
  assert.match(await ok('global set --help'), /--encryption <mode>[\s\S]*wireguard-go/);
  assert.match(await ok('net create --help'), /--encrypt <true\|false>/);
});

test('a host certificate registers its own status but may not rotate keys or choose its tunnel address', async () => {
  const token = await inviteHost(session.srv.url, session.srv.token, 'h1');
  const { csrPem, keyPem } = await createCsr('h1');
  const joined = await tlsFetch(`${session.srv.url}/api/v1/join`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token, csr: csrPem }) });
  assert.equal(joined.status, 200);
  const tls = { cert: ((await joined.json()) as { certificate: string }).certificate, key: keyPem, ca: readFileSync(session.srv.caFile, 'utf8') };
  const asH1 = async (method: string, path: string, body?: unknown) => {
    const res = await tlsFetch(`${session.srv.url}${path}`, { method, tls, ...(body !== undefined ? { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } } : {}) });
    const text = await res.text();
    return { status: res.status, json: text ? JSON.parse(text) : undefined };
  };
  const self = { name: 'h1', vtepIp: '192.0.2.11', wgPublicKey: key(11), wireguard: { mode: 'wireguard-go', peers: 0, handshaken: 0, rxBytes: 0, txBytes: 0 } };
  const reg = await asH1('PUT', '/api/v1/hosts/h1', self);
  assert.deepEqual([reg.status, reg.json.tunnelIp, reg.json.wireguard?.mode], [200, '10.210.0.3', 'wireguard-go']);
  for (const target of ['h1', 'node1']) {
    const r = await asH1('POST', `/api/v1/hosts/${target}/rotate-key`);
    assert.equal(r.status, 403, `${target}: ${JSON.stringify(r.json)}`);
    assert.match(r.json.detail, /host:h1 may not do this/);
  }
  const pick = await asH1('PUT', '/api/v1/hosts/h1', { ...self, tunnelIp: '10.210.0.1' });
  assert.deepEqual([pick.status, pick.json.field], [400, 'tunnelIp']);
  const stored = await api('GET', '/api/v1/hosts/h1');
  assert.deepEqual([stored.json.tunnelIp, stored.json.rotateKey], ['10.210.0.3', undefined]);
  assert.equal((await api('GET', '/api/v1/hosts/node1')).json.rotateKey, 2, 'the other host was not touched');
});
