import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeCommit, encodeCommit, type CommitRequest } from './sqlite-write.js';

const req: CommitRequest = {
  rows: [['endpoints/a1', '{"ip":"10.0.0.2","name":"é ✓ \\"q\\""}', 7, 5], ['ipam/t/n', null, 0, 0], ['x', '""', 7, 7]],
  log: [[6, 0, 'endpoints/a1', 'put', '{"ip":"10.0.0.2"}', 'host:h1', '2026-11-29T00:00:00.000Z'], [7, 0, 'ipam/t/n', 'delete', '{"used":1}', 'admin', '2026-11-29T00:00:01.000Z']],
  base: 5,
  revision: 7,
  transactions: 2,
};

test('writer messages: a commit crosses to the writer thread as one string and comes back the same', () => {
  const s = encodeCommit(req);
  assert.equal(typeof s, 'string');
  assert.deepEqual(decodeCommit(s as string), req);
  assert.deepEqual(decodeCommit(encodeCommit({ rows: [], log: [], base: 0, revision: 0, transactions: 0 }) as string), { rows: [], log: [], base: 0, revision: 0, transactions: 0 });
});

test('writer messages: a field holding the separator is not encoded (the request goes as it is)', () => {
  assert.equal(encodeCommit({ ...req, log: [[6, 0, 'k', 'put', '1', 'bad\u0000actor', 't']] }), undefined);
  assert.equal(encodeCommit({ ...req, rows: [['k\u0000', '1', 1, 1]] }), undefined);
});
