import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The compiled CLI entry point, as users run it. */
export const WEFT_BIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'weft.js');

export interface ServerProcess {
  url: string;
  token: string;
  dataDir: string;
  proc: ChildProcess;
  stdout: string;
  /** SIGTERM (a clean stop), or SIGKILL to simulate a crash. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Starts `weft server` as a real process on an ephemeral loopback port with its own data dir, and waits
 * for its "listening" line. stop() sends SIGTERM to its pid (SIGKILL after 5 s) and removes the dir
 * unless `keepDir` is set.
 */
export async function startServerProcess(opts: { dataDir?: string; args?: string[]; keepDir?: boolean; listen?: string } = {}): Promise<ServerProcess> {
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'weft-srv-'));
  const proc = spawn(process.execPath, [WEFT_BIN, 'server', '--listen', opts.listen ?? '127.0.0.1:0', '--data-dir', dataDir, '--log-level', 'warn', ...(opts.args ?? [])], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  proc.stdout?.on('data', (d) => (stdout += d));
  proc.stderr?.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`weft server did not start in 10 s:\n${stdout}\n${stderr}`)), 10_000);
    proc.stdout?.on('data', () => {
      const m = /listening on (http:\/\/[0-9.:]+)/.exec(stdout);
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
  const server: ServerProcess = {
    url, token, dataDir, proc,
    get stdout() { return stdout; },
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

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the real `weft` CLI as a child process. */
export function runWeft(args: string[], env: Record<string, string>, input?: string): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [WEFT_BIN, ...args], { env: { PATH: process.env['PATH'] ?? '', ...env }, timeout: 20_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
    if (input !== undefined) child.stdin?.end(input);
    else child.stdin?.end();
  });
}

/** A plain HTTP call with a token, for tests of the API over a real socket. */
export async function http(url: string, token: string, method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(`${url}${path}`, {
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
