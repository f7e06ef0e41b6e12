/**
 * `p`, or a rejection after `ms` naming what was awaited: every wait of bench:scale has one, so a stuck
 * worker, server or stream fails the run with a reason instead of holding the machine's lock silently.
 */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`gave up after ${fmtSeconds(ms)} waiting for ${what}`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

export const fmtSeconds = (ms: number) => (ms < 1000 ? `${ms.toFixed(0)} ms` : `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`);

/** Calls `say()` every `ms` until the returned function is called: progress lines for long waits. */
export function every(ms: number, say: () => void): () => void {
  const t = setInterval(say, ms);
  return () => clearInterval(t);
}
