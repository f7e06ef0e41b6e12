import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AuditEntry } from '../model/index.js';
import { RefusalThrottle, REFUSAL_BURST } from './audit-throttle.js';

const line = (over: Partial<AuditEntry>): AuditEntry => ({
  time: 'x', event: 'refused', actor: null, credential: null, source: '198.51.100.7:4000', method: 'GET', path: '/api/v1/tenants', route: '/api/v1/tenants', status: 401, code: null, ...over,
});

test('on a dual-stack listener ([::]:9700) IPv4 clients (::ffff:a.b.c.d) are not one /64: one client does not spend every IPv4 client\'s allowance', () => {
  const t = new RefusalThrottle(() => 0);
  for (let i = 0; i < REFUSAL_BURST + 10; i++) t.admit(line({ source: '[::ffff:198.51.100.7]:4000' }));
  assert.equal(t.admit(line({ source: '[::ffff:203.0.113.9]:5000', event: 'login', status: 401 })), true, "another IPv4 client's failed login was suppressed");
  assert.deepEqual(t.summaries('x').map((s) => s.source), ['198.51.100.7']);
});

test('addresses past FOLLOWED do not push an authenticated actor\'s refusals into the anonymous crowd count', () => {
  const t = new RefusalThrottle(() => 0);
  for (let k = 0; k < 5000; k++) for (let i = 0; i < REFUSAL_BURST + 1; i++) t.admit(line({ source: `[2001:db8:0:${k.toString(16)}::1]:1` }));
  assert.equal(t.admit(line({ actor: 'mallory', status: 403 })), true, "an insider's 403 hidden behind an unauthenticated flood");
  assert.ok(t.summaries('x').every((s) => s.actor !== 'mallory'));
});

test('unauthenticated lines from many addresses share one allowance besides each address\'s; an actor\'s are not held by it', async () => {
  const { UNAUTHENTICATED_BURST, UNAUTHENTICATED_PER_S } = await import('./audit-throttle.js');
  let now = 0;
  const t = new RefusalThrottle(() => now);
  // 65,536 /64s of one /48, ten lines each: each address is within its own burst.
  let logged = 0;
  for (let k = 0; k < 65_536; k++) for (let i = 0; i < 10; i++) if (t.admit(line({ source: `[2001:db8:7:${k.toString(16)}::1]:1` }))) logged++;
  assert.equal(logged, UNAUTHENTICATED_BURST, 'all addresses together: the shared burst');
  assert.equal(t.admit(line({ actor: 'eve', status: 403 })), true, 'a user\'s refusal is not an unauthenticated one');
  now += 10_000;
  const first = t.summaries('x');
  assert.equal(first.reduce((n, x) => n + (x.count ?? 0), 0), 655_360 - UNAUTHENTICATED_BURST, 'every line not logged is counted');
  let later = 0;
  for (let k = 0; k < 1000; k++) if (t.admit(line({ source: `198.51.${k >> 8}.${k & 255}:1` }))) later++;
  assert.equal(later, 10 * UNAUTHENTICATED_PER_S, 'refilled at the shared rate');
});
