import { addressOf, type Endpoint } from '../model/index.js';
import { lookups, type CompiledPolicy, type Slot, type Verdict } from './compile.js';

/** One run of ports (or protocol numbers, for `other`) between two endpoints whose verdict changes. */
export interface VerdictChange { from: string; to: string; protocol: 'tcp' | 'udp' | 'other' | 'sctp'; first: number; last: number; before: Verdict; after: Verdict }

type Fn = Array<{ first: number; last: number; verdict: Verdict }>;
const SLOTS = [['tcp', 65535], ['udp', 65535], ['other', 255], ['sctp', 65535]] as const;

/**
 * A pair of classes' whole function of one protocol slot (compile.ts `lookups`). SCTP by port in a
 * compile that decides it as one protocol number is that number's verdict on every port.
 */
function functionOf(c: CompiledPolicy, l: ReturnType<typeof lookups>, s: number, d: number, slot: Slot): Fn {
  if (slot === 3 && !c.sctp) {
    const other = l.functionOf(s, d, 2).find((x) => x.first <= 132 && x.last >= 132);
    return [{ first: 0, last: 65535, verdict: other?.verdict ?? c.fallback }];
  }
  return l.functionOf(s, d, slot);
}

/** A function of `other` with protocol 132 cut out (both sides cut alike, so the walk below stays in step). */
function without132(f: Fn): Fn {
  return f.flatMap((s) => (s.first <= 132 && s.last >= 132
    ? [...(s.first < 132 ? [{ ...s, last: 131 }] : []), ...(s.last > 132 ? [{ ...s, first: 133 }] : [])]
    : [s]));
}

type Run = Omit<VerdictChange, 'from' | 'to'>;

/** The runs where two functions of one slot differ: how many, and (into `keep`, when given) the runs themselves. */
function runsOf(x: Fn, y: Fn, slot: Slot, keep?: Run[]): number {
  let count = 0;
  let i = 0;
  let j = 0;
  // The run under way, as scalars: counting allocates nothing.
  let open = false;
  let runLast = 0;
  let runBefore: Verdict = 'accept';
  let runAfter: Verdict = 'accept';
  while (i < x.length && j < y.length) {
    const p = x[i] as Fn[number];
    const q = y[j] as Fn[number];
    const first = Math.max(p.first, q.first);
    const last = Math.min(p.last, q.last);
    // The numbers 6 and 17 of `other` are tcp and udp, compared by port: never a change there.
    const skip = slot === 2 && (first === 6 || first === 17) && first === last;
    if (p.verdict !== q.verdict && !skip) {
      if (open && runLast + 1 === first && runBefore === p.verdict && runAfter === q.verdict) {
        runLast = last;
        if (keep) (keep[keep.length - 1] as Run).last = last;
      } else {
        open = true;
        count++;
        runLast = last;
        runBefore = p.verdict;
        runAfter = q.verdict;
        keep?.push({ protocol: SLOTS[slot][0], first, last, before: p.verdict, after: q.verdict });
      }
    }
    if (p.last === last) i++;
    if (q.last === last) j++;
  }
  return count;
}

/**
 * Every run of ports where a new connection between two endpoints would get another verdict after
 * than before (`weft apply --dry-run`), from two compiles of the whole tenant. At most `limit` runs, in
 * endpoint order; `total` counts them all. Endpoints of one class in both compiles decide alike, so each
 * pair of classes is compared once (200 endpoints alike were 40,000 comparisons of 250 port ranges).
 */
export function verdictChanges(before: CompiledPolicy, after: CompiledPolicy, endpoints: readonly Endpoint[], limit: number): { changes: VerdictChange[]; total: number } {
  const b = lookups(before);
  const a = lookups(after);
  const changes: VerdictChange[] = [];
  let total = 0;
  const sctp = before.sctp || after.sctp;
  const slots: readonly Slot[] = sctp ? [0, 1, 2, 3] : [0, 1, 2];
  const classes = endpoints.map((e) => {
    const ip = addressOf(e);
    return [before.classification.byIp(ip).id, after.classification.byIp(ip).id] as const;
  });
  // Per pair of classes, only how many runs differ (all of them kept, 40,000 pairs of one-endpoint classes
  // with 250 port ranges took more than 512 MB); the runs themselves are made for the first `limit`.
  const counted = new Map<string, number>();
  const runsBetween = (x: readonly [number, number], y: readonly [number, number], keep?: Run[]): number => {
    let n = 0;
    for (const slot of slots) {
      // SCTP compared as sctp (by port) where either compile decides it so: `other` without 132.
      const cut = (f: Fn) => (sctp && slot === 2 ? without132(f) : f);
      n += runsOf(cut(functionOf(before, b, x[0], y[0], slot)), cut(functionOf(after, a, x[1], y[1], slot)), slot, keep);
    }
    return n;
  };
  endpoints.forEach((src, i) => {
    endpoints.forEach((dst, j) => {
      // No connection between endpoints that share no family (an IPv4-only and an IPv6-only network's).
      if (src === dst || !((src.ip !== undefined && dst.ip !== undefined) || (src.ip6 !== undefined && dst.ip6 !== undefined))) return;
      const x = classes[i] as readonly [number, number];
      const y = classes[j] as readonly [number, number];
      const key = `${x[0]}/${y[0]}/${x[1]}/${y[1]}`;
      let n = counted.get(key);
      if (n === undefined) counted.set(key, (n = runsBetween(x, y)));
      total += n;
      if (n > 0 && changes.length < limit) {
        const runs: Run[] = [];
        runsBetween(x, y, runs);
        for (const r of runs) {
          if (changes.length >= limit) break;
          changes.push({ from: src.id, to: dst.id, ...r });
        }
      }
    });
  });
  return { changes, total };
}
