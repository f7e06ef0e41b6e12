import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ago, backends, backoff, cellVerdict, coalesced, concerns, decidingSide, endText, parseRoute, ruleText, sideText, topology, type Endpoint } from './logic.js';

const ep = (id: string, ip: string, network: string, group: string | undefined, host: string, labels: Record<string, string> = {}): Endpoint =>
  ({ id, tenant: 'shop', network, ...(group ? { group } : {}), ip, host, containerName: id, containerId: id, labels, state: 'active' });

test('topology: networks by name, their groups (empty ones too), endpoints by address, hosts spanned', () => {
  const t = topology(
    [{ name: 'b-net', subnet: '10.2.0.0/24' }, { name: 'a-net', subnet: '10.1.0.0/24' }],
    [{ name: 'db', network: 'a-net' }, { name: 'idle', network: 'a-net' }, { name: 'web', network: 'b-net' }],
    [ep('db-2', '10.1.0.10', 'a-net', 'db', 'h2'), ep('db-1', '10.1.0.9', 'a-net', 'db', 'h1'), ep('loose', '10.1.0.3', 'a-net', undefined, 'h1'), ep('w', '10.2.0.2', 'b-net', 'web', 'h1')],
  );
  assert.deepEqual(t.map((n) => n.network.name), ['a-net', 'b-net']);
  assert.deepEqual(t[0]?.groups.map((g) => [g.name, g.endpoints.map((e) => e.id)]), [['db', ['db-1', 'db-2']], ['idle', []], ['(no group)', ['loose']]]);
  assert.deepEqual(t[0]?.hosts, ['h1', 'h2']);
});

test('a service\'s backends: its network and every label of its selector', () => {
  const s = { name: 's', network: 'a', vip: '10.1.0.200', selector: { app: 'web', tier: 'front' }, ports: [] };
  const b = backends(s, [ep('x', '10.1.0.5', 'a', 'g', 'h', { app: 'web', tier: 'front' }), ep('y', '10.1.0.4', 'a', 'g', 'h', { app: 'web' }), ep('z', '10.2.0.4', 'b', 'g', 'h', { app: 'web', tier: 'front' }),
    ep('w', '10.1.0.2', 'a', 'g', 'h', { app: 'web', tier: 'front', extra: '1' })]);
  assert.deepEqual(b.map((e) => e.id), ['w', 'x']);
});

test('which changes concern a view: the tenant\'s own objects and endpoints, hosts for the host views, never another tenant\'s', () => {
  // Lines as the watch stream sends them (control/changes.ts publicChange): kind and tenant, the object as `object`.
  const line = (key: string, kind: string, tenant?: string) => ({ revision: 1, op: 'put' as const, kind, key, ...(tenant ? { tenant } : {}), actor: 'a', time: '' });
  assert.ok(concerns(line('policies/shop/db-policy', 'policy', 'shop'), 'shop', 'matrix'));
  assert.ok(concerns(line('tenants/shop', 'tenant', 'shop'), 'shop', 'topology'));
  assert.ok(!concerns(line('tenants/shopping', 'tenant', 'shopping'), 'shop', 'topology'));
  assert.ok(!concerns(line('policies/shopping/p', 'policy', 'shopping'), 'shop', 'matrix'));
  assert.ok(concerns(line('endpoints/abc', 'endpoint', 'shop'), 'shop', 'topology'));
  assert.ok(!concerns(line('endpoints/abc', 'endpoint', 'rival'), 'shop', 'topology'));
  assert.ok(!concerns(line('endpoints/abc', 'endpoint'), 'shop', 'topology'));
  assert.ok(concerns(line('hosts/h1', 'host'), 'shop', 'hosts'));
  assert.ok(!concerns(line('hosts/h1', 'host'), 'shop', 'matrix'));
  assert.ok(!concerns(line('global', 'global'), 'shop', 'history'), 'history: the tenant\'s changes only');
});

test('flows and verdicts read as words', () => {
  assert.equal(endText({ ip: '10.1.0.2', port: 80, name: 'db-1', group: 'db' }), 'db-1/db');
  assert.equal(endText({ ip: '8.8.8.8', port: 53 }), '8.8.8.8');
  assert.equal(ruleText({ side: 'ingress', layer: 'weft', policy: 'db-policy', rule: '1' }), 'db-policy/1 (ingress)');
  assert.equal(ruleText({ side: 'none', layer: 'default', rule: null }), 'default');
  assert.equal(ruleText({ side: 'egress', layer: 'unexplained', rule: null }), 'not explained (server busy)');
  const deny = { group: 'db', action: 'deny', layer: 'weft', policy: 'db-policy', rule: { id: '1', direction: 'in', protocol: 'tcp', action: 'deny' } };
  const allow = { group: 'app', action: 'allow', layer: 'default', rule: null };
  assert.equal(sideText(deny, 'ingress'), 'ingress: deny by db-policy/1');
  assert.equal(sideText(allow, 'egress'), 'egress: allow by tenant default');
  assert.equal(sideText(null, 'egress'), 'egress: not an endpoint');
  assert.equal(cellVerdict(null), 'empty');
  assert.equal(cellVerdict({ allowed: false, egress: allow, ingress: deny }), 'deny');
  assert.equal(cellVerdict({ allowed: true, egress: allow, ingress: allow, audit: { egress: deny, ingress: null } }), 'audit');
  const rep = { id: 'x', ip: '10.0.0.1', name: 'x' };
  assert.equal(cellVerdict({ allowed: true, egress: allow, ingress: allow, variants: [{ allowed: true, egress: allow, ingress: allow, from: rep, to: rep, pairs: 3 }, { allowed: false, egress: allow, ingress: deny, from: rep, to: rep, pairs: 1 }] }), 'mixed');
  assert.equal(cellVerdict({ allowed: true, egress: allow, ingress: allow, variants: [{ allowed: true, egress: allow, ingress: allow, from: rep, to: rep, pairs: 3 }, { allowed: true, egress: allow, ingress: { ...allow, rule: { id: '9' } }, from: rep, to: rep, pairs: 1 }] }), 'allow', 'differently decided, the same verdict');
  assert.deepEqual(decidingSide({ allowed: false, egress: allow, ingress: deny }), { side: 'ingress', by: deny });
  assert.deepEqual(decidingSide({ allowed: false, egress: { ...deny, group: 'app' }, ingress: allow }).side, 'egress');
  assert.deepEqual(parseRoute('#/shop/matrix'), { tenant: 'shop', view: 'matrix' });
  assert.deepEqual(parseRoute('#/shop/nonsense'), { tenant: 'shop', view: 'topology' });
  assert.deepEqual(parseRoute(''), { view: 'topology' });
  assert.deepEqual(parseRoute('#/%/matrix'), { view: 'matrix' }, 'a broken escape is no tenant');
  assert.deepEqual(parseRoute('#/../topology'), { view: 'topology' });
  assert.deepEqual(parseRoute('#/a%2Fb/flows'), { view: 'flows' });
  assert.deepEqual(parseRoute('#/Shop/flows'), { view: 'flows' });
  assert.equal(ago(new Date(1000).toISOString(), 31_000), '30 s ago');
  assert.equal(ago('garbage'), 'never');
});

test('reconnections back off to 30 s, spread at random', () => {
  assert.deepEqual([0, 1, 2, 5, 9].map((n) => backoff(n, 0)), [1000, 2000, 4000, 30_000, 30_000]);
  assert.equal(backoff(0, 1), 1500);
  assert.equal(backoff(50, 1), 45_000);
});

test('redraws: a burst is one read, a change during a read makes one more after it, never two at once, never starved', async () => {
  let now = 0;
  const due: Array<{ at: number; f: () => void }> = [];
  const timers = { set: (f: () => void, ms: number) => { const t = { at: now + ms, f }; due.push(t); return t; }, clear: (t: unknown) => { const i = due.indexOf(t as never); if (i >= 0) due.splice(i, 1); } };
  const advance = async (ms: number) => {
    now += ms;
    for (let t = due.find((x) => x.at <= now); t; t = due.find((x) => x.at <= now)) { due.splice(due.indexOf(t), 1); t.f(); }
    for (let i = 0; i < 5; i++) await Promise.resolve();
  };
  const started: number[] = [];
  let running = 0;
  let most = 0;
  let finish: Array<() => void> = [];
  const c = coalesced(() => { started.push(now); running++; most = Math.max(most, running); return new Promise<void>((ok) => finish.push(() => { running--; ok(); })); }, 250, timers);
  const done = async () => { const f = finish; finish = []; f.forEach((x) => x()); await advance(0); };

  c.kick(); await advance(100); c.kick(); await advance(100); c.kick();
  await advance(49);
  assert.deepEqual([...started], [], 'not before 250 ms from the first change');
  await advance(1);
  assert.deepEqual([...started], [250], 'a burst is one read, 250 ms after its first change, however it went on');
  c.kick(); c.kick(); await advance(1000);
  assert.deepEqual([...started], [250], 'no second read while the first runs');
  await done();
  await advance(249);
  assert.deepEqual([...started], [250], 'the read after waits its own 250 ms');
  await advance(1);
  assert.deepEqual([...started], [250, 1500], 'changes during a read make exactly one more');
  await done();
  await advance(5000);
  assert.deepEqual([...started], [250, 1500], 'nothing more without a change');
  // A steady stream of changes, one each 100 ms for 3 s: reads keep happening.
  for (let i = 0; i < 30; i++) { c.kick(); await advance(100); if (finish.length) await done(); }
  assert.ok(started.length >= 2 + 8, `reads during a steady stream: ${started.length - 2}`);
  assert.equal(most, 1, 'never two reads at once');
  // A failed read is no stop: the next change reads again.
  const failing = coalesced(() => { started.push(-1); return Promise.reject(new Error('no')); }, 250, timers);
  failing.kick(); await advance(250); failing.kick(); await advance(250);
  assert.equal(started.filter((x) => x === -1).length, 2);
  // Cancelled (the view left): nothing more, whether it was waiting or reading.
  await done(); await advance(1000); await done();
  const n = started.length;
  c.kick(); c.cancel(); await advance(1000);
  assert.equal(started.length, n, 'cancelled while waiting: no read');
  c.kick(); await advance(1000);
  assert.equal(started.length, n, 'and none after');
  const d = coalesced(async () => { started.push(-2); await new Promise<void>((ok) => finish.push(ok)); }, 250, timers);
  d.kick(); await advance(250);
  assert.equal(started.at(-1), -2, 'reading');
  d.kick(); d.cancel(); await done(); await advance(1000);
  assert.equal(started.filter((x) => x === -2).length, 1, 'cancelled while reading: the change during it makes no read after');
});
