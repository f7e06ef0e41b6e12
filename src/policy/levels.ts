/**
 * The ports (protocol numbers) of a set of rules by priority: whether any rule at or above a priority
 * meets a span (rule-index.ts: is a rule without a peer above every rule with a peer on its ports?).
 * Counted per distinct range, so rules come and go one at a time. Per priority, the distinct ranges are
 * kept sorted (by first port, then last) with the furthest port reached by each prefix of them: a span
 * meets some range if the ranges starting at or before its end reach its start. A change splices one
 * range in or out and marks where the reach is stale; it is brought up to date when asked. (The ranges
 * were merged again, sorted, whenever asked after a change: a /32 rule's port changed at 50,000 rules
 * sorted the 50,000 ranges of its priority twice, ~18 ms of a 23 ms compile.) Priorities are few
 * (Weft's 1-100 and the Kubernetes tiers'), so a question costs a binary search per priority in force
 * above it, whatever the number of rules.
 */
export class Levels {
  private readonly byPriority = new Map<number, Level>();

  add(priority: number, [first, last]: readonly [number, number], d: 1 | -1): void {
    let level = this.byPriority.get(priority);
    if (!level) this.byPriority.set(priority, (level = { counts: new Map(), keys: [], reach: [], stale: 0 }));
    const key = first * 65536 + last;
    const was = level.counts.get(key) ?? 0;
    const n = was + d;
    if (n > 0) level.counts.set(key, n);
    else level.counts.delete(key);
    if (was === 0 && n > 0) {
      const i = below(level.keys, key);
      level.keys.splice(i, 0, key);
      level.reach.splice(i, 0, 0);
      if (i < level.stale) level.stale = i;
    } else if (was > 0 && n <= 0) {
      const i = below(level.keys, key);
      level.keys.splice(i, 1);
      level.reach.splice(i, 1);
      if (i < level.stale) level.stale = i;
    }
    if (level.counts.size === 0) this.byPriority.delete(priority);
  }

  /** Whether a range counted at `priority` or above meets [first, last]. */
  meetsFrom(priority: number, [first, last]: readonly [number, number]): boolean {
    for (const [p, level] of this.byPriority) {
      if (p < priority) continue;
      // The ranges starting at or before `last` (a key is first × 65536 + last, last < 65536).
      const j = below(level.keys, (last + 1) * 65536) - 1;
      if (j < 0) continue;
      const { keys, reach } = level;
      for (let i = level.stale; i < keys.length; i++) reach[i] = Math.max(i > 0 ? (reach[i - 1] as number) : -1, (keys[i] as number) % 65536);
      level.stale = keys.length;
      if ((reach[j] as number) >= first) return true;
    }
    return false;
  }
}

/**
 * `keys`: the distinct ranges as first × 65536 + last, ascending; `reach[i]`: the furthest last port of
 * keys[0..i], up to date below `stale`.
 */
interface Level { counts: Map<number, number>; keys: number[]; reach: number[]; stale: number }

/** How many of the sorted `xs` are below `x` (where `x` goes). */
function below(xs: readonly number[], x: number): number {
  let lo = 0;
  let hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((xs[mid] as number) < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

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
