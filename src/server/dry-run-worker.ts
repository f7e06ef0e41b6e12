// A dry run's comparison (routes/apply.ts): two compiles of a tenant's whole policy and the verdict
// changes between them, on a thread of its own so that the server's event loop never waits for them
// (a tenant's hostile policies held it ~1 s a dry run). One comparison per thread; the thread ends after.
import { parentPort, workerData } from 'node:worker_threads';
import { compilePolicy, verdictChanges, type PolicyState } from '../policy/index.js';
import type { Endpoint } from '../model/index.js';

export interface DryRunJob { before: PolicyState; after: PolicyState; endpoints: Endpoint[]; limit: number }

/**
 * The most pairs of address classes either compile may make (the agents' default `--max-policy-pairs`):
 * past it the comparison is refused at once (policy/budget.ts), not after its 10 s of a core.
 */
export const DRY_RUN_MAX_PAIRS = 300_000;

const job = workerData as DryRunJob | undefined;
if (job) parentPort?.postMessage(verdictChanges(compilePolicy({ ...job.before, budget: DRY_RUN_MAX_PAIRS }), compilePolicy({ ...job.after, budget: DRY_RUN_MAX_PAIRS }), job.endpoints, job.limit));
