import { test } from 'node:test';
import assert from 'node:assert/strict';
import { golden, testdata } from './golden.js';
import { validateResult, type BenchResult } from './results.js';
import { niceScale } from './scale.js';
import { CHART, MAX_CDF_POINTS, cdfSteps, renderLatencySvg, renderThroughputSvg } from './svg.js';

const FIXTURES = ['run-limited', 'run-loopback', 'run-empty', 'run-one', 'run-flat'];
const fixture = (name: string): BenchResult => validateResult(JSON.parse(testdata(`${name}.json`)));

/** Each y tick's value (its label) and where it is drawn (its grid line). */
function yTicks(svg: string): Array<{ value: number; y: number }> {
  return [...svg.matchAll(/<g class="ytick"><line [^>]*y1="([^"]+)"[^>]*\/><text [^>]*>([^<]+)<\/text><\/g>/g)].map((m) => ({ y: Number(m[1]), value: Number(m[2]) }));
}

/** Where the axis puts `v`, read off the chart's own first and last tick. */
function axisY(svg: string, v: number): number {
  const t = yTicks(svg);
  const a = t[0] as { value: number; y: number };
  const b = t.at(-1) as { value: number; y: number };
  return a.y + ((v - a.value) / (b.value - a.value)) * (b.y - a.y);
}

const attr = (svg: string, cls: string, name: string): number => Number(new RegExp(`class="${cls}"[^>]* ${name}="([^"]+)"`).exec(svg)?.[1]);

/** The series' vertices in order. */
function seriesPoints(svg: string): Array<[number, number]> {
  const poly = /<polyline class="series" points="([^"]+)"/.exec(svg)?.[1];
  const path = /<path class="series" d="([^"]+)"/.exec(svg)?.[1];
  const nums = (poly ?? path ?? '').match(/-?[\d.]+/g)?.map(Number) ?? [];
  return Array.from({ length: nums.length / 2 }, (_, i) => [nums[2 * i] as number, nums[2 * i + 1] as number]);
}

test('the charts of fixed runs match their golden files', () => {
  for (const f of FIXTURES) {
    golden(`${f}.throughput.svg`, renderThroughputSvg(fixture(f)));
    golden(`${f}.latency.svg`, renderLatencySvg(fixture(f)));
  }
});

test("the netprofile's limit is a dashed line where the axis puts the limit, labelled with it", () => {
  for (const [f, limit] of [['run-limited', 100], ['run-flat', 50]] as const) {
    const svg = renderThroughputSvg(fixture(f));
    const y = attr(svg, 'limit', 'y1');
    assert.equal(attr(svg, 'limit', 'y2'), y);
    assert.ok(Math.abs(y - axisY(svg, limit)) < 0.02, `${f}: limit drawn at ${y}, the axis says ${axisY(svg, limit)}`);
    assert.match(svg, /stroke-dasharray="6 4"/);
    assert.match(svg, new RegExp(`class="limit-label"[^>]*>limit ${limit} Mbit/s \\(${fixture(f).netprofile?.name}\\)<`));
  }
  for (const f of ['run-loopback', 'run-empty', 'run-one']) assert.doesNotMatch(renderThroughputSvg(fixture(f)), /class="limit/, `${f} has no bandwidth limit`);
});

test('each sample is drawn where the axis puts its rate, in Mbit/s below 1 Gbit/s and Gbit/s above', () => {
  for (const [f, unit, scale] of [['run-limited', 'Mbit/s', 1e6], ['run-loopback', 'Gbit/s', 1e9]] as const) {
    const r = fixture(f);
    const svg = renderThroughputSvg(r);
    assert.match(svg, new RegExp(`class="ylabel"[^>]*>${unit}<`));
    const pts = seriesPoints(svg);
    assert.equal(pts.length, r.throughput.length);
    r.throughput.forEach((s, i) => assert.ok(Math.abs((pts[i] as [number, number])[1] - axisY(svg, s.bitsPerSecond / scale)) < 0.02, `${f} sample ${i}`));
    for (let i = 1; i < pts.length; i++) assert.ok((pts[i] as [number, number])[0] > (pts[i - 1] as [number, number])[0], 'time goes right');
  }
});

test('the latency CDF rises monotonically from 0 % to 100 %', () => {
  for (const f of ['run-limited', 'run-loopback', 'run-one', 'run-flat']) {
    const svg = renderLatencySvg(fixture(f));
    const pts = seriesPoints(svg);
    assert.ok(pts.length >= 2, f);
    for (let i = 1; i < pts.length; i++) {
      const [[x0, y0], [x1, y1]] = [pts[i - 1], pts[i]] as [[number, number], [number, number]];
      assert.ok(x1 >= x0 && y1 <= y0, `${f}: step ${i} goes back`);
    }
    assert.ok(Math.abs((pts[0] as [number, number])[1] - axisY(svg, 0)) < 0.02, `${f} starts at 0 %`);
    assert.ok(Math.abs((pts.at(-1) as [number, number])[1] - axisY(svg, 100)) < 0.02, `${f} ends at 100 %`);
  }
  const many = Array.from({ length: 100_000 }, (_, i) => (i * 7919) % 1000 / 10);
  const steps = cdfSteps(many);
  assert.equal(steps.length, MAX_CDF_POINTS);
  assert.deepEqual(steps.at(-1), [99.9, 100]);
});

/** Runs at the edges: nothing, one value, all equal, all zero, the largest and smallest allowed. */
function edgeRuns(): BenchResult[] {
  const base = fixture('run-empty');
  const with_ = (throughput: BenchResult['throughput'], latenciesMs: number[], limit: number | null = null): BenchResult => ({
    ...base,
    netprofile: limit === null ? null : { name: 'edge', bandwidthBitsPerSecond: limit },
    throughput,
    latenciesMs,
  });
  return [
    base,
    { ...base, durationSeconds: 0 },
    with_([{ t: 1, bitsPerSecond: 0 }], [0]),
    with_([{ t: 1, bitsPerSecond: 0 }, { t: 2, bitsPerSecond: 0 }], [0, 0, 0], 1),
    with_([{ t: 1e-9, bitsPerSecond: 1e15 }, { t: 604_800, bitsPerSecond: 1e15 }], [3_600_000, 3_600_000], 1e15),
    with_([{ t: 0.5, bitsPerSecond: 1 }], [1e-9, 2e-9], 1),
    with_([], [5, 5, 5, 5], 123_456_789),
  ];
}

test('no chart ever says NaN or Infinity, whatever the data', () => {
  for (const r of [...edgeRuns(), ...FIXTURES.map(fixture)]) {
    for (const svg of [renderThroughputSvg(r), renderLatencySvg(r)]) {
      assert.doesNotMatch(svg, /NaN|Infinity|undefined/);
      for (const [x, y] of seriesPoints(svg)) assert.ok(x >= 0 && x <= CHART.width && y >= 0 && y <= CHART.height, `point ${x},${y} is off the chart`);
    }
  }
});

test('names in a chart are text, never markup', () => {
  const evil = '<script>alert(1)</script>&"\'';
  const r: BenchResult = { ...fixture('run-limited'), tenant: evil, netprofile: { name: `</text><script>x()</script>`, bandwidthBitsPerSecond: 1e8 } };
  for (const svg of [renderThroughputSvg(r), renderLatencySvg(r)]) {
    assert.doesNotMatch(svg, /<script|<\/text><script/);
    assert.match(svg, /&#60;script&#62;alert\(1\)&#60;\/script&#62;&#38;&#34;&#39;/);
  }
});

test('axes start and end on round ticks and widen degenerate ranges', () => {
  assert.deepEqual(niceScale(0, 941).ticks, [0, 200, 400, 600, 800, 1000]);
  assert.deepEqual(niceScale(0.5, 0.9).ticks, [0.5, 0.6, 0.7, 0.8, 0.9]);
  assert.deepEqual(niceScale(0, 0).ticks, [0, 0.2, 0.4, 0.6, 0.8, 1]);
  const flat = niceScale(2, 2);
  assert.ok(flat.lo < 2 && flat.hi > 2 && flat.lo >= 0);
  assert.deepEqual(niceScale(0, 0.3).ticks, [0, 0.1, 0.2, 0.3]);
  assert.deepEqual(niceScale(0, 0.2).ticks, [0, 0.05, 0.1, 0.15, 0.2]);
  assert.equal(niceScale(0, 0.2).decimals, 2);
});
