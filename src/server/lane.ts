import { TimeSlices } from './slices.js';

/** What a lane's work is handed: its pause (a turn given to the others when its slice is spent) and `away`. */
export interface LaneTurn {
  /** Lets the others waiting have a turn once SLICE_MS has passed since this work's turn began. */
  pause(): Promise<void>;
  /** This work's time on the event loop so far (its waits for turns left out). */
  spent(): number;
  /** Waits for `p` outside the lane (another's work this one needs: held, it would wait for ever). */
  away<T>(p: Promise<T>): Promise<T>;
}

/**
 * Costly questions (explain, the policy matrix) share the event loop one at a time, a slice each in turn.
 *
 * Each holds the event loop in stretches of up to SLICE_MS; side by side, a request arriving between them
 * waited for every one under way before each of its own steps: four users asking explain in a loop from
 * three connections each held a bystander's GET 38 ms at the median and 257 ms at p99. In one lane, a
 * bystander waits for one stretch at most per step. Turns go round the askers (by principal), a slice at
 * a time, so a user with many questions, or one long one, does not starve one with a single short
 * question; and a turn is handed over on a later turn of the event loop, after the I/O that came in.
 */
export class Lane {
  private busy = false;
  /** Waiting work by asker, the askers in their order in the round (a Map keeps insertion order). */
  private readonly waiting = new Map<string, Array<() => void>>();

  async run<T>(who: string, work: (turn: LaneTurn) => Promise<T>): Promise<T> {
    await this.enter(who);
    const slices = new TimeSlices(async () => {
      this.leave();
      await this.enter(who);
    });
    const turn: LaneTurn = {
      pause: slices.pause,
      spent: () => slices.spent(),
      away: async (p) => {
        this.leave();
        try {
          return await p;
        } finally {
          await this.enter(who);
        }
      },
    };
    try {
      return await work(turn);
    } finally {
      this.leave();
    }
  }

  /** Work waiting for a turn. */
  get queued(): number {
    let n = 0;
    for (const q of this.waiting.values()) n += q.length;
    return n;
  }

  private enter(who: string): Promise<void> {
    if (!this.busy) {
      this.busy = true;
      return Promise.resolve();
    }
    return new Promise<void>((go) => {
      const queue = this.waiting.get(who);
      if (queue) queue.push(go);
      else this.waiting.set(who, [go]);
    });
  }

  /** Gives the lane up; the next asker in the round gets it on a later turn of the event loop. */
  private leave(): void {
    setImmediate(() => this.next());
  }

  private next(): void {
    const first = this.waiting.entries().next();
    if (first.done) {
      this.busy = false;
      return;
    }
    const [who, queue] = first.value;
    const go = queue.shift() as () => void;
    // The asker goes to the back of the round with what it has left.
    this.waiting.delete(who);
    if (queue.length > 0) this.waiting.set(who, queue);
    go();
  }
}
