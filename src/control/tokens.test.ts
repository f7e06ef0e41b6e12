import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStore } from '../store/index.js';
import { rejectsWith } from './testing.js';
import { Control } from './control.js';
import { CredentialRefused, MAX_TOKENS_PER_USER, hashToken } from './tokens.js';
import type { Principal } from './users.js';

const HOUR = 3_600_000;

/** A control plane whose clock the test moves. */
async function fresh(tokenTtlMs: number | null = 12 * HOUR) {
  let now = Date.parse('2026-01-01T00:00:00Z');
  const store = new MemoryStore();
  const c = new Control(store, () => new Date(now), { tokenTtlMs });
  const admin = (await c.bootstrap()).adminToken ?? '';
  await c.users.create('admin', { name: 'bob', role: 'ops', password: 'bob-password' });
  return { c, store, admin, advance: (ms: number) => (now += ms), at: () => now };
}

test('a login token works until its ttl, then is refused as expired, and stays refused if the clock goes back', async () => {
  const { c, store, advance } = await fresh(HOUR);
  const t = await c.users.login('bob', 'bob-password');
  assert.equal(t.expiresAt, '2026-01-01T01:00:00.000Z');
  assert.equal(t.id, hashToken(t.token).slice(0, 16));
  const p = await c.users.authenticate(t.token);
  assert.deepEqual([p.user, p.credential], ['bob', t.id]);
  advance(HOUR - 1);
  await c.users.authenticate(t.token);
  advance(1);
  await assert.rejects(c.users.authenticate(t.token), (e: unknown) => e instanceof CredentialRefused && e.credential === t.id && /expired at 2026-01-01T01:00:00.000Z/.test(e.message));
  // Another server whose clock runs an hour behind shares this store: the mark refuses it there too.
  advance(-HOUR);
  await rejectsWith(c.users.authenticate(t.token), 'WEFT_UNAUTHENTICATED', /expired/);
  const stored = JSON.stringify((await store.list('tokens/')).entries);
  assert.ok(!stored.includes(t.token), 'the store holds hashes, never the secret');
});

test('the first admin token never expires; --token-ttl never makes login tokens that never expire', async () => {
  const { c, admin, advance } = await fresh(null);
  const t = await c.users.login('bob', 'bob-password');
  assert.equal(t.expiresAt, null);
  advance(3650 * 24 * HOUR);
  assert.equal((await c.users.authenticate(admin)).user, 'admin');
  assert.equal((await c.users.authenticate(t.token)).user, 'bob');
});

test('a token may not outlive the one that creates it; the default is cut to that limit', async () => {
  const { c, admin, at } = await fresh(12 * HOUR);
  const bobLogin = await c.users.login('bob', 'bob-password');
  const bob = await c.users.authenticate(bobLogin.token);
  await rejectsWith(c.users.createToken(bob, { ttl: '7d' }), 'WEFT_INVALID_VALUE', /may not outlive the token making the request, which expires at 2026-01-01T12:00:00.000Z/, 'ttl');
  await rejectsWith(c.users.createToken(bob, { ttl: 'never' }), 'WEFT_INVALID_VALUE', /may not outlive/, 'ttl');
  const short = await c.users.createToken(bob, { ttl: '30m', description: 'ci' });
  assert.equal(Date.parse(short.expiresAt ?? ''), at() + 30 * 60_000);
  const child = await c.users.createToken(await c.users.authenticate(short.token), {});
  assert.equal(child.expiresAt, short.expiresAt, 'the default ttl (12h) is cut to the parent\'s expiry');
  const forever = await c.users.createToken(await c.users.authenticate(admin), { ttl: 'never', user: 'bob' });
  assert.equal(forever.expiresAt, null, 'the never-expiring admin token may mint a never-expiring token');
});

test('only an admin creates tokens for others, and only for users that exist', async () => {
  const { c, admin } = await fresh();
  const bob = await c.users.authenticate((await c.users.login('bob', 'bob-password')).token);
  await rejectsWith(c.users.createToken(bob, { user: 'admin' }), 'WEFT_FORBIDDEN', /only for itself/, 'user');
  const root = await c.users.authenticate(admin);
  await rejectsWith(c.users.createToken(root, { user: 'nobody' }), 'WEFT_INVALID_REFERENCE', /user nobody does not exist/, 'user');
});

test('revoke: the owner or an admin; anyone else is told the token does not exist', async () => {
  const { c, admin } = await fresh();
  await c.users.create('admin', { name: 'carol', role: 'ops', password: 'carol-password' });
  const bobT = await c.users.login('bob', 'bob-password');
  const bob = await c.users.authenticate(bobT.token);
  const carol = await c.users.authenticate((await c.users.login('carol', 'carol-password')).token);
  const extra = await c.users.createToken(bob, { ttl: '1h' });
  await rejectsWith(c.users.revokeToken(carol, extra.id), 'WEFT_NOT_FOUND', new RegExp(`token ${extra.id} not found`));
  await rejectsWith(c.users.revokeToken(carol, '0000000000000000'), 'WEFT_NOT_FOUND', /not found/);
  await c.users.revokeToken(bob, extra.id);
  await rejectsWith(c.users.authenticate(extra.token), 'WEFT_UNAUTHENTICATED', /not valid/);
  await c.users.revokeToken(await c.users.authenticate(admin), bobT.id);
  await rejectsWith(c.users.authenticate(bobT.token), 'WEFT_UNAUTHENTICATED', /not valid/);
});

test('revoking the last way in for any admin is refused', async () => {
  const { c, admin } = await fresh();
  const root = await c.users.authenticate(admin);
  await rejectsWith(c.users.revokeToken(root, root.credential), 'WEFT_IN_USE', /last way in for any admin/);
  const spare = await c.users.createToken(root, { ttl: '1h' });
  await c.users.revokeToken(root, root.credential);
  await rejectsWith(c.users.authenticate(admin), 'WEFT_UNAUTHENTICATED', /not valid/);
  const now = await c.users.authenticate(spare.token);
  await rejectsWith(c.users.revokeToken(now, spare.id), 'WEFT_IN_USE', /last way in/);
  await c.users.update('admin', 'admin', { password: 'admin-password' }, now.credential);
  await c.users.revokeToken(now, spare.id);
});

test('a new password revokes the user\'s other tokens but keeps the one that changed it', async () => {
  const { c, admin } = await fresh();
  const a = await c.users.login('bob', 'bob-password');
  const b = await c.users.login('bob', 'bob-password');
  const bob = await c.users.authenticate(a.token);
  const adminT = await c.users.authenticate(admin);
  await c.users.update('bob', 'bob', { password: 'new-bob-password' }, bob.credential);
  assert.equal((await c.users.authenticate(a.token)).user, 'bob');
  await rejectsWith(c.users.authenticate(b.token), 'WEFT_UNAUTHENTICATED', /not valid/);
  await c.users.update('admin', 'bob', { password: 'third-bob-password' });
  await rejectsWith(c.users.authenticate(a.token), 'WEFT_UNAUTHENTICATED', /not valid/);
  assert.equal((await c.users.authenticate(admin)).credential, adminT.credential, 'the admin\'s own token is untouched');
  await c.users.update('admin', 'bob', { role: 'tenant', tenants: ['default'] });
  const c2 = await c.users.login('bob', 'third-bob-password');
  await c.users.update('admin', 'bob', { tenants: ['default'] });
  assert.equal((await c.users.authenticate(c2.token)).role, 'tenant', 'changes without a password keep tokens');
});

test('list shows ids, owners, expiry and state, never a secret or hash; sweep forgets long-expired tokens', async () => {
  const { c, admin, advance } = await fresh(HOUR);
  const t = await c.users.login('bob', 'bob-password');
  const root: Principal = await c.users.authenticate(admin);
  // The test's clock stands still, so both were made at the same instant: compare by owner.
  const all = (await c.users.tokens.list(undefined, root.credential)).sort((a, b) => a.user.localeCompare(b.user));
  assert.deepEqual(all.map((x) => [x.user, x.state, x.current]), [['admin', 'active', true], ['bob', 'active', false]]);
  assert.deepEqual(Object.keys(all[1] ?? {}).sort(), ['createdAt', 'current', 'description', 'expiresAt', 'id', 'state', 'user']);
  assert.ok(!JSON.stringify(all).includes(hashToken(t.token)) && !JSON.stringify(all).includes(t.token));
  advance(HOUR);
  assert.deepEqual((await c.users.tokens.list('bob', '')).map((x) => x.state), ['expired']);
  assert.equal(await c.users.tokens.sweep(7 * 24 * HOUR), 0, 'kept (as expired) for the retention');
  advance(7 * 24 * HOUR + 1);
  assert.equal(await c.users.tokens.sweep(7 * 24 * HOUR), 1);
  assert.deepEqual((await c.users.tokens.list(undefined, '')).map((x) => x.user), ['admin'], 'a never-expiring token is never swept');
});

test('deleting a user removes its tokens', async () => {
  const { c } = await fresh();
  const t = await c.users.login('bob', 'bob-password');
  await c.users.remove('admin', 'bob');
  await rejectsWith(c.users.authenticate(t.token), 'WEFT_UNAUTHENTICATED', /not valid/);
  assert.deepEqual((await c.users.tokens.list('bob', '')), []);
});

test('a user holds at most MAX_TOKENS_PER_USER tokens: past it the oldest expired ones are forgotten, and only live ones refuse a new one', async () => {
  const { c, store, admin, advance } = await fresh();
  const root = await c.users.authenticate(admin);
  const index = async (u: string) => (await store.list(`usertokens/${u}/`)).entries.length;
  const mint = (ttl: string) => c.users.createToken(root, { user: 'bob', ttl });
  const short: Awaited<ReturnType<typeof mint>>[] = [];
  for (let i = 0; i < MAX_TOKENS_PER_USER / 2; i++) short.push(await mint('1h'));
  for (let i = MAX_TOKENS_PER_USER / 2; i < MAX_TOKENS_PER_USER; i++) await mint('30d');
  await rejectsWith(mint('1h'), 'WEFT_QUOTA_EXCEEDED', new RegExp(`user bob holds ${MAX_TOKENS_PER_USER} live tokens \\(at most ${MAX_TOKENS_PER_USER}\\): revoke some first`));
  await rejectsWith(c.users.login('bob', 'bob-password'), 'WEFT_QUOTA_EXCEEDED', /revoke some first/);
  // Another user is not held to bob's count.
  await c.users.create('admin', { name: 'carol', role: 'ops', password: 'carol-password' });
  await c.users.createToken(root, { user: 'carol' });
  // The short ones expire: a new token forgets 40 of them (a token and its index entry each), oldest first.
  advance(2 * HOUR);
  const fresh1 = await mint('1h');
  assert.equal(await index('bob'), MAX_TOKENS_PER_USER - 40 + 1);
  assert.equal((await store.list('tokens/')).entries.filter((e) => (e.value as { user: string }).user === 'bob').length, MAX_TOKENS_PER_USER - 40 + 1);
  // (They expired at one instant: which 40 is the index's order.) The rest are refused as expired, as before.
  const why = await Promise.all(short.map((x) => c.users.authenticate(x.token).then(() => 'valid', (e: Error) => (/not valid/.test(e.message) ? 'gone' : /expired/.test(e.message) ? 'expired' : e.message))));
  assert.deepEqual([why.filter((w) => w === 'gone').length, why.filter((w) => w === 'expired').length], [40, MAX_TOKENS_PER_USER / 2 - 40]);
  assert.equal((await c.users.authenticate(fresh1.token)).user, 'bob');
  // Revoking one makes room at once; a new password revokes the rest through the index.
  const r = await c.users.createToken(root, { user: 'bob', ttl: '1h' });
  await c.users.revokeToken(root, r.id);
  assert.equal(await index('bob'), MAX_TOKENS_PER_USER - 40 + 1);
  await c.users.update('admin', 'bob', { password: 'new-bob-password' });
  assert.deepEqual([await index('bob'), (await c.users.tokens.list('bob', '')).length], [0, 0]);
  assert.equal(await index('carol'), 1);
});

test('every start indexes the tokens of a data dir from before the index, and drops entries of tokens gone', async () => {
  const { c, store, admin } = await fresh();
  const root = await c.users.authenticate(admin);
  const t = await c.users.createToken(root, { user: 'bob', ttl: '1h' });
  await store.transact('test', async (tx) => {
    tx.deletePrefix('usertokens/');
    tx.put('usertokens/bob/0123', {});
    // Garbage a hand may have written: a token of no user is not indexed (nor refused at start).
    tx.put('tokens/ffff', { user: 7 });
  });
  assert.equal(await c.users.tokens.reindex(), 3);
  const keys = (await store.list('usertokens/')).entries.map((e) => e.key).sort();
  assert.deepEqual(keys, [`usertokens/admin/${hashToken(admin)}`, `usertokens/bob/${hashToken(t.token)}`].sort());
  assert.equal(await c.users.tokens.reindex(), 0, 'a second start writes nothing');
  await c.users.remove('admin', 'bob');
  assert.deepEqual((await store.list('usertokens/bob/')).entries, []);
});

test('the last admin way in is found through the index, whatever else the admin holds; a reindex acts on each token as it stands, not on its listings', async () => {
  const { c, store, admin, advance } = await fresh();
  const root = await c.users.authenticate(admin);
  // An admin without a password holding many expired tokens and one live one besides the first token.
  for (let i = 0; i < 30; i++) await c.users.createToken(root, { ttl: '1h' });
  const live = await c.users.createToken(root, { ttl: '30d' });
  advance(2 * HOUR);
  await c.users.revokeToken(root, live.id);
  await rejectsWith(c.users.revokeToken(root, root.credential), 'WEFT_IN_USE', /last way in for any admin/);
  const spare = await c.users.createToken(root, { ttl: '30d' });
  await c.users.revokeToken(await c.users.authenticate(spare.token), root.credential);
  await rejectsWith(c.users.authenticate(admin), 'WEFT_UNAUTHENTICATED', /not valid/);
  // A start's listings miss a token issued meanwhile (another server): the reindex reads it in its transaction.
  const bob = await c.users.createToken(await c.users.authenticate(spare.token), { user: 'bob', ttl: '1h' });
  const list = store.list.bind(store);
  const stale = Object.assign(Object.create(Object.getPrototypeOf(store)), store, {
    list: async (prefix: string) => {
      const l = await list(prefix);
      return prefix === 'tokens/' ? { ...l, entries: l.entries.filter((e) => e.key !== `tokens/${hashToken(bob.token)}`) } : l;
    },
  });
  const c2 = new Control(stale, () => new Date());
  await c2.users.tokens.reindex();
  assert.ok(await store.get(`usertokens/bob/${hashToken(bob.token)}`), 'the token issued meanwhile keeps its index entry');
  await c.users.update('admin', 'bob', { password: 'new-bob-password' });
  await rejectsWith(c.users.authenticate(bob.token), 'WEFT_UNAUTHENTICATED', /not valid/);
});

test('a data dir from before the cap (a user holding more than it, most expired) takes a new token while fewer than the cap are live, and gives room back', async () => {
  const { c, store, admin, advance } = await fresh();
  const root = await c.users.authenticate(admin);
  await store.transact('test', async (tx) => {
    for (let i = 0; i < MAX_TOKENS_PER_USER + 50; i++) {
      const hash = hashToken(`old-${i}`);
      const expiresAt = new Date(Date.parse('2026-01-01T00:00:00Z') + (i < 120 ? 1 : 30 * 24) * HOUR).toISOString();
      tx.put(`tokens/${hash}`, { user: 'bob', createdAt: '2025-12-31T00:00:00.000Z', description: 'old', expiresAt });
    }
  });
  await c.users.tokens.reindex();
  const index = async () => (await store.list('usertokens/bob/')).entries.length;
  assert.equal(await index(), MAX_TOKENS_PER_USER + 50);
  advance(2 * HOUR);
  await c.users.createToken(root, { user: 'bob', ttl: '1h' });
  assert.equal(await index(), MAX_TOKENS_PER_USER + 50 - 40 + 1, '40 expired given back');
});
