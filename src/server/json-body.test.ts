import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WeftError } from '../model/index.js';
import { fieldOf, mayReachPrototype, parseJsonBody, prototypeKeyPath } from './json-body.js';

/** The error parseJsonBody throws for a body (it must throw one). */
function refusedBody(body: string): WeftError {
  try {
    parseJsonBody(body);
  } catch (e) {
    assert.ok(e instanceof WeftError, String(e));
    return e;
  }
  assert.fail(`accepted: ${body.slice(0, 80)}`);
}

test('prototypeKeyPath: the first key that would reach a prototype, in the body\'s order, as keys and indices', () => {
  assert.equal(prototypeKeyPath(JSON.parse('{"a":1,"b":[{"c":2}],"constructor":3}')), undefined, 'a plain constructor value is a key like any other');
  assert.deepEqual(prototypeKeyPath(JSON.parse('{"__proto__":{"admin":true}}')), ['__proto__']);
  assert.deepEqual(prototypeKeyPath(JSON.parse('{"name":"x","labels":{"a":"b","__proto__":"c"}}')), ['labels', '__proto__']);
  assert.deepEqual(prototypeKeyPath(JSON.parse('{"rules":[{"id":"a"},{"id":"b","x":{"constructor":{"prototype":{}}}}]}')), ['rules', '1', 'x', 'constructor']);
  // Two of them: the one the body has first, however deep.
  assert.deepEqual(prototypeKeyPath(JSON.parse('{"a":{"b":{"__proto__":1}},"__proto__":2}')), ['a', 'b', '__proto__']);
  assert.deepEqual(prototypeKeyPath(JSON.parse('[1,[2,{"__proto__":3}]]')), ['1', '1', '__proto__']);
  // A body nested 100,000 deep (a few hundred KB) is walked without running out of stack.
  const deep = `${'['.repeat(100_000)}{"__proto__":1}${']'.repeat(100_000)}`;
  assert.equal(prototypeKeyPath(JSON.parse(deep))?.length, 100_001);
  for (const v of [null, 1, 'x', true, [], {}]) assert.equal(prototypeKeyPath(v), undefined);
  assert.equal(fieldOf(['a', 'b', '__proto__']), 'a.b.__proto__');
  assert.equal(fieldOf(Array.from({ length: 12 }, (_, i) => String(i))), '0.1.2.3.4.5.6.7.8.9.10.11', 'twelve levels in full');
  assert.equal(fieldOf(Array.from({ length: 13 }, (_, i) => String(i))), '0.1.2.3.4.5.6.7.(1 level).9.10.11.12');
});

test('parseJsonBody: text that is not JSON gets the parser\'s message; valid JSON with a prototype key names its field, also spelt with escapes', () => {
  const broken = refusedBody('{"name": }');
  assert.equal(broken.code, 'WEFT_MALFORMED');
  assert.match(broken.message, /^the body is not valid JSON: Unexpected token '\}', .*"\{"name": \}"/, 'the parser\'s message, quoting the text around the error');
  assert.ok(refusedBody(`{"a": "${'x'.repeat(5000)}`).message.length < 300, 'the parser\'s message is cut short');
  const proto = refusedBody('{"name":"z","labels":{"__proto__":"x"}}');
  assert.equal(proto.code, 'WEFT_INVALID_FIELD');
  assert.equal(proto.field, 'labels.__proto__');
  assert.match(proto.message, /^labels\.__proto__: the key '__proto__' is refused/);
  // A byte order mark, which fastify's parser drops, is no reason to call the body broken.
  assert.deepEqual([refusedBody('\uFEFF{"__proto__":1}').code, refusedBody('\uFEFF{"__proto__":1}').field], ['WEFT_INVALID_FIELD', '__proto__']);
  // Keys as a hostile body writes them: quoted, control characters escaped, cut, and the whole name bounded.
  const long = refusedBody(`{"${'k'.repeat(5000)}":{"\\u001b[2J":{"__proto__":1}}}`);
  assert.equal(long.field, `"${'k'.repeat(64)}…"."\\u001b[2J".__proto__`, 'a long key cut, a control character escaped');
  assert.ok(refusedBody(`{${Array.from({ length: 50 }, (_, i) => `"${'a'.repeat(60)}${i}":{`).join('')}"__proto__":1${'}'.repeat(51)}`).field!.length <= 200, 'the whole name bounded');
  // A key holding a dot is quoted (the path stays readable); a newline in a key comes back escaped.
  assert.match(refusedBody('{"a.b":{"\\n":{"__proto__":1}}}').field ?? '', /^"a\.b"\."\\n"\.__proto__$/);
  assert.equal(refusedBody('{"x":{"constructor":{"prototype":null}}}').field, 'x.constructor', 'a prototype key of any value');
  const ctor = refusedBody('{"spec":{"constructor":{"prototype":{"x":1}}}}');
  assert.equal(ctor.field, 'spec.constructor');
  assert.match(ctor.message, /'constructor' key holding 'prototype'/);
  // Spelt with \u escapes, a key is the same key.
  assert.equal(refusedBody('{"a":{"\\u005f_proto__":1}}').field, 'a.__proto__');
  assert.equal(refusedBody('{"\\u0063onstructor":{"prototype":1}}').field, 'constructor');
  assert.deepEqual([refusedBody('').code, refusedBody('   ').code], ['WEFT_MALFORMED', 'WEFT_MALFORMED'], 'empty or blank');
});

test('parseJsonBody: what it accepts, as JSON.parse reads it, a byte order mark dropped', () => {
  for (const body of ['{"name":"x","labels":{"constructor":"y"}}', '{"constructor":{"name":"x"}}', '[1,"\\u0041",{"a":null}]', '"x"', '0', 'null']) {
    assert.deepEqual(parseJsonBody(body), JSON.parse(body), body);
  }
  assert.deepEqual(parseJsonBody('\uFEFF{"a":1}'), { a: 1 });
  // A __proto__ key in a string value is no key.
  assert.deepEqual(parseJsonBody('{"note":"__proto__"}'), { note: '__proto__' });
  // Walked only when a key could spell one of them: plainly, or with an escape of one of their characters.
  for (const t of ['{"__proto__":1}', '{"constructor":1}', '{"\\u005F_proto__":1}', '{"constr\\u0075ctor":1}', '{"\\u0063onstructor":1}', '{"__pr\\u006Fto__":1}']) assert.ok(mayReachPrototype(t), t);
  for (const t of ['{"name":"caf\\u00e9"}', '{"a":"\\u4e2d\\u6587"}', '{"proto":"x"}', '{"a":"\\u0041"}']) assert.ok(!mayReachPrototype(t), t);
});
