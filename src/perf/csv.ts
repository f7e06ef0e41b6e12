import type { BenchResult } from './results.js';

/**
 * A run as CSV (RFC 4180, CRLF line ends): one row per throughput sample and per connect latency, each
 * carrying the run's identity so files from several runs can be concatenated and filtered. Long form
 * because the two series have different lengths and x values.
 */
export const CSV_HEADER = ['run', 'time', 'tenant', 'network', 'from', 'to', 'port', 'netprofile', 'series', 'seq', 't_seconds', 'value', 'unit'] as const;

/**
 * A text cell quoted when it holds a separator, quote or line break. A cell a spreadsheet would take for a
 * formula (=, +, -, @, tab, CR first) is prefixed with ' so opening the file runs nothing; numbers are
 * written by `numberCell` and never get the prefix (our numbers are never negative anyway).
 */
export function csvCell(text: string): string {
  const safe = /^[=+\-@\t\r]/.test(text) ? `'${text}` : text;
  return /[",\r\n]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}

const numberCell = (n: number): string => (Number.isFinite(n) ? String(n) : '');

export function renderCsv(r: BenchResult): string {
  const who = [r.id, r.time, r.tenant, r.network, r.fromGroup, r.toGroup].map(csvCell);
  const profile = csvCell(r.netprofile?.name ?? '');
  const row = (series: string, seq: number, t: string, value: number, unit: string) =>
    [...who, numberCell(r.port), profile, series, String(seq), t, numberCell(value), unit].join(',');
  const lines = [CSV_HEADER.join(',')];
  r.throughput.forEach((s, i) => lines.push(row('throughput', i, numberCell(s.t), s.bitsPerSecond, 'bit/s')));
  r.latenciesMs.forEach((ms, i) => lines.push(row('connect_latency', i, '', ms, 'ms')));
  return `${lines.join('\r\n')}\r\n`;
}
