import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { TenantPlan } from '../datapath/index.js';
import { Admissions } from './admissions.js';

const plan = (n: number) => ({ ns: `t${n}`, tenant: `tenant${n}` }) as unknown as TenantPlan;

test('admissions: one at a time per namespace; requests made meanwhile share one batch with the newest plan', async () => {
  const applied: string[] = [];
  let release: () => void = () => undefined;
  const a = new Admissions((p) => {
    applied.push(p.ns);
    return applied.length === 1 ? new Promise<void>((r) => (release = r)) : Promise.resolve();
  }, () => assert.fail('nothing failed'));
  const first = a.request('red', plan(1));
  const later = [2, 3, 4, 5].map((n) => a.request('red', plan(n)));
  const other = a.request('blue', plan(9));
  await other;
  assert.deepEqual(applied, ['t1', 't9'], 'the second of red waits; blue is its own');
  release();
  await Promise.all([first, ...later]);
  assert.deepEqual(applied, ['t1', 't9', 't5'], 'four requests, one exec, the newest plan');
  await a.idle('red');
  await a.request('red', plan(6));
  assert.deepEqual(applied.at(-1), 't6');
});

test('admissions: a failed one rejects its waiters and says so; the next request is applied afresh', async () => {
  const failed: string[] = [];
  let fail = true;
  const a = new Admissions(async () => {
    if (fail) throw new Error('nft refused');
  }, (p) => failed.push(p.tenant));
  await assert.rejects(a.request('red', plan(1)), /nft refused/);
  assert.deepEqual(failed, ['tenant1'], 'the plan that failed');
  fail = false;
  await a.request('red', plan(2));
  await a.idle('red');
});
