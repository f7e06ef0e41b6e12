/**
 * A small seeded generator (mulberry32): the same seed gives the same schedule of faults, targets and
 * delays, so a failing run can be replayed. Not for anything secret.
 */
export class Prng {
  private s: number;
  /** What is left of each list being dealt (see draw). */
  private readonly decks = new Map<readonly unknown[], unknown[]>();

  constructor(readonly seed: number) {
    this.s = seed >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [lo, hi], both included. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  pick<T>(xs: readonly T[]): T {
    if (xs.length === 0) throw new RangeError('pick from an empty list');
    return xs[this.int(0, xs.length - 1)] as T;
  }

  /**
   * The next item of `xs` dealt without replacement: every item once, in a seeded order, before any
   * comes again. A run with few faults still meets different cases, where pick() repeats some early.
   */
  draw<T>(xs: readonly T[]): T {
    if (xs.length === 0) throw new RangeError('draw from an empty list');
    let deck = this.decks.get(xs) as T[] | undefined;
    if (!deck?.length) {
      deck = [...xs];
      for (let i = deck.length - 1; i > 0; i--) {
        const j = this.int(0, i);
        [deck[i], deck[j]] = [deck[j] as T, deck[i] as T];
      }
      this.decks.set(xs, deck);
    }
    return deck.pop() as T;
  }
}

/** A fresh seed when none is given (printed, so the run can be replayed). */
export const randomSeed = (): number => Math.floor(Math.random() * 2 ** 31);
