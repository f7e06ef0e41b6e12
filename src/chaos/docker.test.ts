import assert from 'node:assert/strict';
import { test } from 'node:test';
import { dockerChanges } from './docker.js';

const st = (endpoints: string[], networks = ['n1']) => ({ endpoints, networks });

test('a malformed request changed nothing: only the background release of a removed container may end an endpoint', () => {
  assert.deepEqual(dockerChanges(st(['a', 'b']), st(['a', 'b']), new Set(['a', 'b'])), []);
  // b's container was removed just before: the plugin releases it after answering Docker.
  assert.deepEqual(dockerChanges(st(['a', 'b']), st(['a']), new Set(['a'])), []);
});

test('an endpoint that appears, one of a running container that goes, or a network change is reported', () => {
  assert.deepEqual(dockerChanges(st(['a']), st(['a', 'c']), new Set(['a'])), ['endpoint c appeared']);
  assert.deepEqual(dockerChanges(st(['a', 'b']), st(['b']), new Set(['a', 'b'])), ['endpoint a of a running container went']);
  assert.deepEqual(dockerChanges(st(['a']), st(['a'], []), new Set(['a'])), ['networks ["n1"] became []']);
  assert.deepEqual(dockerChanges(st(['a']), st(['a'], ['n1', 'n2']), new Set(['a'])), ['networks ["n1"] became ["n1","n2"]']);
});
