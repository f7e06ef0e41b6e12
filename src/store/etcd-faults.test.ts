import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GRPCResourceExhastedError, GRPCUnavailableError, GRPCNotFoundError } from 'etcd3';
import { BREAKER_OPEN_MS, HostCircuitOpen, globalPolicy, hostPolicy } from './etcd-faults.js';

const noSpace = () => new GRPCResourceExhastedError('8 RESOURCE_EXHAUSTED: etcdserver: mvcc: database space exceeded');
const down = () => new GRPCUnavailableError('14 UNAVAILABLE: connect ECONNREFUSED');

/** The client's call shape: the overall policy around the host policy around one call. */
function client(now: () => number) {
  const host = hostPolicy('127.0.0.1:2379', now);
  const global = globalPolicy();
  let calls = 0;
  const run = (fail: () => Error | undefined) => global.execute(() => host.execute(async () => {
    calls++;
    const e = fail();
    if (e) throw e;
    return 'ok';
  }));
  return { run, calls: () => calls };
}

test('a write refused for space is thrown once, unretried, and never opens the host circuit', async () => {
  const c = client(() => 0);
  for (let i = 0; i < 5; i++) await assert.rejects(c.run(noSpace), /database space exceeded/);
  assert.equal(c.calls(), 5, 'one call per refused write: no retries');
  assert.equal(await c.run(() => undefined), 'ok', 'the next read goes through at once');
});

test('recoverable failures are retried, and three in a row open the circuit for 5 s', async () => {
  let t = 0;
  const c = client(() => t);
  await assert.rejects(c.run(down), /UNAVAILABLE/);
  assert.equal(c.calls(), 3, 'three attempts');
  await assert.rejects(c.run(() => undefined), HostCircuitOpen, 'open: not even tried');
  assert.equal(c.calls(), 3);
  t += BREAKER_OPEN_MS + 1;
  assert.equal(await c.run(() => undefined), 'ok', 'tried again after 5 s, and closed');
});

test('other refusals are neither retried nor counted', async () => {
  const c = client(() => 0);
  for (let i = 0; i < 4; i++) await assert.rejects(c.run(() => new GRPCNotFoundError('5 NOT_FOUND')));
  assert.equal(c.calls(), 4);
  assert.equal(await c.run(() => undefined), 'ok');
});
