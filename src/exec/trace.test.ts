import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeRunner } from './runner.js';
import { TracingRunner } from './trace.js';

test('the trace records each command, its input and how it ended, readable by its owner only, and passes results through', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'weft-trace-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const dir = join(root, 'trace');
  const inner = new FakeRunner((argv) => (argv[0] === 'wg' ? { stdout: 'PRIVATEKEY\tpub\t51820\n' } : argv[0] === 'false' ? { code: 1, stderr: 'no' } : undefined));
  const r = new TracingRunner(inner, dir);
  await r.run(['nft', '-f', '-'], { input: 'table inet weft {}\n' });
  assert.equal((await r.run(['wg', 'show', 'wg0', 'dump'])).stdout, 'PRIVATEKEY\tpub\t51820\n', 'the result is the inner runner\'s');
  assert.equal((await r.run(['false'], { allowFailure: true })).code, 1);
  await assert.rejects(r.run(['false']), /no/);
  const log = readFileSync(join(dir, 'trace.log'), 'utf8').split('\n').filter(Boolean);
  assert.match(log[0] ?? '', /^# pid \d+/);
  assert.match(log[1] ?? '', /^0 \d+-\d+ code=0 \["nft","-f","-"\]$/);
  assert.match(log[3] ?? '', /^2 \d+-\d+ code=1 \["false"\] stderr="no"$/);
  assert.match(log[4] ?? '', /^3 \d+-\d+ threw /);
  assert.equal(readFileSync(join(dir, '0.in'), 'utf8'), 'table inet weft {}\n');
  assert.doesNotMatch(readFileSync(join(dir, 'trace.log'), 'utf8'), /PRIVATEKEY/, 'standard output is never written');
  assert.equal(statSync(dir).mode & 0o777, 0o700);
  for (const f of ['trace.log', '0.in']) assert.equal(statSync(join(dir, f)).mode & 0o077, 0, `${f} is 0600`);
});
