import { rangeAt } from './classes.js';

/**
 * The ports (protocol numbers) of a set of rules by priority: whether any rule at or above a priority
 * meets a span (rule-index.ts: is a rule without a peer above every rule with a peer on its ports?).
 * Counted per distinct range, so rules come and go one at a time; a priority's ranges are merged again
 * only when asked after a change there. Priorities are few (Weft's 1-100 and the Kubernetes tiers'), so a
 * question costs a binary search per priority in force above it, whatever the number of rules.
 */
export class Levels {
  private readonly byPriority = new Map<number, Level>();

  add(priority: number, [first, last]: readonly [number, number], d: 1 | -1): void {
    let level = this.byPriority.get(priority);
    if (!level) this.byPriority.set(priority, (level = { counts: new Map(), merged: undefined }));
    const key = first * 65536 + last;
    const n = (level.counts.get(key) ?? 0) + d;
    if (n > 0) level.counts.set(key, n);
    else level.counts.delete(key);
    level.merged = undefined;
    if (level.counts.size === 0) this.byPriority.delete(priority);
  }

  /** Whether a range counted at `priority` or above meets [first, last]. */
  meetsFrom(priority: number, span: readonly [number, number]): boolean {
    for (const [p, level] of this.byPriority) {
      if (p < priority) continue;
      level.merged ??= mergeRanges([...level.counts.keys()].map((k): [number, number] => [Math.floor(k / 65536), k % 65536]));
      if (meetsRanges(level.merged, span)) return true;
    }
    return false;
  }
}

interface Level { counts: Map<number, number>; merged: Array<{ first: number; last: number }> | undefined }

/** Ranges merged where they overlap or touch, sorted (so classes.ts `rangeAt` finds one). */
export function mergeRanges(xs: ReadonlyArray<readonly [number, number]>): Array<{ first: number; last: number }> {
  const out: Array<{ first: number; last: number }> = [];
  for (const [first, last] of [...xs].sort((a, b) => a[0] - b[0])) {
    const prev = out[out.length - 1];
    if (prev && first <= prev.last + 1) prev.last = Math.max(prev.last, last);
    else out.push({ first, last });
  }
  return out;
}

/** Whether sorted, disjoint ranges meet [first, last]: the last one starting at or before `last` reaches `first`. */
export function meetsRanges(xs: ReadonlyArray<{ first: number; last: number }>, [first, last]: readonly [number, number]): boolean {
  const at = xs[rangeAt(xs, last)];
  return at !== undefined && at.last >= first;
}
