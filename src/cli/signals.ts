import type { Io } from './kit.js';

/** A clean stop never waits longer than this for someone else. */
const SHUTDOWN_BOUND_MS = 15_000;

/** Runs until SIGINT or SIGTERM, then closes cleanly. */
export async function untilSignalled(d: { close(): Promise<void> }, io: Io): Promise<void> {
  await new Promise<void>((resolve) => {
    const stop = (sig: string) => {
      io.err(`${sig}: shutting down\n`);
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
      resolve();
    };
    const onInt = () => stop('SIGINT');
    const onTerm = () => stop('SIGTERM');
    process.on('SIGINT', onInt);
    process.on('SIGTERM', onTerm);
  });
  // A clean stop never waits on someone else: a request the server never answers, a client holding a
  // connection open. Past the bound the process exits anyway (its datapath stays in place either way).
  const bound = new Promise<'late'>((resolve) => setTimeout(() => resolve('late'), SHUTDOWN_BOUND_MS).unref());
  if ((await Promise.race([d.close().then(() => 'done' as const), bound])) === 'late') {
    io.err(`shutdown did not finish within ${SHUTDOWN_BOUND_MS / 1000} s; exiting anyway\n`);
    io.exit?.(1);
    return;
  }
  // Closed: whatever still holds the event loop (a timer, a socket) must not keep a stopped daemon alive.
  const exit = io.exit;
  if (exit) setTimeout(() => exit(0), 2000).unref();
}

