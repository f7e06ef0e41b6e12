import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliSession } from '../testkit/server.js';
import { EXIT } from './errors.js';

// `weft apply -f` / `weft delete -f` against a real server process.
const session = cliSession();
const dir = mkdtempSync(join(tmpdir(), 'weft-apply-'));
before(() => session.start());
after(async () => {
  await session.stop();
  rmSync(dir, { recursive: true, force: true });
});
const { weft, ok } = session;

// Out of dependency order on purpose (a group before its network, a policy naming a group before it).
const SHOP = `# a shop, one tenant
kind: Group
metadata: { name: web, tenant: shop }
spec:
  network: front
  policies: [web-in]
---
kind: Policy
metadata: { name: web-in, tenant: shop }
spec:
  rules:
    - { id: http, direction: in, protocol: tcp, ports: "80", fromGroup: web, priority: 10 }
    - { id: rest, action: deny }
---
kind: Network
metadata: { name: front, tenant: shop }
spec: { subnet: 10.20.0.0/24 }
---
apiVersion: weft/v1
kind: Tenant
metadata: { name: shop }
spec: { defaultAction: deny }
---
`;

const file = (name: string, text: string) => {
  const f = join(dir, name);
  writeFileSync(f, text);
  return f;
};

test('weft apply -f: creates in one go whatever the order, again changes nothing, an edit updates that object alone', async () => {
  const f = file('shop.yaml', SHOP);
  assert.deepEqual((await ok(['apply', '-f', f])).trim().split('\n'), [
    'group shop/web created', 'policy shop/web-in created', 'network shop/front created', 'tenant shop created',
  ]);
  const group = JSON.parse(await ok('group inspect web -t shop -o json'));
  assert.deepEqual([group.network, group.policies], ['front', ['web-in']]);
  assert.deepEqual(JSON.parse(await ok('tenant inspect shop -o json')).defaultAction, 'deny');
  const rules = (await ok('policy rule-ls web-in -t shop')).trim().split('\n');
  assert.match(rules[1] ?? '', /^http\s+10\s+in\s+web\s+-\s+tcp\s+80\s+allow$/);

  assert.deepEqual((await ok(['apply', '-f', f])).trim().split('\n'), [
    'group shop/web unchanged', 'policy shop/web-in unchanged', 'network shop/front unchanged', 'tenant shop unchanged',
  ]);
  const edited = file('shop2.yaml', SHOP.replace('ports: "80"', 'ports: "8080"'));
  assert.match(await ok(['apply', '-f', edited]), /^group shop\/web unchanged\npolicy shop\/web-in updated\nnetwork shop\/front unchanged\ntenant shop unchanged\n$/);
  assert.match(await ok('policy rule-ls web-in -t shop'), /tcp\s+8080\s+allow/);
});

test('weft apply -f -: documents from standard input, -t for those naming no tenant, -o json for scripts', async () => {
  const r = await weft(['apply', '-f', '-', '-t', 'shop', '-o', 'json'], 'kind: Netprofile\nmetadata: { name: gold }\nspec: { bandwidth: 100mbps, dscp: 46 }\n');
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.deepEqual(out.results, [{ index: 0, kind: 'Netprofile', tenant: 'shop', name: 'gold', action: 'created' }]);
  assert.equal(out.dryRun, false);
  assert.equal(typeof out.revision, 'number');
});

test('weft get: prints a tenant and its objects as documents; applying them back changes nothing', async () => {
  const all = await ok('get all -t shop');
  assert.match(all, /^apiVersion: weft\/v1\nkind: Tenant\nmetadata:\n  name: shop\nspec:\n  defaultAction: deny\n---\n/);
  assert.doesNotMatch(all, /owner|revision|createdAt/, 'bookkeeping is left out');
  assert.match(all, /vni: \d+/, 'what the server chose is kept');
  const back = await weft(['apply', '-f', '-'], all);
  assert.equal(back.code, 0, back.stderr);
  assert.deepEqual([...new Set(back.stdout.trim().split('\n').map((l) => l.split(' ').at(-1)))], ['unchanged']);
  assert.equal(back.stdout.trim().split('\n').length, 5, 'tenant, netprofile, network, policy, group');
  const one = JSON.parse(await ok('get group web -t shop -o json'));
  assert.deepEqual(one, [{ apiVersion: 'weft/v1', kind: 'Group', metadata: { name: 'web', tenant: 'shop' }, spec: { network: 'front', policies: ['web-in'], labels: {} } }]);
  const bad = await weft('get pods -t shop');
  assert.equal(bad.code, EXIT.usage);
  assert.match(bad.stderr, /get: 'pods' is not a kind; one of all, tenant, netprofile, net, policy, group, service, app-profile/);
  assert.equal((await weft('get group nope -t shop')).code, EXIT.notFound);
});

test('weft apply: bad files and bad documents say where (file and line), exit 2, and change nothing', async () => {
  const before = await ok('net ls -t shop -q');
  const syntax = await weft(['apply', '-f', file('syntax.yaml', 'kind: Network\nmetadata: { name: x\nspec: {}\n')]);
  assert.equal(syntax.code, EXIT.usage);
  assert.match(syntax.stderr, /syntax\.yaml: line \d+: /);
  // A list is its items (what `weft get -o json` prints); an item that is no mapping is refused.
  const list = await weft(['apply', '-f', file('list.yaml', '- 1\n')]);
  assert.equal(list.code, EXIT.usage);
  assert.match(list.stderr, /list\.yaml: line 1: a document must be a mapping/);
  const items = await weft(['apply', '-f', file('items.yaml', '- kind: Network\n')]);
  assert.equal(items.code, EXIT.usage);
  assert.match(items.stderr, /items\.yaml:1: documents\.0\.metadata: is required/);
  const empty = await weft(['apply', '-f', file('empty.yaml', '---\n# nothing\n---\n')]);
  assert.equal(empty.code, EXIT.usage);
  assert.match(empty.stderr, /empty\.yaml: no documents/);
  const missing = await weft(['apply', '-f', join(dir, 'nope.yaml')]);
  assert.equal(missing.code, EXIT.usage);
  assert.match(missing.stderr, /--filename: cannot read .*nope\.yaml/);

  const bad = file('bad.yaml', `${SHOP}kind: Network\nmetadata: { name: back, tenant: shop }\nspec: { subnet: 10.21.0.0/24, colour: red }\n---\nkind: Network\nmetadata: { name: side, tenant: shop }\nspec: { subnet: 10.22.0.0/24 }\n`);
  const r = await weft(['apply', '-f', bad]);
  assert.equal(r.code, EXIT.usage);
  assert.match(r.stderr, /bad\.yaml:24: documents\.4 \(Network shop\/back\): spec\.colour: unknown field/);
  const overlap = await weft(['apply', '-f', file('overlap.yaml', `${SHOP}kind: Network\nmetadata: { name: side, tenant: shop }\nspec: { subnet: 10.20.0.128/25 }\n`)]);
  assert.equal(overlap.code, EXIT.conflict);
  assert.match(overlap.stderr, /overlap\.yaml:24: documents\.4 \(Network shop\/side\): .*overlaps network shop\/front/);
  // A YAML key `__proto__` is refused by the server where it stands (it read as "not valid JSON").
  const proto = await weft(['apply', '-f', file('proto.yaml', `${SHOP}kind: Network\nmetadata: { name: proto, tenant: shop }\nspec: { subnet: 10.23.0.0/24 }\n__proto__: { admin: true }\n`)]);
  assert.equal(proto.code, EXIT.usage);
  assert.match(proto.stderr, /proto\.yaml:24: documents\.4\.__proto__: the key '__proto__' is refused anywhere in a body/);
  // Several bad documents: each one's first error on a line of its own, each at its place in the file.
  const several = await weft(['apply', '-f', file('several.yaml', `${SHOP}kind: Network\nmetadata: { name: back, tenant: shop }\nspec: { subnet: 10.21.0.0/24, colour: red }\n---\nkind: Network\nmetadata: { name: side, tenant: shop }\nspec: { subnet: 10.22.0.0/24 }\n---\nkind: Policy\nmetadata: { name: p, tenant: shop }\nspec: { rules: [{ id: r, ports: 80 }] }\n`)]);
  assert.equal(several.code, EXIT.usage);
  assert.match(several.stderr, /2 of the 7 documents are invalid; nothing was applied:\n.*several\.yaml:24: documents\.4 \(Network shop\/back\): spec\.colour: unknown field\n.*several\.yaml:32: documents\.6 \(Policy shop\/p\): spec\.rules\.0\.ports: must be a string/);
  assert.equal(await ok('net ls -t shop -q'), before, 'nothing was created');
});

test('weft delete -f: --dry-run changes nothing; then removes exactly those objects; again, reports them absent', async () => {
  const f = file('del.yaml', SHOP.replace(/apiVersion: weft\/v1\nkind: Tenant[\s\S]*$/, ''));
  assert.deepEqual((await ok(['delete', '-f', f, '--dry-run'])).trim().split('\n'), [
    'group shop/web deleted (dry run)', 'policy shop/web-in deleted (dry run)', 'network shop/front deleted (dry run)',
  ]);
  assert.equal((await ok('group ls -t shop -q')).trim(), 'web');
  assert.deepEqual((await ok(['delete', '-f', f])).trim().split('\n'), ['group shop/web deleted', 'policy shop/web-in deleted', 'network shop/front deleted']);
  assert.equal((await ok('net ls -t shop -q')).trim(), '');
  assert.equal((await ok('netprofile ls -t shop -q')).trim(), 'gold', 'what no document names stays');
  assert.deepEqual((await ok(['delete', '-f', f])).trim().split('\n'), ['group shop/web absent', 'policy shop/web-in absent', 'network shop/front absent']);
});
