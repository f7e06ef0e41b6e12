// npm run chaos -- --minutes N [--seed S] [--hosts 3] [--host-grace MS]: see README.md. Needs root.
import { parseArgs } from 'node:util';
import { randomSeed } from './prng.js';
import { FAULT_KINDS, runChaos, type Kind } from './run.js';

const HELP = `npm run chaos -- [--minutes 2] [--seed S] [--hosts 3] [--host-grace 20000] [--faults KIND,...]

Starts a lab (3 etcd members, 2 servers, an agent per host, a dockerd on host2 using Weft), runs a
workload (containers made and removed through CNI and docker run / rm, long TCP streams, allowed and
denied request loops, policy flips) and, on a schedule drawn from the seed, kills and restarts agents,
servers, etcd members and dockerd, cuts the uplink of a host past the host grace, fills etcd to its
space quota past the host grace (then frees it), and sends malformed CNI, API and Docker plugin input
(to each agent's plugin socket). Invariants are checked every 3 s and at the end.
Exit 0 with a summary (for docs/benchmarks.md) when no invariant was violated; else the seed, the
timeline and the violations, and exit 1. The same --seed replays the same schedule of faults.

  --minutes N      how long the workload and faults run (default 2; setup and teardown add ~1 min)
  --seed S         the schedule's seed (default: random, printed)
  --hosts N        simulated hosts, 3-6 (default 3); hosts past the second are the ones cut off
  --host-grace MS  the servers' --host-grace; each cut lasts 6-10 s longer (default 20000, > the
                   agents' 10 s heartbeat so a live host is never collected)
  --faults KINDS   comma-separated subset of ${FAULT_KINDS.join(', ')} (default: all)`;

function parse(): { minutes: number; seed: number; hosts: number; hostGraceMs: number; kinds: Kind[] } | undefined {
  const { values } = parseArgs({ options: { faults: { type: 'string' }, minutes: { type: 'string' }, seed: { type: 'string' }, hosts: { type: 'string' }, 'host-grace': { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help) return undefined;
  const num = (name: string, v: string | undefined, dflt: number, lo: number, hi: number, int = true): number => {
    if (v === undefined) return dflt;
    const n = Number(v);
    if (!Number.isFinite(n) || n < lo || n > hi || (int && !Number.isInteger(n))) throw new Error(`--${name}: '${v}' is not ${int ? 'an integer' : 'a number'} from ${lo} to ${hi}`);
    return n;
  };
  const kinds = (values.faults ?? FAULT_KINDS.join(',')).split(',').filter(Boolean);
  const unknown = kinds.filter((k) => !(FAULT_KINDS as readonly string[]).includes(k));
  if (unknown.length || !kinds.length) throw new Error(`--faults: '${values.faults}' is not a list of ${FAULT_KINDS.join(', ')}`);
  return {
    kinds: kinds as Kind[],
    minutes: num('minutes', values.minutes, 2, 0.25, 600, false),
    seed: num('seed', values.seed, randomSeed(), 0, 2 ** 32 - 1),
    hosts: num('hosts', values.hosts, 3, 3, 6),
    hostGraceMs: num('host-grace', values['host-grace'], 20_000, 12_000, 600_000),
  };
}

let opts: ReturnType<typeof parse>;
try {
  opts = parse();
} catch (e) {
  process.stderr.write(`${(e as Error).message}\n\n${HELP}\n`);
  process.exit(2);
}
if (!opts) {
  process.stdout.write(`${HELP}\n`);
  process.exit(0);
}
if (process.getuid?.() !== 0) {
  process.stderr.write('chaos: needs root (it builds network namespaces)\n');
  process.exit(2);
}
// Ctrl-C or SIGTERM: stop the workload and tear the lab down (the run's finally); a second one is ignored
// so teardown is never cut short.
const abort = new AbortController();
const onSignal = (sig: string) => {
  if (abort.signal.aborted) return;
  process.stderr.write(`\nchaos: ${sig}: stopping the workload and tearing the lab down\n`);
  abort.abort();
};
process.on('SIGINT', () => onSignal('SIGINT'));
process.on('SIGTERM', () => onSignal('SIGTERM'));
const { rec, summary } = await runChaos({ ...opts, prefix: 'wc', abort: abort.signal });
if (rec.violations.length) process.stdout.write(`\n${rec.failureReport()}\n`);
process.stdout.write(`\n${summary}\n`);
process.exit(rec.violations.length || abort.signal.aborted ? 1 : 0);
