import { test } from 'node:test';
import assert from 'node:assert/strict';
import { normaliseArgv } from './argv.js';
import { renderData, renderTable } from './output.js';

test("netctl's single-dash long flags become double-dash; short flags and everything after -- stay", () => {
  assert.deepEqual(
    normaliseArgv(['policy', 'rule-add', 'db-policy', '1', '-direction=in', '-protocol=tcp', '-port', '8888', '-t', 'blue', '-from-ip-address=10.0.0.0/8']),
    ['policy', 'rule-add', 'db-policy', '1', '--direction=in', '--protocol=tcp', '--port', '8888', '-t', 'blue', '--from-cidr=10.0.0.0/8'],
  );
  assert.deepEqual(normaliseArgv(['group', 'create', '-networkprofile=gold', 'n', 'g']), ['group', 'create', '--netprofile=gold', 'n', 'g']);
  // kubectl's joined output flag; anything after `--` is left alone.
  assert.deepEqual(normaliseArgv(['tenant', 'ls', '-ojson']), ['tenant', 'ls', '-o', 'json']);
  assert.deepEqual(normaliseArgv(['get', 'networks', '-oyaml', '--', '-ojson']), ['get', 'networks', '-o', 'yaml', '--', '-ojson']);
  assert.deepEqual(normaliseArgv(['net', 'ls', '-json']), ['net', 'ls', '--output=json']);
  assert.deepEqual(normaliseArgv(['lab', 'run', 'h1', '--', 'nc', '-ll', '-p', '8888']), ['lab', 'run', 'h1', '--', 'nc', '-ll', '-p', '8888']);
});

test('tables align columns and show empty values as a dash', () => {
  const out = renderTable([{ a: 'x', b: [] as string[] }, { a: 'longer', b: ['p', 'q'] }], [{ header: 'NAME', get: (r) => r.a }, { header: 'LIST', get: (r) => r.b }]);
  assert.equal(out, 'NAME    LIST\nx       -\nlonger  p,q');
});

test('a table shows control characters as \\xNN: a host\'s or another user\'s text cannot drive the terminal', () => {
  const out = renderTable([{ v: '0.1\u001b]0;owned\u0007\u001b[2J', l: { k: 'a\u009b31m' } }], [{ header: 'VERSION', get: (r) => r.v }, { header: 'LABELS', get: (r) => r.l }]);
  assert.ok(!/[\u0000-\u001f\u007f-\u009f]/.test(out.replace(/\n/g, '')), JSON.stringify(out));
  assert.equal(out.split('\n')[1], '0.1\\x1b]0;owned\\x07\\x1b[2J  k=a\\x9b31m');
});

test('-o json and -o yaml escape DEL and C1 controls too (JSON.stringify and YAML leave them for the terminal to act on), and read back the same', async () => {
  const { default: YAML } = await import('yaml');
  const data = { v: 'a\u009b2Jb\u007fc\u001b[0m', ok: 'plain' };
  for (const format of ['json', 'yaml'] as const) {
    const out = renderData(data, format);
    assert.ok(!/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/.test(out), `${format}: ${JSON.stringify(out)}`);
    assert.deepEqual(format === 'json' ? JSON.parse(out) : YAML.parse(out), data, format);
  }
  assert.equal(renderData({ ok: 'plain' }, 'yaml'), 'ok: plain', 'plain data stays YAML');
});
