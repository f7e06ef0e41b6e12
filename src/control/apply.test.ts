import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStore } from '../store/index.js';
import { rejectsWith } from './testing.js';
import { Control } from './control.js';
import type { ApplyDoc } from './apply.js';

async function fresh(): Promise<Control> {
  const c = new Control(new MemoryStore());
  await c.bootstrap();
  return c;
}

const admin = { mayManageTenants: true };

/** A shop in its own tenant, written in the order a person might (groups before what they name). */
function shop(): ApplyDoc[] {
  const docs: Array<Omit<ApplyDoc, 'index'>> = [
    { kind: 'Group', tenant: 'shop', input: { name: 'web', network: 'front', policies: ['web-in'], netprofile: 'gold' } },
    { kind: 'Group', tenant: 'shop', input: { name: 'db', network: 'front', policies: ['db-in'] } },
    { kind: 'Policy', tenant: 'shop', input: { name: 'db-in', rules: [{ id: 'web', fromGroup: 'web', protocol: 'tcp', ports: '5432', priority: 10 }, { id: 'rest', action: 'deny' }] } },
    { kind: 'Policy', tenant: 'shop', input: { name: 'web-in', rules: [{ id: 'http', protocol: 'tcp', ports: '80' }] } },
    { kind: 'Service', tenant: 'shop', input: { name: 'www', network: 'front', selector: { app: 'web' }, ports: [{ port: 80, targetPort: 8080, protocol: 'TCP' }] } },
    { kind: 'AppProfile', tenant: 'shop', input: { name: 'store', groups: ['web', 'db'] } },
    { kind: 'Network', tenant: 'shop', input: { name: 'front', subnet: '10.20.0.0/24' } },
    { kind: 'Netprofile', tenant: 'shop', input: { name: 'gold', bandwidth: '100mbps' } },
    { kind: 'Tenant', tenant: 'shop', input: { name: 'shop', defaultAction: 'deny' } },
  ];
  return docs.map((d, index) => ({ ...d, index }) as ApplyDoc);
}

const actions = (r: { results: Array<{ action: string }> }) => r.results.map((x) => x.action);

test('apply: every object in one revision, in dependency order whatever the documents\' order (a new policy and the group naming it included)', async () => {
  const c = await fresh();
  const before = await c.store.revision();
  const out = await c.apply('alice', shop(), admin);
  assert.deepEqual(actions(out), Array(9).fill('created'));
  assert.deepEqual(out.results.map((r) => r.index), [0, 1, 2, 3, 4, 5, 6, 7, 8], 'results in document order');
  assert.equal(out.revision, before + 1, 'one transaction');
  assert.equal((await c.tenants.get('shop')).defaultAction, 'deny');
  const db = await c.policies.get('shop', 'db-in');
  assert.deepEqual(db.rules.map((r) => [r.id, r.fromGroup, r.ports, r.action, r.priority]), [['web', 'web', '5432', 'allow', 10], ['rest', undefined, undefined, 'deny', 1]]);
  assert.deepEqual((await c.groups.get('shop', 'web')).policies, ['web-in']);
  assert.equal((await c.services.get('shop', 'www')).vip, '10.20.0.2');
  assert.equal((await c.groups.get('shop', 'web')).owner, 'alice', 'written as the single-object API writes (owners, quotas)');
});

test('apply: applying the same documents again changes nothing and makes no revision; a changed document is updated alone', async () => {
  const c = await fresh();
  await c.apply('alice', shop(), admin);
  const rev = await c.store.revision();
  const again = await c.apply('alice', shop(), admin);
  assert.deepEqual(actions(again), Array(9).fill('unchanged'));
  assert.equal(await c.store.revision(), rev);
  const docs = shop();
  const db = docs[2] as Extract<ApplyDoc, { kind: 'Policy' }>;
  db.input = { ...db.input, rules: [{ id: 'web', fromGroup: 'web', protocol: 'tcp', ports: '5433', priority: 10 }] };
  const changed = await c.apply('alice', docs, admin);
  assert.deepEqual(actions(changed), ['unchanged', 'unchanged', 'updated', 'unchanged', 'unchanged', 'unchanged', 'unchanged', 'unchanged', 'unchanged']);
  assert.deepEqual((await c.policies.get('shop', 'db-in')).rules.map((r) => r.ports), ['5433'], 'the document is the whole object: the rule it leaves out is gone');
  assert.equal((await c.services.get('shop', 'www')).vip, '10.20.0.2', 'what the server chose (a VIP) is kept when the document does not name it');
});

test('apply: a tenant named without a default action keeps its own (a document naming a tenant does not open a locked one)', async () => {
  const c = await fresh();
  await c.tenants.create('u', { name: 'locked', defaultAction: 'deny' });
  const out = await c.apply('u', [{ index: 0, kind: 'Tenant', tenant: 'locked', input: { name: 'locked' } }], admin);
  assert.deepEqual(actions(out), ['unchanged']);
  assert.equal((await c.tenants.get('locked')).defaultAction, 'deny');
});

test('apply: a document that fails leaves nothing of the others, and the error names it and its field', async () => {
  const c = await fresh();
  const rev = await c.store.revision();
  const docs = shop();
  const web = docs[0] as Extract<ApplyDoc, { kind: 'Group' }>;
  web.input = { ...web.input, policies: ['web-in', 'ghost'] };
  await rejectsWith(c.apply('alice', docs, admin), 'WEFT_INVALID_REFERENCE', /^documents\.0 \(Group shop\/web\): .*policy shop\/ghost/, 'documents.0.spec.policies.1');
  assert.equal(await c.store.revision(), rev, 'nothing written');
  await rejectsWith(c.tenants.get('shop'), 'WEFT_NOT_FOUND', /tenant shop/);
});

test('apply: the same object named twice is refused, naming both documents', async () => {
  const c = await fresh();
  const docs = shop();
  docs.push({ index: 9, kind: 'Network', tenant: 'shop', input: { name: 'front', subnet: '10.21.0.0/24' } });
  await rejectsWith(c.apply('alice', docs, admin), 'WEFT_INVALID_FIELD', /documents\.9: Network shop\/front is also documents\.6/, 'documents.9.metadata.name');
});

test('apply --dry-run: every check a real apply makes, the same answer, nothing written', async () => {
  const c = await fresh();
  const rev = await c.store.revision();
  const dry = await c.apply('alice', shop(), { ...admin, dryRun: true });
  assert.equal(dry.dryRun, true);
  assert.deepEqual(actions(dry), Array(9).fill('created'));
  assert.equal(await c.store.revision(), rev);
  assert.deepEqual((await c.tenants.list()).items.map((t) => t.name), ['default']);
  const docs = shop();
  docs.push({ index: 9, kind: 'Network', tenant: 'shop', input: { name: 'overlap', subnet: '10.20.0.128/25' } });
  await rejectsWith(c.apply('alice', docs, { ...admin, dryRun: true }), 'WEFT_OVERLAP', /documents\.9 \(Network shop\/overlap\): .*overlaps network shop\/front/);
});

test('apply: only admin and ops users create or delete tenants; others may still apply into tenants that exist', async () => {
  const c = await fresh();
  await rejectsWith(c.apply('bob', shop(), { mayManageTenants: false }), 'WEFT_FORBIDDEN', /documents\.8 \(Tenant shop\): tenant shop does not exist, and only admin and ops users may create tenants/);
  await c.apply('alice', shop(), admin);
  assert.deepEqual(actions(await c.apply('bob', shop(), { mayManageTenants: false })), Array(9).fill('unchanged'));
  await rejectsWith(c.apply('bob', shop(), { mayManageTenants: false, remove: true }), 'WEFT_FORBIDDEN', /documents\.8 \(Tenant shop\): only admin and ops users may delete tenants/);
  assert.equal((await c.groups.list('shop')).items.length, 2, 'the refused delete removed nothing');
});

test('delete: removes exactly what the documents name, in reverse dependency order (the policies emptied before the groups their rules name); absent ones are reported', async () => {
  const c = await fresh();
  await c.apply('alice', shop(), admin);
  await c.networks.create('alice', 'shop', { name: 'other', subnet: '10.30.0.0/24' });
  const docs = shop();
  docs.push({ index: 9, kind: 'Group', tenant: 'shop', input: { name: 'never-made', network: 'front' } });
  const removed = await c.apply('alice', docs.filter((d) => d.kind !== 'Tenant'), { ...admin, remove: true });
  assert.deepEqual(actions(removed), [...Array(8).fill('deleted'), 'absent']);
  assert.deepEqual((await c.networks.list('shop')).items.map((n) => n.name), ['other'], 'what no document names stays');
  assert.equal((await c.netprofiles.list('shop')).items.length, 0);
});

test('delete: a group with endpoints is refused, naming them, and nothing else is deleted', async () => {
  const c = await fresh();
  await c.apply('alice', shop(), admin);
  await c.endpoints.create('a', { tenant: 'shop', network: 'front', group: 'db', containerId: 'c1', host: 'h1', ifname: 'eth0' });
  const rev = await c.store.revision();
  await rejectsWith(c.apply('alice', shop().filter((d) => d.kind !== 'Tenant'), { ...admin, remove: true }), 'WEFT_IN_USE', /documents\.1 \(Group shop\/db\): group shop\/db is in use by endpoint/);
  assert.equal(await c.store.revision(), rev);
  assert.equal((await c.policies.get('shop', 'db-in')).rules.length, 2, 'the policy emptied on the way was not emptied after all');
});

test('delete: the same file twice, its Tenant included: the second time everything is absent (its tenant is gone)', async () => {
  const c = await fresh();
  await c.apply('alice', shop(), admin);
  assert.deepEqual(actions(await c.apply('alice', shop(), { ...admin, remove: true })), Array(9).fill('deleted'));
  assert.deepEqual(actions(await c.apply('alice', shop(), { ...admin, remove: true })), Array(9).fill('absent'));
  assert.deepEqual(actions(await c.apply('alice', shop(), { ...admin, remove: true, dryRun: true })), Array(9).fill('absent'));
});

test('a network a rule names cannot be deleted (the rule would name nothing), by apply or alone', async () => {
  const c = await fresh();
  await c.networks.create('u', 'default', { name: 'ext', subnet: '10.40.0.0/24' });
  await c.policies.create('u', 'default', { name: 'p', rules: [{ id: 'from-ext', fromNetwork: 'ext' }] });
  await rejectsWith(c.networks.remove('u', 'default', 'ext'), 'WEFT_IN_USE', /network default\/ext is in use by policy default\/p rule from-ext/);
  await rejectsWith(c.apply('u', [{ index: 0, kind: 'Network', tenant: 'default', input: { name: 'ext', subnet: '10.40.0.0/24' } }], { ...admin, remove: true }), 'WEFT_IN_USE', /documents\.0 \(Network default\/ext\): .*policy default\/p rule from-ext/);
  const both = await c.apply('u', [
    { index: 0, kind: 'Network', tenant: 'default', input: { name: 'ext', subnet: '10.40.0.0/24' } },
    { index: 1, kind: 'Policy', tenant: 'default', input: { name: 'p' } },
  ], { ...admin, remove: true });
  assert.deepEqual(actions(both), ['deleted', 'deleted'], 'with the policy in the same delete, it goes first');
});
