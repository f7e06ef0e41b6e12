import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import type { Principal } from '../control/index.js';
import type { Change } from '../store/index.js';
import { WatchStream } from './watch.js';

/** What a stream writes, and nothing of a socket: these tests are about what is sent, not how. */
function sink(): { res: ServerResponse; text: () => string } {
  let out = '';
  const res = { write: (t: string) => { out += t; return true; }, writableLength: 0, writableNeedDrain: false, destroy: () => undefined, on: () => res, off: () => res };
  return { res: res as unknown as ServerResponse, text: () => out };
}

const who = (role: Principal['role'], tenants: string[] = [], user: string = role): Principal => ({ user, role, tenants, credential: `token:${user}` });

/** A change whose value counts how often it is serialised. */
function counted(revision: number, key: string, value: Record<string, unknown>, count: { n: number }): Change {
  const v = { ...value, toJSON(this: Record<string, unknown>) { count.n++; const { toJSON: _, ...rest } = this; return rest; } };
  return { revision, key, op: 'put', value: v, actor: 'u', time: '2026-12-04T00:00:00.000Z' };
}

test('a live commit is serialised once for all the streams that take it, and each view gets only its own lines', async () => {
  const n = { n: 0 };
  const commit = [
    counted(5, 'networks/blue/web', { tenant: 'blue', name: 'web' }, n),
    counted(5, 'networks/red/db', { tenant: 'red', name: 'db' }, n),
    counted(5, 'users/alice', { name: 'alice', role: 'tenant', passwordHash: 'secret' }, n),
    counted(5, 'ipam/blue/web', { used: 3 }, n),
  ];
  const streams = {
    admin: who('admin'), host: { ...who('tenant'), role: 'host' as const, user: 'host:h1', host: 'h1' }, ops: who('ops'),
    blue: who('tenant', ['blue'], 'b1'), blue2: who('tenant', ['blue'], 'b2'), red: who('tenant', ['red'], 'r1'),
  };
  const out: Record<string, () => string> = {};
  for (const [name, p] of Object.entries(streams)) {
    const s = sink();
    const w = new WatchStream(s.res, p, 1 << 20, () => assert.fail('not dropped'));
    await w.replay(4, [], async () => []);
    w.offer(commit);
    out[name] = s.text;
  }
  // The user record is serialised too (publicChange strips the hash first), the address book never.
  assert.equal(n.n, 3, 'each published change serialised once, whatever the number of streams (6)');
  const keys = (name: string) => out[name]!().trim().split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { key: string }).key);
  assert.deepEqual(keys('admin'), ['networks/blue/web', 'networks/red/db', 'users/alice']);
  assert.deepEqual(keys('host'), ['networks/blue/web', 'networks/red/db'], 'a host is not sent user records, though an admin stream was served first');
  assert.deepEqual(keys('ops'), ['networks/blue/web', 'networks/red/db']);
  assert.deepEqual(keys('blue'), ['networks/blue/web']);
  assert.deepEqual(keys('blue2'), ['networks/blue/web']);
  assert.deepEqual(keys('red'), ['networks/red/db'], 'a tenant is never sent the lines kept for another');
  assert.ok(!out['admin']!().includes('secret'), 'no password hash on the wire');
});

test('a replay of changes the principal cannot see lets the event loop turn between pages', async () => {
  const s = sink();
  const w = new WatchStream(s.res, who('tenant', ['blue'], 'b1'), 1 << 20, () => assert.fail('not dropped'));
  const page = (from: number): Change[] => Array.from({ length: 500 }, (_, i) => ({ revision: from + i, key: `leases/h${i}`, op: 'put', value: { at: i }, actor: 'h', time: 't' }));
  let turned = false;
  setImmediate(() => { turned = true; });
  const seen: boolean[] = [];
  await w.replay(0, page(1), async (after) => {
    seen.push(turned);
    return after >= 20 * 500 ? [] : page(after + 1);
  });
  assert.equal(seen.length, 20, 'every page read');
  assert.equal(s.text(), '', 'nothing of it visible');
  assert.equal(seen[0], true, 'the event loop turned before the second page was read (the store reads a page synchronously)');
});
