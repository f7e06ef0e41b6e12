import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkTarget } from './target.js';

test('only canonical request targets reach Docker: what the hooks match is what Docker routes', () => {
  for (const ok of ['/v1.41/containers/create?name=a%2Fb', '/_ping', '/v1.41/images/localhost:5000/foo/bar:1.0/json', '/v1.41/containers/json?filters=%7B%7D', '/']) assert.equal(checkTarget(ok), undefined, ok);
  for (const bad of ['http://x/v1.41/containers/create', 'x:80', '*', '/v1.41/containers/%63reate', '/v1.41%2Fcontainers/create', '//v1.41/containers/create',
    '/v1.41//containers/create', '/v1.41/./containers/create', '/v1.41/x/../containers/create', '/v1.41/containers/create/..', '/v1.41\\containers/create', '/a\0b', '/a b']) {
    assert.ok(checkTarget(bad), bad);
  }
});
