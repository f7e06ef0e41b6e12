import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AjvCompiler } from '@fastify/ajv-compiler';
import { testApi } from './testkit.js';
import { lazyValidators } from './validators.js';

/** A value no route accepts for a name, an id, a number or an enum: not a DNS label, not digits, not hex. */
const BAD = 'Not A Value!';

interface Operation { method: string; path: string; body: boolean; params: Array<{ in: string; name: string }> }

function operations(doc: { paths: Record<string, Record<string, { requestBody?: unknown; parameters?: Array<{ in: string; name: string }> }>> }): Operation[] {
  return Object.entries(doc.paths).flatMap(([path, ops]) => Object.entries(ops).map(([method, op]) => ({ method: method.toUpperCase(), path, body: op.requestBody !== undefined, params: op.parameters ?? [] })));
}

test('issue 13: route schemas compile on first use, and bad input is still refused naming its field on every validated route, changing nothing', async () => {
  const compiled = { count: 0 };
  const api = await testApi({ validators: lazyValidators(AjvCompiler(), compiled) });
  try {
    assert.equal(compiled.count, 0, 'nothing compiled at start-up');
    const ops = operations((await api.call('GET', '/api/v1/openapi.json')).json).filter((o) => o.body || o.params.length > 0);
    assert.ok(ops.length > 60, `routes with a schema: ${ops.length}`);
    const before = (await api.call('GET', '/api/v1/history')).json;
    for (const op of ops) {
      // A body with a field no schema has (its path valid); else the first parameter given a bad value.
      const badParam = op.body ? undefined : op.params[0];
      const path = op.path.replace(/\{(\w+)\}/g, (_m, name: string) => (badParam?.in === 'path' && badParam.name === name ? encodeURIComponent(BAD) : name === 'tenant' ? 'default' : 'x'));
      const qs = badParam?.in === 'query' ? `?${badParam.name}=${encodeURIComponent(BAD)}` : '';
      const r = await api.call(op.method, `${path}${qs}`, op.body ? { zzUnknown: 1 } : undefined);
      const what = `${op.method} ${op.path} ${op.body ? 'with an unknown body field' : `with ${badParam?.in} ${badParam?.name} = '${BAD}'`}`;
      assert.equal(r.status, 400, `${what}: ${JSON.stringify(r.json)}`);
      assert.match(r.json.code, /^WEFT_(INVALID|UNKNOWN)_FIELD$/, what);
      assert.ok(typeof r.json.field === 'string' && r.json.field.length > 0, `${what}: names no field`);
      // A query with other required parameters may be refused for the first one missing: still one of its own.
      if (badParam) assert.ok(op.params.some((p) => p.name === r.json.field), `${what}: names ${r.json.field}`);
    }
    assert.ok(compiled.count >= ops.length, `each route compiled what it validated (${compiled.count} compilations)`);
    assert.deepEqual((await api.call('GET', '/api/v1/history')).json, before, 'the refused requests changed nothing');
  } finally {
    await api.app.close();
  }
});

test('every route schema compiles (compiled at start-up, as fastify does by default): a lazy one cannot hide a broken schema', async () => {
  const api = await testApi({ validators: AjvCompiler() });
  await api.app.close();
});

test("the server's default validator compiler defers: a schema is compiled when a request first needs it", async () => {
  const api = await testApi();
  try {
    // An invalid schema shows when compiling happens: fastify's eager compiler throws here.
    const compile = (api.app as unknown as { validatorCompiler: (r: object) => (d: unknown) => boolean }).validatorCompiler;
    const validate = compile({ schema: { type: 'no-such-type' }, method: 'POST', url: '/x', httpPart: 'body' });
    assert.throws(() => validate({}), /no-such-type|schema is invalid/);
  } finally {
    await api.app.close();
  }
});
