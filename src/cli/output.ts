import { createRequire } from 'node:module';
import { usage } from './errors.js';

/**
 * The YAML library is required (CommonJS, synchronously) the first time YAML is printed: lists print as
 * tables, and the ~70 modules of YAML would otherwise load on every call (see the README, "Start-up").
 */
let yaml: typeof import('yaml') | undefined;
export const YAML = () => (yaml ??= createRequire(import.meta.url)('yaml') as typeof import('yaml'));

export type Format = 'table' | 'json' | 'yaml';

export function parseFormat(text: string): Format {
  if (text === 'table' || text === 'json' || text === 'yaml') return text;
  throw usage(`--output: '${text}' is not table, json or yaml`);
}

export interface Column<T> {
  header: string;
  get: (row: T) => unknown;
}

/** Plain aligned columns, like netctl and kubectl: no borders, two spaces between columns. */
export function renderTable<T>(rows: readonly T[], columns: ReadonlyArray<Column<T>>): string {
  const cells = rows.map((r) => columns.map((c) => cellText(c.get(r))));
  const widths = columns.map((c, i) => Math.max(c.header.length, ...cells.map((row) => row[i]?.length ?? 0)));
  const line = (values: string[]) => values.map((v, i) => (i === values.length - 1 ? v : v.padEnd(widths[i] ?? 0))).join('  ').trimEnd();
  return [line(columns.map((c) => c.header)), ...cells.map(line)].join('\n');
}

function cellText(v: unknown): string {
  if (v === undefined || v === null || v === '') return '-';
  if (Array.isArray(v)) return v.length ? v.join(',') : '-';
  if (typeof v === 'object') return Object.entries(v as Record<string, unknown>).map(([k, x]) => `${k}=${String(x)}`).join(',') || '-';
  return String(v);
}

export function renderData(data: unknown, format: Exclude<Format, 'table'>): string {
  return format === 'json' ? JSON.stringify(data, null, 2) : YAML().stringify(data).trimEnd();
}
