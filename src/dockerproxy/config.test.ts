import assert from 'node:assert/strict';
import { test } from 'node:test';
import { defaultConfig, matchEndpoint, parseConfig } from './config.js';
import { globToRegExp } from './glob.js';

test('endpoints match as Powerstrip matched them: shell globs, query stripped, method optional', () => {
  const yes = ['/v1.16/containers/create', '/v1*/containers/create', '/*/containers/create', '/*/*/create', '/v[12]*/containers/create'];
  for (const g of yes) assert.ok(globToRegExp(g).test('/v1.16/containers/create'), g);
  assert.ok(!globToRegExp('/v[!1]*/containers/create').test('/v1.16/containers/create'));
  assert.ok(!globToRegExp('/*/containers/create').test('/containers/create'), 'a version segment is needed where the glob has one');
  assert.ok(!globToRegExp('/v1.16/containers/create').test('/v1x16/containers/create'), 'a dot is a dot');
  const c = parseConfig({ endpoints: { 'POST /*/containers/create': { pre: ['weft'] }, '/*/containers/*/start': { post: ['a'] } }, adapters: { a: 'http://127.0.0.1:9/x' } });
  assert.equal(matchEndpoint(c, 'POST', '/v1.47/containers/create?name=web')?.spec, 'POST /*/containers/create');
  assert.equal(matchEndpoint(c, 'GET', '/v1.47/containers/create'), undefined, 'the method counts');
  assert.equal(matchEndpoint(c, 'POST', '/v1.47/containers/abc/start')?.spec, '/*/containers/*/start');
  assert.equal(matchEndpoint(c, 'GET', '/v1.47/containers/json'), undefined);
  assert.equal(matchEndpoint(defaultConfig(), 'POST', '/containers/create')?.pre[0], 'weft', 'the default hooks unversioned creates too');
});

test('a bad adapters file is refused naming the field', () => {
  const bad: Array<[unknown, RegExp]> = [
    ['text', /mapping/],
    [{ endpoints: [], adapters: {} }, /endpoints: must be a mapping/],
    [{ endpoints: {}, extra: 1 }, /unknown key 'extra'/],
    [{ endpoints: { 'POST': { pre: [] } } }, /endpoints\."POST"/],
    [{ endpoints: { 'POST /x': { pre: 'weft' } } }, /endpoints\."POST \/x"\.pre: must be a list/],
    [{ endpoints: { 'POST /x': { pre: ['nope'] } } }, /\.pre: no adapter 'nope'/],
    [{ endpoints: { 'POST /x': { post: ['weft'] } } }, /\.post: the built-in 'weft' adapter is a pre-hook/],
    [{ endpoints: { 'POST /x': { pre: [], around: [] } } }, /unknown key 'around'/],
    [{ endpoints: {}, adapters: { a: 'file:///etc/passwd' } }, /adapters\.a: must be an http/],
    [{ endpoints: {}, adapters: { a: 'http://u:secret@h/' } }, /adapters\.a: credentials/],
    [{ endpoints: {}, adapters: { a: 42 } }, /adapters\.a:/],
    [{ endpoints: {}, adapters: { 'a b': 'http://h/' } }, /adapters\.a b: a name/],
    [{ endpoints: {}, adapters: { weft: 'http://h/' } }, /adapters\.weft: 'weft' is the built-in/],
    [{ endpoints: { 'POST /x': { pre: Array(17).fill('weft') } } }, /at most 16/],
  ];
  for (const [doc, re] of bad) assert.throws(() => parseConfig(doc), re, JSON.stringify(doc));
});
