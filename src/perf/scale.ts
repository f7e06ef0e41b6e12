/**
 * Axes and numbers for the charts. Every number that reaches an SVG goes through `coord` or a tick label
 * made here, and each handles the degenerate inputs (no data, one value, all values equal) by widening
 * the range instead of dividing by zero: a chart never says NaN or Infinity.
 */

export interface Scale {
  lo: number;
  hi: number;
  step: number;
  ticks: number[];
  /** Decimals that show every tick exactly (0.2, 0.4, … → 1). */
  decimals: number;
}

/** 1, 2 or 5 times a power of ten, at least `x`: steps people read at a glance. */
function niceStep(x: number): number {
  const p = 10 ** Math.floor(Math.log10(x));
  const f = x / p;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
}

/**
 * A range covering [lo, hi] that starts and ends on a tick, about `target` ticks apart. `floor` is the
 * least value the axis may show (0 for rates and latencies: widening never makes them negative).
 */
export function niceScale(lo: number, hi: number, floor = 0, target = 5): Scale {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) [lo, hi] = [floor, floor + 1];
  if (hi < lo) [lo, hi] = [hi, lo];
  if (hi - lo <= Math.abs(hi) * 1e-9) {
    // All values equal (or one): widen by a tenth of the value, or to 1 around zero.
    const pad = hi !== 0 ? Math.abs(hi) / 10 : 1;
    [lo, hi] = [lo - pad, hi + pad];
  }
  lo = Math.max(lo, floor);
  const step = niceStep((hi - lo) / target);
  // The slack keeps 0.9 / 0.1 = 9.000000000000002 from adding a tick past the data.
  const from = Math.floor(lo / step + 1e-9);
  const count = Math.max(1, Math.ceil(hi / step - 1e-9) - from);
  const first = from * step;
  const decimals = Math.max(0, -Math.floor(Math.log10(step)));
  // Ticks are computed from integers and rounded, so 0.1 * 3 shows as 0.3, not 0.30000000000000004.
  const ticks = Array.from({ length: count + 1 }, (_, i) => Number((first + i * step).toFixed(decimals)));
  return { lo: ticks[0] as number, hi: ticks[count] as number, step, ticks, decimals };
}

/** `v` mapped from the scale onto [from, to] (pixels; `to` may be less than `from`, as a y axis is). */
export function place(v: number, s: Scale, from: number, to: number): number {
  return from + ((v - s.lo) / (s.hi - s.lo)) * (to - from);
}

/** A coordinate as written into SVG: two decimals, no -0; a non-finite one is a bug, and fails loudly. */
export function coord(n: number): string {
  if (!Number.isFinite(n)) throw new Error(`chart coordinate is ${n}`);
  const r = Math.round(n * 100) / 100;
  return String(r === 0 ? 0 : r);
}

export interface RateUnit {
  name: 'Mbit/s' | 'Gbit/s';
  bitsPerSecond: number;
}

/** Gbit/s once the largest rate shown reaches 1 Gbit/s, Mbit/s below (fractions of one included). */
export function rateUnit(maxBitsPerSecond: number): RateUnit {
  return maxBitsPerSecond >= 1e9 ? { name: 'Gbit/s', bitsPerSecond: 1e9 } : { name: 'Mbit/s', bitsPerSecond: 1e6 };
}

/** Three significant digits, never in exponent form for the values we show (941, 1.23, 0.0452). */
export function significant(v: number): string {
  if (!Number.isFinite(v)) return '–';
  if (v === 0) return '0';
  const decimals = Math.min(12, Math.max(0, 2 - Math.floor(Math.log10(Math.abs(v)))));
  return String(Number(v.toFixed(decimals)));
}

export const formatRate = (bitsPerSecond: number): string => {
  const u = rateUnit(bitsPerSecond);
  return `${significant(bitsPerSecond / u.bitsPerSecond)} ${u.name}`;
};

export const formatMs = (ms: number): string => `${significant(ms)} ms`;
