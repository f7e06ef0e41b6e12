import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runWeft, startServerProcess, tempHome, type ServerProcess } from '../testkit/server.js';
import { EXIT } from './errors.js';

/**
 * The CLI side of tokens and the audit log, against a real `weft server`: token files instead of
 * secrets in argv, `weft token`, and `weft audit` showing a write, a 403, a 401 and two logins with
 * actor, source and credential. Ends by searching the log and the server's output for every secret used.
 */
let srv: ServerProcess;
const home = tempHome();
const secrets = new Set<string>();
const keep = (s: string): string => (secrets.add(s), s);
const OLGA_PW = keep('olga-password-1');
let adminFile: string;

before(async () => {
  srv = await startServerProcess();
  keep(srv.token);
  adminFile = join(home.dir, 'admin.token');
  writeFileSync(adminFile, `${srv.token}\n`, { mode: 0o600 });
});
after(async () => {
  await srv?.stop();
  home.cleanup();
});

/** The CLI with only a HOME and a server: every token comes from a file unless a test says otherwise. */
const weft = (args: string[], env: Record<string, string> = {}, input?: string) => runWeft(args, { HOME: home.dir, WEFT_SERVER: srv.url, ...env }, input);
async function ok(args: string[], env: Record<string, string> = {}, input?: string): Promise<string> {
  const r = await weft(args, env, input);
  assert.equal(r.code, 0, `weft ${args.join(' ')}\n${r.stderr}`);
  return r.stdout;
}
const auditLines = () => readFileSync(join(srv.dataDir, 'audit.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));

test('--token-file and WEFT_TOKEN_FILE authenticate; a bad token file is a usage error naming it', async () => {
  await ok(['tenant', 'create', 'blue', '--token-file', adminFile]);
  assert.match(await ok(['tenant', 'ls', '-q'], { WEFT_TOKEN_FILE: adminFile }), /^blue$/m);
  const missing = join(home.dir, 'no-such-file');
  const bad = await weft(['tenant', 'ls', '--token-file', missing]);
  assert.equal(bad.code, EXIT.usage);
  assert.match(bad.stderr, new RegExp(`--token-file: cannot read ${missing} \\(ENOENT\\)`));
  const badEnv = await weft(['tenant', 'ls'], { WEFT_TOKEN_FILE: missing });
  assert.equal(badEnv.code, EXIT.usage);
  assert.match(badEnv.stderr, /WEFT_TOKEN_FILE: cannot read/);
  const both = await weft(['tenant', 'ls', '--token-file', adminFile, '--token', 'weft_x']);
  assert.deepEqual([both.code, /not both/.test(both.stderr)], [EXIT.usage, true]);
  assert.match((await ok(['tenant', 'ls', '--help'])).replace(/\s+/g, ' '), /--token <token> API token; visible to every user in `ps`/);
});

test('weft login --token-file saves it; weft token create, ls and revoke', async () => {
  assert.match(await ok(['login', '--token-file', adminFile]), /as admin \(role admin\)/);
  const cfg = join(home.dir, '.config', 'weft', 'config.json');
  assert.equal(statSync(cfg).mode & 0o777, 0o600);
  const made = JSON.parse(await ok(['token', 'create', '--ttl', '2h', '--description', 'deploy', '-o', 'json']));
  keep(made.token);
  const rows = (await ok(['token', 'ls'])).trim().split('\n');
  assert.match(rows[0] ?? '', /^CURRENT\s+ID\s+USER\s+STATE\s+EXPIRES\s+CREATED\s+DESCRIPTION$/);
  assert.ok(rows.some((r) => new RegExp(`^-\\s+${made.id}\\s+admin\\s+active\\s+${made.expiresAt}\\s+\\S+\\s+deploy$`).test(r)), rows.join('\n'));
  assert.ok(rows.some((r) => /^\*\s+[0-9a-f]{16}\s+admin\s+active\s+never\s+\S+\s+first admin token$/.test(r)), 'the first admin token: current, never expires');
  const quiet = keep((await ok(['token', 'create', '-q', '--ttl', '5m'])).trim());
  assert.match(quiet, /^weft_\S+$/, '-q prints the token alone, for a file');
  const pasted = await weft(['token', 'revoke', quiet]);
  assert.equal(pasted.code, EXIT.usage, 'a secret given as the id is refused before it is sent');
  assert.match(pasted.stderr, /that is a token itself, not its id/);
  assert.match(await ok(['token', 'revoke', made.id]), new RegExp(`token ${made.id} revoked`));
  assert.equal((await weft(['tenant', 'ls'], { WEFT_TOKEN: made.token })).code, EXIT.auth);
  assert.equal((await weft(['token', 'revoke', made.id])).code, EXIT.notFound);
  assert.equal((await weft(['token', 'create', '--ttl', '1w'])).code, EXIT.usage);
});

test('the audit log has a write, a 403, a 401, a failed and a good login, each with actor, source and credential', async () => {
  await ok(['user', 'create', '--role', 'ops', '--password-stdin', 'olga'], {}, `${OLGA_PW}\n`);
  const wrong = keep('not-olgas-password');
  const failed = await weft(['login', '--user', 'olga', '--password-stdin'], { HOME: join(home.dir, 'olga') }, `${wrong}\n`);
  assert.equal(failed.code, EXIT.auth);
  const olgaHome = join(home.dir, 'olga');
  await ok(['login', '--user', 'olga', '--password-stdin'], { HOME: olgaHome }, `${OLGA_PW}\n`);
  const olgaToken = keep(JSON.parse(readFileSync(join(olgaHome, '.config', 'weft', 'config.json'), 'utf8')).token);
  assert.equal((await weft(['user', 'ls'], { HOME: olgaHome })).code, EXIT.auth, 'ops may not list users: 403');
  assert.equal((await weft(['tenant', 'ls'], { WEFT_TOKEN: keep('weft_made-up-token') })).code, EXIT.auth, '401');

  const adminId = JSON.parse(await ok(['token', 'ls', '-o', 'json'])).find((t: any) => t.current).id;
  const olgaId = JSON.parse(await ok(['token', 'ls', '-o', 'json'], { HOME: olgaHome }))[0].id;
  const lines = auditLines();
  const find = (pred: (e: any) => boolean, what: string) => {
    const e = lines.find(pred);
    assert.ok(e, `${what} is in the audit log:\n${lines.map((l: any) => JSON.stringify(l)).join('\n')}`);
    assert.match(e.source, /^127\.0\.0\.1:[0-9]+$/, `${what}: source`);
    return e;
  };
  const write = find((e) => e.event === 'write' && e.path === '/api/v1/tenants' && e.status === 201, 'a write');
  assert.deepEqual([write.actor, write.credential, write.method, write.route, write.code], ['admin', adminId, 'POST', '/api/v1/tenants', null]);
  const forbidden = find((e) => e.event === 'refused' && e.status === 403, 'a 403');
  assert.deepEqual([forbidden.actor, forbidden.credential, forbidden.path, forbidden.code], ['olga', olgaId, '/api/v1/users', 'WEFT_FORBIDDEN']);
  const unauth = find((e) => e.event === 'refused' && e.status === 401 && e.path === '/api/v1/tenants', 'a 401');
  assert.deepEqual([unauth.actor, unauth.credential, unauth.code], [null, null, 'WEFT_UNAUTHENTICATED']);
  const bad = find((e) => e.event === 'login' && e.status === 401, 'a failed login');
  assert.deepEqual([bad.user, bad.actor, bad.credential], ['olga', null, null]);
  const good = find((e) => e.event === 'login' && e.status === 200, 'a good login');
  assert.deepEqual([good.user, good.actor, good.credential], ['olga', 'olga', olgaId]);
  assert.equal(statSync(join(srv.dataDir, 'audit.log')).mode & 0o777, 0o600);
});

test('weft audit prints them as a table, filters, and is for admins only', async () => {
  const table = (await ok(['audit', '--since', '1h'])).trim().split('\n');
  assert.match(table[0] ?? '', /^TIME\s+EVENT\s+ACTOR\s+CREDENTIAL\s+SOURCE\s+METHOD\s+PATH\s+STATUS\s+CODE$/);
  for (const row of [/\swrite\s+admin\s+[0-9a-f]{16}\s+127\.0\.0\.1:\d+\s+POST\s+\/api\/v1\/tenants\s+201\s+-$/, /\srefused\s+olga\s+[0-9a-f]{16}\s+\S+\s+GET\s+\/api\/v1\/users\s+403\s+WEFT_FORBIDDEN$/,
    /\srefused\s+-\s+-\s+\S+\s+GET\s+\/api\/v1\/tenants\s+401\s+WEFT_UNAUTHENTICATED$/, /\slogin\s+tried:olga\s+-\s+\S+\s+POST\s+\/api\/v1\/login\s+401\s+WEFT_UNAUTHENTICATED$/,
    /\slogin\s+olga\s+[0-9a-f]{16}\s+\S+\s+POST\s+\/api\/v1\/login\s+200\s+-$/]) {
    assert.ok(table.some((r) => row.test(r)), `${row}\n${table.join('\n')}`);
  }
  const logins = JSON.parse(await ok(['audit', '--event', 'login', '--actor', 'olga', '-o', 'json']));
  assert.deepEqual(logins.map((e: any) => [e.event, e.actor, e.status]), [['login', 'olga', 200]]);
  assert.equal(JSON.parse(await ok(['audit', '--limit', '2', '-o', 'json'])).length, 2);
  assert.equal((await ok(['audit', '--since', '2999-01-01T00:00:00Z'])).trim().split('\n').length, 1, 'only the header');
  assert.equal((await weft(['audit', '--event', 'reads'])).code, EXIT.usage);
  assert.equal((await weft(['audit', '--since', 'yesterday'])).code, EXIT.usage);
  assert.equal((await weft(['audit'], { HOME: join(home.dir, 'olga') })).code, EXIT.auth);
});

test('no token or password of this file is in the audit log or the server output', () => {
  const log = join(srv.dataDir, 'audit.log');
  const text = [log, `${log}.1`].filter(existsSync).map((f) => readFileSync(f, 'utf8')).join('');
  assert.ok(text.includes('"event":"login"'));
  for (const s of secrets) {
    assert.ok(!text.includes(s), `the audit log holds a secret starting ${s.slice(0, 9)}`);
    assert.ok(!srv.stderr.includes(s), `server stderr holds a secret starting ${s.slice(0, 9)}`);
    if (s !== srv.token) assert.ok(!srv.stdout.includes(s), `server stdout holds a secret starting ${s.slice(0, 9)}`);
  }
  assert.equal(srv.stdout.split(srv.token).length - 1, 1, 'the first admin token is printed once, at first start');
});
