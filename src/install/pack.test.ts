import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PACKAGE_DIR, tempRoot } from './testing.js';

/**
 * `npm pack` of the built checkout, installed the way a user installs it (`npm i -g`, here into a /tmp
 * prefix), runs. Slow and online: npm fetches every dependency from the registry, and better-sqlite3
 * downloads a prebuilt binary from GitHub or, where it cannot (this machine: no route to github.com),
 * compiles one (measured 1 min 39 s in all). It runs with the other root tests (CI runs as root, with
 * the registry the setup used), or when asked: WEFT_SLOW_TESTS=1.
 * WEFT_PACK_FROM packs another directory (a copy with a changed package.json, say).
 */
const slow = process.env['WEFT_SLOW_TESTS'] === '1' || process.getuid?.() === 0;
const from = process.env['WEFT_PACK_FROM'] ?? PACKAGE_DIR;

test('npm pack → npm i -g --prefix DIR weft-VERSION.tgz → DIR/bin/weft --version, and its server starts', { skip: !slow && 'slow and online: runs as root, or with WEFT_SLOW_TESTS=1', timeout: 900_000 }, async (t) => {
  const dir = tempRoot(t);
  const version = JSON.parse(readFileSync(join(from, 'package.json'), 'utf8')).version;
  const pack = spawnSync('npm', ['pack', '--json', '--pack-destination', dir], { cwd: from, encoding: 'utf8', timeout: 120_000 });
  assert.equal(pack.status, 0, pack.stderr);
  const packed = JSON.parse(pack.stdout)[0] as { filename: string; files: Array<{ path: string }> };
  const files = packed.files.map((f) => f.path);
  for (const needed of ['dist/bin/weft.cjs', 'dist/bin/cli.bundle.cjs', 'dist/bin/cli.js', 'dist/bin/weft-cni.js', 'dist/ui/index.html']) {
    assert.ok(files.includes(needed), `the tarball has no ${needed}: dist/ is in .gitignore, so package.json needs "files" naming it`);
  }
  assert.deepEqual(files.filter((f) => /\.test\.js$|\/testdata\//.test(f)), [], 'tests stay out of the package');

  const prefix = join(dir, 'prefix');
  const started = Date.now();
  const install = spawnSync('npm', ['i', '-g', '--prefix', prefix, join(dir, packed.filename), '--no-audit', '--no-fund'], { encoding: 'utf8', timeout: 840_000 });
  t.diagnostic(`npm i -g took ${((Date.now() - started) / 1000).toFixed(1)} s`);
  assert.equal(install.status, 0, install.stderr);

  const weft = join(prefix, 'bin', 'weft');
  const v = spawnSync(weft, ['--version'], { encoding: 'utf8' });
  assert.deepEqual([v.status, v.stdout.trim()], [0, version]);

  // The server loads what only it needs (fastify, the native SQLite module), and serves.
  const data = join(dir, 'data');
  const server = spawn(weft, ['server', '--listen', '127.0.0.1:0', '--data-dir', data, '--log-level', 'warn'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  server.stdout.on('data', (d) => (out += d));
  server.stderr.on('data', (d) => (out += d));
  const exited = new Promise((r) => server.once('exit', r));
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the installed server did not start:\n${out}`)), 30_000);
      server.stdout.on('data', () => /listening on https:/.test(out) && (clearTimeout(timer), resolve()));
      server.once('exit', (code) => (clearTimeout(timer), reject(new Error(`the installed server exited ${code}:\n${out}`))));
    });
    assert.match(out, /store: sqlite/);
  } finally {
    server.kill('SIGTERM');
    await exited;
  }
});
