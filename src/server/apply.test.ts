import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_APPLY_DOCUMENTS, POLICY_PAIRS_DEFAULT } from '../model/index.js';
import { perEndpointTenant, testApi, type TestApi } from './testkit.js';

const doc = (kind: string, name: string, spec?: unknown, tenant?: string) => ({ kind, metadata: { name, ...(tenant ? { tenant } : {}) }, ...(spec !== undefined ? { spec } : {}) });

const shop = [
  doc('Tenant', 'shop', { defaultAction: 'deny' }),
  doc('Network', 'front', { subnet: '10.20.0.0/24' }),
  doc('Group', 'web', { network: 'front', policies: ['web-in'] }),
  doc('Policy', 'web-in', { rules: [{ id: 'http', protocol: 'tcp', ports: '80', fromGroup: 'web' }] }),
];

async function userToken(api: TestApi, name: string, tenants: string[]): Promise<string> {
  assert.equal((await api.call('POST', '/api/v1/users', { name, role: 'tenant', tenants })).status, 201);
  return (await api.control.users.tokens.issue('admin', name, 'test', null)).token;
}

test('POST /apply: the documents in one transaction, each result in document order, the request\'s tenant for documents naming none', async () => {
  const api = await testApi();
  const r = await api.call('POST', '/api/v1/apply', { tenant: 'shop', documents: shop });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  assert.deepEqual(r.json.results, [
    { index: 0, kind: 'Tenant', name: 'shop', action: 'created' },
    { index: 1, kind: 'Network', tenant: 'shop', name: 'front', action: 'created' },
    { index: 2, kind: 'Group', tenant: 'shop', name: 'web', action: 'created' },
    { index: 3, kind: 'Policy', tenant: 'shop', name: 'web-in', action: 'created' },
  ]);
  assert.equal(r.json.dryRun, false);
  assert.equal((await api.call('GET', '/api/v1/tenants/shop/groups/web')).json.policies[0], 'web-in');
  const dry = await api.call('POST', '/api/v1/apply', { tenant: 'shop', dryRun: true, delete: true, documents: shop.slice(1) });
  assert.deepEqual(dry.json.results.map((x: { action: string }) => x.action), ['deleted', 'deleted', 'deleted']);
  assert.equal((await api.call('GET', '/api/v1/tenants/shop/networks/front')).status, 200, 'a dry run deletes nothing');
});

test('POST /apply: several bad documents are refused together, each one\'s first error on a line, the first ten listed; nothing changes', async () => {
  const api = await testApi();
  const rev = await api.control.store.revision();
  const r = await api.call('POST', '/api/v1/apply', { tenant: 'shop', documents: [
    shop[0], doc('Network', 'a', { subnet: '10.1.0.0/24', colour: 'red' }), shop[1], doc('Policy', 'p', { rules: [{ id: 'r', ports: 80 }] }), doc('Tenant', 't', {}, 'other'),
  ] });
  assert.equal(r.status, 400, JSON.stringify(r.json));
  assert.equal(r.json.code, 'WEFT_UNKNOWN_FIELD', 'the first document\'s code');
  assert.equal(r.json.field, 'documents.1.spec.colour', 'and its field');
  assert.equal(r.json.detail, [
    '3 of the 5 documents are invalid; nothing was applied:',
    'documents.1 (Network shop/a): spec.colour: unknown field',
    'documents.3 (Policy shop/p): spec.rules.0.ports: must be a string (in YAML, quote it: "80")',
    'documents.4.metadata.tenant: a Tenant is not inside a tenant; name it in metadata.name',
  ].join('\n'));
  const many = await api.call('POST', '/api/v1/apply', { documents: Array.from({ length: 12 }, (_, i) => doc('Network', `n${i}`, { subnet: '10.1.0.0/24', colour: i })) });
  assert.equal(many.status, 400);
  const lines = String(many.json.detail).split('\n');
  assert.equal(lines[0], '12 of the 12 documents are invalid; nothing was applied:');
  assert.deepEqual(lines.slice(1, 11).map((l) => /^documents\.(\d+) /.exec(l)?.[1]), ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
  assert.equal(lines[11], '(and 2 more)');
  assert.equal(lines.length, 12);
  // A key with a line break stays on its document's line: a line of its own would read as the server's.
  const forged = 'x\ndocuments.0 (Network default/a): spec.subnet: forged';
  const inj = await api.call('POST', '/api/v1/apply', { documents: [doc('Network', 'a', { subnet: '10.5.0.0/24' }), doc('Network', 'b', { subnet: '10.6.0.0/24', [forged]: 1 }), doc('Network', 'c', { subnet: '10.7.0.0/24', colour: 1 })] });
  assert.deepEqual(String(inj.json.detail).split('\n'), [
    '2 of the 3 documents are invalid; nothing was applied:',
    'documents.1 (Network default/b): spec.x\\u000adocuments.0 (Network default/a): spec.subnet: forged: unknown field',
    'documents.2 (Network default/c): spec.colour: unknown field',
  ]);
  const alone = await api.call('POST', '/api/v1/apply', { documents: [doc('Network', 'b', { subnet: '10.6.0.0/24', [forged]: 1 })] });
  assert.equal(String(alone.json.detail).split('\n').length, 1, alone.json.detail);
  // One bad document reads as it always did.
  const one = await api.call('POST', '/api/v1/apply', { documents: [doc('Network', 'n', { subnet: '10.1.0.0/24', colour: 'red' }), doc('Network', 'm', { subnet: '10.3.0.0/24' })] });
  assert.equal(one.json.detail, 'documents.0 (Network default/n): spec.colour: unknown field');
  assert.equal(await api.control.store.revision(), rev, 'nothing was written');
});

test('POST /apply: bad documents of every kind are refused naming the document and the field, and change nothing', async () => {
  const api = await testApi();
  const rev = await api.control.store.revision();
  const many = Array.from({ length: MAX_APPLY_DOCUMENTS + 1 }, (_, i) => doc('Netprofile', `p${i}`));
  const cases: Array<[unknown, number, string, string, RegExp?]> = [
    [{ documents: [] }, 400, 'WEFT_INVALID_FIELD', 'documents'],
    [{ documents: many }, 400, 'WEFT_INVALID_FIELD', 'documents'],
    [{ documents: [doc('Pod', 'x')] }, 400, 'WEFT_INVALID_FIELD', 'documents.0.kind', /must be one of Tenant, Namespace, Netprofile, Network, Policy, Group, Service, AppProfile, NetworkPolicy/],
    [{ documents: [{ ...doc('NetworkPolicy', 'p', { podSelector: {} }), apiVersion: 'weft/v1' }] }, 400, 'WEFT_INVALID_FIELD', 'documents.0.apiVersion', /a NetworkPolicy is networking\.k8s\.io\/v1, not weft\/v1/],
    [{ documents: [{ ...doc('Network', 'n', { subnet: '10.1.0.0/24' }), metadata: { name: 'n', namespace: 'x' } }] }, 400, 'WEFT_INVALID_FIELD', 'documents.0.metadata.namespace', /only a NetworkPolicy is/],
    [{ documents: [{ ...doc('Group', 'g', { network: 'n' }), metadata: { name: 'g', labels: { a: 'b' } } }] }, 400, 'WEFT_INVALID_FIELD', 'documents.0.metadata.labels', /its labels are in its spec/],
    [{ documents: [doc('NetworkPolicy', 'p', {})] }, 400, 'WEFT_INVALID_FIELD', 'documents.0.spec.podSelector', /is required/],
    [{ documents: [doc('NetworkPolicy', 'p', { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/16', except: ['10.1.0.0/24'] } }] }] })] }, 400, 'WEFT_INVALID_FIELD', 'documents.0.spec.ingress.0.from.0.ipBlock.except.0', /must lie strictly inside/],
    [{ documents: [doc('NetworkPolicy', 'p', { podSelector: {}, egress: [{ ports: [{ protocol: 'SCTP', port: 9, endPort: 8 }] }] })] }, 400, 'WEFT_INVALID_FIELD', 'documents.0.spec.egress.0.ports.0.endPort', /8 is below port 9/],
    // IPv6 blocks are taken (dual-stack tenants); an except of the other family, or a link-local block, is not.
    [{ documents: [doc('NetworkPolicy', 'p', { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: 'fd00::/64', except: ['10.0.0.0/8'] } }] }] })] }, 400, 'WEFT_INVALID_FIELD', 'documents.0.spec.ingress.0.from.0.ipBlock.except.0', /not of the block's family/],
    [{ documents: [doc('NetworkPolicy', 'p', { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: 'fe80::/64' } }] }] })] }, 400, 'WEFT_INVALID_FIELD', 'documents.0.spec.ingress.0.from.0.ipBlock.cidr', /no global unicast/],
    [{ documents: [doc('NetworkPolicy', 'p', { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: 'fd00::/64', except: ['fd00::/64'] } }] }] })] }, 400, 'WEFT_INVALID_FIELD', 'documents.0.spec.ingress.0.from.0.ipBlock.except.0', /strictly inside/],
    [{ documents: [doc('NetworkPolicy', 'p', { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '2001:db8:abcd:12::/64', except: ['2001:db8:abcd:12:ffff:ffff:ffff:ff00/120', '10.0.0.0/8'] } }] }] })] }, 400, 'WEFT_INVALID_FIELD', 'documents.0.spec.ingress.0.from.0.ipBlock.except.1', /not of the block's family/],
    [{ documents: [doc('NetworkPolicy', 'p', { podSelector: { matchExpressions: [{ key: 'a', operator: 'In' }] } })] }, 400, 'WEFT_INVALID_FIELD', 'documents.0.spec.podSelector.matchExpressions.0.values', /needs at least one value/],
    [{ documents: [doc('NetworkPolicy', 'p', { podSelector: {}, ingress: [{ ports: [{ port: 'http', endPort: 90 }] }] })] }, 400, 'WEFT_INVALID_FIELD', 'documents.0.spec.ingress.0.ports.0.endPort'],
    [{ documents: [{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'x', labels: { 'kubernetes.io/metadata.name': 'y' } } }] }, 400, 'WEFT_INVALID_FIELD', 'documents.0.metadata.labels.kubernetes.io/metadata.name', /always the namespace's name/],
    [{ documents: [{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'x', labels: { 'bad key!': 'y' } } }] }, 400, 'WEFT_INVALID_FIELD', 'documents.0.metadata.labels.bad key!'],
    [{ documents: [{ ...doc('Network', 'n', { subnet: '10.1.0.0/24' }), apiVersion: 'networking.k8s.io/v1' }] }, 400, 'WEFT_INVALID_FIELD', 'documents.0.apiVersion'],
    [{ documents: [{ kind: 'Network', spec: { subnet: '10.1.0.0/24' } }] }, 400, 'WEFT_INVALID_FIELD', 'documents.0.metadata'],
    [{ documents: [doc('Network', 'Bad_Name', { subnet: '10.1.0.0/24' })] }, 400, 'WEFT_INVALID_FIELD', 'documents.0.metadata.name'],
    [{ documents: [doc('Network', 'n', { subnet: '10.1.0.0/24', color: 'red' })] }, 400, 'WEFT_UNKNOWN_FIELD', 'documents.0.spec.color', /^documents\.0 \(Network default\/n\): spec\.color: unknown field$/],
    // Neither subnet nor subnet6 (one alone is an IPv4-only or an IPv6-only network).
    [{ documents: [doc('Network', 'n')] }, 422, 'WEFT_INVALID_VALUE', 'documents.0.spec.subnet', /give subnet \(IPv4\), subnet6 \(IPv6\) or both/],
    [{ documents: [doc('Network', 'n', { name: 'm', subnet: '10.1.0.0/24' })] }, 400, 'WEFT_UNKNOWN_FIELD', 'documents.0.spec.name'],
    [{ documents: [doc('Policy', 'p', { rules: [{ id: 'r', ports: 'http' }] })] }, 400, 'WEFT_INVALID_FIELD', 'documents.0.spec.rules.0.ports', /must be a port like 80/],
    [{ documents: [doc('Policy', 'p', { rules: [{ id: 'r', ports: 80 }] })] }, 400, 'WEFT_INVALID_FIELD', 'documents.0.spec.rules.0.ports', /spec\.rules\.0\.ports: must be a string \(in YAML, quote it: "80"\)/],
    [{ documents: [doc('Network', 'n', { subnet: '10.1.2.300/24' })] }, 400, 'WEFT_INVALID_FIELD', 'documents.0.spec.subnet', /^documents\.0 \(Network default\/n\)/],
    [{ documents: [doc('Tenant', 't', {}, 'other')] }, 400, 'WEFT_INVALID_FIELD', 'documents.0.metadata.tenant', /a Tenant is not inside a tenant/],
    [{ documents: [doc('Network', 'n', { subnet: '10.1.0.0/24' }, 'nope')] }, 404, 'WEFT_NOT_FOUND', 'documents.0.spec', /tenant nope/],
    [{ documents: [doc('Group', 'g', { network: 'ghost' })] }, 422, 'WEFT_INVALID_REFERENCE', 'documents.0.spec.network', /network default\/ghost/],
    [{ documents: shop, dryRun: 'yes' }, 400, 'WEFT_INVALID_FIELD', 'dryRun'],
    [{ documents: shop, force: true }, 400, 'WEFT_UNKNOWN_FIELD', 'force'],
  ];
  for (const [body, status, code, field, message] of cases) {
    const r = await api.call('POST', '/api/v1/apply', body);
    const what = JSON.stringify(body).slice(0, 120);
    assert.equal(r.status, status, `${what}: ${JSON.stringify(r.json)}`);
    assert.equal(r.json.code, code, what);
    if (field !== 'documents.0.spec' || r.json.field !== undefined) assert.equal(r.json.field, field, `${what}: ${r.json.detail}`);
    if (message) assert.match(r.json.detail, message);
  }
  assert.equal(await api.control.store.revision(), rev, 'nothing was written');
});

test('POST /apply as a tenant user: its own tenants only (another tenant is not found, as everywhere), no tenant made or deleted', async () => {
  const api = await testApi();
  assert.equal((await api.call('POST', '/api/v1/apply', { tenant: 'shop', documents: shop })).status, 200);
  assert.equal((await api.call('POST', '/api/v1/tenants', { name: 'rival' })).status, 201);
  const bob = await userToken(api, 'bob', ['shop']);
  const rev = await api.control.store.revision();
  const own = await api.call('POST', '/api/v1/apply', { tenant: 'shop', documents: [doc('Network', 'back', { subnet: '10.21.0.0/24' })] }, {}, bob);
  assert.equal(own.status, 200, JSON.stringify(own.json));
  const other = await api.call('POST', '/api/v1/apply', { documents: [doc('Network', 'back', { subnet: '10.21.0.0/24' }, 'shop'), doc('Network', 'spy', { subnet: '10.22.0.0/24' }, 'rival')] }, {}, bob);
  assert.equal(other.status, 404);
  assert.match(other.json.detail, /^documents\.1: tenant rival/);
  const made = await api.call('POST', '/api/v1/apply', { documents: [doc('Tenant', 'mine')] }, {}, bob);
  assert.equal(made.status, 404, 'a tenant it cannot see, as everywhere');
  const gone = await api.call('POST', '/api/v1/apply', { delete: true, documents: [doc('Tenant', 'shop')] }, {}, bob);
  assert.equal(gone.status, 403);
  assert.match(gone.json.detail, /only admin and ops users may delete tenants/);
  assert.equal(await api.control.store.revision(), rev + 1, 'only the allowed apply wrote');
});

test('GET /documents: what it prints applies back unchanged (a network\'s default MTU on a 9,216-byte underlay included); a delete needs no spec', async () => {
  const api = await testApi();
  assert.equal((await api.call('PUT', '/api/v1/global', { mtu: 9216 })).status, 200);
  assert.equal((await api.call('POST', '/api/v1/apply', { tenant: 'shop', documents: shop })).status, 200);
  const got = await api.call('GET', '/api/v1/tenants/shop/documents');
  assert.equal(got.status, 200, JSON.stringify(got.json));
  assert.deepEqual(got.json.items.map((d: { kind: string }) => d.kind), ['Tenant', 'Network', 'Policy', 'Group']);
  assert.equal(got.json.items[1].spec.mtu, 9106, 'the underlay MTU less the overheads (above the 9,000 a network could once be given)');
  const back = await api.call('POST', '/api/v1/apply', { documents: got.json.items });
  assert.equal(back.status, 200, JSON.stringify(back.json));
  assert.deepEqual(back.json.results.map((r: { action: string }) => r.action), ['unchanged', 'unchanged', 'unchanged', 'unchanged']);
  const one = await api.call('GET', '/api/v1/tenants/shop/documents?kind=Group&name=web');
  assert.deepEqual(one.json.items.map((d: { metadata: { name: string } }) => d.metadata.name), ['web']);
  assert.equal((await api.call('GET', '/api/v1/tenants/shop/documents?name=web')).json.field, 'name');
  assert.equal((await api.call('GET', '/api/v1/tenants/shop/documents?kind=Pod')).status, 400);
  const gone = await api.call('POST', '/api/v1/apply', { tenant: 'shop', delete: true, documents: [doc('Group', 'web'), doc('Policy', 'web-in', { rules: 'not even a list' })] });
  assert.equal(gone.status, 200, JSON.stringify(gone.json));
  assert.deepEqual(gone.json.results.map((r: { action: string }) => r.action), ['deleted', 'deleted']);
});

test('POST /apply: a NetworkPolicy with IPv6 ipBlocks of any length is taken, as written (dual-stack tenants)', async () => {
  const api = await testApi();
  const np = { kind: 'NetworkPolicy', apiVersion: 'networking.k8s.io/v1', metadata: { name: 'out6', namespace: 'shop' }, spec: { podSelector: {}, policyTypes: ['Egress'], egress: [{ to: [
    { ipBlock: { cidr: '2001:db8:abcd:12::/64', except: ['2001:db8:abcd:12:ffff:ffff:ffff:ff00/120'] } }, { ipBlock: { cidr: '::/0', except: ['fd12:3456:789a::/48'] } },
  ] }] } };
  const r = await api.call('POST', '/api/v1/apply', { tenant: 'shop', documents: [doc('Tenant', 'shop'), doc('Network', 'front', { subnet: '10.20.0.0/24', subnet6: 'fd00:20::/64' }), np] });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  assert.deepEqual(r.json.results.map((x: { action: string }) => x.action), ['created', 'created', 'created']);
});

test('POST /apply dryRun: a tenant whose policy makes more pairs than the comparison compiles is not compared, and says why at once', async () => {
  const api = await testApi();
  // 200 endpoints (the dry run's most), each named by a rule of its own, and 1,000 sources of no endpoint:
  // ~1,200 classes against 200 enforced, ~440,000 pairs.
  await perEndpointTenant(api, 200, 1000);
  const t0 = performance.now();
  const dry = await api.call('POST', '/api/v1/apply', { tenant: 'default', dryRun: true, documents: [doc('Policy', 'more', { rules: [{ id: 'x', protocol: 'udp', ports: '53' }] })] });
  assert.equal(dry.status, 200, JSON.stringify(dry.json));
  assert.equal(dry.json.flows.length, 1);
  assert.match(dry.json.flows[0].note, /^not compared: the current policy makes 4\d\d,\d{3} pairs of address classes, past the comparison's 300,000; after this change, 4\d\d,\d{3} pairs/);
  assert.deepEqual([dry.json.flows[0].total, POLICY_PAIRS_DEFAULT], [0, 300_000]);
  // A dry run of the fix says that it is one.
  const fix = await api.call('POST', '/api/v1/apply', { tenant: 'default', dryRun: true, documents: [doc('Group', 'db', { network: 'net', policies: [] })] });
  assert.equal(fix.status, 200, JSON.stringify(fix.json));
  assert.match(fix.json.flows[0].note, /the current policy makes 4\d\d,\d{3} pairs .*; after this change, within the limit/);
  console.log(`# refused in ${Math.round(performance.now() - t0)} ms`);
});
