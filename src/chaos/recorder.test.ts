import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Recorder } from './recorder.js';

test('a failed check is a violation with its detail; the failure report names the seed and the timeline', () => {
  const out: string[] = [];
  const rec = new Recorder(99, (l) => out.push(l));
  rec.fault('agent SIGKILL + restart', 'host2');
  assert.equal(rec.check('denied flow never succeeds', true, () => 'unused'), true);
  assert.equal(rec.check('denied flow never succeeds', false, () => 'pc -> sb:8888 answered'), false);
  assert.equal(rec.checks.get('denied flow never succeeds'), 2);
  assert.deepEqual(rec.violations, ['VIOLATION denied flow never succeeds: pc -> sb:8888 answered']);
  const report = rec.failureReport();
  assert.match(report, /replay with --seed 99/);
  assert.match(report, /FAULT agent SIGKILL \+ restart: host2/);
  assert.equal(out.length, 2, 'the fault and the violation were printed as they happened');
});

test('the summary is a markdown block with faults and checks by kind, totals and the violation count', () => {
  const rec = new Recorder(5, () => undefined);
  rec.fault('etcd member SIGKILL + restart', 'e1');
  rec.check('stream never cut', true, () => '');
  rec.check('stream never cut', true, () => '');
  const s = rec.summary({ minutes: 2, hosts: 3, machine: 'test' });
  assert.match(s, /seed 5, 3 hosts, 2 min asked/);
  assert.match(s, /\| etcd member SIGKILL \+ restart \| 1 \|\n\| \*\*total\*\* \| 1 \|/);
  assert.match(s, /\| stream never cut \| 2 \|\n\| \*\*total\*\* \| 2 \|/);
  assert.match(s, /Violations: 0 \(target 0\)$/);
});
