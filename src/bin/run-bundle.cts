// Runs cli.bundle.cjs as require() would, compiled with V8's code cache when `npm run build` left one beside
// it for exactly this bundle (issue 13; docs/decisions.md, "CLI start-up"). The cache only saves compiling:
// any doubt about it (missing, stale, corrupt, hostile, writable by someone the bundle is not writable by)
// means compiling the source as if there were none. Nothing is written at run time.
//
// Why the checks are ours: V8 matches a cache to its source by the source's length only, and release
// builds do not checksum the cache (run-bundle.test.ts shows a cache made for other code of the same
// length being accepted, and that code running). So the file carries the SHA-256 of the bundle it was made
// for and of its own payload, and it is trusted no further than the bundle: same owner, no more writable.
import fs = require('node:fs');
import path = require('node:path');
import vm = require('node:vm');

/** The CommonJS loader's class; `require('node:module')` would also load the ES module loader (~1.5 ms). */
const Module = module.constructor as typeof import('node:module');

const MAGIC = Buffer.from('weft-v8-cache-1\n');
const HASH_BYTES = 32;
const HEADER_BYTES = MAGIC.length + 2 * HASH_BYTES;
/** The bundle's cache is ~120 KiB; a larger file is not ours (and is not read into memory). */
const MAX_CACHE_BYTES = 8 * 1024 * 1024;

/** One-shot where Node has it (20.12+): ~0.2 ms for the bundle against ~2 ms through createHash. */
const sha256 = (data: Buffer): Buffer => {
  const c = require('node:crypto') as typeof import('node:crypto') & { hash?: (alg: string, d: Buffer, enc: 'buffer') => Buffer };
  return c.hash ? c.hash('sha256', data, 'buffer') : c.createHash('sha256').update(data).digest();
};

/** `wrapped`'s cache as `npm run build` stores it: magic, SHA-256 of the source, SHA-256 of the payload, payload. */
function encodeCache(source: Buffer, payload: Buffer): Buffer {
  return Buffer.concat([MAGIC, sha256(source), sha256(payload), payload]);
}

/**
 * The V8 payload of `cacheFile` if it was made for `source` and may be trusted as much as `bundle` (a
 * regular file of the bundle's owner, writable by no one the bundle is not writable by); else undefined.
 * Opened without blocking (a FIFO in its place must not hang `weft`) and sized before it is read.
 */
function trustedCache(cacheFile: string, source: Buffer, bundle: fs.Stats): Buffer | undefined {
  let fd: number | undefined;
  try {
    fd = fs.openSync(cacheFile, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    const st = fs.fstatSync(fd);
    if (!st.isFile() || st.size < HEADER_BYTES || st.size > MAX_CACHE_BYTES) return undefined;
    if (st.uid !== bundle.uid || (st.mode & 0o022 & ~bundle.mode) !== 0) return undefined;
    const file = Buffer.alloc(st.size);
    if (fs.readSync(fd, file, 0, st.size, 0) !== st.size) return undefined;
    const payload = file.subarray(HEADER_BYTES);
    const ok = file.subarray(0, MAGIC.length).equals(MAGIC)
      && file.subarray(MAGIC.length, MAGIC.length + HASH_BYTES).equals(sha256(source))
      && file.subarray(MAGIC.length + HASH_BYTES, HEADER_BYTES).equals(sha256(payload));
    return ok ? payload : undefined;
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** What happened to the cache: used, none (missing or untrusted), or rejected by V8 (made by another Node). */
type CacheUse = 'used' | 'none' | 'rejected';

/**
 * Loads `file` as a CommonJS module (its own require, module, __filename; in require.cache like any other)
 * and returns how the cache was used. With `produce`, no cache is read and, when the process exits,
 * `cacheFile` is written with the code compiled by then (the build runs one command this way).
 */
function runBundle(file: string, cacheFile: string, opts: { produce?: boolean } = {}): CacheUse {
  const source = fs.readFileSync(file);
  const cachedData = opts.produce ? undefined : trustedCache(cacheFile, source, fs.statSync(file));
  const script = new vm.Script(Module.wrap(source.toString('utf8')), {
    filename: file,
    ...(cachedData ? { cachedData } : {}),
    importModuleDynamically: vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER,
  });
  if (opts.produce) {
    process.on('exit', () => {
      fs.writeFileSync(`${cacheFile}.tmp`, encodeCache(source, script.createCachedData()), { mode: 0o644 });
      fs.renameSync(`${cacheFile}.tmp`, cacheFile);
    });
  }
  const mod = new Module(file, module);
  mod.filename = file;
  require.cache[file] = mod;
  const wrapper = script.runInThisContext({ displayErrors: true }) as (...a: unknown[]) => void;
  wrapper.call(mod.exports, mod.exports, Module.createRequire(file), mod, file, path.dirname(file));
  mod.loaded = true;
  return cachedData === undefined ? 'none' : script.cachedDataRejected ? 'rejected' : 'used';
}

export = { encodeCache, trustedCache, runBundle };
