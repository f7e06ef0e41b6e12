import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Script } from 'node:vm';
import runBundleModule from './run-bundle.cjs';
import { WEFT_BIN } from '../testkit/server.js';

const { encodeCache, runBundle } = runBundleModule;
const require = createRequire(import.meta.url);
const RUN_BUNDLE = join(dirname(WEFT_BIN), 'run-bundle.cjs');

/**
 * Issue 13: the client bundle runs with V8's code cache from the build. A cache may only ever change speed:
 * whatever the file holds, the bundle's own code runs. Small bundles of the same length stand in for the
 * real one: V8 tells sources apart by length only, which is what makes a stale cache dangerous.
 */
const A = 'module.exports = { says: "aaa" };';
const B = 'module.exports = { says: "bbb" };';
let dir = '';
let n = 0;

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'weft-run-bundle-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** V8's cache of `source` compiled as runBundle compiles it (CommonJS wrapper, the file's name). */
function v8Cache(source: string, file: string): Buffer {
  return new Script(require('node:module').wrap(source), { filename: file }).createCachedData();
}

/** A fresh bundle file holding A (each its own path: require.cache keeps what ran). */
function bundleA(): { file: string; cache: string } {
  const sub = join(dir, `b${n++}`);
  mkdirSync(sub);
  const file = join(sub, 'bundle.cjs');
  writeFileSync(file, A, { mode: 0o644 });
  return { file, cache: join(sub, 'bundle.cache') };
}

function run(b: { file: string; cache: string }): { use: string; says: string } {
  const use = runBundle(b.file, b.cache);
  return { use, says: (require.cache[b.file]?.exports as { says: string }).says };
}

test('a cache the build made for this bundle is used, and the bundle runs', () => {
  const b = bundleA();
  writeFileSync(b.cache, encodeCache(Buffer.from(A), v8Cache(A, b.file)), { mode: 0o644 });
  assert.deepEqual(run(b), { use: 'used', says: 'aaa' });
});

test('V8 alone runs a stale cache of other code of the same length: the reason for our checks', () => {
  const b = bundleA();
  const s = new Script(require('node:module').wrap(A), { filename: b.file, cachedData: v8Cache(B, b.file) });
  assert.equal(s.cachedDataRejected, false, 'V8 accepted the cache of B for the source A');
  const m = { exports: {} as { says?: string } };
  (s.runInThisContext() as (e: unknown, r: unknown, m: unknown) => void)(m.exports, require, m);
  assert.equal(m.exports.says, 'bbb', 'and ran B');
});

test('a stale cache (made for another bundle of the same length) is ignored: the bundle itself runs', () => {
  const b = bundleA();
  writeFileSync(b.cache, encodeCache(Buffer.from(B), v8Cache(B, b.file)), { mode: 0o644 });
  assert.deepEqual(run(b), { use: 'none', says: 'aaa' });
});

test('a hostile or broken cache is ignored: right header over other code, flipped bytes, truncated, garbage, empty', () => {
  const good = encodeCache(Buffer.from(A), v8Cache(A, 'x'));
  const header = good.subarray(0, good.length - v8Cache(A, 'x').length);
  const otherPayload = v8Cache(B, 'x');
  const flipped = Buffer.from(good);
  flipped[flipped.length - 40] = (flipped[flipped.length - 40] ?? 0) ^ 0xff;
  const cases: Record<string, Buffer> = {
    'header of A, payload of B': Buffer.concat([header, otherPayload]),
    'one payload byte flipped': flipped,
    truncated: good.subarray(0, good.length - 100),
    'header only': header,
    garbage: Buffer.alloc(4096, 0x41),
    empty: Buffer.alloc(0),
  };
  for (const [name, bytes] of Object.entries(cases)) {
    const b = bundleA();
    writeFileSync(b.cache, bytes, { mode: 0o644 });
    assert.deepEqual(run(b), { use: 'none', says: 'aaa' }, name);
  }
});

test('a cache that is not a small regular file is not read: a FIFO (no hang), a directory, 9 MiB', () => {
  const fifo = bundleA();
  execFileSync('mkfifo', [fifo.cache]);
  assert.deepEqual(run(fifo), { use: 'none', says: 'aaa' }, 'fifo');
  const directory = bundleA();
  mkdirSync(directory.cache);
  assert.deepEqual(run(directory), { use: 'none', says: 'aaa' }, 'directory');
  const huge = bundleA();
  writeFileSync(huge.cache, encodeCache(Buffer.from(A), v8Cache(A, huge.file)));
  truncateSync(huge.cache, 9 * 1024 * 1024);
  assert.deepEqual(run(huge), { use: 'none', says: 'aaa' }, 'huge');
});

test('a cache trusted less than the bundle is ignored: writable by group or others, another owner', { skip: process.getuid?.() !== 0 && 'chown needs root' }, () => {
  const writable = bundleA();
  writeFileSync(writable.cache, encodeCache(Buffer.from(A), v8Cache(A, writable.file)));
  chmodSync(writable.cache, 0o666);
  assert.deepEqual(run(writable), { use: 'none', says: 'aaa' }, 'world-writable');
  const group = bundleA();
  writeFileSync(group.cache, encodeCache(Buffer.from(A), v8Cache(A, group.file)));
  chmodSync(group.cache, 0o664);
  assert.deepEqual(run(group), { use: 'none', says: 'aaa' }, 'group-writable');
  const other = bundleA();
  writeFileSync(other.cache, encodeCache(Buffer.from(A), v8Cache(A, other.file)), { mode: 0o644 });
  chownSync(other.cache, 65534, 65534);
  assert.deepEqual(run(other), { use: 'none', says: 'aaa' }, 'owned by nobody');
});

test('a cache another V8 made (other flags here) is rejected by V8 and the bundle compiles from source', () => {
  const b = bundleA();
  const made = `const v=require('node:vm');const m=require('node:module');process.stdout.write(new v.Script(m.wrap(${JSON.stringify(A)}),{filename:${JSON.stringify(b.file)}}).createCachedData().toString('base64'))`;
  const payload = Buffer.from(execFileSync(process.execPath, ['--no-opt', '-e', made], { encoding: 'utf8' }), 'base64');
  writeFileSync(b.cache, encodeCache(Buffer.from(A), payload), { mode: 0o644 });
  assert.deepEqual(run(b), { use: 'rejected', says: 'aaa' });
});

test('the build left a cache that the real bundle uses, and weft runs from it', () => {
  const bin = dirname(WEFT_BIN);
  const probe = `const r=require(${JSON.stringify(RUN_BUNDLE)}).runBundle(${JSON.stringify(join(bin, 'cli.bundle.cjs'))},${JSON.stringify(join(bin, 'cli.bundle.cache'))});process.stderr.write('cache:'+r)`;
  const r = spawnSync(process.execPath, ['-e', probe, '--', 'x', '--version'], { encoding: 'utf8', env: { PATH: process.env['PATH'] ?? '', HOME: dir } });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), '0.1.0');
  assert.match(r.stderr, /cache:used/);
  assert.ok(readFileSync(join(bin, 'cli.bundle.cache')).length > 50_000, 'more than the top level was compiled into it');
});
