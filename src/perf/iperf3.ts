import { PerfError } from './errors.js';
import { LIMITS, type ThroughputSample } from './results.js';

const malformed = (detail: string, field?: string) =>
  new PerfError('WEFT_MALFORMED', `iperf3 output: ${field ? `${field}: ` : ''}${detail}`, field === undefined ? {} : { field });

/**
 * The throughput samples of an `iperf3 -c … -J --interval S` run: one per interval, at the interval's end,
 * from its `sum` (all streams together). Intervals iperf3 marks `omitted` (its `-O` warm-up) are left out.
 * iperf3 reports its own failures (refused, timed out, interrupted) as an `error` string in the same JSON,
 * with exit status 1: that becomes WEFT_BENCH_FAILED carrying iperf3's words, even when some intervals
 * came before it, since a cut-short run would read as a slow one.
 */
export function parseIperf3(text: string): ThroughputSample[] {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new PerfError('WEFT_MALFORMED', 'iperf3 output is not JSON (was it run with -J?)', { cause: e });
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw malformed('not an object');
  const o = doc as Record<string, unknown>;
  if (o['error'] !== undefined) {
    const said = typeof o['error'] === 'string' ? o['error'] : JSON.stringify(o['error']);
    throw new PerfError('WEFT_BENCH_FAILED', `iperf3: ${said.slice(0, 300)}`, { field: 'error' });
  }
  const intervals = o['intervals'];
  if (!Array.isArray(intervals)) throw malformed('no intervals array', 'intervals');
  if (intervals.length > LIMITS.samples) throw malformed(`${intervals.length} intervals, at most ${LIMITS.samples}`, 'intervals');
  const out: ThroughputSample[] = [];
  intervals.forEach((iv: unknown, i) => {
    const sum = typeof iv === 'object' && iv !== null ? (iv as Record<string, unknown>)['sum'] : undefined;
    if (typeof sum !== 'object' || sum === null) throw malformed('no sum', `intervals.${i}.sum`);
    const s = sum as Record<string, unknown>;
    if (s['omitted'] === true) return;
    const t = s['end'];
    const bps = s['bits_per_second'];
    if (typeof t !== 'number' || !Number.isFinite(t) || t <= (out.at(-1)?.t ?? 0) || t > LIMITS.seconds) throw malformed('end is not a time after the interval before', `intervals.${i}.sum.end`);
    if (typeof bps !== 'number' || !Number.isFinite(bps) || bps < 0 || bps > LIMITS.bitsPerSecond) throw malformed('bits_per_second is not a rate', `intervals.${i}.sum.bits_per_second`);
    out.push({ t, bitsPerSecond: bps });
  });
  return out;
}
