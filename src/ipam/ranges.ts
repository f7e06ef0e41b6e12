import type { IpRange } from '../model/index.js';

/** `base` minus every range in `holes`, as sorted disjoint ranges. */
export function subtractRanges(base: IpRange, holes: readonly IpRange[]): IpRange[] {
  let out: IpRange[] = [base];
  for (const h of holes) {
    const next: IpRange[] = [];
    for (const r of out) {
      if (h.last < r.first || h.first > r.last) {
        next.push(r);
        continue;
      }
      if (h.first > r.first) next.push({ first: r.first, last: h.first - 1 });
      if (h.last < r.last) next.push({ first: h.last + 1, last: r.last });
    }
    out = next;
  }
  return out.sort((x, y) => x.first - y.first);
}
