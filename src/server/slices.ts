/** The longest stretch long work (reading a large tenant, making an evaluator, naming records) holds the event loop. */
export const SLICE_MS = 10;

/**
 * Long work on the server's event loop done in slices: `pause()` lets other requests in once SLICE_MS
 * has passed since the last turn, and `spent()` is the time worked so far (the pauses left out).
 */
export class TimeSlices {
  private stretch = performance.now();
  private worked = 0;

  /** `yieldTurn`: how a pause lets others in (a turn of the event loop; a Lane's round). */
  constructor(private readonly yieldTurn: () => Promise<void> = () => new Promise<void>((go) => setImmediate(go))) {}

  /** Whether a pause is due (a tight loop asks this before awaiting one). */
  due(): boolean {
    return performance.now() - this.stretch >= SLICE_MS;
  }

  readonly pause = async (): Promise<void> => {
    const at = performance.now();
    if (at - this.stretch < SLICE_MS) return;
    this.worked += at - this.stretch;
    await this.yieldTurn();
    this.stretch = performance.now();
  };

  /** Runs `p` off the clock: its time is not this work's (waiting for I/O, or for another's result). */
  async outside<T>(p: () => Promise<T>): Promise<T> {
    this.worked += performance.now() - this.stretch;
    try {
      return await p();
    } finally {
      this.stretch = performance.now();
    }
  }

  spent(): number {
    return this.worked + performance.now() - this.stretch;
  }
}
