import type { BenchResult } from './results.js';
import { coord, formatMs, formatRate, niceScale, place, rateUnit, type Scale } from './scale.js';

/**
 * The two charts of a run, as SVG written by hand (the page and the PNG use the same text). Styling is by
 * presentation attributes only, never `style`, so the page's CSP needs no 'unsafe-inline' for them.
 */
export const CHART = { width: 640, height: 320, left: 64, right: 20, top: 48, bottom: 44 } as const;
const X0 = CHART.left;
const X1 = CHART.width - CHART.right;
const Y0 = CHART.height - CHART.bottom;
const Y1 = CHART.top;
/** More steps than this in a CDF are drawn at this many evenly spaced ranks: the page stays small. */
export const MAX_CDF_POINTS = 1000;

/** Text for XML text and attribute values alike. */
export function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const attrs = (a: Record<string, string | number>) =>
  Object.entries(a).map(([k, v]) => ` ${k}="${typeof v === 'number' ? coord(v) : escapeXml(v)}"`).join('');
const el = (tag: string, a: Record<string, string | number>, text?: string) =>
  text === undefined ? `<${tag}${attrs(a)}/>` : `<${tag}${attrs(a)}>${escapeXml(text)}</${tag}>`;

interface Frame {
  title: string;
  subtitle: string;
  x: Scale;
  y: Scale;
  xLabel: string;
  yLabel: string;
}

/** Background, titles, grid, ticks and axis labels; the series goes on top. */
function frame(f: Frame): string[] {
  const out = [
    el('rect', { width: CHART.width, height: CHART.height, fill: '#ffffff' }),
    el('text', { class: 'title', x: X0, y: 18, 'font-size': 13, 'font-weight': 'bold' }, f.title),
    el('text', { class: 'subtitle', x: X0, y: 35, fill: '#57606a' }, f.subtitle),
  ];
  for (const v of f.y.ticks) {
    const y = place(v, f.y, Y0, Y1);
    out.push(`<g class="ytick">${el('line', { x1: X0, y1: y, x2: X1, y2: y, stroke: '#d8dee4' })}${el('text', { x: X0 - 6, y: y + 4, 'text-anchor': 'end' }, v.toFixed(f.y.decimals))}</g>`);
  }
  for (const v of f.x.ticks) {
    const x = place(v, f.x, X0, X1);
    out.push(`<g class="xtick">${el('line', { x1: x, y1: Y0, x2: x, y2: Y0 + 5, stroke: '#57606a' })}${el('text', { x, y: Y0 + 18, 'text-anchor': 'middle' }, v.toFixed(f.x.decimals))}</g>`);
  }
  out.push(
    el('path', { class: 'axes', d: `M${coord(X0)},${coord(Y1)}V${coord(Y0)}H${coord(X1)}`, fill: 'none', stroke: '#57606a' }),
    el('text', { class: 'xlabel', x: (X0 + X1) / 2, y: CHART.height - 8, 'text-anchor': 'middle' }, f.xLabel),
    el('text', { class: 'ylabel', x: 16, y: (Y0 + Y1) / 2, 'text-anchor': 'middle', transform: `rotate(-90 16 ${coord((Y0 + Y1) / 2)})` }, f.yLabel),
  );
  return out;
}

function svg(label: string, parts: string[]): string {
  const head = `<svg xmlns="http://www.w3.org/2000/svg" width="${CHART.width}" height="${CHART.height}" viewBox="0 0 ${CHART.width} ${CHART.height}" role="img" aria-label="${escapeXml(label)}" font-family="sans-serif" font-size="11">`;
  return [head, `<title>${escapeXml(label)}</title>`, ...parts, '</svg>', ''].join('\n');
}

const noData = (what: string) => el('text', { class: 'empty', x: (X0 + X1) / 2, y: (Y0 + Y1) / 2, 'text-anchor': 'middle', fill: '#57606a' }, what);

const who = (r: BenchResult) => `${r.tenant}/${r.network}: ${r.fromGroup} → ${r.toGroup} port ${r.port}`;

/** Throughput over time; with a netprofile's bandwidth limit, a dashed line at the limit, labelled with it. */
export function renderThroughputSvg(r: BenchResult): string {
  const limit = r.netprofile?.bandwidthBitsPerSecond ?? null;
  // A loop, not Math.max(...spread): 100,000 samples would overflow the call's arguments.
  const top = r.throughput.reduce((m, s) => Math.max(m, s.bitsPerSecond), limit ?? 0);
  const unit = rateUnit(top);
  const x = niceScale(0, Math.max(r.durationSeconds, r.throughput.at(-1)?.t ?? 0));
  // A tenth of headroom: a shaped run sits just under its limit, and the limit's label goes above it.
  const y = niceScale(0, (top * 1.1) / unit.bitsPerSecond, 0, 6);
  const s = r.summary.throughputBitsPerSecond;
  const profile = !r.netprofile ? 'no netprofile' : `netprofile ${r.netprofile.name}${limit === null ? ' (no bandwidth limit)' : ''}`;
  const subtitle = s ? `mean ${formatRate(s.mean)} · median ${formatRate(s.median)} · p99 ${formatRate(s.p99)} · ${profile}` : profile;
  const parts = frame({ title: `Throughput ${who(r)}`, subtitle, x, y, xLabel: 'time (s)', yLabel: unit.name });
  const pts = r.throughput.map((p) => `${coord(place(p.t, x, X0, X1))},${coord(place(p.bitsPerSecond / unit.bitsPerSecond, y, Y0, Y1))}`);
  if (pts.length === 0) parts.push(noData('no throughput samples'));
  else parts.push(el('polyline', { class: 'series', points: pts.join(' '), fill: 'none', stroke: '#0969da', 'stroke-width': 2, 'stroke-linejoin': 'round' }));
  // A lone sample draws no line: mark it.
  const only = r.throughput.length === 1 ? r.throughput[0] : undefined;
  if (only) parts.push(el('circle', { class: 'point', cx: place(only.t, x, X0, X1), cy: place(only.bitsPerSecond / unit.bitsPerSecond, y, Y0, Y1), r: 3, fill: '#0969da' }));
  // Drawn last: where the run sits at its limit, the dashes show over the line.
  if (limit !== null && r.netprofile) {
    const ly = place(limit / unit.bitsPerSecond, y, Y0, Y1);
    const text = `limit ${formatRate(limit)} (${r.netprofile.name})`;
    parts.push(
      el('line', { class: 'limit', x1: X0, y1: ly, x2: X1, y2: ly, stroke: '#cf222e', 'stroke-width': 1.5, 'stroke-dasharray': '6 4' }),
      // Above the line, unless that would run into the titles.
      el('text', { class: 'limit-label', x: X1 - 4, y: ly - 5 < Y1 + 10 ? ly + 14 : ly - 5, 'text-anchor': 'end', fill: '#cf222e' }, text),
    );
  }
  return svg(`Throughput ${who(r)}`, parts);
}

/** The CDF's steps: [latency, percent at or below it], at most MAX_CDF_POINTS of them. */
export function cdfSteps(latencies: readonly number[]): Array<[number, number]> {
  const sorted = [...latencies].sort((a, b) => a - b);
  const n = sorted.length;
  const k = Math.min(n, MAX_CDF_POINTS);
  return Array.from({ length: k }, (_, j) => {
    const rank = Math.ceil(((j + 1) * n) / k);
    return [sorted[rank - 1] as number, (rank / n) * 100];
  });
}

/** Connect latency as a CDF: x milliseconds, y the percentage of connections that took at most that long. */
export function renderLatencySvg(r: BenchResult): string {
  const steps = cdfSteps(r.latenciesMs);
  const x = niceScale(steps[0]?.[0] ?? 0, steps.at(-1)?.[0] ?? 1);
  const y: Scale = { lo: 0, hi: 100, step: 25, ticks: [0, 25, 50, 75, 100], decimals: 0 };
  const s = r.summary.latencyMs;
  const subtitle = s ? `${r.latenciesMs.length} connection${r.latenciesMs.length === 1 ? '' : 's'} · mean ${formatMs(s.mean)} · median ${formatMs(s.median)} · p99 ${formatMs(s.p99)}` : 'no connections measured';
  const parts = frame({ title: `Connect latency ${who(r)}`, subtitle, x, y, xLabel: 'connect latency (ms)', yLabel: '% of connections' });
  const first = steps[0];
  if (!first) {
    parts.push(noData('no latencies'));
    return svg(`Connect latency ${who(r)}`, parts);
  }
  const px = (v: number) => coord(place(v, x, X0, X1));
  const py = (p: number) => coord(place(p, y, Y0, Y1));
  // Up at each measured latency, then across to the next: the empirical CDF is a step function.
  let d = `M${px(first[0])},${py(0)}`;
  steps.forEach(([v, p], i) => {
    if (i > 0) d += ` L${px(v)},${py(steps[i - 1]?.[1] ?? 0)}`;
    d += ` L${px(v)},${py(p)}`;
  });
  parts.push(el('path', { class: 'series', d, fill: 'none', stroke: '#0969da', 'stroke-width': 2 }));
  return svg(`Connect latency ${who(r)}`, parts);
}
