// Bundles the CLI for the client verbs (issue 13; docs/decisions.md, "CLI start-up"): dist/bin/cli.js and
// what it imports, as tsc emitted them, linked into one CommonJS file, dist/bin/cli.bundle.cjs, so a call
// reads and compiles one file instead of ~30 ES modules and never starts Node's ES module loader. The code
// is linked, not rewritten: no minifying, no down-levelling, the same statements in the same order.
// dist/bin/weft.cjs runs the commands that start processes from cli.js instead, so the daemons and the
// lab (their packages, native SQLite, files found beside their modules) are never bundled: in the bundle
// they are a module that fails loudly if loaded. dist/bin/cli.bundle.json lists what went in, for
// startup.test.ts.
import { build } from 'esbuild';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';

/** cli.js's dynamic imports of the daemons and the lab. */
const LEFT_OUT = /^(\.\/daemons\.js|\.\.\/lab\/index\.js)$/;

const leaveOutDaemons = {
  name: 'leave-out-daemons',
  setup(b) {
    b.onResolve({ filter: LEFT_OUT }, (a) => (a.importer.endsWith('/dist/bin/cli.js') ? { path: a.path, namespace: 'left-out' } : undefined));
    b.onLoad({ filter: /.*/, namespace: 'left-out' }, (a) => ({
      contents: `throw new Error(${JSON.stringify(`weft: ${a.path} is not in the client bundle; dist/bin/weft.cjs runs dist/bin/cli.js for the commands that need it`)});`,
      loader: 'js',
    }));
  },
};

/**
 * commander requires node:child_process when it loads (~5 ms with dgram and net's extras) for
 * executable sub-commands, which weft has none of: it gets the module on first use instead.
 */
const lazyChildProcess = {
  name: 'lazy-child-process',
  setup(b) {
    b.onResolve({ filter: /^node:child_process$/ }, (a) => (/[/\\]commander[/\\]/.test(a.importer) ? { path: 'child_process', namespace: 'lazy' } : undefined));
    b.onLoad({ filter: /.*/, namespace: 'lazy' }, () => ({
      contents: "module.exports = new Proxy({}, { get: (_, key) => require('node:child_process')[key] });",
      loader: 'js',
    }));
  },
};

/**
 * output.ts takes createRequire from node:module, which loads Node's ES module loader with it (~1.5 ms).
 * In the bundle, the bundle's own require resolves from the same file (import.meta.url is the bundle's).
 */
const bundleRequire = {
  name: 'bundle-require',
  setup(b) {
    b.onResolve({ filter: /^node:module$/ }, (a) => (a.importer.endsWith('/dist/cli/output.js') ? { path: 'module', namespace: 'bundle-require' } : undefined));
    b.onLoad({ filter: /.*/, namespace: 'bundle-require' }, () => ({ contents: 'module.exports = { createRequire: () => require };', loader: 'js' }));
  },
};

const result = await build({
  entryPoints: ['dist/bin/cli.js'],
  outfile: 'dist/bin/cli.bundle.cjs',
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'es2022',
  // yaml is required on first use by output.ts, from node_modules as before.
  external: ['yaml'],
  // output.ts resolves yaml from its own URL; in the bundle that is the bundle's (same node_modules).
  define: { 'import.meta.url': '__weftBundleUrl' },
  banner: { js: "const __weftBundleUrl = require('node:url').pathToFileURL(__filename).href;" },
  plugins: [leaveOutDaemons, lazyChildProcess, bundleRequire],
  sourcemap: true,
  metafile: true,
  logLevel: 'warning',
});
const inputs = Object.keys(result.metafile.inputs).sort();
writeFileSync('dist/bin/cli.bundle.json', `${JSON.stringify({ inputs }, null, 2)}\n`);

/**
 * weft.cjs run as a program starts Node with --use-openssl-ca (why: src/bin/weft.cts). Its first line
 * becomes two that both /bin/sh and Node read: for the shell, `:` ignores `//` and `exec` hands the same
 * file and arguments to node; for Node, the shebang is skipped, `':'` is a string that does nothing and the
 * rest of the line a comment (`"use strict"` below it stays a directive). Executable, as npm makes a bin.
 * The server (`weft server`, `weft up`) also gets a young generation twice V8's default
 * (SERVER_V8_FLAGS in src/testkit/server.ts, which starts servers the same way): fewer scavenges under
 * a stream of requests, +10 % allocations per second in bench:api (docs/decisions.md); `weft server`'s old
 * generation may grow to 4× its live size before a major collection (fewer of the stalls an allocation
 * at 5,000 /s waits behind: docs/decisions.md, session 50). The agent
 * (`weft agent`, `weft up`) runs without V8's memory reducer (AGENT_V8_FLAGS in src/testkit/host.ts; its
 * own idle collections do that job, src/agent/idle-gc.ts) and lets its old generation double before a
 * major collection (fewer of them land in a rule change: docs/decisions.md, session 38). Only there: a V8
 * flag makes Node's code cache mismatch, which every other command's start-up would pay.
 */
const LAUNCHER = '#!/bin/sh\n\':\' //; case "$1" in server) exec node --use-openssl-ca --max-semi-space-size=32 --heap-growing-percent=300 "$0" "$@";; up) exec node --use-openssl-ca --max-semi-space-size=32 --no-memory-reducer --heap-growing-percent=100 "$0" "$@";; agent) exec node --use-openssl-ca --no-memory-reducer --heap-growing-percent=100 "$0" "$@";; esac; exec node --use-openssl-ca "$0" "$@"\n';
const weft = readFileSync('dist/bin/weft.cjs', 'utf8');
if (!weft.startsWith('#!/usr/bin/env node\n')) throw new Error('bundle-cli: dist/bin/weft.cjs does not start with the shebang tsc keeps');
writeFileSync('dist/bin/weft.cjs', LAUNCHER + weft.slice(weft.indexOf('\n') + 1), { mode: 0o755 });
chmodSync('dist/bin/weft.cjs', 0o755);
