import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { statSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { cliSession, http, runWeft } from '../testkit/server.js';
import { EXIT } from './errors.js';

const session = cliSession();
before(() => session.start());
after(() => session.stop());
const { weft, ok, home } = session;

test('first start prints the admin token once and saves it 0600', () => {
  const srv = session.srv;
  assert.match(srv.token, /^weft_/);
  const file = join(srv.dataDir, 'admin.token');
  assert.equal(readFileSync(file, 'utf8').trim(), srv.token);
  assert.equal(statSync(file).mode & 0o777, 0o600);
});

test("Contiv's tutorial replays with weft in place of netctl", async () => {
  await ok('tenant create blue');
  await ok('net create -s 10.1.2.0/24 -g 10.1.2.1 contiv-net');
  await ok('net create -t blue -s 10.1.2.0/24 -g 10.1.2.1 contiv-net');
  await ok('policy create db-policy');
  await ok('policy rule-add db-policy 1 -direction=in -protocol=tcp -action=deny');
  await ok('policy rule-add db-policy 2 -direction=in -protocol=tcp -port=8888 -action=allow -priority=10');
  await ok('group create -policy=db-policy contiv-net db');

  const nets = await ok('net ls -a');
  const rows = nets.trim().split('\n');
  assert.match(rows[0] ?? '', /^TENANT\s+NETWORK\s+ENCAP\s+VNI\s+SUBNET\s+GATEWAY\s+MTU\s+ENCRYPT$/);
  assert.ok(rows.some((r) => /^blue\s+contiv-net\s+vxlan\s+\d+\s+10\.1\.2\.0\/24\s+10\.1\.2\.1\s+1390\s+yes$/.test(r)), nets);
  assert.ok(rows.some((r) => /^default\s+contiv-net\s+vxlan\s+\d+\s+10\.1\.2\.0\/24\s+10\.1\.2\.1\s+1390\s+yes$/.test(r)), nets);

  const group = JSON.parse(await ok('group inspect db -o json'));
  assert.deepEqual([group.tenant, group.name, group.network, group.policies], ['default', 'db', 'contiv-net', ['db-policy']]);

  const rules = (await ok('policy rule-ls db-policy')).trim().split('\n');
  assert.match(rules[1] ?? '', /^2\s+10\s+in\s+-\s+-\s+tcp\s+8888\s+allow$/);
  assert.match(rules[2] ?? '', /^1\s+1\s+in\s+-\s+-\s+tcp\s+-\s+deny$/);

  const overlap = await weft('net create -s 10.1.2.128/25 other');
  assert.equal(overlap.code, EXIT.conflict);
  assert.match(overlap.stderr, /overlaps network default\/contiv-net \(10\.1\.2\.0\/24\)/);
  assert.equal((await weft('net ls -q')).stdout.trim(), 'contiv-net', 'nothing was created');
});

test('exit codes tell usage, not-found, conflict, auth and unreachable apart', async () => {
  assert.equal((await weft('net inspect nope')).code, EXIT.notFound);
  assert.equal((await weft('policy rule-add db-policy 7 -p 0')).code, EXIT.usage);
  assert.equal((await weft('net create x')).code, EXIT.usage, 'neither --subnet nor --subnet6');
  assert.equal((await weft('net create -s 10.1.2.300/24 x')).code, EXIT.usage);
  assert.equal((await weft('frobnicate')).code, EXIT.usage);
  assert.equal((await weft('tenant create blue')).code, EXIT.conflict);
  assert.equal((await weft('tenant ls', undefined, { WEFT_TOKEN: 'weft_nope' })).code, EXIT.auth);
  const down = await weft('tenant ls', undefined, { WEFT_SERVER: 'https://127.0.0.1:9' });
  assert.equal(down.code, EXIT.unavailable, 'no server answered: try again later');
  assert.match(down.stderr, /cannot reach the weft server at https:\/\/127\.0\.0\.1:9/);
  const bad = await weft('policy rule-add db-policy 7 -direction=sideways');
  assert.equal(bad.code, EXIT.usage);
  assert.match(bad.stderr, /--direction \(direction\): must be one of in, out/, 'named as the option that gave it');
  // A field the server refuses is named as the option that filled it, where the names differ too.
  const cidr = await weft('policy rule-add db-policy 7 -i 10.0.0.300/8');
  assert.equal(cidr.code, EXIT.usage);
  assert.match(cidr.stderr, /^weft: --from-cidr \(fromCidr\): \S/, cidr.stderr);
  const port = await weft('policy rule-add db-policy 7 -P 70000');
  assert.match(port.stderr, /^weft: --port \(ports\): \S/, port.stderr);
  // A name is one path segment: `../users` is a bad name, not a way to another route.
  const sneaky = await weft('net inspect ../../users');
  assert.equal(sneaky.code, EXIT.usage, sneaky.stdout + sneaky.stderr);
  assert.match(sneaky.stderr, /name/);
});

test('--help on every verb teaches with an example', async () => {
  for (const verb of ['tenant create', 'net create', 'net ls', 'group create', 'group update', 'policy rule-add', 'policy rule-ls', 'netprofile create', 'service create', 'app-profile create', 'endpoint ls', 'endpoint label', 'host ls', 'global set', 'login', 'user create', 'history', 'token ls', 'token create', 'token revoke', 'audit']) {
    const r = await weft(`${verb} --help`);
    assert.equal(r.code, 0, verb);
    assert.match(r.stdout, /Usage: weft /, verb);
    assert.match(r.stdout, /Examples?:\n\s+\$ weft /, `${verb} has an example`);
  }
});

test('yaml and json output; netprofile, service and app-profile verbs', async () => {
  await ok('netprofile create -b 10mbps -s 500 -d 10 gold');
  await ok('group update -n gold db');
  const y = await ok('group inspect db -o yaml');
  assert.match(y, /^netprofile: gold$/m);
  const svc = JSON.parse(await ok('service create -s contiv-net -l group=db -p 80:8888:TCP dbsvc -o json'));
  assert.equal(svc.vip, '10.1.2.2');
  assert.deepEqual(svc.ports, [{ port: 80, targetPort: 8888, protocol: 'TCP' }]);
  await ok('app-profile create -g db shop');
  assert.equal((await ok('app-profile group-ls shop -q')).trim(), 'db');
  const bad = await weft('service create -s contiv-net -l group=db -p 80:TCP x');
  assert.equal(bad.code, EXIT.usage);
  assert.match(bad.stderr, /--port: '80:TCP'/);
  assert.equal((await weft('group rm db')).code, EXIT.conflict, 'the app-profile still names it');
});

test('login with a password saves the config, and a tenant user sees only its tenant', async () => {
  await ok('tenant create red');
  const create = await weft('user create --role tenant --tenant blue --password-stdin bob', 'bob-secret-pw\n');
  assert.equal(create.code, 0, create.stderr);
  const noEnv = { WEFT_TOKEN: '', WEFT_SERVER: '' };
  const login = await runWeft(['login', '--server', session.srv.url, '--user', 'bob', '--password-stdin'], { HOME: home.dir }, 'bob-secret-pw\n');
  assert.equal(login.code, 0, login.stderr);
  assert.match(login.stdout, /as bob \(role tenant\)/);
  const cfg = join(home.dir, '.config', 'weft', 'config.json');
  assert.ok(existsSync(cfg));
  assert.equal(statSync(cfg).mode & 0o777, 0o600);
  const seen = await runWeft(['tenant', 'ls', '-q'], { HOME: home.dir });
  assert.equal(seen.stdout.trim(), 'blue', seen.stderr);
  const other = await runWeft(['net', 'ls', '-t', 'red'], { HOME: home.dir });
  assert.equal(other.code, EXIT.notFound);
  const wrong = await runWeft(['login', '--server', session.srv.url, '--user', 'bob', '--password-stdin'], { HOME: home.dir, ...noEnv }, 'nope\n');
  assert.equal(wrong.code, EXIT.auth);
});

test('history lists every write with revision, actor and kind', async () => {
  const out = JSON.parse(await ok('history -o json'));
  const tenantBlue = out.find((c: any) => c.kind === 'tenant' && c.key === 'tenants/blue');
  assert.ok(tenantBlue, 'the tenant creation is in the history');
  assert.equal(tenantBlue.actor, 'admin');
  assert.ok(out.every((c: any, i: number) => i === 0 || c.revision >= out[i - 1].revision), 'ordered by revision');
  assert.ok(!out.some((c: any) => c.key.startsWith('tokens/') || c.key.startsWith('ipam/')), 'internal keys never appear');
});

test('weft ep label sets and removes labels (found by container name), and refuses what is neither', async () => {
  await ok('net create -t blue -s 10.9.0.0/24 pods-net');
  const made = await http(session.srv.url, session.srv.token, 'POST', '/api/v1/endpoints', { tenant: 'blue', network: 'pods-net', containerId: 'c0ffee', containerName: 'web-1', host: 'h', ifname: 'eth0', labels: { app: 'db', canary: 'true' } });
  assert.equal(made.status, 201, JSON.stringify(made.json));
  assert.match(await ok('ep label web-1 app=web tier=front canary-'), /labelled/);
  const ep = JSON.parse(await ok('ep inspect web-1 -o json'));
  assert.deepEqual(ep.labels, { app: 'web', tier: 'front', network: 'pods-net' });
  const bad = await weft('ep label web-1 app');
  assert.equal(bad.code, EXIT.usage);
  assert.match(bad.stderr, /labels\.0: 'app' is neither key=value \(set\) nor key- \(remove\)/);
  const fixed = await weft('ep label web-1 network=other');
  assert.notEqual(fixed.code, 0);
  assert.match(fixed.stderr, /labels\.network: an endpoint's network label is set when it is made and cannot change/);
  assert.equal((await weft('ep label nothing-here a=b')).code, EXIT.notFound);
  assert.equal((await http(session.srv.url, session.srv.token, 'DELETE', `/api/v1/endpoints/${ep.id}`)).status, 204);
});

