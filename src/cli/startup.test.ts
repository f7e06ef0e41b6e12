import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { makeTestPki } from '../testkit/pki.js';
import { SERVER_V8_FLAGS, WEFT_BIN } from '../testkit/server.js';
import { Command } from 'commander';
import type { Daemons } from './commands/daemon.js';
import { buildProgram, COMMAND_MODULES, modulesFor } from './program.js';

/**
 * Issue 13: a `weft` verb that only talks to the server loads only what it needs. A client verb runs from
 * one CommonJS bundle (dist/bin/cli.bundle.cjs, made by `npm run build`), the commands that start
 * processes from the modules tsc emitted; dist/bin/weft.cjs picks one. What a real `weft` process loads is
 * recorded without timing: an ESM loader hook (every ES module) plus the CommonJS cache at exit (the
 * bundle, and what is required on demand); what went into the bundle is in dist/bin/cli.bundle.json.
 * Timing belongs to bench:api; this guards the cause (a heavy import creeping back), not the figure.
 */
const HOOKS = `import { appendFileSync } from 'node:fs';
export async function load(url, context, next) {
  const r = await next(url, context);
  appendFileSync(process.env.WEFT_LOAD_TRACE, url + '\\n');
  return r;
}`;
const PRELOAD = `import { register, createRequire } from 'node:module';
import { appendFileSync } from 'node:fs';
register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(HOOKS)}));
const cache = createRequire(process.cwd() + '/').cache;
process.on('exit', () => appendFileSync(process.env.WEFT_LOAD_TRACE, Object.keys(cache).map((f) => 'cjs:' + f + '\\n').join('') + 'execArgv:' + process.execArgv.join(' ') + '\\n'));`;

/** Packages a client verb never needs (the daemons' server, stores, logging, metrics, X.509, schemas). */
const HEAVY_PACKAGES = /node_modules\/(fastify|@fastify|better-sqlite3|etcd3|pino|prom-client|@peculiar|@sinclair\/typebox|reflect-metadata|yaml)\//;
const BIN = dirname(WEFT_BIN);
const BUNDLE = join(BIN, 'cli.bundle.cjs');
/** Our files (not node_modules) that a process loaded, once each (the ESM hook and the CommonJS cache may both see one). */
const ownFiles = (loaded: readonly string[]) => [...new Set(loaded.filter((m) => !m.includes('/node_modules/') && m.includes('/dist/')).map((m) => m.replace(/^(cjs:|file:\/\/)/, '')))];

let dir = '';
let stub: Server;
let url = '';
let ca = '';

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'weft-startup-'));
  const pki = await makeTestPki(dir, []);
  ca = pki.ca;
  // Answers every GET with one item, so each verb prints a row: proof that it ran to the end.
  stub = createServer({ cert: readFileSync(pki.server.cert), key: readFileSync(pki.server.key) }, (_req, res) =>
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ items: [{ name: 'stubbed', id: 'stubbed', containerId: 'c', defaultAction: 'allow', rules: [] }] })));
  const port = await new Promise<number>((r) => stub.listen(0, '127.0.0.1', () => r((stub.address() as AddressInfo).port)));
  url = `https://127.0.0.1:${port}`;
});

after(() => {
  stub?.closeAllConnections();
  stub?.close();
  rmSync(dir, { recursive: true, force: true });
});

/**
 * Runs `node FILE ARGS` (weft.cjs unless told) against the stub and returns its output and every module it
 * loaded; with `asProgram`, runs FILE itself, as a user's shell does (its first lines start Node).
 */
function traced(args: string[], name: string, file = WEFT_BIN, asProgram = false): Promise<{ code: number; stdout: string; stderr: string; loaded: string[] }> {
  const trace = join(dir, `${name}.trace`);
  const preload = `--import data:text/javascript,${encodeURIComponent(PRELOAD)}`;
  const env = { PATH: process.env['PATH'] ?? '', HOME: dir, WEFT_SERVER: url, WEFT_TOKEN: 'weft_stub', WEFT_CA: ca, WEFT_LOAD_TRACE: trace, ...(asProgram ? { NODE_OPTIONS: preload } : {}) };
  const [cmd, argv] = asProgram ? [file, args] : [process.execPath, [...preload.split(' '), file, ...args]];
  return new Promise((resolve) => {
    execFile(cmd, argv, { env, timeout: 60_000 }, (err, stdout, stderr) => {
      let loaded: string[] = [];
      try {
        loaded = readFileSync(trace, 'utf8').split('\n').filter(Boolean);
      } catch {
        // no trace: the assertions below say so
      }
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr, loaded });
    });
  });
}

const CLIENT_VERBS: string[][] = [
  ['tenant', 'ls'], ['net', 'ls'], ['group', 'ls'], ['policy', 'ls'], ['netprofile', 'ls'], ['endpoint', 'ls'], ['host', 'ls'], ['token', 'ls'], ['user', 'ls'], ['inventory', '-q'],
];

for (const verb of CLIENT_VERBS) {
  test(`\`weft ${verb.join(' ')}\` runs from the bundle alone: no other file of ours, no server, store, schema, logging or YAML package`, async () => {
    const r = await traced(verb, verb.join('-'));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /stubbed/, 'the verb ran to the end against the stub');
    // The trace sees what it must see, so an empty or broken trace cannot pass.
    assert.deepEqual(ownFiles(r.loaded).sort(), [BUNDLE, WEFT_BIN].sort(), `loaded:\n${r.loaded.join('\n')}`);
    assert.deepEqual(r.loaded.filter((m) => HEAVY_PACKAGES.test(m)), []);
  });
}

test('`weft` run as a program starts Node with OpenSSL\'s CA store, and a client verb still runs from the bundle alone', async () => {
  const r = await traced(['tenant', 'ls'], 'as-program', WEFT_BIN, true);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /stubbed/, 'the verb ran to the end against the stub, its CA trusted');
  // Node 20 parses its ~140 bundled roots for any TLS context given a CA unless told to use OpenSSL's store.
  assert.ok(r.loaded.includes('execArgv:--use-openssl-ca'), r.loaded.filter((l) => l.startsWith('execArgv:')).join('\n'));
  assert.deepEqual(ownFiles(r.loaded).sort(), [BUNDLE, WEFT_BIN].sort());
});

test('weft.cjs starts `weft server` with the V8 flags the tests\' and benchmarks\' servers get (SERVER_V8_FLAGS), `weft up` with its young generation\'s', () => {
  const launcher = readFileSync(WEFT_BIN, 'utf8').split('\n').slice(0, 2).join('\n');
  for (const [verb, flags] of [['server', SERVER_V8_FLAGS], ['up', SERVER_V8_FLAGS.slice(0, 1)]] as const) {
    const line = new RegExp(`${verb}\\) exec node ([^"]*)"`).exec(launcher)?.[1] ?? '';
    assert.deepEqual(line.trim().split(' ').filter((f) => SERVER_V8_FLAGS.includes(f)), [...flags], `${verb}: ${line}`);
  }
});

test('weft.cjs\'s first lines start it from any POSIX shell, BusyBox\'s too (Alpine), with the arguments intact', { skip: spawnSync('busybox', ['true']).status !== 0 && 'no busybox' }, () => {
  const r = spawnSync('busybox', ['sh', WEFT_BIN, 'tenant', 'ls', 'one arg'], { encoding: 'utf8', env: { PATH: process.env['PATH'] ?? '', HOME: dir } });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /too many arguments for 'ls'\. Expected 0 arguments but got 1\./, 'node ran weft with "one arg" as one argument');
  assert.doesNotMatch(r.stderr, /not found|Syntax error|unexpected/i);
});

test('`-o yaml` loads the YAML library on demand, and still nothing of the daemons', async () => {
  const r = await traced(['tenant', 'ls', '-o', 'yaml'], 'tenant-ls-yaml');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /name: stubbed/);
  assert.ok(r.loaded.some((m) => m.includes('/node_modules/yaml/')), 'yaml was loaded for -o yaml');
  assert.deepEqual(r.loaded.filter((m) => HEAVY_PACKAGES.test(m) && !m.includes('/node_modules/yaml/')), []);
  assert.deepEqual(ownFiles(r.loaded).sort(), [BUNDLE, WEFT_BIN].sort());
});

test('the bundle holds the CLI, the client, the plain model, the runner and commander: nothing of the daemons, the lab or TypeBox', () => {
  const { inputs } = JSON.parse(readFileSync(join(BIN, 'cli.bundle.json'), 'utf8')) as { inputs: string[] };
  assert.ok(inputs.includes('dist/cli/program.js') && inputs.includes('dist/client/client.js') && inputs.some((i) => i.includes('node_modules/commander/')), inputs.join('\n'));
  // exec: `weft attach` asks podman or docker for a container (node built-ins only).
  // dockerproxy, install, perf: the long-running verbs' own code, node built-ins only (YAML required on use).
  const allowed = (i: string) => /^dist\/(bin\/cli\.js|cli\/|client\/|dockerproxy\/|install\/|perf\/|exec\/(index|runner|trace)\.js$|model\/(plain|errors|ipv4|ipv6|objects|validate|durations|limits|attach-request|docker-refusals)\.js$)/.test(i)
    || /node_modules\/commander\//.test(i) || i === 'left-out:./daemons.js' || i === 'left-out:../lab/index.js' || i === 'lazy:child_process' || i === 'bundle-require:module';
  assert.deepEqual(inputs.filter((i) => !allowed(i)), []);
});

test('every top-level command runs from the copy it needs: daemons and the lab from the modules, the rest from the bundle', async () => {
  const daemonModules = COMMAND_MODULES.filter((m) => m.names.includes('server') || m.names.includes('lab'));
  assert.equal(daemonModules.length, 2);
  for (const m of COMMAND_MODULES) {
    for (const name of m.names) {
      const r = await traced([name, '--help'], `help-${name}`);
      assert.equal(r.code, 0, `${name}: ${r.stderr}`);
      assert.match(r.stdout.split('\n')[0] ?? '', new RegExp(`^Usage: weft (\\S+\\|)?${name}\\b`), name);
      const own = ownFiles(r.loaded);
      if (daemonModules.includes(m)) {
        assert.ok(own.includes(join(BIN, 'cli.js')) && own.some((f) => f.endsWith('/dist/cli/program.js')), `${name} runs from the modules:\n${own.join('\n')}`);
        assert.ok(!own.includes(BUNDLE), `${name} must not load the bundle`);
      } else {
        assert.deepEqual(own.sort(), [BUNDLE, WEFT_BIN].sort(), `${name} runs from the bundle alone`);
      }
    }
  }
});

test('the bundle, given a command that starts a process, fails saying so instead of loading a second copy of the CLI', async () => {
  const r = await traced(['lab', 'status'], 'bundle-lab', BUNDLE);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /not in the client bundle; dist\/bin\/weft\.cjs runs dist\/bin\/cli\.js/);
  assert.deepEqual(ownFiles(r.loaded), [BUNDLE]);
});

test('each command module declares exactly the top-level commands the loader table names for it, in help order', async () => {
  const io = { out: () => undefined, err: () => undefined, env: {} };
  const daemons = {} as Daemons;
  const declared: string[] = [];
  for (const m of COMMAND_MODULES) {
    const p = new Command('weft');
    (await m.load())(p, io, daemons);
    const names = p.commands.flatMap((c) => [c.name(), ...c.aliases()]);
    assert.deepEqual([...names].sort(), [...m.names].sort(), `module of ${m.names[0]}`);
    declared.push(...p.commands.map((c) => c.name()));
  }
  const all = await buildProgram(io, daemons);
  assert.deepEqual(all.commands.map((c) => c.name()), declared, '`weft --help` lists every command once, in table order');
  assert.deepEqual(modulesFor(['tenant', 'ls']).map((m) => m.names[0]), ['tenant']);
  assert.deepEqual(modulesFor(['network', 'ls']).map((m) => m.names[0]), ['net'], 'an alias finds its module');
  assert.equal(modulesFor(['--help']).length, COMMAND_MODULES.length, 'help loads every module');
  assert.deepEqual(modulesFor(['--version']), [], 'the version needs none');
  assert.equal(modulesFor(['tenat', 'ls']).length, COMMAND_MODULES.length, 'a typo loads every module, for "did you mean"');
});
