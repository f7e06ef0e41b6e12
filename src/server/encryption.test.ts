import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AuditEntry } from '../model/index.js';
import type { AuditSink } from './audit-file.js';
import { testApi, type TestApi } from './testkit.js';

const T = '/api/v1/tenants/default';
const key = Buffer.alloc(32, 3).toString('base64');
const status = (peers: number) => ({ mode: 'wireguard-go', peers, handshaken: peers, ...(peers ? { oldestHandshakeAt: '2026-11-23T10:00:00Z' } : {}), rxBytes: peers, txBytes: 2 * peers });

async function login(api: TestApi, name: string, role: 'ops' | 'tenant'): Promise<string> {
  const made = await api.call('POST', '/api/v1/users', { name, role, ...(role === 'tenant' ? { tenants: ['default'] } : {}), password: `${name}-password-1` });
  assert.equal(made.status, 201, JSON.stringify(made.json));
  return (await api.call('POST', '/api/v1/login', { username: name, password: `${name}-password-1` }, {}, '')).json.token as string;
}

test('bad encryption settings, network flags and tunnel status: 400 naming the field, and the store unchanged', async () => {
  const api = await testApi();
  assert.equal((await api.call('PUT', '/api/v1/hosts/node1', { name: 'node1', vtepIp: '192.0.2.1', wgPublicKey: key })).status, 200);
  const node = (wireguard: unknown, extra: Record<string, unknown> = {}) => ({ name: 'node1', vtepIp: '192.0.2.1', wireguard, ...extra });
  const cases: Array<[string, string, unknown, string, string]> = [
    ['PATCH', '/api/v1/global', { encryption: 'ipsec' }, 'WEFT_INVALID_FIELD', 'encryption'],
    ['PATCH', '/api/v1/global', { tunnelRange: 'garbage' }, 'WEFT_INVALID_FIELD', 'tunnelRange'],
    ['PATCH', '/api/v1/global', { tunnelRange: '10.0.0.0/33' }, 'WEFT_INVALID_FIELD', 'tunnelRange'],
    ['PATCH', '/api/v1/global', { tunnelRange: '::1/64' }, 'WEFT_INVALID_FIELD', 'tunnelRange'],
    ['PATCH', '/api/v1/global', { tunnelRange: '10.0.0.0/31' }, 'WEFT_INVALID_FIELD', 'tunnelRange'],
    ['PATCH', '/api/v1/global', { tunnelRange: '1'.repeat(5000) }, 'WEFT_INVALID_FIELD', 'tunnelRange'],
    ['PATCH', '/api/v1/global', { keyRotationDays: -1 }, 'WEFT_INVALID_FIELD', 'keyRotationDays'],
    ['PATCH', '/api/v1/global', { keyRotationDays: 1.5 }, 'WEFT_INVALID_FIELD', 'keyRotationDays'],
    ['PATCH', '/api/v1/global', { keyRotationDays: '7' }, 'WEFT_INVALID_FIELD', 'keyRotationDays'],
    ['POST', `${T}/networks`, { name: 'n', subnet: '10.9.0.0/24', encrypt: 'no' }, 'WEFT_INVALID_FIELD', 'encrypt'],
    ['PUT', '/api/v1/hosts/node1', node({ ...status(1), peers: 5_000_000 }), 'WEFT_INVALID_FIELD', 'wireguard.peers'],
    ['PUT', '/api/v1/hosts/node1', node({ ...status(1), oldestHandshakeAt: 'yesterday' }), 'WEFT_INVALID_FIELD', 'wireguard.oldestHandshakeAt'],
    ['PUT', '/api/v1/hosts/node1', node({ ...status(1), peers: [status(1)] }), 'WEFT_INVALID_FIELD', 'wireguard.peers'],
    ['PUT', '/api/v1/hosts/node1', node({ ...status(0), uptime: 5 }), 'WEFT_UNKNOWN_FIELD', 'wireguard.uptime'],
    ['PUT', '/api/v1/hosts/node1', node({ ...status(0), mode: 'ipsec' }), 'WEFT_INVALID_FIELD', 'wireguard.mode'],
    // A host's words end up in an admin's terminal: no escape sequences.
    ['PUT', '/api/v1/hosts/node1', node({ ...status(0), error: 'down\u001b[2J\u001b]0;pwned\u0007' }), 'WEFT_INVALID_FIELD', 'wireguard.error'],
    ['PUT', '/api/v1/hosts/node1', node({ ...status(1), rxBytes: -1 }), 'WEFT_INVALID_FIELD', 'wireguard.rxBytes'],
    // What the server owns cannot be sent by an agent, so a host cannot pick its tunnel address or reset its rotations.
    ['PUT', '/api/v1/hosts/node1', node(undefined, { tunnelIp: '100.64.0.9' }), 'WEFT_UNKNOWN_FIELD', 'tunnelIp'],
    ['PUT', '/api/v1/hosts/node1', node(undefined, { rotateKey: 0 }), 'WEFT_UNKNOWN_FIELD', 'rotateKey'],
  ];
  const before = await api.control.store.revision();
  for (const [method, url, body, code, field] of cases) {
    const r = await api.call(method, url, body);
    const what = `${method} ${url} ${JSON.stringify(body).slice(0, 120)}`;
    assert.equal(r.status, 400, `${what}: ${JSON.stringify(r.json)}`);
    assert.deepEqual([r.json.code, r.json.field], [code, field], `${what}: ${r.json.detail}`);
    assert.match(r.json.detail, new RegExp(field.replace(/\./g, '\\.')), `${what}: the detail names the field`);
  }
  assert.equal(await api.control.store.revision(), before, 'no bad request changed the store');
  const ok = await api.call('PUT', '/api/v1/hosts/node1', node(status(1_000_000)));
  assert.equal(ok.status, 200, 'a million peers fit in the same few numbers (the status never grows with the cluster)');
  assert.ok(JSON.stringify(ok.json.wireguard).length < 200);
});

test('rotate-key: admin only, 404 for an unknown host, counts up, audited; in the OpenAPI document', async () => {
  const lines: AuditEntry[] = [];
  const sink: AuditSink = { file: undefined, describe: 'memory', write: (e) => void lines.push(e), close() {} };
  const api = await testApi({ audit: sink });
  await api.call('PUT', '/api/v1/hosts/node1', { name: 'node1', vtepIp: '192.0.2.1', wgPublicKey: key });
  const olga = await login(api, 'olga', 'ops');
  const bob = await login(api, 'bob', 'tenant');
  const rev = await api.control.store.revision();
  for (const [who, token] of [['ops', olga], ['tenant', bob]] as const) {
    const r = await api.call('POST', '/api/v1/hosts/node1/rotate-key', undefined, {}, token);
    assert.deepEqual([r.status, r.json.code], [403, 'WEFT_FORBIDDEN'], who);
  }
  assert.equal(await api.control.store.revision(), rev, 'refusals change nothing');
  const one = await api.call('POST', '/api/v1/hosts/node1/rotate-key');
  assert.deepEqual([one.status, one.json.name, one.json.rotateKey, one.json.tunnelIp, one.json.wgPublicKey], [200, 'node1', 1, '100.64.0.1', key]);
  assert.equal((await api.call('POST', '/api/v1/hosts/node1/rotate-key')).json.rotateKey, 2);
  const ghost = await api.call('POST', '/api/v1/hosts/ghost/rotate-key');
  assert.deepEqual([ghost.status, ghost.json.code], [404, 'WEFT_NOT_FOUND']);
  assert.equal((await api.call('POST', '/api/v1/hosts/Bad_Name/rotate-key')).json.field, 'name');
  const rotations = lines.filter((l) => l.path === '/api/v1/hosts/node1/rotate-key');
  assert.deepEqual(rotations.map((l) => [l.event, l.actor, l.status]), [['refused', 'olga', 403], ['refused', 'bob', 403], ['write', 'admin', 200], ['write', 'admin', 200]]);
  const doc = await api.call('GET', '/api/v1/openapi.json', undefined, {}, '');
  assert.ok(doc.json.paths['/api/v1/hosts/{name}/rotate-key']?.post, 'rotate-key is documented');
});

test('tenant users read hosts without tunnel address, rotations or status; admins and the global settings show them', async () => {
  const api = await testApi();
  await api.call('PUT', '/api/v1/hosts/node1', { name: 'node1', vtepIp: '192.0.2.1', wgPublicKey: key, wireguard: status(2) });
  await api.call('POST', '/api/v1/hosts/node1/rotate-key');
  const bob = await login(api, 'bob', 'tenant');
  for (const url of ['/api/v1/hosts/node1', '/api/v1/hosts']) {
    const r = await api.call('GET', url, undefined, {}, bob);
    const h = url.endsWith('hosts') ? r.json.items[0] : r.json;
    for (const f of ['vtepIp', 'wgPublicKey', 'tunnelIp', 'rotateKey', 'wireguard']) assert.ok(!(f in h), `${url}: ${f} hidden`);
  }
  const admin = (await api.call('GET', '/api/v1/hosts/node1')).json;
  assert.deepEqual([admin.tunnelIp, admin.rotateKey, admin.wireguard], ['100.64.0.1', 1, status(2)]);
  const g = (await api.call('GET', '/api/v1/global')).json;
  assert.deepEqual([g.encryption, g.tunnelRange, g.keyRotationDays], ['none', '100.64.0.0/16', 30]);
  const set = await api.call('PATCH', '/api/v1/global', { encryption: 'wireguard', tunnelRange: '10.200.0.0/24', keyRotationDays: 0 });
  assert.deepEqual([set.status, set.json.encryption, set.json.tunnelRange, set.json.keyRotationDays], [200, 'wireguard', '10.200.0.0/24', 0]);
  assert.equal((await api.call('GET', '/api/v1/hosts/node1')).json.tunnelIp, '10.200.0.1');
  const net = await api.call('POST', `${T}/networks`, { name: 'bulk', subnet: '10.9.0.0/24', encrypt: false });
  assert.deepEqual([net.status, net.json.encrypt, net.json.mtu], [201, false, 1450]);
  const imm = await api.call('PATCH', `${T}/networks/bulk`, { encrypt: true });
  assert.deepEqual([imm.status, imm.json.code, imm.json.field], [422, 'WEFT_IMMUTABLE', 'encrypt']);
});

test('host labels: operators set and remove them, a registration keeps them, tenants and bad labels are refused', async () => {
  const api = await testApi();
  await api.call('PUT', '/api/v1/hosts/node1', { name: 'node1', vtepIp: '192.0.2.1' });
  const olga = await login(api, 'olga', 'ops');
  const bob = await login(api, 'bob', 'tenant');
  const rev = await api.control.store.revision();
  const refused = await api.call('PATCH', '/api/v1/hosts/node1/labels', { labels: { zone: 'a' } }, {}, bob);
  assert.deepEqual([refused.status, refused.json.code], [403, 'WEFT_FORBIDDEN']);
  for (const [body, field] of [[{ labels: { 'bad key': 'a' } }, 'labels'], [{ labels: { zone: 'a b' } }, 'labels.zone'], [{ labels: 'zone=a' }, 'labels'], [{}, 'labels']] as const) {
    const r = await api.call('PATCH', '/api/v1/hosts/node1/labels', body, {}, olga);
    assert.equal(r.status, 400, JSON.stringify(body));
    assert.ok(String(r.json.field).startsWith(field), `${JSON.stringify(body)}: ${r.json.field}`);
  }
  assert.equal(await api.control.store.revision(), rev, 'refusals change nothing');
  const set = await api.call('PATCH', '/api/v1/hosts/node1/labels', { labels: { zone: 'a', rack: 'r12' } }, {}, olga);
  assert.deepEqual([set.status, set.json.labels], [200, { zone: 'a', rack: 'r12' }]);
  // The agent's heartbeat (a registration) never drops or sets them.
  assert.equal((await api.call('PUT', '/api/v1/hosts/node1', { name: 'node1', vtepIp: '192.0.2.1' })).json.labels.zone, 'a');
  assert.equal((await api.call('PUT', '/api/v1/hosts/node1', { name: 'node1', vtepIp: '192.0.2.1', labels: { zone: 'b' } })).status, 400, 'an agent cannot send labels');
  const removed = await api.call('PATCH', '/api/v1/hosts/node1/labels', { labels: { rack: null } });
  assert.deepEqual(removed.json.labels, { zone: 'a' });
  assert.deepEqual((await api.call('GET', '/api/v1/hosts', undefined, {}, bob)).json.items[0].labels, { zone: 'a' }, 'tenants see the labels');
  assert.equal((await api.call('PATCH', '/api/v1/hosts/ghost/labels', { labels: { zone: 'a' } })).status, 404);
  const doc = await api.call('GET', '/api/v1/openapi.json', undefined, {}, '');
  assert.ok(doc.json.paths['/api/v1/hosts/{name}/labels']?.patch, 'documented');
});
