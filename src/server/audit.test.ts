import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseDuration, WeftError, type AuditEntry } from '../model/index.js';
import { CredentialRefused } from '../control/index.js';
import { auditEntryOf, auditEventOf, auditPath, type RequestFacts } from './audit.js';
import { AuditFile, openAuditSink, readAudit, type AuditSink } from './audit-file.js';
import { testApi } from './testkit.js';

test('durations: 30m, 12h, 7d, never; anything else names the field', () => {
  assert.equal(parseDuration('30m', 'ttl'), 1_800_000);
  assert.equal(parseDuration('12h', 'ttl'), 43_200_000);
  assert.equal(parseDuration('7d', 'ttl'), 604_800_000);
  assert.equal(parseDuration('never', 'ttl'), null);
  for (const bad of ['', '0s', '12', '1w', '-1h', '1.5h', 'forever', '3651d']) {
    assert.throws(() => parseDuration(bad, '--token-ttl'), (e: unknown) => e instanceof WeftError && e.field === '--token-ttl', bad);
  }
});

test('which requests are audited: every login attempt, every 401 and 403, every write to the API', () => {
  assert.equal(auditEventOf('POST', '/api/v1/login', 200), 'login');
  assert.equal(auditEventOf('POST', '/api/v1/login', 401), 'login');
  assert.equal(auditEventOf('GET', '/api/v1/tenants', 401), 'refused');
  assert.equal(auditEventOf('GET', '/api/v1/users', 403), 'refused');
  for (const m of ['POST', 'PUT', 'PATCH', 'DELETE']) assert.equal(auditEventOf(m, '/api/v1/tenants/x', 404), 'write', m);
  assert.equal(auditEventOf('GET', '/api/v1/tenants', 200), undefined);
  assert.equal(auditEventOf('GET', '/api/v1/tenants/red', 404), undefined);
  assert.equal(auditEventOf('GET', '/metrics', 200), undefined);
});

test('paths lose the query string and anything shaped like a secret, and are bounded', () => {
  assert.equal(auditPath('/api/v1/history?since=3&token=weft_abc'), '/api/v1/history');
  assert.equal(auditPath('/api/v1/tokens/weft_Ab-9_x'), '/api/v1/tokens/weft_[redacted]');
  assert.equal(auditPath('/api/v1/tokens/WEFT%5fAbc'), '/api/v1/tokens/weft_[redacted]');
  assert.equal(auditPath('/api/v1/hosts/weftjoin.abc.def/x'), '/api/v1/hosts/weft_[redacted]/x');
  assert.equal(auditPath(`/api/${'a'.repeat(5000)}`).length, 513);
});

const base: RequestFacts = {
  time: '2026-01-01T00:00:00.000Z', method: 'POST', url: '/api/v1/tenants', route: '/api/v1/tenants', status: 201,
  source: '127.0.0.1:5000', principal: null, problem: null, login: null,
};

test('actor and credential come from the principal, a host certificate, a login, or a recognised refused token', () => {
  const alice = { user: 'alice', role: 'ops' as const, tenants: [], credential: '0123456789abcdef' };
  assert.deepEqual(auditEntryOf({ ...base, principal: alice }), {
    time: base.time, event: 'write', actor: 'alice', credential: '0123456789abcdef', source: '127.0.0.1:5000',
    method: 'POST', path: '/api/v1/tenants', route: '/api/v1/tenants', status: 201, code: null,
  });
  assert.equal(auditEntryOf({ ...base, principal: { ...alice, host: 'node2', credential: 'cert:1f' } })?.actor, 'host:node2');
  const denied = auditEntryOf({ ...base, principal: alice, status: 403, problem: new WeftError('WEFT_FORBIDDEN', 'no') });
  assert.deepEqual([denied?.event, denied?.code], ['refused', 'WEFT_FORBIDDEN']);
  const expired = auditEntryOf({ ...base, method: 'GET', status: 401, problem: new CredentialRefused('fedcba9876543210', 'expired') });
  assert.deepEqual([expired?.event, expired?.actor, expired?.credential], ['refused', null, 'fedcba9876543210']);
  const unknown = auditEntryOf({ ...base, method: 'GET', status: 401, problem: new WeftError('WEFT_UNAUTHENTICATED', 'not valid') });
  assert.deepEqual([unknown?.actor, unknown?.credential], [null, null]);
  const login = { ...base, url: '/api/v1/login', route: '/api/v1/login' };
  const failed = auditEntryOf({ ...login, status: 401, login: { user: 'bob' }, problem: new WeftError('WEFT_UNAUTHENTICATED', 'wrong') });
  assert.deepEqual([failed?.event, failed?.actor, failed?.user, failed?.credential, failed?.code], ['login', null, 'bob', null, 'WEFT_UNAUTHENTICATED']);
  const good = auditEntryOf({ ...login, status: 200, login: { user: 'bob', credential: 'aaaaaaaaaaaaaaaa' } });
  assert.deepEqual([good?.actor, good?.user, good?.credential], ['bob', 'bob', 'aaaaaaaaaaaaaaaa']);
});

function tempDir(): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'weft-audit-'));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

const entry = (i: number, over: Partial<AuditEntry> = {}): AuditEntry => ({
  time: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString(), event: 'write', actor: i % 2 ? 'bob' : 'alice', credential: null,
  source: '127.0.0.1:1', method: 'POST', path: `/api/v1/x/${i}`, route: null, status: 201, code: null, ...over,
});

test('the audit file is 0600 (also when it existed with looser permissions), rotates at its size, and keeps one older file', async () => {
  const t = tempDir();
  try {
    const file = join(t.dir, 'sub', 'audit.log');
    const errors: Error[] = [];
    const log = new AuditFile(file, 2_000, (e) => errors.push(e));
    for (let i = 0; i < 40; i++) log.write(entry(i));
    log.close();
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(statSync(`${file}.1`).mode & 0o777, 0o600);
    assert.ok(statSync(file).size <= 2_000 && statSync(`${file}.1`).size <= 2_000);
    assert.ok(!existsSync(`${file}.2`));
    const all = await readAudit(file, { limit: 1000 });
    assert.ok(all.length > 10 && all.length < 40, `${all.length} lines kept`);
    assert.equal(all[all.length - 1]?.path, '/api/v1/x/39', 'newest last');
    assert.deepEqual(all.map((e) => e.path), all.map((e) => e.path).sort((a, b) => Number(a.split('/').pop()) - Number(b.split('/').pop())), 'in order across the rotation');
    assert.deepEqual(errors, []);

    const loose = join(t.dir, 'loose.log');
    writeFileSync(loose, '', { mode: 0o644 });
    new AuditFile(loose, 1_000, () => {}).close();
    assert.equal(statSync(loose).mode & 0o777, 0o600);
  } finally {
    t.remove();
  }
});

test('reading filters by time, actor and event, keeps the newest `limit`, and skips a torn line', async () => {
  const t = tempDir();
  try {
    const file = join(t.dir, 'audit.log');
    const lines = Array.from({ length: 30 }, (_, i) => JSON.stringify(entry(i, i === 29 ? { event: 'refused', status: 403 } : {})));
    writeFileSync(file, `${lines.join('\n')}\n{"time":"2026-01-01T00:00:3`);
    assert.equal((await readAudit(file, { limit: 5 })).map((e) => e.path).join(), '/api/v1/x/25,/api/v1/x/26,/api/v1/x/27,/api/v1/x/28,/api/v1/x/29');
    assert.equal((await readAudit(file, { limit: 100, actor: 'bob' })).length, 15);
    assert.equal((await readAudit(file, { limit: 100, since: Date.UTC(2026, 0, 1, 0, 0, 20) })).length, 10);
    assert.deepEqual((await readAudit(file, { limit: 100, event: 'refused' })).map((e) => e.status), [403]);
  } finally {
    t.remove();
  }
});

test('a torn last line (the disk filled up under it) is closed before the next line, which stays readable', async () => {
  const t = tempDir();
  try {
    const file = join(t.dir, 'audit.log');
    writeFileSync(file, `${JSON.stringify(entry(1))}\n{"time":"2026-01-01T00:00:0`);
    const log = new AuditFile(file, 1_000_000, () => {});
    log.write(entry(2));
    log.close();
    assert.deepEqual((await readAudit(file, { limit: 10 })).map((e) => e.path), ['/api/v1/x/1', '/api/v1/x/2']);
  } finally {
    t.remove();
  }
});

test('--audit-log - and none: GET /audit says where the log is instead of answering nothing', async () => {
  for (const [spec, why] of [['none', /keeps no audit log \(--audit-log none\)/], ['-', /standard error/]] as const) {
    const api = await testApi({ audit: openAuditSink(spec, 1, () => {}) });
    const r = await api.call('GET', '/api/v1/audit');
    assert.equal(r.status, 404);
    assert.match(r.json.detail, why);
  }
});

/** A sink that keeps lines in memory, for the in-process tests. */
function memorySink(): AuditSink & { lines: AuditEntry[] } {
  const lines: AuditEntry[] = [];
  return { lines, file: undefined, describe: 'memory', write: (e) => void lines.push(e), close() {} };
}

test('in process: writes, refusals and logins are audited with actor and credential, and no secret or body', async () => {
  const sink = memorySink();
  const api = await testApi({ audit: sink });
  const adminId = (await api.call('GET', '/api/v1/whoami')).json.credential as string;
  await api.call('POST', '/api/v1/users', { name: 'olga', role: 'ops', password: 'olga-password-123' });
  await api.call('POST', '/api/v1/login', { username: 'olga', password: 'not-olgas-password' }, {}, '');
  const olga = await api.call('POST', '/api/v1/login', { username: 'olga', password: 'olga-password-123' }, {}, '');
  await api.call('GET', '/api/v1/users', undefined, {}, olga.json.token);
  await api.call('GET', '/api/v1/tenants', undefined, {}, 'weft_not-a-real-token');
  await api.call('POST', '/api/v1/nowhere', { password: 'in-a-body' }, {}, '');
  const made = await api.call('POST', '/api/v1/tokens', { ttl: '1h' });
  const [create, badLogin, goodLogin, forbidden, unknown, nowhere, token] = sink.lines;
  assert.equal(sink.lines.length, 7, JSON.stringify(sink.lines));
  assert.deepEqual([create?.event, create?.actor, create?.credential, create?.status, create?.route], ['write', 'admin', adminId, 201, '/api/v1/users']);
  assert.deepEqual([badLogin?.event, badLogin?.actor, badLogin?.user, badLogin?.status], ['login', null, 'olga', 401]);
  assert.deepEqual([goodLogin?.actor, goodLogin?.credential, goodLogin?.status], ['olga', olga.json.id, 200]);
  assert.deepEqual([forbidden?.event, forbidden?.actor, forbidden?.credential, forbidden?.code], ['refused', 'olga', olga.json.id, 'WEFT_FORBIDDEN']);
  assert.deepEqual([unknown?.event, unknown?.method, unknown?.actor, unknown?.credential], ['refused', 'GET', null, null]);
  assert.deepEqual([nowhere?.event, nowhere?.status, nowhere?.route], ['refused', 401, null]);
  assert.deepEqual([token?.event, token?.status], ['write', 201]);
  const text = JSON.stringify(sink.lines);
  for (const secret of [api.token, olga.json.token, made.json.token, 'olga-password-123', 'not-olgas-password', 'in-a-body', 'weft_not-a-real-token']) {
    assert.ok(!text.includes(secret), `the audit log holds ${secret.slice(0, 8)}…`);
  }
});

test('a token description is printable text: it is shown in an admin\'s terminal', async () => {
  const api = await testApi();
  for (const bad of ['clear\u001b[2J', 'tab\there', 'csi\u009b31m']) {
    const r = await api.call('POST', '/api/v1/tokens', { description: bad, ttl: '1h' });
    assert.deepEqual([r.status, r.json.field], [400, 'description'], JSON.stringify(bad));
  }
  assert.equal((await api.call('POST', '/api/v1/tokens', { description: 'déploiement CI', ttl: '1h' })).status, 201);
  assert.equal((await api.call('GET', '/api/v1/tokens')).json.items.length, 2);
});

test('a flood of refusals is summed up, not logged line by line: per actor, per address (an IPv6 one by its /64); writes always logged', async () => {
  const { RefusalThrottle, REFUSAL_BURST, REFUSALS_PER_S } = await import('./audit-throttle.js');
  let now = 0;
  const t = new RefusalThrottle(() => now);
  const line = (over: Partial<AuditEntry>): AuditEntry => ({
    time: 'x', event: 'refused', actor: null, credential: null, source: '198.51.100.7:4000', method: 'GET', path: '/api/v1/tenants', route: '/api/v1/tenants', status: 401, code: 'WEFT_UNAUTHENTICATED', ...over,
  });
  const admitted = (n: number, over: Partial<AuditEntry>) => Array.from({ length: n }, () => t.admit(line(over))).filter(Boolean).length;
  // One address, any port: the burst, then nothing until time passes.
  assert.equal(admitted(REFUSAL_BURST + 50, { source: '198.51.100.7:4001' }), REFUSAL_BURST);
  assert.equal(admitted(10, { source: '198.51.100.7:4999' }), 0);
  // Another address, a user's own 403s, failed logins, and writes are not held back by it.
  assert.equal(admitted(5, { source: '198.51.100.8:1' }), 5);
  assert.equal(admitted(REFUSAL_BURST + 5, { actor: 'eve', status: 403, source: '198.51.100.7:1' }), REFUSAL_BURST);
  assert.equal(admitted(300, { event: 'write', actor: 'eve', status: 201 }), 300);
  assert.equal(admitted(3, { event: 'login', status: 200, actor: 'eve' }), 3);
  // IPv6: the whole /64 is one allowance.
  assert.equal(admitted(REFUSAL_BURST, { source: '[2001:db8:1:2::1]:5' }) + admitted(20, { source: '[2001:db8:1:2:ffff::9]:6' }), REFUSAL_BURST);
  assert.equal(admitted(1, { source: '[2001:db8:1:3::1]:5' }), 1);
  const s = t.summaries('now');
  assert.deepEqual(s.map((x) => [x.event, x.actor, x.source, x.count]), [
    ['suppressed', null, '198.51.100.7', 60], ['suppressed', null, '2001:db8:1:2::/64', 20], ['suppressed', 'eve', '198.51.100.7', 5],
  ]);
  assert.deepEqual(t.summaries('later'), [], 'each lost line is counted once');
  // Refilled at the rate.
  now += 1000;
  assert.equal(admitted(REFUSALS_PER_S + 5, { source: '198.51.100.7:4001' }), REFUSALS_PER_S);
});

test('through the server: 300 unauthenticated refusals from one address write the burst and one summary; a login from elsewhere is logged', async () => {
  const lines: AuditEntry[] = [];
  const sink: AuditSink = { write: (e) => void lines.push(e), file: undefined, describe: 'memory', close: () => undefined };
  const api = await testApi({ audit: sink });
  const { REFUSAL_BURST, REFUSALS_PER_S } = await import('./audit-throttle.js');
  const t0 = performance.now();
  for (let i = 0; i < 300; i++) await api.app.inject({ method: 'GET', url: '/api/v1/tenants', remoteAddress: '203.0.113.9' });
  // The allowance refills while the 300 are sent (more on a loaded machine).
  const refilled = Math.floor(((performance.now() - t0) / 1000) * REFUSALS_PER_S);
  assert.equal((await api.call('POST', '/api/v1/login', { username: 'admin', password: 'wrong-password-1' }, {}, '')).status, 401);
  assert.equal((await api.call('POST', '/api/v1/tenants', { name: 'kept' })).status, 201);
  await api.app.close();
  const from = lines.filter((l) => l.source.startsWith('203.0.113.9'));
  const logged = from.filter((l) => l.event === 'refused').length;
  assert.ok(logged >= REFUSAL_BURST && logged <= REFUSAL_BURST + refilled + 1, `${logged} logged one by one`);
  assert.deepEqual(from.filter((l) => l.event === 'suppressed').map((l) => [l.source, l.count]), [['203.0.113.9', 300 - logged]], 'the rest in one summary');
  assert.equal(lines.filter((l) => l.event === 'login').length, 1, 'the failed login from 127.0.0.1');
  assert.ok(lines.some((l) => l.event === 'write' && l.path === '/api/v1/tenants' && l.status === 201));
});
