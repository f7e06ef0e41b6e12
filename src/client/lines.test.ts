import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ApiError } from './client.js';
import { linesOf } from './lines.js';

async function* chunks(...parts: Array<string | Buffer>): AsyncGenerator<Buffer> {
  for (const p of parts) yield Buffer.isBuffer(p) ? p : Buffer.from(p);
}
const all = async (it: AsyncIterable<string>) => { const out: string[] = []; for await (const l of it) out.push(l); return out; };

test('lines split across chunks, several in one chunk, a character split between chunks, an unended tail dropped', async () => {
  const euro = Buffer.from('€');
  const got = await all(linesOf(chunks('{"a":', '1}\n{"b":2}\n{"c', `":"`, euro.subarray(0, 1), Buffer.concat([euro.subarray(1), Buffer.from('"}\n\npartial')]))));
  assert.deepEqual(got, ['{"a":1}', '{"b":2}', '{"c":"€"}', '']);
});

test('a line of exactly the bound passes; one byte more ends the iteration with a clear error, whether it ends later or never', async () => {
  assert.deepEqual(await all(linesOf(chunks('x'.repeat(6), 'x'.repeat(4), '\nok\n'), 10)), ['x'.repeat(10), 'ok']);
  for (const parts of [['x'.repeat(6), 'x'.repeat(5), '\n'], ['ok\n', 'x'.repeat(11)], ['x'.repeat(11), '\n']]) {
    const e = await all(linesOf(chunks(...parts), 10)).catch((x: unknown) => x);
    assert.ok(e instanceof ApiError && e.code === 'line-too-long', String(e));
    assert.match((e as Error).message, /longer than 10 bytes/);
  }
});
