import { fork, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Feed, FromWorker, HostCreds, ToWorker, WorkerStats } from './scale-protocol.js';
import { within } from './deadline.js';

const WORKER = join(dirname(fileURLToPath(import.meta.url)), 'scale-agents.js');

type Reply<O extends FromWorker['op']> = Extract<FromWorker, { op: O }>;
const keyOf = (m: FromWorker) => (m.op === 'seen' ? `seen:${m.feed}:${m.key}` : m.op);

/** One worker process and its answers, matched to what was asked by op (and, for `seen`, by feed and key). */
class Worker {
  private readonly pending = new Map<string, Array<{ resolve: (m: FromWorker) => void; reject: (e: Error) => void }>>();
  private readonly exited: Promise<void>;
  /** The agents it was given to start. */
  agents = 0;

  constructor(readonly proc: ChildProcess, log: (s: string) => void) {
    proc.on('message', (m: FromWorker) => {
      if (m.op === 'progress') return log(`worker ${proc.pid}: ${m.text}`);
      const k = keyOf(m);
      const queue = this.pending.get(k);
      queue?.shift()?.resolve(m);
      if (queue?.length === 0) this.pending.delete(k);
    });
    this.exited = new Promise((resolve) => proc.once('exit', () => resolve()));
    // A worker that dies (out of memory, a bug) must fail the bench, not leave it waiting.
    proc.once('exit', (code, signal) => {
      for (const q of this.pending.values()) for (const p of q) p.reject(new Error(`scale worker ${proc.pid} exited (${code ?? signal})`));
      this.pending.clear();
    });
  }

  /** Sends `m` and waits at most `ms` for its answer (`op`, and `key` for `seen`); the error names what was awaited. */
  ask<O extends FromWorker['op']>(m: ToWorker, op: O, ms: number, what: string, key = op as string): Promise<Reply<O>> {
    const entry = { resolve: (_: FromWorker) => {}, reject: (_: Error) => {} };
    const answer = new Promise<Reply<O>>((resolve, reject) => {
      Object.assign(entry, { resolve, reject });
      this.pending.set(key, [...(this.pending.get(key) ?? []), entry]);
      this.proc.send(m);
    });
    return within(answer, ms, `scale worker ${this.proc.pid} to answer '${op}' (${what})`).catch((e: Error) => {
      // A late answer must not be taken for the next question's.
      const q = this.pending.get(key);
      if (q?.includes(entry)) q.splice(q.indexOf(entry), 1);
      throw e;
    });
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    if (this.proc.connected) this.proc.send({ op: 'stop' } satisfies ToWorker);
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 5000);
    await this.exited;
    clearTimeout(timer);
  }
}

/**
 * A worker's deadline to start `n` agents: five minutes and a second per agent (a thousand took ~N s). The
 * worker reports its progress every few seconds meanwhile, and gives each agent AGENT_START_MS.
 */
export const startDeadlineMs = (n: number) => 300_000 + n * 1000;

/** The simulated agents, split over `n` worker processes (forked, stopped by pid). */
export class Fleet {
  private constructor(private readonly workers: Worker[]) {}

  /** `log` gets the workers' progress lines. */
  static spawn(n: number, log: (s: string) => void): Fleet {
    // A thousand agents' state (every agent holds every host) outgrows V8's default old space.
    return new Fleet(Array.from({ length: n }, () => new Worker(fork(WORKER, [], { execArgv: ['--max-old-space-size=8192'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }), log)));
  }

  pids(): number[] {
    return this.workers.map((w) => w.proc.pid).filter((p): p is number => p !== undefined);
  }

  /** Starts the agents (list, then watch), `concurrency` at a time per worker; hosts dealt round-robin. */
  async start(servers: string[], ca: string, hosts: HostCreds[], concurrency: number): Promise<{ agents: number; ms: number; failures: string[] }> {
    const slices = this.workers.map((_, i) => hosts.filter((_, j) => j % this.workers.length === i));
    this.workers.forEach((w, i) => (w.agents = slices[i]?.length ?? 0));
    const r = await Promise.all(this.workers.map((w, i) => {
      const n = slices[i]?.length ?? 0;
      return w.ask({ op: 'start', servers, ca, hosts: slices[i] ?? [], concurrency }, 'started', startDeadlineMs(n), `${n} agents to register, list and watch`);
    }));
    return { agents: r.reduce((n, x) => n + x.agents, 0), ms: Math.max(...r.map((x) => x.ms)), failures: r.flatMap((x) => x.failures) };
  }

  heartbeats(everyMs: number): void {
    for (const w of this.workers) w.proc.send({ op: 'heartbeats', everyMs } satisfies ToWorker);
  }

  /** Every agent lists again at once (as after a server restart): when the last was done. */
  async relist(): Promise<{ agents: number; ms: number; failures: string[] }> {
    const r = await Promise.all(this.workers.map((w) => {
      const ms = startDeadlineMs(w.agents);
      return w.ask({ op: 'relist', deadlineMs: ms }, 'relisted', ms + 30_000, `its ${w.agents} agents to list again at once`);
    }));
    return { agents: r.reduce((n, x) => n + x.agents, 0), ms: Math.max(...r.map((x) => x.ms)), failures: r.flatMap((x) => x.failures) };
  }

  async anchor(url: string, ca: string): Promise<{ streams: number; failures: string[] }> {
    const r = await Promise.all(this.workers.map((w) => w.ask({ op: 'anchor', url, ca }, 'anchored', 120_000, 'its agents to open a stream from the anchor server')));
    return { streams: r.reduce((n, x) => n + x.streams, 0), failures: r.flatMap((x) => x.failures) };
  }

  /** When the last agent of all had `key` (wall ms), and how many had not within `timeoutMs`. */
  async seen(feed: Feed, key: number, timeoutMs: number): Promise<{ last: number; missing: number }> {
    const r = await Promise.all(this.workers.map((w) => w.ask({ op: 'await', feed, key, timeoutMs }, 'seen', timeoutMs + 30_000, `its agents to have ${feed} line ${key}`, `seen:${feed}:${key}`)));
    return { last: Math.max(...r.map((x) => x.last)), missing: r.reduce((n, x) => n + x.missing, 0) };
  }

  async digests(tenant: string): Promise<Record<string, string>> {
    const r = await Promise.all(this.workers.map((w) => w.ask({ op: 'digest', tenant }, 'digest', 120_000, 'its agents\' state digests')));
    return Object.assign({}, ...r.map((x) => x.byHost)) as Record<string, string>;
  }

  async stats(): Promise<WorkerStats> {
    const r = (await Promise.all(this.workers.map((w) => w.ask({ op: 'stats' }, 'stats', 60_000, 'its counters')))).map((x) => x.stats);
    const sum = (f: (s: WorkerStats) => number) => r.reduce((n, s) => n + f(s), 0);
    const warnings: Record<string, number> = {};
    for (const s of r) for (const [k, n] of Object.entries(s.warnings)) warnings[k] = (warnings[k] ?? 0) + n;
    return {
      agents: sum((s) => s.agents), relists: sum((s) => s.relists), heartbeats: sum((s) => s.heartbeats), heartbeatFailures: sum((s) => s.heartbeatFailures),
      rss: sum((s) => s.rss), heapUsed: sum((s) => s.heapUsed), lines: sum((s) => s.lines), warnings,
    };
  }

  async stop(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.stop()));
  }
}
