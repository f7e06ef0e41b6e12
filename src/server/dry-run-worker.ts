// A dry run's comparison (routes/apply.ts): two compiles of a tenant's whole policy and the verdict
// changes between them, on a thread of its own so that the server's event loop never waits for them
// (a tenant's hostile policies held it ~1 s a dry run). One comparison per thread; the thread ends after.
import { parentPort, workerData } from 'node:worker_threads';
import { compilePolicy, PolicyTooLarge, verdictChanges, type CompiledPolicy, type PolicyState } from '../policy/index.js';
import { POLICY_PAIRS_DEFAULT, type Endpoint } from '../model/index.js';

export interface DryRunJob { before: PolicyState; after: PolicyState; endpoints: Endpoint[]; limit: number }

/** Each side compiled within the agents' budget of pairs (refused at once, not after the thread's 10 s), or why not: a refusal says which side (the current policy past it cannot block a dry run of its fix from saying so). */
function compiled(s: PolicyState): CompiledPolicy | PolicyTooLarge {
  try {
    return compilePolicy({ ...s, budget: POLICY_PAIRS_DEFAULT });
  } catch (e) {
    if (e instanceof PolicyTooLarge) return e;
    throw e;
  }
}

const job = workerData as DryRunJob | undefined;
if (job) {
  const [before, after] = [compiled(job.before), compiled(job.after)];
  const pairs = (x: CompiledPolicy | PolicyTooLarge) => (x instanceof PolicyTooLarge ? `${x.pairs.toLocaleString('en-US')} pairs of address classes, past the comparison's ${POLICY_PAIRS_DEFAULT.toLocaleString('en-US')}` : 'within the limit');
  if (before instanceof PolicyTooLarge || after instanceof PolicyTooLarge) {
    parentPort?.postMessage({ refused: `not compared: the current policy makes ${pairs(before)}; after this change, ${pairs(after)} (rules that give many addresses a class of their own multiply them)` });
  } else {
    parentPort?.postMessage(verdictChanges(before, after, job.endpoints, job.limit));
  }
}
