import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ambiguousShortNames, conflistName, shortConflistName, shortNameTwins } from './conflists.js';

test('the dotted name is unambiguous; the short one is shared by every split of tenant-name at a dash', () => {
  assert.equal(conflistName('acme', 'prod-db'), 'weft.acme.prod-db');
  assert.notEqual(conflistName('acme', 'prod-db'), conflistName('acme-prod', 'db'));
  assert.equal(shortConflistName('acme', 'prod-db'), shortConflistName('acme-prod', 'db'));
  assert.deepEqual(shortNameTwins('acme', 'prod-db'), [{ tenant: 'acme-prod', name: 'db' }]);
  assert.deepEqual(shortNameTwins('acme-prod', 'db'), [{ tenant: 'acme', name: 'prod-db' }]);
  assert.deepEqual(shortNameTwins('a', 'b-c-d'), [{ tenant: 'a-b', name: 'c-d' }, { tenant: 'a-b-c', name: 'd' }]);
  assert.deepEqual(shortNameTwins('blue', 'db'), [], 'no dash, no twin');
  assert.deepEqual(shortNameTwins('a', 'b--c'), [], 'splits that are not Weft names (a trailing or leading dash) are no twins');
  assert.deepEqual(shortNameTwins('a--b', 'c'), [], 'a--b-c splits only into names with an edge dash or the pair itself');
});

test('a short name is ambiguous only while two objects hold it', () => {
  assert.deepEqual([...ambiguousShortNames([{ tenant: 'acme', name: 'prod-db' }, { tenant: 'acme-prod', name: 'db' }, { tenant: 'acme', name: 'web' }])], ['weft-acme-prod-db']);
  assert.deepEqual([...ambiguousShortNames([{ tenant: 'acme', name: 'prod-db' }, { tenant: 'acme', name: 'web' }])], []);
});
