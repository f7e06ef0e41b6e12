import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { http, startServerProcess, type ServerProcess } from '../testkit/server.js';

/**
 * Tokens against a real `weft server` process: expiry, list/create/revoke and who may do it, a
 * password change, login timing; at the end, no token or password of this file is in the audit log
 * or in anything the server printed.
 */
let srv: ServerProcess;
const secrets = new Set<string>();
const keep = (s: string): string => (secrets.add(s), s);
const PASSWORDS: Record<'bob' | 'carol' | 'timed', string> = { bob: keep('bob-password-1'), carol: keep('carol-password-1'), timed: keep('timed-password-1') };

before(async () => {
  srv = await startServerProcess({ args: ['--token-ttl', '1h'] });
  for (const [name, role, password] of [['bob', 'tenant', PASSWORDS.bob], ['carol', 'tenant', PASSWORDS.carol]] as const) {
    assert.equal((await http(srv.url, srv.token, 'POST', '/api/v1/users', { name, role, tenants: ['default'], password })).status, 201);
  }
});
after(async () => {
  await srv?.stop();
});

async function login(user: 'bob' | 'carol', password = PASSWORDS[user]): Promise<{ id: string; token: string; expiresAt: string | null }> {
  const r = await http(srv.url, '', 'POST', '/api/v1/login', { username: user, password });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  keep(r.json.token);
  return r.json;
}
const whoami = async (token: string) => http(srv.url, token, 'GET', '/api/v1/whoami');

test('login tokens expire after --token-ttl; the first admin token never does', async () => {
  const t = await login('bob');
  const left = Date.parse(t.expiresAt ?? '') - Date.now();
  assert.ok(left > 59 * 60_000 && left <= 60 * 60_000, `expires in ${left} ms, want 1h`);
  const listed = (await http(srv.url, srv.token, 'GET', '/api/v1/tokens?user=admin')).json.items;
  assert.deepEqual(listed.map((x: any) => [x.description, x.expiresAt, x.current]), [['first admin token', undefined, true]]);
});

test('a token with a short ttl works, then is refused as expired, every time', async () => {
  const made = await http(srv.url, srv.token, 'POST', '/api/v1/tokens', { ttl: '3s', description: 'short' });
  assert.equal(made.status, 201);
  const short = keep(made.json.token as string);
  assert.deepEqual(Object.keys(made.json).sort(), ['expiresAt', 'id', 'token']);
  assert.equal((await whoami(short)).json.credential, made.json.id);
  await new Promise((r) => setTimeout(r, Math.max(0, Date.parse(made.json.expiresAt) - Date.now()) + 50));
  for (let i = 0; i < 2; i++) {
    const r = await whoami(short);
    assert.deepEqual([r.status, r.json.code], [401, 'WEFT_UNAUTHENTICATED']);
    assert.match(r.json.detail, new RegExp(`token ${made.json.id} expired at ${made.json.expiresAt}`));
  }
  const state = (await http(srv.url, srv.token, 'GET', '/api/v1/tokens')).json.items.find((x: any) => x.id === made.json.id)?.state;
  assert.equal(state, 'expired');
});

test('users list, create and revoke their own tokens; lists never carry a secret', async () => {
  const bob = await login('bob');
  const made = await http(srv.url, bob.token, 'POST', '/api/v1/tokens', { ttl: '30m', description: 'ci' });
  assert.equal(made.status, 201, JSON.stringify(made.json));
  keep(made.json.token);
  const mine = (await http(srv.url, bob.token, 'GET', '/api/v1/tokens')).json.items;
  assert.ok(mine.length >= 2 && mine.every((x: any) => x.user === 'bob'), 'only bob\'s own');
  assert.ok(mine.some((x: any) => x.id === made.json.id && x.description === 'ci' && x.state === 'active' && !x.current));
  assert.ok(mine.some((x: any) => x.id === bob.id && x.current));
  const text = JSON.stringify(mine);
  assert.ok(![...secrets].some((s) => text.includes(s)) && !/[0-9a-f]{64}/.test(text), 'no secret, no hash');
  assert.equal((await http(srv.url, bob.token, 'POST', '/api/v1/tokens', { ttl: '7d' })).json.field, 'ttl', 'may not outlive the login token');
  assert.equal((await http(srv.url, bob.token, 'DELETE', `/api/v1/tokens/${made.json.id}`)).status, 204);
  assert.equal((await whoami(made.json.token)).status, 401);
  assert.equal((await http(srv.url, bob.token, 'DELETE', `/api/v1/tokens/${made.json.id}`)).status, 404);
});

test("a tenant user cannot see or revoke another's token (404, as if missing); an admin can", async () => {
  const bob = await login('bob');
  const carol = await login('carol');
  const adminId = (await whoami(srv.token)).json.credential as string;
  assert.equal((await http(srv.url, carol.token, 'DELETE', `/api/v1/tokens/${bob.id}`)).status, 404);
  assert.equal((await http(srv.url, carol.token, 'DELETE', `/api/v1/tokens/${adminId}`)).status, 404);
  assert.equal((await http(srv.url, carol.token, 'GET', '/api/v1/tokens?user=bob')).status, 403);
  assert.equal((await http(srv.url, carol.token, 'POST', '/api/v1/tokens', { user: 'bob' })).status, 403);
  assert.ok((await http(srv.url, carol.token, 'GET', '/api/v1/tokens')).json.items.every((x: any) => x.user === 'carol'));
  assert.equal((await whoami(bob.token)).status, 200, 'bob\'s token survived carol');
  const bobs = (await http(srv.url, srv.token, 'GET', '/api/v1/tokens?user=bob')).json.items;
  assert.ok(bobs.some((x: any) => x.id === bob.id) && bobs.every((x: any) => x.user === 'bob'));
  assert.ok((await http(srv.url, srv.token, 'GET', '/api/v1/tokens')).json.items.some((x: any) => x.user === 'carol'), 'an admin sees everyone\'s');
  const forBob = await http(srv.url, srv.token, 'POST', '/api/v1/tokens', { user: 'bob', ttl: '10m' });
  assert.equal((await whoami(keep(forBob.json.token))).json.user, 'bob');
  assert.equal((await http(srv.url, srv.token, 'DELETE', `/api/v1/tokens/${bob.id}`)).status, 204);
  assert.equal((await whoami(bob.token)).status, 401);
});

test("a password change revokes the user's other tokens; the changer's own token still works", async () => {
  const a = await login('bob');
  const b = await login('bob');
  const next = keep('bob-password-2');
  // A token alone does not change the password (a stolen one must not become the account).
  const without = await http(srv.url, a.token, 'PATCH', '/api/v1/users/bob', { password: keep('stolen-token-pw') });
  assert.deepEqual([without.status, without.json.field], [403, 'currentPassword']);
  const wrong = await http(srv.url, a.token, 'PATCH', '/api/v1/users/bob', { password: keep('stolen-token-pw'), currentPassword: keep('not-bobs') });
  assert.deepEqual([wrong.status, wrong.json.field], [403, 'currentPassword']);
  assert.equal((await whoami(b.token)).status, 200, 'nothing was revoked by the refused changes');
  assert.equal((await http(srv.url, a.token, 'PATCH', '/api/v1/users/bob', { password: next, currentPassword: PASSWORDS.bob })).status, 200);
  assert.equal((await whoami(a.token)).status, 200);
  assert.equal((await whoami(b.token)).status, 401);
  PASSWORDS.bob = next;
  const c = await login('bob');
  assert.equal((await http(srv.url, srv.token, 'PATCH', '/api/v1/users/bob', { password: keep('bob-password-3') })).status, 200);
  assert.equal((await whoami(a.token)).status, 401, 'an admin\'s change revokes them all');
  assert.equal((await whoami(c.token)).status, 401);
  assert.equal((await whoami(srv.token)).status, 200);
});

const median = (xs: number[]) => [...xs].sort((p, q) => p - q)[Math.floor(xs.length / 2)] ?? NaN;

/**
 * The three failures must cost the same: without the dummy scrypt an unknown user answers in ~1 ms
 * against ~50 ms for a wrong password (a 20-50x gap). Tries are interleaved, so load from other work
 * on the machine falls on all three alike, and a median of 21 ignores up to 10 slow outliers per kind.
 * The 1.5x tolerance is far inside the gap the attack needs and far outside the noise left. A
 * malformed request (refused before any scrypt) is the control: it must be clearly faster, which
 * shows the measurement can see the difference it guards against.
 */
test('login takes the same time for unknown users, users without a password and wrong passwords', async () => {
  assert.equal((await http(srv.url, srv.token, 'POST', '/api/v1/users', { name: 'nopass', role: 'ops' })).status, 201);
  assert.equal((await http(srv.url, srv.token, 'POST', '/api/v1/users', { name: 'timed', role: 'ops', password: PASSWORDS.timed })).status, 201);
  const wrong = keep('wrong-password-1');
  const kinds = { unknown: { username: 'ghost', password: wrong }, nopass: { username: 'nopass', password: wrong }, wrong: { username: 'timed', password: wrong }, malformed: { username: 'Not_A_Name', password: wrong } };
  const times: Record<string, number[]> = { unknown: [], nopass: [], wrong: [], malformed: [] };
  for (let i = 0; i < 21; i++) {
    for (const [kind, body] of Object.entries(kinds)) {
      const t0 = performance.now();
      const r = await http(srv.url, '', 'POST', '/api/v1/login', body);
      times[kind]?.push(performance.now() - t0);
      assert.equal(r.status, kind === 'malformed' ? 400 : 401, kind);
      if (kind !== 'malformed') assert.equal(r.json.detail, 'wrong user name or password');
    }
  }
  const m = Object.fromEntries(Object.entries(times).map(([k, v]) => [k, median(v)])) as Record<keyof typeof kinds, number>;
  const failures = [m.unknown, m.nopass, m.wrong];
  const report = JSON.stringify(Object.fromEntries(Object.entries(m).map(([k, v]) => [k, `${v.toFixed(1)} ms`])));
  console.log(`login medians: ${report}`);
  assert.ok(Math.max(...failures) <= 1.5 * Math.min(...failures), `medians differ by more than 1.5x: ${report}`);
  assert.ok(m.malformed * 3 < Math.min(...failures), `the control is not clearly faster, so this measurement cannot see the gap: ${report}`);
});

test('nothing this file used as a token or password is in the audit log or the server output', async () => {
  const log = join(srv.dataDir, 'audit.log');
  const text = [log, `${log}.1`].filter(existsSync).map((f) => readFileSync(f, 'utf8')).join('') + srv.stdout + srv.stderr;
  assert.ok(text.includes('"event":"login"'), 'the audit log is there to search');
  for (const s of secrets) assert.ok(!text.includes(s), `found a secret starting ${s.slice(0, 9)}`);
  assert.equal(srv.stdout.split(srv.token).length - 1, 1, 'the first admin token appears once: in the first-start banner');
  assert.ok(!(srv.stderr.includes(srv.token)));
});
