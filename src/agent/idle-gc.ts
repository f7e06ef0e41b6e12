import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Logger } from 'pino';

/**
 * Quiet this long after the last pass that did work before collecting: a series of changes is not
 * interrupted. A forced collection marks the whole heap at once (170-320 ms at 50,000 nested-prefix
 * rules, 220 MB); with 250 ms here, changes ~1 s apart in bench:policy met one in ten, and waited
 * for it (p99 195 ms where it was 63 ms without). V8's own collections meanwhile mark incrementally.
 */
const QUIET_MS = 3_000;
/** At most one collection this often. */
const GAP_MS = 2_000;
/**
 * Collected once the heap grew this much since the last idle collection (V8's own do not move the mark): V8 itself starts a major collection
 * after a few MB of promotions (every ~5 s, ~10 changes, in bench:policy's agent step at 50,000 rules).
 */
const GROWTH = 4 * 1024 * 1024;
/**
 * ... or by this share of what the last idle collection left, if more, unless the last one is LONG_MS
 * behind: a collection marks the whole heap, so its cost grows with what lives, and a fixed few MB made
 * a large heap pay it again and again for little. At 50,000 rules of nested prefixes (bench:policy's
 * nested-all shape, 460 MB live) the leftover sweep's few MB bought a 0.5 s collection 18 s after the
 * last: 13 % of a core in the agent step's second idle window (session 57); a sixteenth there is 29 MB.
 */
const GROWTH_SHARE = 1 / 16;
/**
 * Past this since the last idle collection, the few MB of GROWTH are enough again: growth is all this
 * class can see (`used` counts garbage too), and a large policy replaced by a small one leaves its old
 * compile as garbage while the heap barely grows; V8's own collection waits for twice the old size, and
 * its memory reducer is off. At most one collection of a large heap a minute (0.5 s at 460 MB: < 1 %).
 */
const LONG_MS = 60_000;
/**
 * A minor collection after a pass that did work, once nothing runs, when the young generation is at least
 * this full. A change's work allocates a few MB (~9 MB at 50,000 nested-prefix rules); without this the
 * young generation filled during a change, and its scavenge then copied that change's working set as
 * well as the last one's results: 11 / 35 ms (p50 / max) at a 475 MB heap, in the middle of the change
 * (bench:policy's nested agent step, session 60). Emptied after a pass, the next change starts with all
 * of it free but what survived this one scavenge (young until the next), and usually meets no scavenge;
 * the copying done here (the last change's results, ~4 ms) waits for nothing. Right after start V8's young
 * generation is small (1 MB, growing to 16 MB with use) and a pass's survivors alone may fill a quarter:
 * then each pass is followed by one, cheap at that size.
 */
const NURSERY_SHARE = 1 / 4;

/**
 * Full garbage collections while the agent is idle. Each compile's results live until the next change,
 * so they reach the old generation and die there; with 50,000 rules V8's own major collection then came
 * every ~13 changes, in the middle of one, its marking adding 200-250 ms to it (the p99 of rule change →
 * enforced; docs/decisions.md). The agent lets its old generation double before one (the launcher's
 * --heap-growing-percent=100, session 38): during a stream of changes one comes rarely; collected here
 * after a pass and a quiet moment, the heap goes back down while nothing waits. A pass that starts meanwhile waits for it, as it would for V8's own.
 */
export class IdleGc {
  private timer: NodeJS.Timeout | undefined;
  private last = -Infinity;
  private baseline = used();
  /** When the last pass that did work ended, and how much work runs now (passes of both lanes, ADDs). */
  private lastWork = -Infinity;
  private running = 0;

  private nursery: NodeJS.Immediate | undefined;

  private stopped = false;

  /** `gc`: a full collection; `minor`: a minor one (a scavenge of the young generation) and how full that generation is (`youngFill`). */
  constructor(private readonly gc: (() => void) | undefined, private readonly log: Logger, private readonly quietMs = QUIET_MS, private readonly gapMs = GAP_MS, private readonly longMs = LONG_MS, private readonly minor?: { collect(): void; fill(): number }) {}

  /**
   * With V8's collector exposed at run time (no flag on the command line needed). V8's memory reducer is
   * turned off too (`weft agent` also starts with --no-memory-reducer, which is surer): ~8 s after any
   * full collection, this one's included, it runs one or two more to give memory back, each marking the
   * whole heap (~400 ms of CPU at 200 MB: the agent's idle CPU at 50,000 nested-prefix rules was 14-17 %
   * in such a window). The collections here after a burst of work do what it would.
   */
  static create(log: Logger): IdleGc {
    let gc: ((o?: { type: 'major' | 'minor' }) => void) | undefined;
    try {
      v8.setFlagsFromString('--no-memory-reducer');
      v8.setFlagsFromString('--expose-gc');
      gc = runInNewContext('gc') as typeof gc;
    } catch {
      gc = undefined;
    }
    if (typeof gc !== 'function') return new IdleGc(undefined, log);
    const collect = gc;
    return new IdleGc(() => collect(), log, QUIET_MS, GAP_MS, LONG_MS, { collect: () => collect({ type: 'minor' }), fill: youngFill });
  }

  /**
   * A pass ended. `worked`: it converged something (a change pass, or a full pass that checked a tenant):
   * the quiet time starts again. A full pass that found nothing to check (the resync's usual one, every
   * 2 s) does not put the collection off.
   */
  passed(worked = true): void {
    this.done();
    if (worked) this.scavengeSoon();
    if (!this.gc) return;
    if (worked) this.lastWork = performance.now();
    this.schedule(Math.max(0, this.lastWork + this.quietMs - performance.now()));
  }

  /**
   * Work started (a pass, an ADD): no collection until it, and any other work running beside it, ends
   * (`passed` for a pass, `done` for the rest). Counted: a full pass and a change pass run side by side.
   */
  busy(): void {
    this.running++;
  }

  /**
   * A pass was asked for (a change marked its tenant): a minor collection not yet begun waits for that
   * pass's end instead of running first (the pass starts from a later callback of the same loop turn).
   */
  asked(): void {
    if (this.nursery) clearImmediate(this.nursery);
    this.nursery = undefined;
  }

  /** Work that `busy` announced ended, without being a pass. */
  done(): void {
    this.running = Math.max(0, this.running - 1);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.nursery) clearImmediate(this.nursery);
    this.nursery = undefined;
  }

  /** After this turn (the pass's answers and logs are written), unless work runs by then: see NURSERY_SHARE. */
  private scavengeSoon(): void {
    const minor = this.minor;
    if (!minor || this.nursery || this.stopped) return;
    this.nursery = setImmediate(() => {
      this.nursery = undefined;
      if (this.running === 0 && minor.fill() >= NURSERY_SHARE) minor.collect();
    });
    this.nursery.unref();
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.maybe(), ms);
    this.timer.unref();
  }

  private maybe(): void {
    this.timer = undefined;
    // Work runs (a pass's end schedules again), or ended too recently.
    if (this.running > 0) return;
    const now = performance.now();
    if (now - this.lastWork < this.quietMs) return this.schedule(this.lastWork + this.quietMs - now);
    const before = used();
    const needed = now - this.last >= this.longMs ? GROWTH : Math.max(GROWTH, this.baseline * GROWTH_SHARE);
    if (!this.gc || before - this.baseline < needed) return;
    // Too soon after the last one: collect once the gap has passed (unless work starts meanwhile), not never.
    if (now - this.last < this.gapMs) return this.schedule(this.gapMs - (now - this.last));
    this.gc();
    this.last = performance.now();
    this.baseline = used();
    this.log.debug({ ms: Math.round(this.last - now), beforeMB: mb(before), afterMB: mb(this.baseline) }, 'idle gc');
  }
}

const used = () => v8.getHeapStatistics().used_heap_size;
/**
 * How full the young generation is, as a share of its allocation space: what was allocated there since the
 * last scavenge and what survived only that one (those stay young until the next), plus young objects too
 * large for it (V8's new large-object space, which also fills towards a scavenge). 1 or more: one is due.
 */
export function youngFill(): number {
  const spaces = v8.getHeapSpaceStatistics();
  const s = spaces.find((x) => x.space_name === 'new_space');
  if (!s) return 0;
  const large = spaces.find((x) => x.space_name === 'new_large_object_space')?.space_used_size ?? 0;
  const room = s.space_used_size + s.space_available_size;
  return room > 0 ? (s.space_used_size + large) / room : 0;
}
const mb = (n: number) => Math.round(n / 1048576);
