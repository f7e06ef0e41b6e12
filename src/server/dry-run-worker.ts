// A dry run's comparison (routes/apply.ts): two compiles of a tenant's whole policy and the verdict
// changes between them, on a thread of its own so that the server's event loop never waits for them
// (a tenant's hostile policies held it ~1 s a dry run). One comparison per thread; the thread ends after.
import { parentPort, workerData } from 'node:worker_threads';
import { compilePolicy, verdictChanges, type PolicyState } from '../policy/index.js';
import type { Endpoint } from '../model/index.js';

export interface DryRunJob { before: PolicyState; after: PolicyState; endpoints: Endpoint[]; limit: number }

const job = workerData as DryRunJob;
parentPort?.postMessage(verdictChanges(compilePolicy(job.before), compilePolicy(job.after), job.endpoints, job.limit));
