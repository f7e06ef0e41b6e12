/**
 * One kind of reconcile pass: at most one runs and at most one waits behind it. The waiting pass reads
 * what to do when it starts, so marks (and resync ticks) arriving meanwhile fold into it instead of
 * chaining a pass each, which piled up without bound when a pass was slower than the resync interval.
 */
export class Lane {
  private queued = false;
  private closed = false;
  private running: Promise<void> = Promise.resolve();
  /** Passes started, for tests and the host's status. */
  passes = 0;

  constructor(private readonly pass: () => Promise<void>, private readonly failed: (e: Error) => void) {}

  schedule(): void {
    if (this.queued || this.closed) return;
    this.queued = true;
    setImmediate(() => {
      // Asked for before close() but not started: it never starts (nothing may touch the host after stop).
      if (this.closed) return;
      this.running = this.running.then(() => this.run());
    });
  }

  /** No pass starts from now on; resolves when the one under way (if any) has ended. */
  close(): Promise<void> {
    this.closed = true;
    return this.running;
  }

  /**
   * Runs `fn` when the pass under way (if any) has ended, with no pass of this lane starting until it
   * returns; passes asked for meanwhile fold into one after it.
   */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const done = this.running.then(fn);
    this.running = done.then(() => undefined, () => undefined);
    return done;
  }

  /** Resolves when the passes started or chained so far have ended. */
  idle(): Promise<void> {
    return this.running;
  }

  private async run(): Promise<void> {
    this.queued = false;
    this.passes++;
    try {
      await this.pass();
    } catch (e) {
      // A rejected `running` would skip every later pass: keep the chain alive and say why.
      this.failed(e as Error);
    }
  }
}
