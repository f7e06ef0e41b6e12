import { readFileSync } from 'node:fs';

/** A thread's time on a CPU and waiting in a run queue for one, in ns, since it started. */
export interface Sched { run: number; wait: number }

/**
 * Parses Linux's schedstat line ("RUN_NS WAIT_NS TIMESLICES"); undefined for anything else, and for "0 0 0"
 * (a kernel that keeps no such counts). The run time of a thread that is running is brought up to date at
 * the scheduler's ticks (every 4 ms here), so a span's `run` is good to a tick; `wait` is exact.
 */
export function parseSchedstat(text: string): Sched | undefined {
  const m = /^(\d+) (\d+) (\d+)\s*$/.exec(text);
  if (!m || (m[1] === '0' && m[2] === '0' && m[3] === '0')) return undefined;
  return { run: Number(m[1]), wait: Number(m[2]) };
}

/** The calling thread's (the agent's main thread's) schedstat now; undefined where it cannot be read. */
export function threadSched(): Sched | undefined {
  try {
    return parseSchedstat(readFileSync('/proc/thread-self/schedstat', 'utf8'));
  } catch {
    return undefined;
  }
}

/**
 * A converge's plan (a → b) and write (b → c), each as ms on a CPU (to a scheduler tick) and ms waiting for one. A slow step with
 * a large wait was kept from the CPU by others (on two cores: a client's connection loop, the kernel's
 * work after a big write, V8's helper threads), not slowed by its own work.
 */
export function schedSpans(a?: Sched, b?: Sched, c?: Sched): { planRun: number; planWait: number; run: number; wait: number } | undefined {
  if (!a || !b || !c) return undefined;
  const ms = (ns: number) => Math.round(ns / 1e5) / 10;
  return { planRun: ms(b.run - a.run), planWait: ms(b.wait - a.wait), run: ms(c.run - b.run), wait: ms(c.wait - b.wait) };
}
