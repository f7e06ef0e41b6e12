import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { Control } from '../control/index.js';
import { MemoryStore } from '../store/index.js';
import { createCsr } from '../pki/index.js';
import { tlsFetch } from '../testkit/server.js';
import { buildApp } from './app.js';
import { prepareTls } from './tls.js';

/**
 * A host's write is checked against the host inside the write's own transaction. The gate in front of the
 * route reads the object first; here the object is made again on another host right after that read (an
 * endpoint id is its container's, so the same id can come back on another host), and the write must
 * still be refused. In-process over real TLS: the host is a joined host with its own certificate.
 */
test('a host cannot delete or change an endpoint, or delete a Docker mapping, that moved to another host after the gate read it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-hostgate-'));
  const control = new Control(new MemoryStore());
  await control.bootstrap();
  const tls = await prepareTls({ dataDir: dir, listenHost: '127.0.0.1', flags: {}, ca: control.ca });
  const app = await buildApp({ control, logger: false, tls });
  t.after(async () => { await app.close(); rmSync(dir, { recursive: true, force: true }); });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const url = `https://127.0.0.1:${(app.server.address() as AddressInfo).port}`;

  for (const [name, vtepIp] of [['h1', '192.0.2.11'], ['h2', '192.0.2.12']] as const) await control.hosts.register('admin', { name, vtepIp });
  await control.networks.create('admin', 'default', { name: 'n', subnet: '10.7.0.0/24' });
  const { token } = await control.identities.invite('admin', 'h1');
  const csr = await createCsr('host:h1');
  const joined = await control.identities.redeem(token, csr.csrPem);
  const asH1 = async (method: string, path: string, body?: unknown) => {
    const res = await tlsFetch(`${url}${path}`, {
      method, tls: { ca: joined.ca, cert: joined.certificate, key: csr.keyPem },
      ...(body !== undefined ? { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } } : {}),
    });
    const text = await res.text();
    return { status: res.status, json: text ? JSON.parse(text) : undefined };
  };
  const on = (host: string) => ({ tenant: 'default', network: 'n', containerId: 'c1', ifname: 'eth0', host });
  const mine = await control.endpoints.create('admin', on('h1'));
  assert.equal((await asH1('GET', `/api/v1/endpoints/${mine.id}`)).status, 200, 'the host reads with its certificate');

  // Right after the gate's read (which finds the endpoint on h1), the container's endpoint is made again on h2.
  const remakeAfterGate = () => {
    const get = control.endpoints.get.bind(control.endpoints);
    control.endpoints.get = async (id: string) => {
      const seen = await get(id);
      control.endpoints.get = get;
      await control.endpoints.remove('admin', id);
      await control.endpoints.create('admin', on('h2'));
      return seen;
    };
  };
  remakeAfterGate();
  const del = await asH1('DELETE', `/api/v1/endpoints/${mine.id}`);
  assert.equal(del.status, 403, JSON.stringify(del.json));
  assert.match(del.json.detail, /the host of endpoint [0-9a-f]{16} is h2, not h1/);
  assert.equal((await control.endpoints.get(mine.id)).host, 'h2', 'h2\'s endpoint is still there');

  await control.endpoints.remove('admin', mine.id);
  await control.endpoints.create('admin', on('h1'));
  remakeAfterGate();
  const patch = await asH1('PATCH', `/api/v1/endpoints/${mine.id}`, { labels: { role: 'stolen' } });
  assert.equal(patch.status, 403, JSON.stringify(patch.json));
  const after = await control.endpoints.get(mine.id);
  assert.equal(after.host, 'h2');
  assert.equal(after.labels?.['role'], undefined, 'h2\'s endpoint was not relabelled by h1');

  // A Docker mapping deleted and made again for h2 between the gate's read and the delete.
  const mapping = (host: string) => ({ name: 'a'.repeat(63), network: 'n', host });
  await control.dockerNetworks.create('admin', 'default', mapping('h1'));
  const getMapping = control.dockerNetworks.get.bind(control.dockerNetworks);
  control.dockerNetworks.get = async (tenant: string, name: string) => {
    const seen = await getMapping(tenant, name);
    control.dockerNetworks.get = getMapping;
    await control.dockerNetworks.remove('admin', tenant, name);
    await control.dockerNetworks.create('admin', tenant, mapping('h2'));
    return seen;
  };
  const delMapping = await asH1('DELETE', `/api/v1/tenants/default/docker-networks/${'a'.repeat(63)}`);
  assert.equal(delMapping.status, 403, JSON.stringify(delMapping.json));
  assert.equal((await control.dockerNetworks.get('default', 'a'.repeat(63))).host, 'h2');

  // Without a race the host still manages its own.
  await control.dockerNetworks.remove('admin', 'default', 'a'.repeat(63));
  await control.dockerNetworks.create('admin', 'default', mapping('h1'));
  assert.equal((await asH1('DELETE', `/api/v1/tenants/default/docker-networks/${'a'.repeat(63)}`)).status, 204);
  await control.endpoints.remove('admin', mine.id);
  await control.endpoints.create('admin', on('h1'));
  assert.equal((await asH1('DELETE', `/api/v1/endpoints/${mine.id}`)).status, 204);
});
