import type { Command } from 'commander';
import { CliError, EXIT } from '../errors.js';
import { act, collect, intArg, leaf, tenantPath, type Io } from '../kit.js';

interface Cell { from: string; to: string; flow: string; expected: boolean; observed: boolean }
interface Answer { flows: string[]; endpoints: Array<{ id: string; name: string; ip: string; host: string }>; results: Cell[]; differ: Cell[]; missing: string[]; errors: string[]; ms: number }

/** Rows: sources; columns: destination × flow; ✓ passes, · blocked, and the cells that differ from the policy in capitals: P passed (should not), B blocked (should pass). */
function matrix(a: Answer): string {
  const name = new Map(a.endpoints.map((e) => [e.id, e.name]));
  const cell = new Map(a.results.map((r) => [`${r.from}>${r.to}>${r.flow}`, r]));
  const cols = a.endpoints.flatMap((d) => a.flows.map((f) => ({ d, f })));
  const width = Math.max(...a.endpoints.map((e) => e.name.length), 6);
  const lines = [`${''.padEnd(width)}  ${a.endpoints.map((d) => d.name.slice(0, a.flows.length * 2).padEnd(a.flows.length * 2)).join(' ')}`];
  for (const s of a.endpoints) {
    const marks = cols.map(({ d, f }) => {
      if (d.id === s.id) return ' ';
      const r = cell.get(`${s.id}>${d.id}>${f}`);
      if (!r) return '?';
      if (r.expected !== r.observed) return r.observed ? 'P' : 'B';
      return r.observed ? '✓' : '·';
    });
    const groups: string[] = [];
    for (let i = 0; i < marks.length; i += a.flows.length) groups.push(marks.slice(i, i + a.flows.length).join(' ').padEnd(a.flows.length * 2));
    lines.push(`${(name.get(s.id) ?? s.id).padEnd(width)}  ${groups.join(' ')}`);
  }
  return lines.join('\n');
}

export function verifyCommands(program: Command, io: Io): void {
  leaf(program, {
    name: 'verify',
    summary: 'probe every pair of endpoints with real packets, from their hosts, and compare with the policy',
    example: ['weft verify -t shop', 'weft verify -t shop --flow 80/tcp --flow 81/tcp --flow 53/udp', 'weft verify -t shop -o json'],
  })
    .option('--flow <port/proto>', 'a flow to probe (repeat; default 80/tcp)', collect)
    .option('--timeout <ms>', 'how long a probe waits for an answer', intArg('--timeout', 50, 5000), 300)
    .addHelpText('after', `
Each endpoint's agent probes from inside the endpoint: TCP passes on a connection or a refusal (a reset
came back through the policy, so no listener is needed); UDP passes on an answer or a port-unreachable.
The policy's side is what the compiled tables of the whole tenant decide (what \`weft explain\` says).
Cells: ✓ passes, · blocked, P passed but the policy blocks it, B blocked but the policy passes it.
Exit status 1 when a cell differs or a host did not answer.
`)
    .action(act(io, async (ctx) => {
      const flows = (ctx.opts['flow'] as string[] | undefined) ?? ['80/tcp'];
      const a = await ctx.client.request('POST', tenantPath(ctx, 'verify'), { flows, timeoutMs: ctx.opts['timeout'] }) as Answer;
      if (ctx.format !== 'table') ctx.show(a);
      else {
        ctx.print(`${a.results.length} probes over ${a.endpoints.length} endpoints (${a.flows.join(', ')}), ${a.ms} ms`);
        ctx.print(matrix(a));
        for (const d of a.differ) ctx.print(`differs: ${a.endpoints.find((e) => e.id === d.from)?.name ?? d.from} > ${a.endpoints.find((e) => e.id === d.to)?.name ?? d.to} ${d.flow}: the policy ${d.expected ? 'passes' : 'blocks'} it, the packets were ${d.observed ? 'passed' : 'blocked'}`);
        for (const h of a.missing) ctx.print(`host ${h} did not answer (its agent down, or older than verify)`);
        for (const e of a.errors) ctx.print(`error: ${e}`);
      }
      if (a.differ.length > 0 || a.missing.length > 0) throw new CliError(`${a.differ.length} cells differ from the policy${a.missing.length ? `, ${a.missing.length} hosts did not answer` : ''}`, EXIT.failed, 'verify');
    }));
}
