/**
 * What a benchmark must undo if it is stopped (Ctrl-C, SIGTERM) instead of reaching its `finally`: each
 * registered cleanup runs once, newest first, then the process exits with the signal's status. A
 * benchmark killed halfway must not leave servers, etcd or namespaces behind.
 */
const cleanups: Array<() => Promise<unknown>> = [];
let stopping = false;

async function stop(signal: NodeJS.Signals): Promise<void> {
  if (stopping) return;
  stopping = true;
  console.error(`${signal}: stopping what the benchmark started`);
  for (const fn of cleanups.splice(0).reverse()) await fn().catch((e: Error) => console.error(`cleanup failed: ${e.message}`));
  process.exit(signal === 'SIGINT' ? 130 : 143);
}

/** Registers `fn` to run if the process is interrupted; the returned function unregisters it. */
export function onInterrupt(fn: () => Promise<unknown>): () => void {
  if (cleanups.length === 0 && process.listenerCount('SIGTERM') === 0) {
    process.on('SIGINT', (s) => void stop(s));
    process.on('SIGTERM', (s) => void stop(s));
  }
  cleanups.push(fn);
  return () => {
    const i = cleanups.indexOf(fn);
    if (i >= 0) cleanups.splice(i, 1);
  };
}
