/** How many of a worker's agents have a line (a revision, an anchor sequence), and when the last one got it. */
interface Arrival { n: number; last: number; at: number }

/** Arrivals older than this with nobody waiting for them are forgotten (heartbeats make a revision a second per 10 hosts). */
const KEEP_MS = 120_000;

/**
 * Counts, per key, the agents that have received it and the time of the latest, so the bench can ask
 * "has every agent of this worker seen revision R, and when did the last one" after the fact: a line
 * often arrives before the bench has learned which revision its write got.
 */
export class Arrivals {
  private readonly byKey = new Map<number, Arrival>();
  private readonly waiters = new Map<number, Array<() => void>>();
  private pruned = 0;

  constructor(private readonly members: () => number, private readonly now: () => number = () => performance.now()) {}

  /** One agent has `key`, at wall time `at`. */
  record(key: number, at: number): void {
    const a = this.byKey.get(key) ?? { n: 0, last: 0, at: this.now() };
    a.n++;
    a.last = Math.max(a.last, at);
    this.byKey.set(key, a);
    if (a.n >= this.members()) for (const w of this.waiters.get(key) ?? []) w();
    this.prune();
  }

  /** When every member has `key`: the last arrival; after `timeoutMs` without that, how many still miss it. */
  wait(key: number, timeoutMs: number): Promise<{ last: number; missing: number }> {
    const answer = () => {
      const a = this.byKey.get(key);
      this.byKey.delete(key);
      this.waiters.delete(key);
      return { last: a?.last ?? NaN, missing: this.members() - (a?.n ?? 0) };
    };
    if ((this.byKey.get(key)?.n ?? 0) >= this.members()) return Promise.resolve(answer());
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(answer()), timeoutMs);
      const done = () => {
        clearTimeout(timer);
        resolve(answer());
      };
      this.waiters.set(key, [...(this.waiters.get(key) ?? []), done]);
    });
  }

  get size(): number {
    return this.byKey.size;
  }

  private prune(): void {
    const now = this.now();
    if (now - this.pruned < KEEP_MS / 4) return;
    this.pruned = now;
    for (const [k, a] of this.byKey) if (now - a.at > KEEP_MS && !this.waiters.has(k)) this.byKey.delete(k);
  }
}
