import type { Command } from 'commander';
import { AUDIT_EVENTS, lifetimeArg } from '../durations.js';
import { usage } from '../errors.js';
import { act, intArg, leaf, type Io } from '../kit.js';

/** `--since`: an ISO time, or a duration meaning that long ago (`1h`). */
function sinceArg(value: string): string {
  if (/^[0-9]+[smhd]$/.test(value)) return new Date(Date.now() - (lifetimeArg('--since')(value) ?? 0)).toISOString();
  if (!/^[0-9]{4}-[0-9]{2}-[0-9]{2}T/.test(value) || Number.isNaN(Date.parse(value))) throw usage(`--since: '${value}' is not an ISO time (2026-01-31T12:00:00Z) or a duration ago (30m, 2h, 7d)`);
  return new Date(value).toISOString();
}

const eventArg = (value: string): string => {
  if (!(AUDIT_EVENTS as readonly string[]).includes(value)) throw usage(`--event: '${value}' is not one of ${AUDIT_EVENTS.join(', ')}`);
  return value;
};

export function auditCommands(program: Command, io: Io): void {
  leaf(program, {
    name: 'audit', summary: "the server's audit log: every write, refusal and login, with actor, source and credential (admin); a flood of refusals from one actor or address is summed up in `suppressed` lines", tenant: false,
    example: ['weft audit', 'weft audit --since 1h --event refused', 'weft audit --actor bob --since 2026-01-31T00:00:00Z -o json'],
  })
    .option('--since <time>', 'entries from this ISO time, or this long ago (30m, 2h, 7d)', sinceArg)
    .option('--actor <name>', 'only this actor (a user name, or host:NAME)')
    .option('--event <event>', `only ${AUDIT_EVENTS.join(', ')}`, eventArg)
    .option('--limit <n>', 'the last n entries', intArg('--limit', 1, 99999), 100)
    .action(act(io, async (ctx) => {
      const o = ctx.opts;
      const q = new URLSearchParams({ limit: String(o['limit']) });
      for (const k of ['since', 'actor', 'event']) if (o[k] !== undefined) q.set(k, String(o[k]));
      const { items } = await ctx.client.request('GET', `/api/v1/audit?${q}`);
      ctx.table(items, [
        { header: 'TIME', get: (e: any) => e.time }, { header: 'EVENT', get: (e: any) => e.event },
        { header: 'ACTOR', get: (e: any) => e.actor ?? (e.user ? `tried:${e.user}` : '-') }, { header: 'CREDENTIAL', get: (e: any) => e.credential },
        { header: 'SOURCE', get: (e: any) => e.source }, { header: 'METHOD', get: (e: any) => e.method }, { header: 'PATH', get: (e: any) => e.path },
        { header: 'STATUS', get: (e: any) => e.status },
        // A summary line: how many refusals of that actor or address were counted, not logged one by one.
        { header: 'CODE', get: (e: any) => (e.event === 'suppressed' ? `${e.count} not logged one by one` : e.code) },
      ]);
    }));
}
