import { NAME_PATTERN } from '../model/plain.js';
import { invalidField } from './errors.js';

/**
 * One `weft bench` run as stored and served. A record is checked field by field when it is built and
 * again whenever it is read back: the results directory is plain files, so a record may be truncated,
 * edited or planted, and the page must refuse it by name rather than draw nonsense or crash.
 */
export const RESULT_VERSION = 1;

/** Ids are generated (store.ts); nothing else is ever accepted as one, so an id is always a safe file name. */
export const RUN_ID_PATTERN = /^[a-z0-9-]{1,64}$/;

const NAME = new RegExp(NAME_PATTERN);
const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/;

/** Bounds that keep a hostile file from making the page slow or the charts overflow (1 Pbit/s, one hour). */
export const LIMITS = { samples: 100_000, latencies: 100_000, bitsPerSecond: 1e15, latencyMs: 3_600_000, seconds: 7 * 86_400 } as const;

export interface ThroughputSample {
  /** Seconds since the run started, at the end of the interval measured. */
  t: number;
  bitsPerSecond: number;
}

export interface NetprofileInForce {
  name: string;
  /** The profile's bandwidth limit, or null when it limits something else (DSCP, latency) but not bandwidth. */
  bandwidthBitsPerSecond: number | null;
}

export interface Stats {
  mean: number;
  median: number;
  p99: number;
}

export interface BenchSummary {
  /** Null when there are no samples: no made-up zeros. */
  throughputBitsPerSecond: Stats | null;
  latencyMs: Stats | null;
}

/** What the runner measured; `buildResult` adds the id, the version and the summary. */
export interface BenchRunInput {
  /** When the run started, `Date.toISOString()`. */
  time: string;
  tenant: string;
  network: string;
  fromGroup: string;
  toGroup: string;
  port: number;
  durationSeconds: number;
  netprofile: NetprofileInForce | null;
  throughput: ThroughputSample[];
  latenciesMs: number[];
}

export interface BenchResult extends BenchRunInput {
  version: typeof RESULT_VERSION;
  id: string;
  summary: BenchSummary;
}

/** Mean, median and p99 (nearest rank: a value that was measured, never interpolated), or null for none. */
export function summarise(values: readonly number[]): Stats | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const n = sorted.length;
  const at = (i: number) => sorted[Math.min(n - 1, Math.max(0, i))] as number;
  const median = n % 2 === 1 ? at((n - 1) / 2) : (at(n / 2 - 1) + at(n / 2)) / 2;
  // Summing in sorted order keeps the rounding error small for many similar values.
  const mean = sorted.reduce((s, v) => s + v, 0) / n;
  return { mean, median, p99: at(Math.ceil(0.99 * n) - 1) };
}

/** The record for a finished run, checked as a file read back would be: what we write, we can read. */
export function buildResult(id: string, input: BenchRunInput): BenchResult {
  const summary: BenchSummary = {
    throughputBitsPerSecond: summarise(input.throughput.map((s) => s.bitsPerSecond)),
    latencyMs: summarise(input.latenciesMs),
  };
  return validateResult({ version: RESULT_VERSION, id, ...input, summary });
}

type Obj = Record<string, unknown>;

function object(v: unknown, field: string, keys: readonly string[]): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw invalidField(field || 'record', 'must be an object');
  for (const k of Object.keys(v)) if (!keys.includes(k)) throw invalidField(field ? `${field}.${shown(k)}` : shown(k), 'unknown field');
  // Own properties only: `in` would find `constructor` and friends on the prototype.
  for (const k of keys) if (!Object.hasOwn(v, k)) throw invalidField(field ? `${field}.${k}` : k, 'missing');
  return v as Obj;
}

/** A hostile key is named, but never at length nor with control characters in an error message. */
const shown = (k: string) => (/^[A-Za-z0-9_]{1,40}$/.test(k) ? k : JSON.stringify(k.slice(0, 40)));

function num(v: unknown, field: string, min: number, max: number, integer = false): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw invalidField(field, 'must be a finite number');
  if (integer && !Number.isInteger(v)) throw invalidField(field, 'must be an integer');
  if (v < min || v > max) throw invalidField(field, `must be within ${min}-${max}`);
  return v;
}

function name(v: unknown, field: string): string {
  if (typeof v !== 'string' || !NAME.test(v)) throw invalidField(field, 'must be a name (lowercase letters, digits and -, at most 63)');
  return v;
}

function array(v: unknown, field: string, max: number): unknown[] {
  if (!Array.isArray(v)) throw invalidField(field, 'must be an array');
  if (v.length > max) throw invalidField(field, `has ${v.length} entries, at most ${max} allowed`);
  return v;
}

function samples(v: unknown): ThroughputSample[] {
  let last = -1;
  return array(v, 'throughput', LIMITS.samples).map((s, i) => {
    const o = object(s, `throughput.${i}`, ['t', 'bitsPerSecond']);
    const t = num(o['t'], `throughput.${i}.t`, 0, LIMITS.seconds);
    // The chart draws a line through the samples in order: time must go forward.
    if (t <= last) throw invalidField(`throughput.${i}.t`, 'must be later than the sample before');
    last = t;
    return { t, bitsPerSecond: num(o['bitsPerSecond'], `throughput.${i}.bitsPerSecond`, 0, LIMITS.bitsPerSecond) };
  });
}

function stats(v: unknown, field: string, max: number): Stats | null {
  if (v === null) return null;
  const o = object(v, field, ['mean', 'median', 'p99']);
  return { mean: num(o['mean'], `${field}.mean`, 0, max), median: num(o['median'], `${field}.median`, 0, max), p99: num(o['p99'], `${field}.p99`, 0, max) };
}

function netprofile(v: unknown): NetprofileInForce | null {
  if (v === null) return null;
  const o = object(v, 'netprofile', ['name', 'bandwidthBitsPerSecond']);
  const limit = o['bandwidthBitsPerSecond'];
  return { name: name(o['name'], 'netprofile.name'), bandwidthBitsPerSecond: limit === null ? null : num(limit, 'netprofile.bandwidthBitsPerSecond', 1, LIMITS.bitsPerSecond) };
}

const KEYS = ['version', 'id', 'time', 'tenant', 'network', 'fromGroup', 'toGroup', 'port', 'durationSeconds', 'netprofile', 'throughput', 'latenciesMs', 'summary'] as const;

/**
 * A record from anywhere (a file, a test) as a BenchResult, or a PerfError naming the first field at
 * fault. Unknown fields are refused too, and the result is a fresh object with only the known ones.
 */
export function validateResult(v: unknown): BenchResult {
  const o = object(v, '', KEYS);
  if (o['version'] !== RESULT_VERSION) throw invalidField('version', `must be ${RESULT_VERSION}`);
  const id = o['id'];
  if (typeof id !== 'string' || !RUN_ID_PATTERN.test(id)) throw invalidField('id', 'must match ^[a-z0-9-]{1,64}$');
  const time = o['time'];
  if (typeof time !== 'string' || !ISO_UTC.test(time) || !Number.isFinite(Date.parse(time))) throw invalidField('time', 'must be an ISO 8601 UTC time');
  const summary = object(o['summary'], 'summary', ['throughputBitsPerSecond', 'latencyMs']);
  return {
    version: RESULT_VERSION,
    id,
    time,
    tenant: name(o['tenant'], 'tenant'),
    network: name(o['network'], 'network'),
    fromGroup: name(o['fromGroup'], 'fromGroup'),
    toGroup: name(o['toGroup'], 'toGroup'),
    port: num(o['port'], 'port', 1, 65_535, true),
    durationSeconds: num(o['durationSeconds'], 'durationSeconds', 0, LIMITS.seconds),
    netprofile: netprofile(o['netprofile']),
    throughput: samples(o['throughput']),
    latenciesMs: array(o['latenciesMs'], 'latenciesMs', LIMITS.latencies).map((l, i) => num(l, `latenciesMs.${i}`, 0, LIMITS.latencyMs)),
    summary: {
      throughputBitsPerSecond: stats(summary['throughputBitsPerSecond'], 'summary.throughputBitsPerSecond', LIMITS.bitsPerSecond),
      latencyMs: stats(summary['latencyMs'], 'summary.latencyMs', LIMITS.latencyMs),
    },
  };
}
