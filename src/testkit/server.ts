import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { withOverrides } from '../exec/argv.js';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { Readable } from 'node:stream';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The compiled CLI entry point, as users run it. */
export const WEFT_BIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'weft.cjs');

export interface ServerProcess {
  url: string;
  token: string;
  dataDir: string;
  /** The server's CA certificate file (DATA_DIR/ca.crt): what clients verify it with. */
  caFile: string;
  proc: ChildProcess;
  /** Wall-clock ms when it was spawned: V8's `--trace-gc` lines count from about then. */
  startedAt: number;
  stdout: string;
  stderr: string;
  /** SIGTERM (a clean stop), or SIGKILL to simulate a crash. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Starts `weft server` as a real process on an ephemeral loopback port with its own data dir, and waits
 * for its "listening" line. stop() sends SIGTERM to its pid (SIGKILL after 5 s) and removes the dir
 * unless `keepDir` is set. `netns`: run it in that network namespace (nsenter --net execs it, so the pid
 * is the server's), as on a host that runs its own API server.
 */
/**
 * What the launcher gives `weft server` (scripts/bundle-cli.mjs): keep the two alike. `weft up` gets the
 * first (its old generation grows as the agent's does: --heap-growing-percent=100).
 */
export const SERVER_V8_FLAGS = ['--max-semi-space-size=32', '--heap-growing-percent=300'];

export async function startServerProcess(opts: { dataDir?: string; args?: string[]; keepDir?: boolean; listen?: string; netns?: string } = {}): Promise<ServerProcess> {
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'weft-srv-'));
  // SERVER_V8_FLAGS, as `weft server` run as a program has them (scripts/bundle-cli.mjs), then
  // WEFT_SERVER_NODE_ARGS: more flags for the server's node, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof` to
  // profile the server of a benchmark (src/bench/README.md).
  const nodeArgs = [...SERVER_V8_FLAGS, ...(process.env['WEFT_SERVER_NODE_ARGS'] ?? '').split(' ').filter(Boolean)];
  const argv = [process.execPath, ...nodeArgs, WEFT_BIN, ...withOverrides(['server', '--listen', opts.listen ?? '127.0.0.1:0', '--data-dir', dataDir, '--log-level', 'warn'], opts.args ?? [])];
  const enter = opts.netns ? ['nsenter', `--net=/run/netns/${opts.netns}`] : [];
  const [cmd = '', ...rest] = [...enter, ...argv];
  const startedAt = Date.now();
  const proc = spawn(cmd, rest, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout?.on('data', (d) => (stdout += d));
  proc.stderr?.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    // 30 s: a loaded CI machine has taken over 10 s. One that never starts is stopped by its pid, or the
    // test file would wait for it forever.
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`weft server did not start in 30 s:\n${stdout}\n${stderr}`));
    }, 30_000);
    proc.stdout?.on('data', () => {
      const m = /listening on (https:\/\/[0-9.:]+)/.exec(stdout);
      if (m?.[1]) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`weft server exited with ${code}:\n${stdout}\n${stderr}`));
    });
  });
  const token = /^ {2}(weft_\S+)$/m.exec(stdout)?.[1] ?? '';
  const caFile = join(dataDir, 'ca.crt');
  trustServer(url, caFile);
  const server: ServerProcess = {
    url, token, dataDir, proc, caFile, startedAt,
    get stdout() { return stdout; },
    get stderr() { return stderr; },
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null && proc.pid !== undefined) {
        proc.kill(signal);
        const timer = setTimeout(() => proc.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(timer);
      }
      if (!opts.keepDir) rmSync(dataDir, { recursive: true, force: true });
      return proc.exitCode;
    },
  };
  return server;
}

/**
 * Writes a server's output to `file` (BENCH_SERVER_LOG): its spawn time first (V8's `--trace-gc` lines
 * count from about then), then stdout and stderr. Mode 0600: it begins with the admin token.
 */
export function writeServerLog(server: Pick<ServerProcess, 'startedAt' | 'stdout' | 'stderr'>, file: string): void {
  writeFileSync(file, `spawned at ${new Date(server.startedAt).toISOString()}\n${server.stdout}${server.stderr}`, { mode: 0o600 });
  chmodSync(file, 0o600); // a file that was there keeps its mode through writeFileSync
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** The CA of each server a test started (by origin), so helpers verify it like any client must. */
const trusted = new Map<string, { file: string; pem: string }>();

export function trustServer(url: string, caFile: string): void {
  for (const u of url.split(',')) trusted.set(new URL(u.trim()).origin, { file: caFile, pem: readFileSync(caFile, 'utf8') });
}

/** The CA file of the first server in a comma list that a test started, if any. */
export function caFileFor(urls: string): string | undefined {
  for (const u of urls.split(',')) {
    const hit = /^https:\/\//.test(u.trim()) ? trusted.get(new URL(u.trim()).origin) : undefined;
    if (hit) return hit.file;
  }
  return undefined;
}

/**
 * Runs the real `weft` CLI as a child process. A WEFT_SERVER this test started is verified with that
 * server's CA (WEFT_CA), as a user would set it.
 */
/** Runs the CLI; killed (code 1) after timeoutMs, so a hung command fails its test rather than the suite. */
export function runWeft(args: string[], env: Record<string, string>, input?: string, timeoutMs = 20_000): Promise<CliResult> {
  const flag = args.indexOf('--server');
  const server = flag >= 0 ? args[flag + 1] : env['WEFT_SERVER'];
  const ca = env['WEFT_CA'] ?? (server ? caFileFor(server) : undefined);
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [WEFT_BIN, ...args], { env: { PATH: process.env['PATH'] ?? '', ...(ca ? { WEFT_CA: ca } : {}), ...env }, timeout: timeoutMs }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr: err?.killed ? `${stderr}\n(killed after ${timeoutMs / 1000} s)` : stderr });
    });
    if (input !== undefined) child.stdin?.end(input);
    else child.stdin?.end();
  });
}

/**
 * fetch() over TLS verified with the test server's CA (Node's fetch takes no CA): the answer is a
 * standard Response, streaming bodies included. `tls` overrides what is trusted and presented.
 */
export function tlsFetch(url: string, init: { method?: string; headers?: Record<string, string>; body?: string; signal?: AbortSignal; tls?: { ca?: string; cert?: string; key?: string } } = {}): Promise<Response> {
  const u = new URL(url);
  const ca = init.tls?.ca ?? trusted.get(u.origin)?.pem;
  return new Promise((resolve, reject) => {
    const req = httpsRequest(u, { method: init.method ?? 'GET', headers: init.headers ?? {}, agent: false, ...(init.signal ? { signal: init.signal } : {}), ...(ca ? { ca } : {}), ...(init.tls?.cert ? { cert: init.tls.cert, key: init.tls.key } : {}) }, (res) => {
      const headers = new Headers();
      for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) headers.set(k, Array.isArray(v) ? v.join(', ') : v);
      const status = res.statusCode ?? 0;
      const body = status === 204 || status === 304 ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>);
      resolve(new Response(body, { status, headers }));
    });
    req.on('error', reject);
    req.end(init.body);
  });
}

/** An API call with a token over verified TLS, for tests of the API over a real socket. */
export async function http(url: string, token: string, method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await tlsFetch(`${url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined };
}

export function tempHome(): { dir: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'weft-home-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * A `weft server` process and a HOME of its own for CLI tests, the CLI pointed at it with the admin token.
 * Call start() in a before() hook and stop() in an after() hook, so the server stops on failure too.
 */
export function cliSession() {
  const home = tempHome();
  let srv: ServerProcess | undefined;
  const server = (): ServerProcess => {
    if (!srv) throw new Error('cliSession: start() it in a before() hook first');
    return srv;
  };
  const env = () => ({ HOME: home.dir, WEFT_SERVER: server().url, WEFT_TOKEN: server().token });
  /** The CLI with words split on spaces (or an argv array), extra environment over the session's. */
  const weft = (args: string | string[], input?: string, extraEnv: Record<string, string> = {}) =>
    runWeft(Array.isArray(args) ? args : args.split(' ').filter(Boolean), { ...env(), ...extraEnv }, input);
  return {
    home, weft,
    get srv() { return server(); },
    get env() { return env(); },
    async start(args: string[] = []) { srv = await startServerProcess({ args }); },
    async stop() {
      await srv?.stop();
      home.cleanup();
    },
    /** Runs the CLI and returns its output; throws with stderr unless it exits 0. */
    async ok(args: string | string[]): Promise<string> {
      const r = await weft(args);
      if (r.code !== 0) throw new Error(`weft ${String(args)}: exit ${r.code}\n${r.stderr}`);
      return r.stdout;
    },
  };
}

/** The servers one test file starts; call stopAll() in an after() hook so they stop on failure too. */
export function serverFleet(): { start(args?: string[]): Promise<ServerProcess>; stopAll(): Promise<void> } {
  const started: ServerProcess[] = [];
  return {
    async start(args = []) {
      const s = await startServerProcess({ args });
      started.push(s);
      return s;
    },
    async stopAll() {
      for (const s of started.splice(0)) await s.stop();
    },
  };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
