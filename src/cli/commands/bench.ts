import type { Command } from 'commander';
import { join } from 'node:path';
import { ProcessRunner } from '../../exec/index.js';
import { formatMs, formatRate, parseServeAddress, PerfError, ResultStore, startResultsServer, type BenchResult } from '../../perf/index.js';
import { CliError, EXIT } from '../errors.js';
import { runBench } from '../bench.js';
import { durationArg } from '../durations.js';
import { intArg, leaf, makeCtx, type Io } from '../kit.js';
import { untilSignalled } from '../signals.js';

const DEFAULT_RESULTS = '/var/lib/weft/bench';
const DEFAULT_RUN_DIR = '/run/weft';

function summary(r: BenchResult): string {
  const t = r.summary.throughputBitsPerSecond;
  const l = r.summary.latencyMs;
  const limit = r.netprofile?.bandwidthBitsPerSecond ? ` (netprofile ${r.netprofile.name}: ${formatRate(r.netprofile.bandwidthBitsPerSecond)})` : '';
  return [
    `run ${r.id}: ${r.tenant}/${r.fromGroup} -> ${r.toGroup}:${r.port}${limit}`,
    `  throughput  mean ${t ? formatRate(t.mean) : '-'}, median ${t ? formatRate(t.median) : '-'} over ${r.throughput.length} intervals of 0.5 s`,
    `  connect     median ${l ? formatMs(l.median) : '-'}, p99 ${l ? formatMs(l.p99) : '-'} over ${r.latenciesMs.length} connects`,
  ].join('\n');
}

/** perf's errors as the CLI's: a refused flag or record is bad input, a missing run not found, the rest failed. */
async function cliErrors<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (!(e instanceof PerfError)) throw e;
    const exit = e.code === 'WEFT_INVALID_FIELD' ? EXIT.usage : e.code === 'WEFT_NOT_FOUND' ? EXIT.notFound : EXIT.failed;
    throw new CliError(e.message, exit, e.code);
  }
}

export function benchCommands(program: Command, io: Io): void {
  const runner = new ProcessRunner();
  leaf(program, {
    name: 'bench', summary: 'measure throughput (iperf3) and connect latency between two groups, through their policy and netprofile; charts over HTTP',
    example: ['weft bench -t shop --from app --to db --port 8888 --duration 10s', 'weft bench -t shop --from app --to db --port 8888 --serve :8080'],
  })
    .option('--from <group>', 'the group the traffic leaves from (its netprofile shapes it); required unless --no-run')
    .option('--to <group>', 'the group it goes to; required unless --no-run')
    .option('--port <port>', 'the TCP port, as the policy sees it (the probe, then iperf3, listen on it)', intArg('--port', 1, 65535), 5201)
    .option('--duration <duration>', 'how long iperf3 runs', durationArg('--duration', 1, 3600), 10)
    .option('--connects <n>', 'how many TCP connects the latency probe makes', intArg('--connects', 1, 100_000), 200)
    .option('--run-dir <dir>', "this host's agent (its socket): both ends are made there", DEFAULT_RUN_DIR)
    .option('--to-run-dir <dir>', "another agent for the --to end (another host of a `weft lab`); default: --run-dir")
    .option('--results <dir>', 'where runs are kept (one JSON each)', DEFAULT_RESULTS)
    .option('--serve <[address]:port>', 'after the run, serve every run in --results with its charts until interrupted; ":8080" listens on 127.0.0.1 only, exposing it takes an address such as 0.0.0.0:8080')
    .option('--no-run', 'do not measure: only --serve what --results holds')
    .addHelpText('after', `
Run it as root on a host with a Weft agent. It makes two network namespaces, gives each an endpoint of
its group from the agent (as \`weft attach\` does), measures --connects TCP connects and then iperf3 for
--duration between them on --port, and removes everything again. The policy between the groups must
allow --port. Each run is stored in --results as JSON; --serve shows an index with throughput over time
(the --from group's netprofile limit as a dashed line) and the connect latency CDF, as SVG (and PNG when
rsvg-convert, Debian's librsvg2-bin, is installed), with JSON and CSV beside them.

The QoS story in three commands:
  $ weft bench -t shop --from app --to db --port 8888
  $ weft netprofile create -t shop --bandwidth 100mbps slow && weft group update -t shop app --netprofile slow
  $ weft bench -t shop --from app --to db --port 8888 --serve :8080     # both runs, the line at the limit
`)
    .action((o: Record<string, any>) => cliErrors(async () => {
      const serve = o['serve'] === undefined ? undefined : parseServeAddress(o['serve'], '--serve');
      const store = new ResultStore(o['results']);
      if (o['run'] !== false) {
        for (const f of ['from', 'to']) if (!o[f]) throw new CliError(`--${f} <group> is required (or --no-run to only --serve)`, EXIT.usage, 'usage');
        const ctx = makeCtx(o, io);
        const controller = new AbortController();
        const onInt = () => controller.abort();
        process.once('SIGINT', onInt);
        try {
          const input = await runBench({ client: ctx.client, runner, progress: (l) => io.err(`bench: ${l}\n`) }, {
            tenant: ctx.tenant, from: o['from'], to: o['to'], port: o['port'], durationS: o['duration'], connects: o['connects'],
            fromAgent: join(o['runDir'], 'agent.sock'), toAgent: join(o['toRunDir'] ?? o['runDir'], 'agent.sock'),
          }, controller.signal);
          const r = await store.save(input);
          if (ctx.format === 'table') io.out(`${summary(r)}\n  stored in ${join(o['results'], `${r.id}.json`)}\n`);
          else ctx.show(r);
        } finally {
          process.off('SIGINT', onInt);
        }
      }
      if (!serve) return;
      const srv = await startResultsServer({ store, host: serve.host, port: serve.port, runner, onError: (e) => io.err(`bench: ${(e as Error).message}\n`) });
      io.out(`serving ${o['results']} at ${srv.url}${srv.png ? '' : ' (SVG only: PNG needs rsvg-convert, Debian\'s librsvg2-bin)'}\n`);
      await untilSignalled(srv, io);
    }));
}
