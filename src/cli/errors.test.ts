import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ERROR_CATALOGUE, type ErrorCode } from '../model/index.js';
import { makeTestPki } from '../testkit/pki.js';
import type { Daemons } from './commands/daemon.js';
import { EXIT, exitCodeForStatus } from './errors.js';
import { runCli } from './program.js';

test('every server-side failure in the catalogue (and a request the server timed out) exits "try again later", apart from usage, not-found, conflict, auth and a crash', () => {
  const codes = Object.keys(ERROR_CATALOGUE) as ErrorCode[];
  for (const code of codes.filter((c) => ERROR_CATALOGUE[c].status >= 500)) {
    assert.equal(exitCodeForStatus(ERROR_CATALOGUE[code].status), EXIT.unavailable, code);
  }
  for (const code of codes.filter((c) => ERROR_CATALOGUE[c].status < 500 && c !== 'WEFT_REQUEST_TIMEOUT')) {
    assert.notEqual(exitCodeForStatus(ERROR_CATALOGUE[code].status), EXIT.unavailable, code);
  }
  assert.equal(exitCodeForStatus(502), EXIT.unavailable, 'a proxy in front of a dead server');
  assert.equal(exitCodeForStatus(ERROR_CATALOGUE.WEFT_REQUEST_TIMEOUT.status), EXIT.unavailable, 'a body the server gave up waiting for: nothing was done, try again');
  assert.equal(exitCodeForStatus(0, 'unreachable'), EXIT.unavailable, 'no server answered: try again later too');
  assert.equal(exitCodeForStatus(0, 'tls'), EXIT.failed, 'a server refused as untrusted is not retried');
  assert.equal(exitCodeForStatus(0, 'plain-http'), EXIT.usage);
  const distinct = new Set(Object.values(EXIT));
  assert.equal(distinct.size, Object.keys(EXIT).length, 'every exit code means one thing');
});

test('weft exits 6 when the server answers 503 WEFT_STORE_UNAVAILABLE, and names the problem', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-exit-'));
  const pki = await makeTestPki(dir, []);
  const problem = { type: 'about:blank', title: 'Store unavailable, retry', status: 503, code: 'WEFT_STORE_UNAVAILABLE', detail: 'the store did not answer in 5 s' };
  const server = createServer({ cert: readFileSync(pki.server.cert), key: readFileSync(pki.server.key) }, (_req, res) =>
    res.writeHead(503, { 'content-type': 'application/problem+json' }).end(JSON.stringify(problem)));
  const port = await new Promise<number>((r) => server.listen(0, '127.0.0.1', () => r((server.address() as AddressInfo).port)));
  let err = '';
  try {
    const env = { HOME: dir, WEFT_SERVER: `https://127.0.0.1:${port}`, WEFT_TOKEN: 'weft_test', WEFT_CA: pki.ca };
    const code = await runCli(['tenant', 'ls'], { out: () => undefined, err: (t) => (err += t), env }, {} as Daemons);
    assert.equal(code, EXIT.unavailable);
    assert.match(err, /the store did not answer in 5 s/);
  } finally {
    server.closeAllConnections();
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("weft get refuses -o table (it prints documents) with a usage error before any request; -ojson is -o json", async () => {
  let err = '';
  const io = { out: () => undefined, err: (t: string) => (err += t), env: { HOME: '/nonexistent', WEFT_SERVER: 'https://127.0.0.1:1' } };
  assert.equal(await runCli(['get', 'networks', '-o', 'table'], io, {} as Daemons), EXIT.usage);
  assert.match(err, /get: -o yaml or json/);
  err = '';
  // Joined: reaches the request (refused: nothing listens on port 1), not an unknown option.
  const code = await runCli(['get', 'networks', '-ojson'], io, {} as Daemons);
  assert.doesNotMatch(err, /unknown option/, err);
  assert.notEqual(code, EXIT.usage, err);
});

test('weft group update with nothing to change is a usage error before any request (it wrote a revision every agent saw); a label key given twice is refused', async () => {
  let err = '';
  const io = { out: () => undefined, err: (t: string) => (err += t), env: { HOME: '/nonexistent', WEFT_SERVER: 'https://127.0.0.1:1' } };
  assert.equal(await runCli(['group', 'update', 'db'], io, {} as Daemons), EXIT.usage);
  assert.match(err, /group update: nothing to change/);
  err = '';
  assert.equal(await runCli(['group', 'create', 'n', 'g', '-l', 'tier=web', '-l', 'tier=db'], io, {} as Daemons), EXIT.usage);
  assert.match(err, /'tier' is given twice/);
});

test('rm verbs answer -o json with what was deleted (they printed a sentence whatever -o said)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-rm-'));
  const pki = await makeTestPki(dir, []);
  const server = createServer({ cert: readFileSync(pki.server.cert), key: readFileSync(pki.server.key) }, (_req, res) => res.writeHead(204).end());
  const port = await new Promise<number>((r) => server.listen(0, '127.0.0.1', () => r((server.address() as AddressInfo).port)));
  try {
    const env = { HOME: dir, WEFT_SERVER: `https://127.0.0.1:${port}`, WEFT_TOKEN: 'weft_test', WEFT_CA: pki.ca };
    for (const [argv, want] of [
      [['tenant', 'rm', 'blue', '-o', 'json'], { kind: 'tenant', name: 'blue' }],
      [['group', 'rm', 'db', '-t', 'shop', '-o', 'json'], { kind: 'group', tenant: 'shop', name: 'db' }],
      [['host', 'rm', 'node2', '-o', 'json'], { kind: 'host', name: 'node2' }],
    ] as const) {
      let out = '';
      assert.equal(await runCli([...argv], { out: (t) => (out += t), err: () => undefined, env }, {} as Daemons), EXIT.ok, argv.join(' '));
      assert.deepEqual(JSON.parse(out), { deleted: want }, argv.join(' '));
    }
    let text = '';
    await runCli(['tenant', 'rm', 'blue'], { out: (t) => (text += t), err: () => undefined, env }, {} as Daemons);
    assert.equal(text, 'tenant blue deleted\n');
  } finally {
    server.closeAllConnections();
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("an error's control characters reach the terminal escaped, its line breaks as they are: a server's message or what was typed", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-exit-'));
  const pki = await makeTestPki(dir, []);
  // A server of another version (or a hostile one the CA vouches for) quoting a key it was sent: a clear
  // screen (ESC [ 2 J), a C1 CSI, a bell, then a second line.
  const detail = 'body: unknown field \u001b[2J\u009b31m\u0007x\nsecond line\tend';
  const problem = { type: 'about:blank', title: 'Invalid', status: 400, code: 'WEFT_INVALID_VALUE', detail };
  const server = createServer({ cert: readFileSync(pki.server.cert), key: readFileSync(pki.server.key) }, (_req, res) =>
    res.writeHead(400, { 'content-type': 'application/problem+json' }).end(JSON.stringify(problem)));
  const port = await new Promise<number>((r) => server.listen(0, '127.0.0.1', () => r((server.address() as AddressInfo).port)));
  try {
    let err = '';
    const env = { HOME: dir, WEFT_SERVER: `https://127.0.0.1:${port}`, WEFT_TOKEN: 'weft_test', WEFT_CA: pki.ca };
    assert.equal(await runCli(['tenant', 'ls'], { out: () => undefined, err: (t) => (err += t), env }, {} as Daemons), EXIT.usage);
    assert.match(err, /unknown field \\x1b\[2J\\x9b31m\\x07x\nsecond line\tend/, err);
    assert.doesNotMatch(err, /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/, 'no control character but the line break and tab');
    // The CLI's own refusal, echoing a flag's value.
    err = '';
    assert.equal(await runCli(['lab', 'run', 'host1', '--network', 'n', '--name', '\u001b]0;owned\u0007', '--', 'true'], { out: () => undefined, err: (t) => (err += t), env }, {} as Daemons), EXIT.usage);
    assert.match(err, /--name: '\\x1b\]0;owned\\x07' must be/, err);
    // Commander's own refusals echo argv too.
    err = '';
    assert.equal(await runCli(['tenant', 'ls', '--\u001b[2Jx'], { out: () => undefined, err: (t) => (err += t), env }, {} as Daemons), EXIT.usage);
    assert.match(err, /unknown option '--\\x1b\[2Jx'/, err);
    assert.doesNotMatch(err, /\u001b/);
  } finally {
    server.closeAllConnections();
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
