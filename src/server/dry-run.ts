import { Worker } from 'node:worker_threads';
import type { VerdictChange } from '../policy/index.js';
import type { DryRunJob } from './dry-run-worker.js';

/** The longest a dry run's comparison may take, and the heap it may grow (past either: not compared). */
export const COMPARE_MS = 10_000;
export const COMPARE_HEAP_MB = 512;
/** Comparisons under way or waiting for the one thread, in all and per user; past either, answered without one. */
const WAITING = 8;
const EACH = 2;

export type Comparison = { changes: VerdictChange[]; total: number } | { refused: string };

/**
 * Compares a dry run's before and after off the event loop, one at a time (each may take a core and
 * COMPARE_HEAP_MB): the answer, or why there is none (too slow, too large, too many waiting, this user's
 * share taken). The states are copied to the thread (structured clone: ~45 ms for 50,000 rules). A
 * comparison whose request has ended (`signal`: its deadline answered it, its client left) leaves the
 * queue, or its thread is stopped.
 */
export class DryRunComparer {
  private running: Promise<unknown> = Promise.resolve();
  private queued = 0;
  private readonly byUser = new Map<string, number>();

  constructor(private readonly limits = { ms: COMPARE_MS, heapMb: COMPARE_HEAP_MB }) {}

  async compare(job: DryRunJob, who = '', signal?: AbortSignal): Promise<Comparison> {
    const mine = this.byUser.get(who) ?? 0;
    if (mine >= EACH) return { refused: `you have ${mine} dry runs being compared; not compared` };
    if (this.queued >= WAITING) return { refused: `${this.queued} dry runs are being compared or waiting; not compared` };
    this.queued++;
    this.byUser.set(who, mine + 1);
    const turn = this.running.then(() => (signal?.aborted ? { refused: 'the request ended before its comparison' } : this.run(job, signal)));
    this.running = turn.catch(() => undefined);
    try {
      return await turn;
    } finally {
      this.queued--;
      const left = (this.byUser.get(who) ?? 1) - 1;
      if (left > 0) this.byUser.set(who, left);
      else this.byUser.delete(who);
    }
  }

  private run(job: DryRunJob, signal?: AbortSignal): Promise<Comparison> {
    return new Promise((resolve) => {
      let done = false;
      const finish = (c: Comparison) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', ended);
        void worker.terminate();
        resolve(c);
      };
      const ended = () => finish({ refused: 'the request ended before its comparison' });
      const worker = new Worker(new URL('./dry-run-worker.js', import.meta.url), {
        workerData: job,
        resourceLimits: { maxOldGenerationSizeMb: this.limits.heapMb },
      });
      signal?.addEventListener('abort', ended, { once: true });
      const timer = setTimeout(() => finish({ refused: `the comparison took more than ${this.limits.ms / 1000} s; not compared` }), this.limits.ms);
      worker.once('message', (m: { changes: VerdictChange[]; total: number } | { refused: string }) => finish(m));
      worker.once('error', (e: Error & { code?: string }) => finish({
        refused: e.code === 'ERR_WORKER_OUT_OF_MEMORY' ? `the comparison needed more than ${this.limits.heapMb} MB; not compared` : `the comparison failed: ${e.message}`,
      }));
      worker.once('exit', () => finish({ refused: 'the comparison ended without an answer' }));
    });
  }
}
