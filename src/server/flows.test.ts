import { test } from 'node:test';
import assert from 'node:assert/strict';
import { testApi, type TestApi } from './testkit.js';
import { annotate, ExplainBudget, FlowBook, FLOWS_PER_TENANT, TALLY_KEYS, type Flow } from './flows.js';

// Flow records through the API (issue 16): what an agent reports is named (endpoints, groups, the rule
// that decided, as explain decides) and kept per tenant; bad reports change nothing; a tenant user sees
// only its tenants' records; a deleted tenant's records go with it.

async function ok(api: TestApi, method: string, url: string, body?: unknown): Promise<any> {
  const r = await api.call(method, url, body);
  assert.ok(r.status < 300, `${method} ${url}: ${r.status} ${JSON.stringify(r.json)}`);
  return r.json;
}

/** Contiv's tutorial on tenant `shop`: db denies tcp but 8888; db-1 and app-1 on host h, app-2 on host g. */
async function shop(api: TestApi, policy = 'db-policy'): Promise<Record<string, string>> {
  await ok(api, 'POST', '/api/v1/tenants', { name: 'shop' });
  await ok(api, 'POST', '/api/v1/tenants/shop/networks', { name: 'net', subnet: '10.1.2.0/24' });
  await ok(api, 'POST', '/api/v1/tenants/shop/policies', { name: policy, rules: [
    { id: '1', direction: 'in', priority: 1, protocol: 'tcp', action: 'deny' },
    { id: '2', direction: 'in', priority: 10, protocol: 'tcp', ports: '8888', action: 'allow' },
  ] });
  await ok(api, 'POST', '/api/v1/tenants/shop/groups', { name: 'db', network: 'net', policies: [policy] });
  await ok(api, 'POST', '/api/v1/tenants/shop/groups', { name: 'app', network: 'net' });
  const ip: Record<string, string> = {};
  for (const [id, group, host] of [['db-1', 'db', 'h'], ['app-1', 'app', 'h'], ['app-2', 'app', 'g']] as const) {
    ip[id] = (await ok(api, 'POST', '/api/v1/endpoints', { tenant: 'shop', network: 'net', group, containerId: id, host, ifname: 'eth0' })).ip;
  }
  return ip;
}

const record = (src: string, dst: string, dport: number, verdict = 'allow', tenant = 'shop') => ({ tenant, at: Date.now(), verdict, proto: 6, src, sport: 40000, dst, dport });

test('reported records are named as explain decides them; records of other hosts\' endpoints and unknown tenants are refused', async () => {
  const api = await testApi();
  const ip = await shop(api);
  const res = await ok(api, 'POST', '/api/v1/hosts/h/flows', {
    flows: [
      record(ip['app-1']!, ip['db-1']!, 8888),
      record(ip['app-1']!, ip['db-1']!, 8889, 'deny'),
      // The kernel allowed what the stored policy denies (a change not yet enforced there): named, flagged.
      record(ip['app-1']!, ip['db-1']!, 22, 'allow'),
      // Between two endpoints of another host: host h cannot speak for it.
      record(ip['app-2']!, '10.1.2.250', 80),
      record('10.9.9.9', '10.9.9.8', 80, 'allow', 'nosuch'),
    ],
    lost: [{ tenant: 'shop', count: 3 }],
  });
  assert.deepEqual(res, { accepted: 3, refused: 2 });
  const { items, lost } = await ok(api, 'GET', '/api/v1/flows?tenant=shop');
  assert.deepEqual(lost, [{ tenant: 'shop', lost: 3, held: 0 }]);
  const seen = (items as Flow[]).map((f) => [f.verdict, `${f.src.name}/${f.src.group}`, `${f.dst.name}/${f.dst.group}:${f.dst.port}`, f.protocol, `${f.decidedBy.policy ?? f.decidedBy.layer}/${f.decidedBy.rule} ${f.decidedBy.side}`, f.agrees, f.host]);
  assert.deepEqual(seen, [
    ['allow', 'app-1/app', 'db-1/db:8888', 'tcp', 'db-policy/2 ingress', true, 'h'],
    ['deny', 'app-1/app', 'db-1/db:8889', 'tcp', 'db-policy/1 ingress', true, 'h'],
    ['allow', 'app-1/app', 'db-1/db:22', 'tcp', 'db-policy/1 ingress', false, 'h'],
  ]);
  // Between two hosts each records what it enforces: g (app-2's host) its egress, h (db-1's) its ingress.
  assert.deepEqual(await ok(api, 'POST', '/api/v1/hosts/g/flows', { flows: [record(ip['app-2']!, ip['db-1']!, 8889, 'allow')], lost: [{ tenant: 'shop', count: 5 }] }), { accepted: 1, refused: 0 });
  assert.deepEqual(await ok(api, 'POST', '/api/v1/hosts/h/flows', { flows: [record(ip['app-2']!, ip['db-1']!, 8889, 'deny')], lost: [] }), { accepted: 1, refused: 0 });
  const across = (await ok(api, 'GET', '/api/v1/flows?tenant=shop&port=8889')).items.filter((f: Flow) => f.src.name === 'app-2');
  assert.deepEqual(across.map((f: Flow) => [f.host, f.verdict, `${f.decidedBy.policy ?? f.decidedBy.layer}/${f.decidedBy.rule} ${f.decidedBy.side}`, f.agrees, f.egress !== null, f.ingress !== null]), [
    ['g', 'allow', 'default/null egress', true, true, false],
    ['h', 'deny', 'db-policy/1 ingress', true, false, true],
  ]);
  // A host counts lost records only of tenants it holds endpoints in.
  assert.deepEqual(await ok(api, 'POST', '/api/v1/hosts/nowhere/flows', { flows: [record(ip['app-1']!, ip['db-1']!, 8888)], lost: [{ tenant: 'shop', count: 1000 }] }), { accepted: 0, refused: 1 });
  assert.equal((await ok(api, 'GET', '/api/v1/flows?tenant=shop')).lost[0].lost, 3 + 5);
  await ok(api, 'POST', '/api/v1/hosts/g/flows', { flows: [], lost: [{ tenant: 'shop', count: 1 }], held: [{ tenant: 'shop', count: 40 }] });
  await ok(api, 'POST', '/api/v1/hosts/nowhere/flows', { flows: [], lost: [], held: [{ tenant: 'shop', count: 1000 }] });
  assert.equal((await ok(api, 'GET', '/api/v1/flows?tenant=shop')).lost[0].held, 40, 'held back, counted only where the host is');
  // Filters: verdict, port, group, since.
  assert.deepEqual((await ok(api, 'GET', '/api/v1/flows?tenant=shop&verdict=deny')).items.map((f: Flow) => f.dst.port), [8889, 8889]);
  assert.deepEqual((await ok(api, 'GET', '/api/v1/flows?tenant=shop&port=8888&group=app&since=1m&host=h')).items.map((f: Flow) => f.dst.port), [8888]);
  assert.deepEqual((await ok(api, 'GET', '/api/v1/flows?tenant=shop&group=nobody')).items, []);
  // Counted: by the rule that decided and by pair of groups (`weft top`), and as Prometheus text.
  const top = await ok(api, 'GET', '/api/v1/flows/top?tenant=shop');
  assert.deepEqual(top.rules.map((r: any) => `${r.policy}/${r.rule} ${r.verdict} ${r.connections}`).sort(), ['db-policy/1 allow 1', 'db-policy/1 deny 2', 'db-policy/2 allow 1', 'null/null allow 1']);
  assert.deepEqual(top.groups.map((g: any) => `${g.from}>${g.to} ${g.verdict} ${g.connections}`).sort(), ['app>db allow 3', 'app>db deny 2']);
  assert.equal(top.lost, 9);
  assert.equal(top.held, 40);
  const text = (await api.app.inject({ method: 'GET', url: '/api/v1/flows/metrics', headers: { authorization: `Bearer ${api.token}` } })).body;
  assert.match(text, /^weft_policy_rule_hits_total\{tenant="shop",layer="weft",policy="db-policy",rule="2",verdict="allow"\} 1$/m);
  assert.match(text, /^weft_group_connections_total\{tenant="shop",from="app",to="db",verdict="allow"\} 3$/m);
  assert.match(text, /^weft_flow_records_lost_total\{tenant="shop"\} 9$/m);
  assert.match(text, /^weft_flow_records_held_total\{tenant="shop"\} 40$/m);
  const open = String((await api.call('GET', '/metrics')).json);
  assert.doesNotMatch(open, /shop|db-policy/, 'the server\'s /metrics names no tenant, policy or group');
  assert.match(open, /^weft_flow_records_total\{outcome="accepted"\} 5$/m);
});

test('IPv6 records: an endpoint is named and explained by its IPv6 address; TCP without ports (headers past the copy) is named, not explained; icmp finds ICMPv6', async () => {
  const api = await testApi();
  await ok(api, 'POST', '/api/v1/tenants', { name: 'six' });
  await ok(api, 'POST', '/api/v1/tenants/six/networks', { name: 'net', subnet: '10.1.2.0/24', subnet6: 'fd00:6::/64' });
  await ok(api, 'POST', '/api/v1/tenants/six/policies', { name: 'p', rules: [
    { id: '1', direction: 'in', priority: 1, protocol: 'tcp', action: 'deny' },
    { id: '2', direction: 'in', priority: 10, protocol: 'tcp', ports: '8888', action: 'allow' },
  ] });
  await ok(api, 'POST', '/api/v1/tenants/six/groups', { name: 'db', network: 'net', policies: ['p'] });
  await ok(api, 'POST', '/api/v1/tenants/six/groups', { name: 'app', network: 'net' });
  const db = await ok(api, 'POST', '/api/v1/endpoints', { tenant: 'six', network: 'net', group: 'db', containerId: 'db-1', host: 'h', ifname: 'eth0' });
  const app = await ok(api, 'POST', '/api/v1/endpoints', { tenant: 'six', network: 'net', group: 'app', containerId: 'app-1', host: 'h', ifname: 'eth0' });
  const r6 = (dport: number, proto = 6, verdict = 'allow') => ({ ...record(app.ip6, db.ip6, dport, verdict, 'six'), proto });
  assert.deepEqual(await ok(api, 'POST', '/api/v1/hosts/h/flows', { flows: [r6(8888), r6(8889, 6, 'deny'), r6(0), r6(0, 58)], lost: [] }), { accepted: 4, refused: 0 });
  const { items } = await ok(api, 'GET', '/api/v1/flows?tenant=six');
  const seen = (items as Flow[]).map((f) => `${f.verdict} ${f.src.ip}=${f.src.name} > ${f.dst.ip}=${f.dst.name}:${f.dst.port} ${f.protocol} ${f.decidedBy.policy ?? f.decidedBy.layer}/${f.decidedBy.rule}`);
  assert.deepEqual(seen, [
    `allow ${app.ip6}=app-1 > ${db.ip6}=db-1:8888 tcp p/2`,
    `deny ${app.ip6}=app-1 > ${db.ip6}=db-1:8889 tcp p/1`,
    `allow ${app.ip6}=app-1 > ${db.ip6}=db-1:0 tcp unexplained/null`,
    `allow ${app.ip6}=app-1 > ${db.ip6}=db-1:0 icmpv6 default/null`,
  ]);
  const icmp = (await ok(api, 'GET', '/api/v1/flows?tenant=six&protocol=icmp')).items as Flow[];
  assert.deepEqual(icmp.map((f) => f.protocol), ['icmpv6'], 'icmp includes ICMPv6');
  // Out by NAT66 to a NAT64 address (64:ff9b::/96): a record like any other.
  assert.deepEqual(await ok(api, 'POST', '/api/v1/hosts/h/flows', { flows: [{ ...record(app.ip6, '64:ff9b::c000:207', 443, 'allow', 'six'), proto: 6 }], lost: [] }), { accepted: 1, refused: 0 });
});

test('bad reports and queries are refused naming the field, and change nothing', async () => {
  const api = await testApi();
  const ip = await shop(api);
  const good = record(ip['app-1']!, ip['db-1']!, 8888);
  for (const [body, field] of [
    [{ flows: [{ ...good, src: '10.1.2.300' }], lost: [] }, 'src'],
    [{ flows: [{ ...good, src: 'FD00::1' }], lost: [] }, 'src'],
    [{ flows: [{ ...good, dst: 'fd00:0::1' }], lost: [] }, 'flows.0.dst'],
    [{ flows: [{ ...good, dst: 'fd00::1::2' }], lost: [] }, 'flows.0.dst'],
    [{ flows: [{ ...good, src: 'fd00::1', dst: 'fd00::2' }, { ...good, dst: 'fd00::2' }], lost: [] }, 'flows.1.dst'],
    [{ flows: [{ ...good, src: 'fe80::1', dst: 'fd00::2' }], lost: [] }, 'flows.0.src'],
    [{ flows: [{ ...good, src: 'fd00::1', dst: '::ffff:a01:203' }], lost: [] }, 'flows.0.dst'],
    [{ flows: [{ ...good, verdict: 'maybe' }], lost: [] }, 'verdict'],
    [{ flows: [{ ...good, dport: 70000 }], lost: [] }, 'dport'],
    [{ flows: [{ ...good, extra: 1 }], lost: [] }, 'extra'],
    [{ flows: [good] }, 'lost'],
    [{ flows: Array.from({ length: 1001 }, () => good), lost: [] }, 'flows'],
    [{ flows: [], lost: [{ tenant: 'shop', count: 0 }] }, 'count'],
  ] as const) {
    const r = await api.call('POST', '/api/v1/hosts/h/flows', body);
    assert.equal(r.status, 400, `${field}: ${JSON.stringify(r.json)}`);
    assert.match(JSON.stringify(r.json), new RegExp(field), `the error names ${field}: ${JSON.stringify(r.json)}`);
  }
  for (const q of ['since=yesterday', 'verdict=maybe', 'port=x', 'limit=0', 'follow=yes', 'colour=red']) {
    const r = await api.call('GET', `/api/v1/flows?tenant=shop&${q}`);
    assert.equal(r.status, 400, `${q}: ${JSON.stringify(r.json)}`);
  }
  assert.deepEqual((await ok(api, 'GET', '/api/v1/flows?tenant=shop')).items, [], 'nothing was kept');
});

test('a tenant user sees only its own tenants\' records; a deleted tenant\'s records are gone, also for one made again under its name', async () => {
  const api = await testApi();
  const ip = await shop(api);
  await ok(api, 'POST', '/api/v1/hosts/h/flows', { flows: [record(ip['app-1']!, ip['db-1']!, 8888)], lost: [{ tenant: 'shop', count: 1 }] });
  await ok(api, 'POST', '/api/v1/tenants', { name: 'rival' });
  await ok(api, 'POST', '/api/v1/users', { name: 'eve', role: 'tenant', tenants: ['rival'] });
  const eve = (await api.control.users.tokens.issue('admin', 'eve', 'test', null)).token;
  assert.equal((await api.call('GET', '/api/v1/flows?tenant=shop', undefined, {}, eve)).status, 404, 'another tenant is not there');
  const mine = await api.call('GET', '/api/v1/flows', undefined, {}, eve);
  assert.deepEqual([mine.status, mine.json.items, mine.json.lost], [200, [], [{ tenant: 'rival', lost: 0, held: 0 }]], 'no tenant named: only its own, and no other tenant\'s lost count');
  assert.equal((await api.call('POST', '/api/v1/hosts/h/flows', { flows: [], lost: [] }, {}, eve)).status, 403, 'a person other than an admin reports nothing');
  assert.equal((await ok(api, 'GET', '/api/v1/flows')).items.length, 1, 'an admin sees every tenant');
  assert.equal((await api.call('GET', '/api/v1/flows/top?tenant=shop', undefined, {}, eve)).status, 404);
  const theirs = (await api.app.inject({ method: 'GET', url: '/api/v1/flows/metrics', headers: { authorization: `Bearer ${eve}` } })).body;
  assert.doesNotMatch(theirs, /shop/, 'another tenant\'s counters are not in a tenant user\'s metrics');
  // Deleting the tenant (its objects first) takes its records; a new tenant of that name starts with none.
  for (const id of ['db-1', 'app-1', 'app-2']) {
    const ep = (await ok(api, 'GET', '/api/v1/endpoints?tenant=shop')).items.find((e: { containerId: string }) => e.containerId === id);
    await ok(api, 'DELETE', `/api/v1/endpoints/${ep.id}`);
  }
  for (const path of ['groups/db', 'groups/app', 'policies/db-policy', 'networks/net', '']) await ok(api, 'DELETE', `/api/v1/tenants/shop${path ? `/${path}` : ''}`);
  await ok(api, 'POST', '/api/v1/tenants', { name: 'shop' });
  assert.deepEqual((await ok(api, 'GET', '/api/v1/flows?tenant=shop')).items, []);
  assert.deepEqual((await ok(api, 'GET', '/api/v1/flows/top?tenant=shop')), { tenant: 'shop', rules: [], groups: [], traffic: [], lost: 0, held: 0 });
});

test('the book keeps the newest records per tenant and in all, and tells followers of their tenants only', () => {
  const book = new FlowBook();
  const flow = (tenant: string, i: number) => ({
    tenant, time: new Date(1_800_000_000_000 + i).toISOString(), verdict: 'allow', src: { ip: '10.0.0.1', port: 1 }, dst: { ip: '10.0.0.2', port: i % 2000 },
    decidedBy: { side: 'ingress', layer: 'weft', policy: 'p', rule: String(i % 1500) },
  }) as Flow;
  const heard: string[] = [];
  const stop = book.follow(new Set(['a']), (f) => heard.push(f.tenant));
  book.add(Array.from({ length: FLOWS_PER_TENANT + 10 }, (_, i) => flow('a', i)));
  book.add([flow('b', 2)]);
  const a = book.list(new Set(['a']), () => true, 1e9);
  assert.ok(a.length <= FLOWS_PER_TENANT && a.length >= FLOWS_PER_TENANT * 0.85, `bounded: ${a.length}`);
  assert.equal(a.at(-1)?.time, flow('a', FLOWS_PER_TENANT + 9).time, 'the newest stays');
  assert.equal(heard.length, FLOWS_PER_TENANT + 10);
  assert.ok(heard.every((t) => t === 'a'));
  stop();
  book.add([flow('a', 1e6)]);
  assert.equal(heard.length, FLOWS_PER_TENANT + 10, 'unfollowed');
  book.add([flow('b', 2e6)]);
  assert.deepEqual(book.list(undefined, () => true, 2).map((f) => f.tenant), ['a', 'b'], 'all tenants, by time, the newest');
  // Counted by rule: bounded, the rest under `other`.
  const rules = book.tallies.get('a')?.rules as Map<string, { rule: string | null; layer: string; connections: number }>;
  assert.ok(rules.size <= TALLY_KEYS + 1, `at most ${TALLY_KEYS} rules and other: ${rules.size}`);
  assert.equal([...rules.values()].reduce((n, r) => n + r.connections, 0), FLOWS_PER_TENANT + 11, 'every record counted once');
  assert.ok([...rules.values()].some((r) => r.layer === 'other'));
  book.forget('a');
  assert.deepEqual(book.list(undefined, () => true, 10).map((f) => f.tenant), ['b', 'b'], 'a forgotten tenant\'s records are gone');
  assert.equal(book.tallies.has('a'), false);
});

test('past the server\'s time for explaining, records are named but not explained', async () => {
  const api = await testApi();
  const ip = await shop(api);
  const { tenantPolicy } = await import('./routes/explain.js');
  const { explainer } = await import('../policy/index.js');
  const { state, endpoints } = await tenantPolicy(api.control, 'shop');
  let calls = 0;
  const explain = explainer(state);
  const counted = (...a: Parameters<typeof explain>) => (calls++, explain(...a));
  const records = [8888, 8889, 22].map((port) => ({ ...record(ip['app-1']!, ip['db-1']!, port), verdict: 'allow' as const }));
  const none = annotate('h', counted, endpoints, records, new ExplainBudget(0, 0));
  assert.equal(calls, 0, 'nothing explained');
  assert.deepEqual(none.map((f) => [f.src.name, f.dst.group, f.decidedBy.layer]), [['app-1', 'db', 'unexplained'], ['app-1', 'db', 'unexplained'], ['app-1', 'db', 'unexplained']]);
  const some = annotate('h', counted, endpoints, [...records, ...records], new ExplainBudget(1000, 1000));
  assert.equal(calls, 3, 'each distinct flow explained once');
  assert.deepEqual(some.map((f) => f.decidedBy.rule), ['2', '1', '1', '2', '1', '1']);
});

test('a tenant deleted and made again under its name is explained by its own policy at once, never the old one\'s', async () => {
  const api = await testApi();
  let ip = await shop(api);
  await ok(api, 'POST', '/api/v1/hosts/h/flows', { flows: [record(ip['app-1']!, ip['db-1']!, 8889, 'deny')], lost: [] });
  for (const id of ['db-1', 'app-1', 'app-2']) {
    const ep = (await ok(api, 'GET', '/api/v1/endpoints?tenant=shop')).items.find((e: { containerId: string }) => e.containerId === id);
    await ok(api, 'DELETE', `/api/v1/endpoints/${ep.id}`);
  }
  for (const path of ['groups/db', 'groups/app', 'policies/db-policy', 'networks/net', '']) await ok(api, 'DELETE', `/api/v1/tenants/shop${path ? `/${path}` : ''}`);
  ip = await shop(api, 'new-owners-policy');
  await ok(api, 'POST', '/api/v1/hosts/h/flows', { flows: [record(ip['app-1']!, ip['db-1']!, 8889, 'deny')], lost: [] });
  const items = (await ok(api, 'GET', '/api/v1/flows?tenant=shop')).items as Flow[];
  assert.deepEqual(items.map((f) => f.decidedBy.policy), ['new-owners-policy']);
});

test('after policies change, records are explained by the policies as they now are: the changed one read again, the unchanged one kept', async () => {
  const api = await testApi();
  const ip = await shop(api);
  await ok(api, 'POST', '/api/v1/tenants/shop/policies', { name: 'web-policy', rules: [{ id: 'w1', direction: 'in', priority: 20, protocol: 'tcp', ports: '7000', action: 'allow' }] });
  await ok(api, 'PATCH', '/api/v1/tenants/shop/groups/db', { policies: ['db-policy', 'web-policy'] });
  // The kernel's verdict as the policy now decides it: `agrees` says whether the server sees it so too.
  const explained = async (port: number, verdict: 'allow' | 'deny') => {
    await ok(api, 'POST', '/api/v1/hosts/h/flows', { flows: [record(ip['app-1']!, ip['db-1']!, port, verdict)], lost: [] });
    const f = ((await ok(api, 'GET', `/api/v1/flows?tenant=shop&port=${port}`)).items as Flow[]).at(-1);
    return `${f?.decidedBy.policy}/${f?.decidedBy.rule} ${f?.agrees}`;
  };
  assert.equal(await explained(7000, 'allow'), 'web-policy/w1 true');
  assert.equal(await explained(8888, 'allow'), 'db-policy/2 true');
  // db-policy's rule 2 moves to 9999; web-policy stays as it was. After the evaluator's spacing (1 s).
  await ok(api, 'PUT', '/api/v1/tenants/shop/policies/db-policy/rules/2', { id: '2', direction: 'in', priority: 10, protocol: 'tcp', ports: '9999', action: 'allow' });
  await new Promise((r) => setTimeout(r, 1100));
  assert.equal(await explained(8888, 'deny'), 'db-policy/1 true');
  assert.equal(await explained(9999, 'allow'), 'db-policy/2 true');
  assert.equal(await explained(7000, 'allow'), 'web-policy/w1 true', 'the unchanged policy still decides');
  // web-policy deleted (detached first): its rule names no record any more.
  await ok(api, 'PATCH', '/api/v1/tenants/shop/groups/db', { policies: ['db-policy'] });
  await ok(api, 'DELETE', '/api/v1/tenants/shop/policies/web-policy');
  await new Promise((r) => setTimeout(r, 1100));
  assert.equal(await explained(7000, 'deny'), 'db-policy/1 true');
});

test('the flow book admits records only of the latest tenant of a name it knows, forgetting an older one\'s; a deletion bars any made before it', () => {
  const book = new FlowBook();
  const f = (tenant: string) => ({ tenant, host: 'h', time: new Date().toISOString(), verdict: 'allow', protocol: 'tcp', agrees: true,
    src: { address: '10.0.0.1', port: 1 }, dst: { address: '10.0.0.2', port: 2 }, decidedBy: { layer: 'default', policy: null, rule: null, side: 'ingress' } }) as unknown as Flow;
  const count = (t: string) => book.list(new Set([t]), () => true, 10).length;
  assert.equal(book.admit('a', 5), true);
  book.add([f('a')]);
  book.countLost('a', 3);
  assert.equal(book.admit('b', 6), true);
  book.add([f('b')]);
  assert.equal(book.admit('a', 5), true, 'the same tenant');
  assert.equal(count('a'), 1);
  assert.equal(book.admit('a', 9), true, 'a later tenant of the name');
  assert.deepEqual([count('a'), book.lost.get('a'), count('b')], [0, undefined, 1], 'the earlier one\'s records and counts went');
  assert.equal(book.admit('a', 5), false, 'an earlier tenant\'s report, read before the later one was made');
  book.add([f('a')]);
  book.forgetHeld('a', 5);
  assert.equal(count('a'), 1, 'a reading about the earlier tenant does not drop the later one');
  assert.deepEqual(book.tenants(), new Map([['a', 9], ['b', 6]]));
  book.forget('a', 20);
  assert.deepEqual([book.admit('a', 9), book.admit('a', 19), book.admit('a', 21)], [false, false, true], 'deleted at 20: only a tenant made after it');
  book.forgetHeld('b', 6);
  assert.deepEqual([count('b'), book.admit('b', 6), book.admit('b', 7)], [0, false, true], 'the held tenant gone: it stays barred');
});

/**
 * Takes a report from host h that pauses after listing the host's endpoints, while `meanwhile` runs;
 * answers the report's reply. The listing is restored and the report released whatever happens.
 */
async function reportAround(api: TestApi, body: unknown, meanwhile: () => Promise<void>): Promise<unknown> {
  const eps = api.control.endpoints;
  const list = eps.list.bind(eps);
  let listed!: () => void;
  const inReport = new Promise<void>((r) => (listed = r));
  let go!: () => void;
  const paused = new Promise<void>((r) => (go = r));
  eps.list = (async (...a: Parameters<typeof list>) => {
    const r = await list(...a);
    listed();
    await paused;
    return r;
  }) as typeof list;
  const report = ok(api, 'POST', '/api/v1/hosts/h/flows', body);
  try {
    await Promise.race([inReport, report]);
    eps.list = list;
    await meanwhile();
  } finally {
    eps.list = list;
    go();
  }
  return report;
}

async function remake(api: TestApi): Promise<Record<string, string>> {
  for (const e of (await ok(api, 'GET', '/api/v1/endpoints?tenant=shop')).items) await ok(api, 'DELETE', `/api/v1/endpoints/${e.id}`);
  for (const path of ['groups/db', 'groups/app', 'policies/db-policy', 'networks/net', '']) await ok(api, 'DELETE', `/api/v1/tenants/shop${path ? `/${path}` : ''}`);
  return shop(api, 'new-owners-policy');
}

for (const heard of [true, false]) {
  test(`a tenant deleted and made again under its name while a host's report is being taken gets none of that report's records (${heard ? 'the deletion heard at once' : 'the deletion not heard of yet, as from another server or a late etcd event'})`, async () => {
    const api = await testApi();
    const ip = await shop(api);
    // The report reads the host's endpoints (the old tenant's), then waits while the tenant is deleted and
    // made again by someone else: the new one's users must not see records of the old one's traffic.
    const body = {
      flows: [record(ip['app-1']!, ip['db-1']!, 8889, 'deny'), record(ip['app-1']!, ip['db-1']!, 8888)],
      lost: [{ tenant: 'shop', count: 7 }], held: [{ tenant: 'shop', count: 9 }], traffic: [{ tenant: 'shop', group: 'db', sentBytes: 10, sentPackets: 1, receivedBytes: 10, receivedPackets: 1 }],
    };
    let again: Record<string, string> = {};
    const forget = api.app.flows.forget.bind(api.app.flows);
    const reply = await reportAround(api, body, async () => {
      if (!heard) api.app.flows.forget = () => undefined;
      try {
        again = await remake(api);
      } finally {
        api.app.flows.forget = forget;
      }
    });
    assert.equal(again['db-1'], ip['db-1'], 'the new tenant\'s endpoints have the old ones\' addresses: only the timing tells the records apart');
    assert.deepEqual(reply, { accepted: 0, refused: 2, trafficRefused: 1 });
    assert.deepEqual((await ok(api, 'GET', '/api/v1/flows?tenant=shop')).items, []);
    const top = await ok(api, 'GET', '/api/v1/flows/top?tenant=shop');
    assert.deepEqual([top.rules, top.traffic, top.lost, top.held], [[], [], 0, 0]);
    // The next report, taken wholly after, is the new tenant's.
    assert.deepEqual(await ok(api, 'POST', '/api/v1/hosts/h/flows', { flows: [record(again['app-1']!, again['db-1']!, 8889, 'deny')], lost: [] }), { accepted: 1, refused: 0 });
    assert.deepEqual((await ok(api, 'GET', '/api/v1/flows?tenant=shop')).items.map((f: Flow) => f.decidedBy.policy), ['new-owners-policy']);
  });
}

test('a tenant deleted and made again between a report\'s check of it and its adds (an etcd read\'s wait) keeps none of that report\'s records', async () => {
  const api = await testApi();
  const ip = await shop(api);
  const tenants = api.control.tenants;
  const createdAt = tenants.createdAt.bind(tenants);
  let first = true;
  tenants.createdAt = async (t: string) => {
    const at = await createdAt(t);
    if (first) {
      first = false;
      await remake(api);
    }
    return at;
  };
  try {
    assert.deepEqual(await ok(api, 'POST', '/api/v1/hosts/h/flows', { flows: [record(ip['app-1']!, ip['db-1']!, 8889, 'deny')], lost: [{ tenant: 'shop', count: 5 }] }), { accepted: 0, refused: 1 }, 'the second read takes them back');
  } finally {
    tenants.createdAt = createdAt;
  }
  assert.ok(!first, 'the tenant was made again inside the report');
  const { items, lost } = await ok(api, 'GET', '/api/v1/flows?tenant=shop');
  assert.deepEqual([items, lost], [[], [{ tenant: 'shop', lost: 0, held: 0 }]]);
});

test('records of a tenant never heard to be deleted are forgotten when another tenant made under its name reports', async () => {
  const api = await testApi();
  const ip = await shop(api);
  await ok(api, 'POST', '/api/v1/hosts/h/flows', { flows: [record(ip['app-1']!, ip['db-1']!, 8889, 'deny')], lost: [{ tenant: 'shop', count: 4 }] });
  const forget = api.app.flows.forget.bind(api.app.flows);
  api.app.flows.forget = () => undefined;
  let again: Record<string, string>;
  try {
    again = await remake(api);
  } finally {
    api.app.flows.forget = forget;
  }
  assert.equal((await ok(api, 'GET', '/api/v1/flows?tenant=shop')).items.length, 1, 'the old record is still held: nobody told this server');
  await ok(api, 'POST', '/api/v1/hosts/h/flows', { flows: [record(again['app-1']!, again['db-1']!, 8888)], lost: [] });
  const { items, lost } = await ok(api, 'GET', '/api/v1/flows?tenant=shop');
  assert.deepEqual([items.map((f: Flow) => f.decidedBy.policy), lost], [['new-owners-policy'], [{ tenant: 'shop', lost: 0, held: 0 }]]);
});

test('group traffic: counted for the groups of the reporting host\'s endpoints only, shown in top and the metrics of the caller\'s tenants, gone with the tenant', async () => {
  const api = await testApi();
  await shop(api);
  const t = (tenant: string, group: string, n: number) => ({ tenant, group, sentBytes: n, sentPackets: n / 100, receivedBytes: 2 * n, receivedPackets: n / 50 });
  const r = await ok(api, 'POST', '/api/v1/hosts/h/flows', { flows: [], lost: [], traffic: [t('shop', 'db', 1000), t('shop', 'app', 500), t('shop', 'web', 900), t('rival', 'db', 700)] });
  assert.equal(r.trafficRefused, 2, 'a group with none of the host\'s endpoints, a tenant it is not in');
  await ok(api, 'POST', '/api/v1/hosts/h/flows', { flows: [], lost: [], traffic: [t('shop', 'db', 1000)] });
  // Host g has only app-2: its db counts are refused.
  assert.equal((await ok(api, 'POST', '/api/v1/hosts/g/flows', { flows: [], lost: [], traffic: [t('shop', 'db', 500), t('shop', 'app', 100)] })).trafficRefused, 1);
  const top = await ok(api, 'GET', '/api/v1/flows/top?tenant=shop');
  assert.deepEqual(top.traffic, [
    { group: 'db', sentBytes: 2000, sentPackets: 20, receivedBytes: 4000, receivedPackets: 40 },
    { group: 'app', sentBytes: 600, sentPackets: 6, receivedBytes: 1200, receivedPackets: 12 },
  ]);
  const text = (await api.app.inject({ method: 'GET', url: '/api/v1/flows/metrics', headers: { authorization: `Bearer ${api.token}` } })).body;
  assert.match(text, /^weft_group_bytes_total\{tenant="shop",group="db",direction="sent"\} 2000$/m);
  assert.match(text, /^weft_group_bytes_total\{tenant="shop",group="db",direction="received"\} 4000$/m);
  assert.match(text, /^weft_group_packets_total\{tenant="shop",group="app",direction="received"\} 12$/m);
  for (const bad of [{ ...t('shop', 'db', 100), sentBytes: -1 }, { ...t('shop', 'db', 100), sentBytes: 1e16 }, { ...t('shop', 'DB', 100) }, { ...t('shop', 'db', 100), extra: 1 }, { ...t('shop', 'db', 100), receivedPackets: 1.5 }]) {
    const res = await api.call('POST', '/api/v1/hosts/h/flows', { flows: [], lost: [], traffic: [bad] });
    assert.equal(res.status, 400, JSON.stringify(bad));
    assert.match(JSON.stringify(res.json), /traffic/, 'the field is named');
  }
  const twice = await api.call('POST', '/api/v1/hosts/h/flows', { flows: [], lost: [], traffic: [t('shop', 'db', 100), t('shop', 'db', 100)] });
  assert.deepEqual([twice.status, twice.json.field], [400, 'traffic.1'], 'a group listed twice in one report');
  for (const field of ['lost', 'held']) {
    const counted = await api.call('POST', '/api/v1/hosts/h/flows', { flows: [], lost: [], [field]: [{ tenant: 'shop', count: 1 }, { tenant: 'shop', count: 9 }], traffic: [t('shop', 'db', 100)] });
    assert.deepEqual([counted.status, counted.json.field], [400, `${field}.1`], `a tenant's ${field} count listed twice in one report`);
  }
  assert.equal((await ok(api, 'GET', '/api/v1/flows/top?tenant=shop')).traffic[0].sentBytes, 2000, 'bad reports changed nothing');
  // No more than 400 Gbit/s since the host's last report (at least a second): a hostile host's 1e15 is cut.
  await ok(api, 'POST', '/api/v1/hosts/h/flows', { flows: [], lost: [], traffic: [{ ...t('shop', 'app', 100), sentBytes: 1e15, sentPackets: 1e15 }] });
  const app = (await ok(api, 'GET', '/api/v1/flows/top?tenant=shop')).traffic.find((x: { group: string }) => x.group === 'app');
  assert.ok(app.sentBytes < 600 + 5e10 * 2 && app.sentPackets < 6 + 1e8 * 2, JSON.stringify(app));
  await ok(api, 'POST', '/api/v1/tenants', { name: 'rival' });
  await ok(api, 'POST', '/api/v1/users', { name: 'eve', role: 'tenant', tenants: ['rival'] });
  const eve = (await api.control.users.tokens.issue('admin', 'eve', 'test', null)).token;
  const theirs = (await api.app.inject({ method: 'GET', url: '/api/v1/flows/metrics', headers: { authorization: `Bearer ${eve}` } })).body;
  assert.doesNotMatch(theirs, /shop/, 'another tenant\'s groups are not in its metrics');
  api.app.flows.forget('shop');
  assert.deepEqual((await ok(api, 'GET', '/api/v1/flows/top?tenant=shop')).traffic, []);
});

test('flows and the top of a tenant that does not exist are 404 naming it, as every other route with a tenant answers', async () => {
  const api = await testApi();
  for (const url of ['/api/v1/flows?tenant=nosuch', '/api/v1/flows/top?tenant=nosuch']) {
    const r = await api.call('GET', url);
    assert.equal(r.status, 404, `${url}: ${JSON.stringify(r.json)}`);
    assert.match(r.json.detail, /tenant nosuch/);
  }
  assert.equal((await api.call('GET', '/api/v1/flows/top?tenant=default')).status, 200);
});
