import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';

/**
 * The one place that starts external programs. Commands are argv arrays, never shell strings.
 * A failed command becomes an ExecError carrying argv, exit code and stderr, so callers can tell
 * "already exists" from real failures.
 */
export interface RunOptions {
  /** Written to the program's standard input (nft -f -, ip -batch -). */
  input?: string;
  timeoutMs?: number;
  /** Resolve instead of throwing on a non-zero exit. */
  allowFailure?: boolean;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface Runner {
  run(argv: readonly string[], opts?: RunOptions): Promise<RunResult>;
  /**
   * Starts a long-running helper spoken to in lines (commands on its standard input, events on its
   * standard output). Optional: a runner without it (the fake) has no such helpers.
   */
  start?(argv: readonly string[], onLine: (line: string) => void, onExit: (code: number) => void): LineProcess;
}

/** A helper started by `Runner.start`: it ends when stopped, or when this process ends (its input closes). */
export interface LineProcess {
  readonly pid: number | undefined;
  send(line: string): void;
  stop(): void;
}

export class ExecError extends Error {
  constructor(readonly argv: readonly string[], readonly code: number, readonly stderr: string) {
    super(`${argv.join(' ')} failed (exit ${code}): ${stderr.trim().split('\n').slice(0, 3).join(' | ')}`);
    this.name = 'ExecError';
  }
}

export class ProcessRunner implements Runner {
  start(argv: readonly string[], onLine: (line: string) => void, onExit: (code: number) => void): LineProcess {
    return startLineProcess(argv, onLine, onExit);
  }

  run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    const [cmd, ...args] = argv;
    if (!cmd) return Promise.reject(new Error('empty argv'));
    return new Promise((resolve, reject) => {
      const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], timeout: opts.timeoutMs ?? 30_000 });
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      child.on('error', (e) => reject(new ExecError(argv, -1, e.message)));
      child.on('close', (code, signal) => {
        const c = code ?? (signal ? 128 : -1);
        if (c !== 0 && !opts.allowFailure) reject(new ExecError(argv, c, stderr || `killed by ${signal ?? 'unknown'}`));
        else resolve({ code: c, stdout, stderr });
      });
      child.stdin.on('error', () => undefined);
      child.stdin.end(opts.input ?? '');
    });
  }
}

/**
 * A helper attached to this process: its standard input is a pipe from us, so it sees end-of-file and
 * exits when we do, even if we are killed. Lines of standard output are handed over whole; standard
 * error goes to ours (a helper's complaint belongs in the agent's log).
 */
export function startLineProcess(argv: readonly string[], onLine: (line: string) => void, onExit: (code: number) => void): LineProcess {
  const [cmd, ...args] = argv;
  if (!cmd) throw new Error('empty argv');
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  let rest = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    const lines = (rest + d).split('\n');
    rest = lines.pop() ?? '';
    for (const l of lines) onLine(l);
  });
  child.stdin.on('error', () => undefined);
  // A helper that cannot start emits 'error' and then 'close': it ended once.
  let ended = false;
  const end = (code: number) => {
    if (!ended) onExit(code);
    ended = true;
  };
  child.on('error', () => end(-1));
  child.on('close', (code, signal) => end(code ?? (signal ? 128 : -1)));
  return {
    pid: child.pid,
    send: (line) => {
      if (child.stdin.writable) child.stdin.write(`${line}\n`);
    },
    stop: () => {
      child.stdin.end();
      child.kill('SIGTERM');
    },
  };
}

/**
 * Starts a long-running process detached from this one (it outlives the CLI that started it), with its
 * output appended to `logFile`; returns its pid, by which it is later stopped.
 */
export function spawnDaemon(argv: readonly string[], logFile: string, env?: Readonly<Record<string, string>>): number {
  const [cmd, ...args] = argv;
  if (!cmd) throw new Error('empty argv');
  const fd = openSync(logFile, 'a');
  try {
    const child = spawn(cmd, args, { detached: true, stdio: ['ignore', fd, fd], ...(env ? { env: { ...process.env, ...env } } : {}) });
    // A program that cannot start (ENOENT) has no pid and throws below; its 'error' event, emitted a tick
    // later, must not take this process down.
    child.once('error', () => undefined);
    child.unref();
    if (child.pid === undefined) throw new ExecError(argv, -1, 'could not start');
    return child.pid;
  } finally {
    closeSync(fd);
  }
}

/**
 * Runs a command attached to this terminal (stdin, stdout and stderr inherited); resolves to its exit
 * status. Aborting `signal` terminates it (SIGTERM).
 */
export function runInteractive(argv: readonly string[], signal?: AbortSignal): Promise<number> {
  const [cmd, ...args] = argv;
  if (!cmd) return Promise.reject(new Error('empty argv'));
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: 'inherit' });
    signal?.addEventListener('abort', () => child.kill('SIGTERM'), { once: true });
    child.on('error', () => resolve(127));
    child.on('close', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}

/** Records every argv and answers from a script: for unit tests of code that drives commands. */
export class FakeRunner implements Runner {
  readonly calls: Array<{ argv: string[]; input?: string }> = [];

  constructor(private readonly answer: (argv: readonly string[], input?: string) => Partial<RunResult> | undefined = () => undefined) {}

  async run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    this.calls.push({ argv: [...argv], ...(opts.input !== undefined ? { input: opts.input } : {}) });
    const r = { code: 0, stdout: '', stderr: '', ...this.answer(argv, opts.input) };
    if (r.code !== 0 && !opts.allowFailure) throw new ExecError(argv, r.code, r.stderr);
    return r;
  }
}
