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
  if (Array.isArray(v)) return v.length ? visible(v.join(',')) : '-';
  if (typeof v === 'object') return visible(Object.entries(v as Record<string, unknown>).map(([k, x]) => `${k}=${String(x)}`).join(',')) || '-';
  return visible(String(v));
}

/**
 * A cell as the terminal shows it: control characters (C0, DEL, C1) as `\xNN`. What a table prints came
 * from the server, some of it from hosts and other users; an escape sequence in it would move the
 * cursor, retitle the window or rewrite what was printed before (the server refuses them in what it
 * stores; this is the second line, for servers of older versions and anything missed).
 */
function visible(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, hex);
}

const hex = (c: string) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`;

/**
 * A message for the terminal (an error, from the server or echoing what was typed): as `visible`, but
 * its line breaks and tabs stay (a refused apply lists a document a line). A server's message quotes
 * names and keys it was sent, and a server of another version may quote anything.
 */
export function terminalText(text: string): string {
  return text.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, hex);
}

export function renderData(data: unknown, format: Exclude<Format, 'table'>): string {
  const json = () => JSON.stringify(data, null, 2).replace(UNESCAPED, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  if (format === 'json') return json();
  const yaml = YAML().stringify(data).trimEnd();
  // YAML escapes C0 controls but writes DEL and C1 as they are; JSON is YAML too, with every one escaped.
  return UNESCAPED_TEST.test(yaml) ? json() : yaml;
}

/**
 * What JSON.stringify leaves as it is and a terminal acts on: DEL and the C1 controls (CSI, OSC...). In
 * JSON they can only stand inside strings, where `\uXXXX` means the same.
 */
const UNESCAPED = /[\u007f-\u009f]/g;
const UNESCAPED_TEST = /[\u007f-\u009f]/;
