import { test } from 'node:test';
import assert from 'node:assert/strict';
import { withOverrides } from './argv.js';

test('defaults the overrides give again are left out, with their values; the rest kept in order', () => {
  assert.deepEqual(
    withOverrides(['agent', '--log-level', 'warn', '--docker-plugin', 'none', '--dns-upstream', 'none', '--verbose'], ['--docker-plugin', '/run/x.sock', '--log-level=debug']),
    ['agent', '--dns-upstream', 'none', '--verbose', '--docker-plugin', '/run/x.sock', '--log-level=debug'],
  );
  assert.deepEqual(withOverrides(['a', '--x', '1'], []), ['a', '--x', '1']);
  assert.deepEqual(withOverrides(['--flag'], ['--flag']), ['--flag']);
});
