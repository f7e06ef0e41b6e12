import { Worker } from 'node:worker_threads';
import type { VerdictChange } from '../policy/index.js';
import type { DryRunJob } from './dry-run-worker.js';

/** The longest a dry run's comparison may take, and the heap it may grow (past either: not compared). */
export const COMPARE_MS = 10_000;
export const COMPARE_HEAP_MB = 512;
/** Comparisons waiting for the one thread that makes them; past this, a dry run is answered without one. */
const WAITING = 8;

export type Comparison = { changes: VerdictChange[]; total: number } | { refused: string };

/**
 * Compares a dry run's before and after off the event loop, one at a time (each may take a core and
 * COMPARE_HEAP_MB): the answer, or why there is none (too slow, too large, too many waiting). The
 * states are copied to the thread (structured clone: ~tens of ms for 10,000 rules).
 */
export class DryRunComparer {
  private running: Promise<unknown> = Promise.resolve();
  private waiting = 0;

  constructor(private readonly limits = { ms: COMPARE_MS, heapMb: COMPARE_HEAP_MB }) {}

  compare(job: DryRunJob): Promise<Comparison> {
    if (this.waiting >= WAITING) return Promise.resolve({ refused: `${this.waiting} dry runs are waiting for their comparison; not compared` });
    this.waiting++;
    const turn = this.running.then(() => {
      this.waiting--;
      return this.run(job);
    });
    this.running = turn.catch(() => undefined);
    return turn;
  }

  private run(job: DryRunJob): Promise<Comparison> {
    return new Promise((resolve) => {
      let done = false;
      const finish = (c: Comparison) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        void worker.terminate();
        resolve(c);
      };
      const worker = new Worker(new URL('./dry-run-worker.js', import.meta.url), {
        workerData: job,
        resourceLimits: { maxOldGenerationSizeMb: this.limits.heapMb },
      });
      const timer = setTimeout(() => finish({ refused: `the comparison took more than ${this.limits.ms / 1000} s; not compared` }), this.limits.ms);
      worker.once('message', (m: { changes: VerdictChange[]; total: number }) => finish(m));
      worker.once('error', (e: Error & { code?: string }) => finish({
        refused: e.code === 'ERR_WORKER_OUT_OF_MEMORY' ? `the comparison needed more than ${this.limits.heapMb} MB; not compared` : `the comparison failed: ${e.message}`,
      }));
      worker.once('exit', () => finish({ refused: 'the comparison ended without an answer' }));
    });
  }
}
