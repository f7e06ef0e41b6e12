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
      level.merged ??= merge(level.counts.keys());
      if (meets(level.merged, span)) return true;
    }
    return false;
  }
}

interface Level { counts: Map<number, number>; merged: Array<[number, number]> | undefined }

/** Ranges (keyed first × 65536 + last) merged where they overlap or touch, sorted. */
function merge(keys: Iterable<number>): Array<[number, number]> {
  const xs = [...keys].sort((a, b) => a - b).map((k): [number, number] => [Math.floor(k / 65536), k % 65536]);
  const out: Array<[number, number]> = [];
  for (const [first, last] of xs) {
    const prev = out[out.length - 1];
    if (prev && first <= prev[1] + 1) prev[1] = Math.max(prev[1], last);
    else out.push([first, last]);
  }
  return out;
}

/** Whether sorted disjoint ranges meet [first, last]: the last one starting at or before `last` reaches `first`. */
function meets(xs: ReadonlyArray<readonly [number, number]>, [first, last]: readonly [number, number]): boolean {
  let lo = 0;
  let hi = xs.length - 1;
  let at = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if ((xs[mid] as [number, number])[0] <= last) { at = mid; lo = mid + 1; } else hi = mid - 1;
  }
  return at >= 0 && (xs[at] as [number, number])[1] >= first;
}
