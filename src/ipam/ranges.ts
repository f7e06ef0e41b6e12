import type { IpRange } from '../model/index.js';

/**
 * `base` minus every range in `holes`, as sorted disjoint ranges. One pass over the holes in order of
 * their starts (they may overlap, touch or lie outside `base`): a network with thousands of group pools
 * costs a sort, not holes × pieces.
 */
export function subtractRanges(base: IpRange, holes: readonly IpRange[]): IpRange[] {
  const out: IpRange[] = [];
  let next = base.first;
  for (const h of [...holes].sort((x, y) => x.first - y.first)) {
    if (h.last < next) continue;
    if (h.first > base.last) break;
    if (h.first > next) out.push({ first: next, last: h.first - 1 });
    next = h.last + 1;
    if (next > base.last) return out;
  }
  out.push({ first: next, last: base.last });
  return out;
}
