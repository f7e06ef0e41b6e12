import { createHash } from 'node:crypto';
import type { BenchResult, Stats } from './results.js';
import { formatMs, formatRate } from './scale.js';
import type { RunListing } from './store.js';
import { escapeXml as esc, renderLatencySvg, renderThroughputSvg } from './svg.js';

const CSS = [
  'body{font-family:sans-serif;margin:1.5rem;color:#1f2328;max-width:1400px}',
  'section{border-top:1px solid #d8dee4;padding:.5rem 0 1rem}',
  '.charts{display:flex;flex-wrap:wrap;gap:1rem}',
  '.charts svg{max-width:100%;height:auto;border:1px solid #d8dee4}',
  'table{border-collapse:collapse}th,td{padding:.15rem .6rem;text-align:right}th:first-child{text-align:left}',
  '.meta,.note{color:#57606a}',
].join('\n');

/**
 * The page's only style, allowed by its hash: the CSP can then forbid every inline script and style
 * attribute while the page still has its one stylesheet, and needs no second request for it.
 */
export const PAGE_STYLE_HASH = `'sha256-${createHash('sha256').update(CSS).digest('base64')}'`;

function statsRow(label: string, s: Stats | null, fmt: (n: number) => string): string {
  const cells = s ? [s.mean, s.median, s.p99].map((v) => `<td>${esc(fmt(v))}</td>`).join('') : '<td colspan="3">none measured</td>';
  return `<tr><th>${esc(label)}</th>${cells}</tr>`;
}

function runSection(r: BenchResult, png: boolean): string {
  const base = `runs/${r.id}`;
  const profile = r.netprofile
    ? `netprofile ${r.netprofile.name}${r.netprofile.bandwidthBitsPerSecond === null ? ' (no bandwidth limit)' : ` (limit ${formatRate(r.netprofile.bandwidthBitsPerSecond)})`}`
    : 'no netprofile';
  const links = [
    [`${base}.json`, 'JSON'],
    [`${base}.csv`, 'CSV'],
    [`${base}/throughput.svg`, 'throughput SVG'],
    [`${base}/latency.svg`, 'latency SVG'],
    ...(png ? [[`${base}/throughput.png`, 'throughput PNG'], [`${base}/latency.png`, 'latency PNG']] : []),
  ];
  return [
    `<section id="run-${esc(r.id)}">`,
    `<h2>${esc(`${r.tenant}/${r.network}: ${r.fromGroup} → ${r.toGroup} port ${r.port}`)}</h2>`,
    `<p class="meta">${esc(`${r.time} · ${r.durationSeconds} s · ${profile} · run ${r.id}`)}</p>`,
    '<table><tr><th></th><th>mean</th><th>median</th><th>p99</th></tr>',
    statsRow('throughput', r.summary.throughputBitsPerSecond, formatRate),
    statsRow('connect latency', r.summary.latencyMs, formatMs),
    '</table>',
    `<div class="charts">${renderThroughputSvg(r)}${renderLatencySvg(r)}</div>`,
    `<p>${links.map(([href, text]) => `<a href="${esc(href as string)}">${esc(text as string)}</a>`).join(' · ')}</p>`,
    '</section>',
  ].join('\n');
}

/** The index: newest run first, each with its summary and both charts inline; refused files named with why. */
export function renderIndexPage(listing: RunListing, png: { available: boolean; why: string }): string {
  const body = listing.results.length === 0 ? ['<p>No runs yet: <code>weft bench</code> stores one per run.</p>'] : listing.results.map((r) => runSection(r, png.available));
  if (!png.available) body.unshift(`<p class="note">${esc(png.why)}</p>`);
  if (listing.more > 0) body.push(`<p class="note">${listing.more} older runs are not shown.</p>`);
  if (listing.refused.length > 0) {
    body.push('<section><h2>Files refused</h2><ul>', ...listing.refused.map((f) => `<li>${esc(f.reason)}</li>`), '</ul></section>');
  }
  return ['<!doctype html>', '<html lang="en"><head><meta charset="utf-8">', '<meta name="viewport" content="width=device-width, initial-scale=1">', '<title>weft bench</title>', `<style>${CSS}</style>`, '</head><body>', '<h1>weft bench</h1>', ...body, '</body></html>', ''].join('\n');
}
