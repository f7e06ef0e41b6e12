import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeTestPki } from '../testkit/pki.js';
import { WEFT_BIN } from '../testkit/server.js';
import { Command } from 'commander';
import type { Daemons } from './commands/daemon.js';
import { buildProgram, COMMAND_MODULES, modulesFor } from './program.js';

/**
 * Issue 13: a `weft` verb that only talks to the server loads only what it needs. What a real `weft`
 * process loads is recorded without timing: an ESM loader hook (every module the ESM loader loads, ours
 * and the packages' entries) plus the CommonJS cache at exit (what those packages require in turn).
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
process.on('exit', () => appendFileSync(process.env.WEFT_LOAD_TRACE, Object.keys(cache).map((f) => 'cjs:' + f + '\\n').join('')));`;

/** Packages a client verb never needs (the daemons' server, stores, logging, metrics, X.509, schemas). */
const HEAVY_PACKAGES = /node_modules\/(fastify|@fastify|better-sqlite3|etcd3|pino|prom-client|@peculiar|@sinclair\/typebox|reflect-metadata|yaml)\//;
/** Our folders a client verb never needs: only bin, cli, client and model's plain files may load. */
const OWN = /\/dist\/([a-z]+)\//;
const CLIENT_FOLDERS = new Set(['bin', 'cli', 'client', 'model']);

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

/** Runs `weft ARGS` against the stub and returns its stdout and every module it loaded. */
function traced(args: string[], name: string): Promise<{ code: number; stdout: string; stderr: string; loaded: string[] }> {
  const trace = join(dir, `${name}.trace`);
  const env = { PATH: process.env['PATH'] ?? '', HOME: dir, WEFT_SERVER: url, WEFT_TOKEN: 'weft_stub', WEFT_CA: ca, WEFT_LOAD_TRACE: trace };
  const argv = ['--import', `data:text/javascript,${encodeURIComponent(PRELOAD)}`, WEFT_BIN, ...args];
  return new Promise((resolve) => {
    execFile(process.execPath, argv, { env, timeout: 60_000 }, (err, stdout, stderr) => {
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

/** The modules of `loaded` that a client verb must not load, with why. */
function heavy(loaded: readonly string[]): string[] {
  return loaded.filter((m) => {
    if (HEAVY_PACKAGES.test(m)) return true;
    const own = !m.includes('/node_modules/') ? OWN.exec(m)?.[1] : undefined;
    return own !== undefined && !CLIENT_FOLDERS.has(own);
  });
}

const CLIENT_VERBS: Array<{ args: string[]; module: string }> = [
  { args: ['tenant', 'ls'], module: 'tenant' },
  { args: ['net', 'ls'], module: 'network' },
  { args: ['group', 'ls'], module: 'group' },
  { args: ['policy', 'ls'], module: 'policy' },
  { args: ['netprofile', 'ls'], module: 'profiles' },
  { args: ['endpoint', 'ls'], module: 'cluster' },
  { args: ['host', 'ls'], module: 'host' },
  { args: ['token', 'ls'], module: 'tokens' },
  { args: ['user', 'ls'], module: 'auth' },
];

for (const verb of CLIENT_VERBS) {
  test(`\`weft ${verb.args.join(' ')}\` loads no server, agent, store, lab, schema, logging or YAML code`, async () => {
    const r = await traced(verb.args, verb.args.join('-'));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /stubbed/, 'the verb ran to the end against the stub');
    // The trace sees what it must see, so an empty or broken trace cannot pass.
    assert.ok(r.loaded.some((m) => m.endsWith(`/dist/cli/commands/${verb.module}.js`)), `trace lacks the verb's own module:\n${r.loaded.join('\n')}`);
    assert.ok(r.loaded.some((m) => m.includes('/node_modules/commander/')), 'trace lacks commander');
    assert.deepEqual(heavy(r.loaded), []);
  });
}

test('`-o yaml` loads the YAML library, and still nothing of the daemons', async () => {
  const r = await traced(['tenant', 'ls', '-o', 'yaml'], 'tenant-ls-yaml');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /name: stubbed/);
  assert.ok(r.loaded.some((m) => m.includes('/node_modules/yaml/')), 'yaml was loaded for -o yaml');
  assert.deepEqual(heavy(r.loaded).filter((m) => !m.includes('/node_modules/yaml/')), []);
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
