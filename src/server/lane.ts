import { WeftError } from '../model/index.js';
import { TimeSlices } from './slices.js';

/** What a lane's work is handed: its pause (a turn given to the others when its slice is spent) and `away`. */
export interface LaneTurn {
  /** Lets the others waiting have a turn once SLICE_MS has passed since this work's turn began. */
  pause(): Promise<void>;
  /** This work's time on the event loop so far (its waits for turns and its time away left out). */
  spent(): number;
  /**
   * Waits for `p` outside the lane: I/O (store reads: with etcd each is a round trip, and held in the
   * lane it kept every other question waiting), or another's work this one needs (held, both would wait
   * for ever). Its time is not counted as this work's.
   */
  away<T>(p: Promise<T>): Promise<T>;
  /** Whether this work's request has ended (it will stop at its next pause). */
  left(): boolean;
}

/** The work's request ended (answered by its deadline, or its client gone) before it was done. */
export class LaneLeft extends WeftError {
  constructor() {
    super('WEFT_DEADLINE', 'the request ended before its question was answered');
  }
}

/**
 * Costly questions (explain, the policy matrix) share the event loop one at a time, a slice each in turn.
 *
 * Each holds the event loop in stretches of up to SLICE_MS; side by side, a request arriving between them
 * waited for every one under way before each of its own steps: four users asking explain in a loop from
 * three connections each held a bystander's GET 38 ms at the median and 257 ms at p99. In one lane, a
 * bystander waits for one stretch at most per step. Turns go round the askers (by tenant), a slice at
 * a time, so a tenant with many questions, or one long one, does not starve one with a single short
 * question; a turn is handed over on a later turn of the event loop, after the I/O that came in; and work
 * whose request has ended leaves its place (waiting) or stops at its next pause.
 */
export class Lane {
  private busy = false;
  /** Work holding the lane now, and the most ever at once (one, unless a bug lets two in: tests check it). */
  private holding = 0;
  mostHolding = 0;
  /** Waiting work by asker, the askers in their order in the round (a Map keeps insertion order). */
  private readonly waiting = new Map<string, Array<() => void>>();

  async run<T>(who: string, work: (turn: LaneTurn) => Promise<T>, signal?: AbortSignal): Promise<T> {
    let held = false;
    const enter = async () => {
      await this.enter(who, signal);
      held = true;
      this.mostHolding = Math.max(this.mostHolding, ++this.holding);
    };
    const leave = () => {
      if (!held) return;
      held = false;
      this.holding--;
      this.leave();
    };
    await enter();
    const slices = new TimeSlices(async () => {
      leave();
      await enter();
    });
    const turn: LaneTurn = {
      pause: slices.pause,
      spent: () => slices.spent(),
      left: () => signal?.aborted === true,
      away: (p) => slices.outside(async () => {
        leave();
        try {
          return await p;
        } finally {
          await enter();
        }
      }),
    };
    try {
      return await work(turn);
    } finally {
      leave();
    }
  }

  /** Work waiting for a turn. */
  get queued(): number {
    let n = 0;
    for (const q of this.waiting.values()) n += q.length;
    return n;
  }

  private enter(who: string, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(new LaneLeft());
    if (!this.busy) {
      this.busy = true;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const go = () => {
        signal?.removeEventListener('abort', gone);
        resolve();
      };
      const gone = () => {
        const queue = this.waiting.get(who);
        const at = queue?.indexOf(go) ?? -1;
        if (queue && at >= 0) {
          queue.splice(at, 1);
          if (queue.length === 0) this.waiting.delete(who);
        }
        reject(new LaneLeft());
      };
      signal?.addEventListener('abort', gone, { once: true });
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
