import { coverage } from './decide.js';
import type { Bucket, ProtoSlot } from './rule-index.js';
import type { Segment } from './segments.js';

/**
 * High stages (issue 13: a rule without a peer changed at 50,000 rules). A rule without a peer above every
 * rule with a peer of its side on its ports (rule-index.ts `high`) decides that direction alone there,
 * for every peer: the datapath looks it up before the pairs (per side and protocol, as the side stages),
 * drops what it denies, and marks the direction decided where it allows. The pairs' functions are computed
 * without high rules, so changing one changes its side's high profile and no pair. Where a direction is
 * decided open, the other direction alone decides: each pair of enforced classes has a function for
 * that case too (pairs.ts `variants`), keyed by the destination class with DECIDED_IN or DECIDED_OUT.
 * A pair into a class of another host never needs one (its ingress is not enforced here; its egress
 * variant alone would be the side stages'), so these are few: the enforced classes' pairs.
 */

/** Added to a destination class: the pair's function once the destination's ingress was decided open ahead of the pairs (its egress alone). */
export const DECIDED_IN = 0x04000000;
/** Added to a destination class: the pair's function once the source's egress was decided open ahead of the pairs (the ingress alone). */
export const DECIDED_OUT = 0x08000000;

/** Protocol numbers the `other` slot never decides (they have slots of their own). */
const byPort = (sctp: boolean) => (sctp ? [6, 17, 132] : [6, 17]);

/**
 * A side's high profile of one slot: the ports (protocol numbers) where the highest priority among its
 * rules without a peer holds a high rule, each with that priority's verdict (deny wins a tie). Elsewhere
 * the pairs and side stages decide. Empty when the side has no high rule in the slot.
 */
export function highSegments(any: Bucket | undefined, high: Bucket | undefined, p: ProtoSlot, sctp: boolean): Segment[] {
  if (!high || high.rules[p].length === 0) return [];
  const events: Array<{ at: number; priority: number; deny: boolean; high: boolean; d: 1 | -1 }> = [];
  const last = p === 2 ? 255 : 65535;
  for (const [b, isHigh] of [[any, false], [high, true]] as const) {
    for (const r of b?.rules[p] ?? []) {
      const c = coverage(r.rule, p);
      if (!c) continue;
      const x = { priority: r.rule.priority, deny: r.rule.action === 'deny', high: isHigh };
      events.push({ at: c[0], ...x, d: 1 });
      if (c[1] < last) events.push({ at: c[1] + 1, ...x, d: -1 });
    }
  }
  events.sort((a, b) => a.at - b.at);
  const levels = new Map<number, { n: number; deny: number; high: number }>();
  const out: Segment[] = [];
  let e = 0;
  for (let at = 0; at <= last;) {
    while (e < events.length && (events[e] as (typeof events)[number]).at === at) {
      const x = events[e++] as (typeof events)[number];
      let l = levels.get(x.priority);
      if (!l) levels.set(x.priority, (l = { n: 0, deny: 0, high: 0 }));
      l.n += x.d;
      if (x.deny) l.deny += x.d;
      if (x.high) l.high += x.d;
      if (l.n === 0) levels.delete(x.priority);
    }
    const end = (e < events.length ? (events[e] as (typeof events)[number]).at : last + 1) - 1;
    let top: { n: number; deny: number; high: number } | undefined;
    let best = -Infinity;
    for (const [priority, l] of levels) if (priority > best) { best = priority; top = l; }
    if (top && top.high > 0) push(out, at, end, top.deny > 0 ? 'drop' : 'accept');
    at = end + 1;
  }
  return p === 2 ? withoutNumbers(out, byPort(sctp)) : out;
}

function push(out: Segment[], first: number, last: number, verdict: 'accept' | 'drop'): void {
  const prev = out[out.length - 1];
  if (prev && prev.verdict === verdict && prev.last + 1 === first) prev.last = last;
  else out.push({ first, last, verdict });
}

/** Segments with some numbers cut out of them. */
function withoutNumbers(segs: readonly Segment[], skip: readonly number[]): Segment[] {
  const out: Segment[] = [];
  for (const s of segs) {
    let first = s.first;
    for (const n of skip) {
      if (n < first || n > s.last) continue;
      if (n > first) out.push({ first, last: n - 1, verdict: s.verdict });
      first = n + 1;
    }
    if (first <= s.last) out.push({ first, last: s.last, verdict: s.verdict });
  }
  return out;
}
