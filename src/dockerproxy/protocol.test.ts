import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parsePostHookAnswer, parsePreHookAnswer } from './protocol.js';

const asked = { Method: 'POST', Request: '/v1.47/containers/create?name=a', Body: '{}' };

test('a pre-hook may change the query and the body; never the method or the path', () => {
  assert.deepEqual(parsePreHookAnswer({ PowerstripProtocolVersion: 1, ModifiedClientRequest: { Method: 'POST', Request: '/v1.47/containers/create?name=b', Body: '{"x":1}' } }, asked),
    { Method: 'POST', Request: '/v1.47/containers/create?name=b', Body: '{"x":1}' });
  assert.equal(parsePreHookAnswer({ PowerstripProtocolVersion: 1, ModifiedClientRequest: { Body: { Image: 'bb' } } }, asked).Body, '{"Image":"bb"}', 'an object body (Powerstrip\'s first README) is taken as JSON text');
  assert.throws(() => parsePreHookAnswer({ PowerstripProtocolVersion: 1, ModifiedClientRequest: { Method: 'DELETE', Request: asked.Request, Body: null } }, asked), /Method: a pre-hook may not change the method/);
  assert.throws(() => parsePreHookAnswer({ PowerstripProtocolVersion: 1, ModifiedClientRequest: { Method: 'POST', Request: '/v1.47/containers/x/kill', Body: null } }, asked), /Request: a pre-hook may change the query, not the path/);
  assert.throws(() => parsePreHookAnswer({ PowerstripProtocolVersion: 1, ModifiedClientRequest: { Method: 'POST', Request: '/v1.47/containers/create HTTP/1.1\r\nX: y', Body: null } }, asked), /Request: must be a path/);
  assert.throws(() => parsePreHookAnswer({ PowerstripProtocolVersion: 2, ModifiedClientRequest: {} }, asked), /PowerstripProtocolVersion: must be 1/);
  assert.throws(() => parsePreHookAnswer([], asked), /JSON object/);
  assert.throws(() => parsePreHookAnswer({ PowerstripProtocolVersion: 1 }, asked), /ModifiedClientRequest: missing/);
  assert.throws(() => parsePreHookAnswer({ PowerstripProtocolVersion: 1, ModifiedClientRequest: { Body: 5 } }, asked), /Body: must be a string or null/);
});

test('a post-hook answers a response: a real status, a one-line content type', () => {
  assert.deepEqual(parsePostHookAnswer({ PowerstripProtocolVersion: 1, ModifiedServerResponse: { ContentType: 'application/json', Body: '{"Id":"x"}', Code: 201 } }),
    { ContentType: 'application/json', Body: '{"Id":"x"}', Code: 201 });
  assert.throws(() => parsePostHookAnswer({ PowerstripProtocolVersion: 1, ModifiedServerResponse: { ContentType: 'a', Body: null, Code: 99 } }), /Code: must be an HTTP status/);
  assert.throws(() => parsePostHookAnswer({ PowerstripProtocolVersion: 1, ModifiedServerResponse: { ContentType: 'a', Body: null, Code: 101 } }), /Code/, 'never a protocol switch');
  assert.throws(() => parsePostHookAnswer({ PowerstripProtocolVersion: 1, ModifiedServerResponse: { ContentType: 'a\r\nSet-Cookie: x', Body: null, Code: 200 } }), /ContentType: must be a header value/);
  assert.throws(() => parsePostHookAnswer({ PowerstripProtocolVersion: 1, ModifiedResponse: {} }), /ModifiedServerResponse: missing/);
});
