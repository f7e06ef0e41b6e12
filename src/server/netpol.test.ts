import { test } from 'node:test';
import assert from 'node:assert/strict';
import { testApi, type TestApi } from './testkit.js';

async function userToken(api: TestApi, name: string, tenants: string[]): Promise<string> {
  assert.equal((await api.call('POST', '/api/v1/users', { name, role: 'tenant', tenants })).status, 201);
  return (await api.control.users.tokens.issue('admin', name, 'test', null)).token;
}

// Kubernetes' NetworkPolicy and Namespace through the API (issue 15): written by POST /apply beside Weft's
// kinds, listed for agents, printed back by GET /documents, decided by explain, and kept to their tenant.

const np = (name: string, namespace: string, spec: unknown, tenant = 'shop') => ({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name, namespace, tenant }, spec });
const ns = (name: string, labels: Record<string, string>, tenant = 'shop') => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, tenant, labels } });

const files = [
  { kind: 'Tenant', metadata: { name: 'shop' } },
  { kind: 'Network', metadata: { name: 'pods', tenant: 'shop' }, spec: { subnet: '10.30.0.0/24' } },
  ns('x', { team: 'front' }),
  np('allow-front', 'y', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: 'front' } } }], ports: [{ port: 'web' }] }] }),
];

test('NetworkPolicy and Namespace: applied, applied again unchanged, listed, printed back, explained by layer, deleted', async () => {
  const api = await testApi();
  const r = await api.call('POST', '/api/v1/apply', { documents: files });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  assert.deepEqual(r.json.results.map((x: { kind: string; name: string; action: string }) => `${x.kind} ${x.name} ${x.action}`),
    ['Tenant shop created', 'Network pods created', 'Namespace x created', 'NetworkPolicy y.allow-front created']);
  const again = await api.call('POST', '/api/v1/apply', { documents: files });
  assert.deepEqual(again.json.results.map((x: { action: string }) => x.action), ['unchanged', 'unchanged', 'unchanged', 'unchanged']);

  const listed = await api.call('GET', '/api/v1/tenants/shop/networkpolicies');
  assert.deepEqual(listed.json.items.map((p: { name: string; namespace: string; policyName: string }) => [p.name, p.namespace, p.policyName]), [['y.allow-front', 'y', 'allow-front']]);
  const nss = await api.call('GET', '/api/v1/tenants/shop/namespaces');
  assert.deepEqual(nss.json.items[0].labels, { team: 'front', 'kubernetes.io/metadata.name': 'x' }, 'the name label is always set');

  const docs = await api.call('GET', '/api/v1/tenants/shop/documents?kind=NetworkPolicy&namespace=y');
  assert.deepEqual(docs.json.items, [files[3]]);
  assert.deepEqual((await api.call('GET', '/api/v1/tenants/shop/documents?kind=NetworkPolicy&name=allow-front&namespace=y')).json.items, [files[3]]);
  assert.equal((await api.call('GET', '/api/v1/tenants/shop/documents?kind=NetworkPolicy&namespace=x')).json.items.length, 0);
  assert.deepEqual((await api.call('GET', '/api/v1/tenants/shop/documents?kind=Namespace')).json.items, [files[2]]);
  const all = await api.call('GET', '/api/v1/tenants/shop/documents');
  const back = await api.call('POST', '/api/v1/apply', { documents: all.json.items });
  assert.ok(back.json.results.every((x: { action: string }) => x.action === 'unchanged'), JSON.stringify(back.json.results));

  // Pods: endpoints with a namespace label; y/a declares its port `web` as 8080.
  const mk = (containerId: string, labels: Record<string, string>) => api.call('POST', '/api/v1/endpoints', { tenant: 'shop', network: 'pods', containerId, host: 'h', ifname: 'eth0', labels });
  assert.equal((await mk('xa', { namespace: 'x', pod: 'a' })).status, 201);
  assert.equal((await mk('za', { namespace: 'z', pod: 'a' })).status, 201);
  assert.equal((await mk('ya', { namespace: 'y', pod: 'a', 'port.weft.io/web': '8080' })).status, 201);
  const explain = async (from: string, to: string, port: number) => (await api.call('GET', `/api/v1/tenants/shop/explain?from=${from}&to=${to}&protocol=tcp&port=${port}`)).json;
  const ok = await explain('xa', 'ya', 8080);
  assert.deepEqual([ok.allowed, ok.ingress.layer, ok.ingress.policy, ok.egress.layer], [true, 'networkpolicy', 'networkpolicy y/allow-front', 'default']);
  const wrongPort = await explain('xa', 'ya', 80);
  assert.deepEqual([wrongPort.allowed, wrongPort.ingress.layer, wrongPort.ingress.policy], [false, 'networkpolicy', 'networkpolicy isolation (y/allow-front)']);
  const otherNs = await explain('za', 'ya', 8080);
  assert.equal(otherNs.allowed, false, 'z has no label team=front');

  const del = await api.call('POST', '/api/v1/apply', { delete: true, documents: [files[3], files[2]] });
  assert.deepEqual(del.json.results.map((x: { action: string }) => x.action), ['deleted', 'deleted']);
  assert.equal((await explain('za', 'ya', 80)).allowed, true, 'nothing isolates y/a any more');
});

test('NetworkPolicy stays in its tenant: another tenant\'s user neither lists, prints, writes nor watches it', async () => {
  const api = await testApi();
  assert.equal((await api.call('POST', '/api/v1/apply', { documents: files })).status, 200);
  assert.equal((await api.call('POST', '/api/v1/tenants', { name: 'rival' })).status, 201);
  const eve = await userToken(api, 'eve', ['rival']);
  for (const path of ['/api/v1/tenants/shop/networkpolicies', '/api/v1/tenants/shop/namespaces', '/api/v1/tenants/shop/documents?kind=NetworkPolicy']) {
    const r = await api.call('GET', path, undefined, {}, eve);
    assert.equal(r.status, 404, `${path}: ${JSON.stringify(r.json)}`);
  }
  const rev = await api.control.store.revision();
  const w = await api.call('POST', '/api/v1/apply', { documents: [np('spy', 'y', { podSelector: {} })] }, {}, eve);
  assert.equal(w.status, 404);
  const d = await api.call('POST', '/api/v1/apply', { delete: true, documents: [files[3]] }, {}, eve);
  assert.equal(d.status, 404);
  assert.equal(await api.control.store.revision(), rev, 'nothing was written');
  const mine = await api.call('POST', '/api/v1/apply', { documents: [np('own', 'y', { podSelector: {} }, 'rival')] }, {}, eve);
  assert.equal(mine.status, 200, 'its own tenant, yes');
  const history = await api.call('GET', '/api/v1/history?since=0', undefined, {}, eve);
  assert.equal(history.status, 200);
  const kinds = history.json.items.map((c: { kind: string; tenant?: string }) => `${c.kind} ${c.tenant}`);
  assert.ok(kinds.includes('networkpolicy rival'), `the history carries the kind: ${kinds.join(', ')}`);
  assert.ok(!kinds.some((k: string) => k.endsWith(' shop')), 'no change of shop is shown to a rival user');
});

test('AdminNetworkPolicy and BaselineAdminNetworkPolicy: applied beside NetworkPolicies, explained by tier, printed back; bad ones refused naming the field', async () => {
  const api = await testApi();
  const admin = (kind: string, name: string, spec: unknown) => ({ apiVersion: 'policy.networking.k8s.io/v1alpha1', kind, metadata: { name, tenant: 'shop' }, spec });
  const anp = admin('AdminNetworkPolicy', 'block-z', { priority: 10, subject: { namespaces: { matchLabels: { 'kubernetes.io/metadata.name': 'y' } } }, ingress: [
    { name: 'pass-x', action: 'Pass', from: [{ namespaces: { matchLabels: { team: 'front' } } }] },
    { name: 'deny-rest', action: 'Deny', from: [{ namespaces: {} }], ports: [{ portRange: { protocol: 'TCP', start: 8000, end: 8100 } }] },
  ] });
  const banp = admin('BaselineAdminNetworkPolicy', 'default', { subject: { namespaces: {} }, ingress: [{ action: 'Deny', from: [{ pods: { namespaceSelector: {}, podSelector: { matchLabels: { pod: 'a' } } } }] }] });
  const r = await api.call('POST', '/api/v1/apply', { documents: [...files, anp, banp] });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  const mk = (containerId: string, labels: Record<string, string>) => api.call('POST', '/api/v1/endpoints', { tenant: 'shop', network: 'pods', containerId, host: 'h', ifname: 'eth0', labels });
  for (const [id, ns, pod] of [['xa', 'x', 'a'], ['za', 'z', 'a'], ['zb', 'z', 'b'], ['yb', 'y', 'b']] as const) assert.equal((await mk(id, { namespace: ns, pod })).status, 201);
  const explain = async (from: string, to: string, port: number) => (await api.call('GET', `/api/v1/tenants/shop/explain?from=${from}&to=${to}&protocol=tcp&port=${port}`)).json;
  const denied = await explain('zb', 'yb', 8080);
  assert.deepEqual([denied.allowed, denied.ingress.layer, denied.ingress.policy, denied.ingress.rule.id], [false, 'adminnetworkpolicy', 'adminnetworkpolicy block-z', 'ingress.1 (deny-rest).from.0.ports.0']);
  const passed = await explain('xa', 'yb', 8080);
  assert.deepEqual([passed.allowed, passed.ingress.layer], [false, 'baselineadminnetworkpolicy'], 'x passes the admin tier; the baseline denies pods a');
  const plain = await explain('zb', 'yb', 80);
  assert.deepEqual([plain.allowed, plain.ingress.layer], [true, 'default']);
  const docs = await api.call('GET', '/api/v1/tenants/shop/documents?kind=AdminNetworkPolicy');
  assert.deepEqual(docs.json.items, [anp]);
  assert.deepEqual((await api.call('GET', '/api/v1/tenants/shop/documents?kind=BaselineAdminNetworkPolicy')).json.items, [banp]);

  const rev = await api.control.store.revision();
  const bad: Array<[unknown, string, RegExp?]> = [
    [admin('BaselineAdminNetworkPolicy', 'other', { subject: { namespaces: {} } }), 'documents.0.metadata.name', /named default/],
    [admin('AdminNetworkPolicy', 'p', { subject: { namespaces: {} } }), 'documents.0.spec.priority', /required/],
    [admin('AdminNetworkPolicy', 'p', { priority: 1001, subject: { namespaces: {} } }), 'documents.0.spec.priority'],
    [admin('AdminNetworkPolicy', 'p', { priority: 1, subject: { namespaces: {} }, ingress: [{ action: 'Allow', from: [{ namespaces: {} }], ports: [{ portRange: { protocol: 'TCP', start: 90, end: 80 } }] }] }), 'documents.0.spec.ingress.0.ports.0.portRange.end', /below start/],
    [admin('AdminNetworkPolicy', 'p', { priority: 1, subject: { namespaces: {} }, egress: [{ action: 'Allow', to: [{ networks: ['10.0.0.0/33'] }] }] }), 'documents.0.spec.egress.0.to.0.networks.0'],
    [admin('AdminNetworkPolicy', 'p', { priority: 1, subject: { namespaces: {} }, egress: [{ action: 'Allow', to: [{ networks: ['192.0.2.0/24', 'fd00::/129'] }] }] }), 'documents.0.spec.egress.0.to.0.networks.1'],
    [admin('AdminNetworkPolicy', 'p', { priority: 1, subject: { namespaces: {} }, egress: [{ action: 'Allow', to: [{ networks: ['fe80::/64'] }] }] }), 'documents.0.spec.egress.0.to.0.networks.0', /no global unicast/],
    [admin('BaselineAdminNetworkPolicy', 'default', { subject: { namespaces: {} }, ingress: [{ action: 'Pass', from: [{ namespaces: {} }] }] }), 'documents.0.spec.ingress.0.action'],
    [admin('AdminNetworkPolicy', 'p', { priority: 1, subject: { namespaces: {} }, ingress: [{ action: 'Allow', from: [{ networks: ['10.0.0.0/8'] }] }] }), 'documents.0.spec.ingress.0.from.0'],
  ];
  for (const [d, field, message] of bad) {
    const x = await api.call('POST', '/api/v1/apply', { documents: [d] });
    assert.equal(x.status, 400, JSON.stringify(x.json));
    assert.equal(x.json.field?.startsWith(field), true, `${field}: ${JSON.stringify(x.json)}`);
    if (message) assert.match(x.json.detail, message);
  }
  assert.equal(await api.control.store.revision(), rev, 'nothing was written');
});

test('audit mode: a Weft policy (mode) and Kubernetes policies (weft apply --audit, or the weft.io/mode annotation) pass what they would drop, explain says so, and it round-trips', async () => {
  const api = await testApi();
  const watch = { kind: 'Policy', metadata: { name: 'watch', tenant: 'shop' }, spec: { mode: 'audit', rules: [{ id: '1', protocol: 'udp', action: 'deny' }] } };
  const r = await api.call('POST', '/api/v1/apply', { documents: [...files, { kind: 'Group', metadata: { name: 'db', tenant: 'shop' }, spec: { network: 'pods', policies: ['watch'] } }, watch] });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  const audited = await api.call('POST', '/api/v1/apply', { audit: true, documents: [np('deny-x', 'x', { podSelector: {}, policyTypes: ['Ingress'] })] });
  assert.equal(audited.status, 200, JSON.stringify(audited.json));
  const stored = (await api.call('GET', '/api/v1/tenants/shop/networkpolicies')).json.items.find((p: { name: string }) => p.name === 'x.deny-x');
  assert.equal(stored.mode, 'audit');
  const mk = (containerId: string, labels: Record<string, string>, group?: string) => api.call('POST', '/api/v1/endpoints', { tenant: 'shop', network: 'pods', containerId, host: 'h', ifname: 'eth0', labels, ...(group ? { group } : {}) });
  assert.equal((await mk('xa', { namespace: 'x', pod: 'a' }, 'db')).status, 201);
  assert.equal((await mk('za', { namespace: 'z', pod: 'a' })).status, 201);
  const explain = async (proto: string) => (await api.call('GET', `/api/v1/tenants/shop/explain?from=za&to=xa&protocol=${proto}&port=80`)).json;
  const tcp = await explain('tcp');
  assert.deepEqual([tcp.allowed, tcp.audit?.allowed, tcp.audit?.ingress.policy], [true, false, 'networkpolicy isolation (x/deny-x (audit))']);
  const udp = await explain('udp');
  assert.deepEqual([udp.allowed, udp.audit?.ingress.policy, udp.audit?.ingress.layer], [true, 'watch', 'weft']);
  // Printed back with its mode, and applying that back changes nothing.
  const docs = (await api.call('GET', '/api/v1/tenants/shop/documents')).json.items;
  const back = docs.find((d: { kind: string; metadata: { name: string } }) => d.kind === 'NetworkPolicy' && d.metadata.name === 'deny-x');
  assert.deepEqual(back.metadata.annotations, { 'weft.io/mode': 'audit' });
  assert.equal(docs.find((d: { kind: string; metadata: { name: string } }) => d.kind === 'Policy' && d.metadata.name === 'watch').spec.mode, 'audit');
  const again = await api.call('POST', '/api/v1/apply', { documents: docs });
  assert.ok(again.json.results.every((x: { action: string }) => x.action === 'unchanged'), JSON.stringify(again.json.results));
  // Enforced again: applied without the annotation.
  await api.call('POST', '/api/v1/apply', { documents: [np('deny-x', 'x', { podSelector: {}, policyTypes: ['Ingress'] })] });
  assert.deepEqual([(await explain('tcp')).allowed, (await explain('tcp')).audit], [false, undefined]);
  const bad = await api.call('POST', '/api/v1/apply', { documents: [{ ...np('p', 'x', { podSelector: {} }), metadata: { name: 'p', namespace: 'x', annotations: { 'weft.io/mode': 'loud' } } }] });
  assert.deepEqual([bad.status, bad.json.field], [400, 'documents.0.metadata.annotations.weft.io/mode']);
  const chart = await api.call('POST', '/api/v1/apply', { documents: [{ ...np('chart', 'x', { podSelector: {} }), metadata: { name: 'chart', namespace: 'x', tenant: 'shop', labels: { 'app.kubernetes.io/name': 'x' }, annotations: { 'meta.helm.sh/release-name': 'r' } } }] });
  assert.equal(chart.status, 200, 'a chart\'s labels and annotations are taken (and ignored)');
  const create = await api.call('POST', '/api/v1/tenants/shop/policies', { name: 'loose', mode: 'audit' });
  assert.deepEqual([create.status, create.json.mode], [201, 'audit']);
});

test('a Kubernetes policy is bounded by what it expands to (rules × peers × ports ≤ 1,000), and pays for it in its owner\'s rules quota', async () => {
  const api = await testApi();
  assert.equal((await api.call('POST', '/api/v1/tenants', { name: 'shop' })).status, 201);
  const bob = await userToken(api, 'bob', ['shop']);
  const peers = Array.from({ length: 10 }, (_, i) => ({ podSelector: { matchLabels: { pod: `p${i}` } } }));
  const ports = Array.from({ length: 10 }, (_, i) => ({ port: 1000 + i }));
  const big = np('big', 'x', { podSelector: {}, ingress: Array.from({ length: 11 }, () => ({ from: peers, ports })) });
  const rev = await api.control.store.revision();
  const r = await api.call('POST', '/api/v1/apply', { documents: [big] }, {}, bob);
  assert.deepEqual([r.status, r.json.field], [400, 'documents.0.spec.ingress'], JSON.stringify(r.json));
  assert.match(r.json.detail, /expands to 1100 rules/);
  const anp = { apiVersion: 'policy.networking.k8s.io/v1alpha1', kind: 'AdminNetworkPolicy', metadata: { name: 'wide', tenant: 'shop' }, spec: { priority: 1, subject: { namespaces: {} },
    egress: Array.from({ length: 5 }, () => ({ action: 'Deny', to: [{ networks: Array.from({ length: 25 }, (_, i) => `10.${i}.0.0/16`) }], ports: Array.from({ length: 9 }, (_, i) => ({ portNumber: { protocol: 'TCP', port: 1 + i } })) })) } };
  const a = await api.call('POST', '/api/v1/apply', { documents: [anp] }, {}, bob);
  assert.deepEqual([a.status, a.json.field], [400, 'documents.0.spec.egress'], 'each network CIDR counts: 5 × 25 × 9 = 1,125');
  assert.equal(await api.control.store.revision(), rev, 'nothing was written');
  const ok = await api.call('POST', '/api/v1/apply', { documents: [np('ok', 'x', { podSelector: {}, ingress: [{ from: peers.slice(0, 3), ports: ports.slice(0, 2) }], egress: [{}] })] }, {}, bob);
  assert.equal(ok.status, 200, JSON.stringify(ok.json));
  const used = (await api.call('GET', '/api/v1/users/bob/quota')).json;
  assert.deepEqual([used.used?.objects, used.used?.rules], [1, 7], `3 peers × 2 ports, and one egress rule: ${JSON.stringify(used)}`);
});

test('verify: bad input is refused naming the field; no endpoints, no probes; reports come only from hosts; another tenant\'s user sees nothing', async () => {
  const api = await testApi();
  assert.equal((await api.call('POST', '/api/v1/apply', { documents: files })).status, 200);
  const bad: Array<[unknown, number, string]> = [
    [{ flows: ['80'] }, 400, 'flows.0'], [{ flows: ['70000/tcp'] }, 400, 'flows.0'], [{ flows: ['80/sctp'] }, 400, 'flows.0'],
    [{ flows: [] }, 400, 'flows'], [{ timeoutMs: 10 }, 400, 'timeoutMs'], [{ color: 'red' }, 400, 'color'],
  ];
  for (const [body, status, field] of bad) {
    const r = await api.call('POST', '/api/v1/tenants/shop/verify', body);
    assert.deepEqual([r.status, r.json.field], [status, field], JSON.stringify(r.json));
  }
  const empty = await api.call('POST', '/api/v1/tenants/shop/verify', { flows: ['80/tcp'] });
  assert.deepEqual([empty.status, empty.json.results, empty.json.missing], [200, [], []]);
  // Endpoints without a namespace to probe from (made through the API) probe nothing; with too many flows the cells are refused.
  const rev = await api.control.store.revision();
  const report = await api.call('PUT', '/api/v1/tenants/shop/verify/0123456789abcdef/reports/h', { results: [] });
  assert.equal(report.status, 403, 'only a host certificate reports');
  assert.equal(await api.control.store.revision(), rev);
  assert.equal((await api.call('POST', '/api/v1/tenants', { name: 'rival' })).status, 201);
  const eve = await userToken(api, 'eve', ['rival']);
  assert.equal((await api.call('POST', '/api/v1/tenants/shop/verify', {}, {}, eve)).status, 404);
});

test('apply --dry-run says which flows between the endpoints would change verdict, and writes nothing', async () => {
  const api = await testApi();
  assert.equal((await api.call('POST', '/api/v1/apply', { documents: files.slice(0, 3) })).status, 200);
  const mk = (containerId: string, labels: Record<string, string>) => api.call('POST', '/api/v1/endpoints', { tenant: 'shop', network: 'pods', containerId, host: 'h', ifname: 'eth0', labels });
  for (const [id, ns, pod] of [['xa', 'x', 'a'], ['ya', 'y', 'a'], ['yb', 'y', 'b']] as const) assert.equal((await mk(id, { namespace: ns, pod })).status, 201);
  const rev = await api.control.store.revision();
  const deny = np('deny-y', 'y', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: 'front' } } }], ports: [{ protocol: 'TCP', port: 80, endPort: 81 }] }] });
  const dry = await api.call('POST', '/api/v1/apply', { dryRun: true, documents: [deny] });
  assert.equal(dry.status, 200, JSON.stringify(dry.json));
  assert.equal(await api.control.store.revision(), rev, 'a dry run writes nothing');
  const shop = dry.json.flows.find((f: { tenant: string }) => f.tenant === 'shop');
  const lines = shop.changes.map((c: { from: string; to: string; protocol: string; ports: string; before: string; after: string }) => `${c.from}>${c.to} ${c.protocol} ${c.ports} ${c.before}>${c.after}`).sort();
  // y/a is isolated: only x (team=front) on tcp 80-81. So yb loses everything into ya, xa keeps 80-81.
  assert.deepEqual(lines, [
    'xa>ya other 0-5 accept>drop', 'xa>ya other 18-255 accept>drop', 'xa>ya other 7-16 accept>drop',
    'xa>ya tcp 0-79 accept>drop', 'xa>ya tcp 82-65535 accept>drop', 'xa>ya udp 0-65535 accept>drop',
    'yb>ya other 0-5 accept>drop', 'yb>ya other 18-255 accept>drop', 'yb>ya other 7-16 accept>drop',
    'yb>ya tcp 0-65535 accept>drop', 'yb>ya udp 0-65535 accept>drop',
  ]);
  assert.equal(shop.total, lines.length);
  const none = await api.call('POST', '/api/v1/apply', { dryRun: true, documents: files.slice(0, 3) });
  assert.deepEqual(none.json.flows[0].changes, [], 'nothing changes: no flow changes');
});

test("a pod's labels change through PATCH (a merge; null removes): selectors follow; fixed labels, bad ones and other tenants are refused, changing nothing", async () => {
  const api = await testApi();
  assert.equal((await api.call('POST', '/api/v1/apply', { documents: files })).status, 200);
  const mk = async (containerId: string, labels: Record<string, string>) => (await api.call('POST', '/api/v1/endpoints', { tenant: 'shop', network: 'pods', containerId, host: 'h', ifname: 'eth0', labels })).json;
  const xa = await mk('xa', { namespace: 'x', pod: 'b', keep: 'me' });
  await mk('ya', { namespace: 'y', pod: 'a', 'port.weft.io/web': '8080' });
  const explain = async () => (await api.call('GET', '/api/v1/tenants/shop/explain?from=ya&to=xa&protocol=tcp&port=80')).json;
  const isolating = np('b-only-from-y', 'x', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [] });
  assert.equal((await api.call('POST', '/api/v1/apply', { documents: [isolating] })).status, 200);
  assert.equal((await explain()).allowed, true, 'x/xa is pod=b: no policy selects it');

  const patch = (body: unknown, token?: string) => api.call('PATCH', `/api/v1/endpoints/${xa.id}`, body, {}, token);
  const r = await patch({ labels: { pod: 'a', tier: 'web', keep: null } });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  assert.deepEqual(r.json.labels, { namespace: 'x', pod: 'a', tier: 'web', network: 'pods' });
  const now = await explain();
  assert.deepEqual([now.allowed, now.ingress.layer], [false, 'networkpolicy'], 'relabelled pod=a: the policy isolates it');

  const rev = await api.control.store.revision();
  const refused: Array<[unknown, number, RegExp]> = [
    [{ labels: { namespace: 'y' } }, 400, /labels\.namespace: an endpoint's namespace label is set when it is made and cannot change \(it is 'x'\)/],
    [{ labels: { network: null } }, 400, /labels\.network: /],
    [{ labels: { group: 'db' } }, 400, /labels\.group: .*\(it is unset\)/],
    [{ labels: { runtime: 'docker' } }, 400, /labels\.runtime: an endpoint's runtime label is set when it is made and cannot change/],
    [{ labels: { 'bad key!': 'v' } }, 400, /labels/],
    [{ labels: { pod: 'a b' } }, 400, /labels\.pod/],
    [{ labels: Object.fromEntries(Array.from({ length: 62 }, (_, i) => [`k${i}`, 'v'])) }, 400, /labels: the endpoint would hold 65 labels \(at most 64, besides network and group\)/],
    [{ labels: [] }, 400, /labels/],
  ];
  for (const [body, status, message] of refused) {
    const x = await patch(body);
    assert.equal(x.status, status, `${JSON.stringify(body).slice(0, 80)}: ${JSON.stringify(x.json)}`);
    assert.match(JSON.stringify(x.json), message);
  }
  assert.equal((await patch({ labels: { namespace: 'x' } })).status, 200, 'setting a fixed label to what it is changes nothing, and is no error');
  assert.equal(await api.control.store.revision(), rev, 'a PATCH that changes nothing writes nothing');
  // The server's own labels are never the caller's: a `group` label without a group is dropped.
  const lone = await mk('lone', { namespace: 'y', group: 'db', network: 'elsewhere', app: 'x' });
  assert.deepEqual(lone.labels, { namespace: 'y', app: 'x', network: 'pods' });

  // A user of the tenant relabels its pods, and nothing else of them; a rival user finds no endpoint.
  assert.equal((await api.call('POST', '/api/v1/tenants', { name: 'rival' })).status, 201);
  const ann = await userToken(api, 'ann', ['shop']);
  const eve = await userToken(api, 'eve', ['rival']);
  assert.equal((await patch({ labels: { pod: 'c' } }, ann)).status, 200);
  const name = await patch({ containerName: 'other' }, ann);
  assert.equal(name.status, 403);
  assert.match(name.json.detail ?? name.json.message ?? JSON.stringify(name.json), /may change an endpoint's labels, not its containerName/);
  const before = await api.control.store.revision();
  const spy = await patch({ labels: { pod: 'a' } }, eve);
  assert.equal(spy.status, 404);
  assert.equal(await api.control.store.revision(), before, 'nothing was written');
  assert.equal((await api.call('GET', `/api/v1/endpoints/${xa.id}`)).json.labels.pod, 'c');
  assert.ok(rev < before);
});
