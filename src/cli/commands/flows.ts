import type { Command } from 'commander';
import { Option } from 'commander';
import { linesOf } from '../../client/index.js';
import { usage } from '../errors.js';
import { act, intArg, leaf, type Io } from '../kit.js';

/** One end of a record as the API gives it (server/flows.ts). */
interface End { ip: string; port: number; name?: string; group?: string }
interface Flow {
  time: string; host: string; tenant: string; verdict: string; protocol: string; src: End; dst: End; agrees: boolean;
  decidedBy: { side: string; layer: string; policy?: string; rule: string | null };
}

const end = (e: End, port: boolean) => `${e.name ? `${e.name}${e.group ? `/${e.group}` : ''}` : e.ip}${port && e.port ? `:${e.port}` : ''}`;
/** Who decided, in a few words: `db-policy/1 (ingress)`, `default (egress)`, `networkpolicy (ingress)`. */
export function decidedText(f: Flow): string {
  const d = f.decidedBy;
  const what = d.rule !== null ? `${d.policy ?? d.layer}/${d.rule}` : d.layer;
  return `${what}${d.side === 'none' ? '' : ` (${d.side})`}${f.agrees ? '' : ' [the stored policy decides otherwise]'}`;
}

const COLUMNS: Array<{ header: string; width: number; get: (f: Flow) => string }> = [
  { header: 'TIME', width: 12, get: (f) => f.time.slice(11, 23) },
  { header: 'HOST', width: 12, get: (f) => f.host },
  { header: 'FROM', width: 26, get: (f) => end(f.src, false) },
  { header: 'TO', width: 26, get: (f) => end(f.dst, false) },
  { header: 'PROTO/PORT', width: 10, get: (f) => (f.dst.port ? `${f.protocol}/${f.dst.port}` : f.protocol) },
  { header: 'VERDICT', width: 7, get: (f) => f.verdict },
  { header: 'DECIDED BY', width: 0, get: decidedText },
];
const line = (cells: string[]) => cells.map((c, i) => (i < cells.length - 1 ? c.padEnd((COLUMNS[i] as { width: number }).width) : c)).join('  ').trimEnd();

const DURATION = /^[0-9]{1,6}[smhd]$/;

export function flowCommands(program: Command, io: Io): void {
  leaf(program, {
    name: 'flows', summary: 'new connections as the hosts\' kernels decided them, with the rule that decided (recent, or live with --follow)',
    example: ['weft flows -t shop --follow', 'weft flows -t shop --verdict deny --since 10m', 'weft flows -t shop --group db --port 5432 -o json'],
  })
    .addOption(new Option('--verdict <verdict>', 'only allowed, denied, or audit (allowed, but an audit-mode policy would deny)').choices(['allow', 'deny', 'audit']))
    .option('--since <duration>', 'only the last 30s, 10m, 2h, 1d', (v: string) => {
      if (!DURATION.test(v)) throw usage(`--since: '${v}' is not a duration such as 30s, 10m, 2h or 1d`);
      return v;
    })
    .option('--group <group>', 'only connections from or to this group')
    .option('--host <host>', 'only what this host logged')
    .addOption(new Option('--protocol <protocol>', 'only this protocol (icmp: ICMPv6 too, as icmp rules decide both)').choices(['tcp', 'udp', 'sctp', 'icmp', 'icmpv6']))
    .option('--port <port>', 'only connections to this port', intArg('--port', 1, 65535))
    .option('--limit <n>', 'at most this many (the newest; with --follow, how many of the past to show first)', intArg('--limit', 1, 99999))
    .option('-f, --follow', 'keep printing new connections as they happen (Ctrl-C ends)')
    .addHelpText('after', `
Each host logs new connections in its tenants' namespaces, at most 20 a second per source address and
500 a second per tenant on the host; what the limits hold back is only counted (said below the list).
The server names the endpoints and the rule that decided, as \`weft explain\` would; a connection
between two hosts is recorded by each, for the side it enforces (egress where it starts, ingress where
it ends). "[the stored policy decides otherwise]" marks a record
whose verdict differs from the policy now stored (a change the host had not applied yet, or drift).
Records live in the server's memory (the newest 5,000 per tenant) and start over when it restarts.
`)
    .action(act(io, async (ctx) => {
      const o = ctx.opts;
      const q = new URLSearchParams({ tenant: ctx.tenant });
      for (const k of ['verdict', 'since', 'group', 'host', 'protocol', 'port', 'limit'] as const) if (o[k] !== undefined) q.set(k, String(o[k]));
      if (!o['follow']) {
        const { items, lost } = await ctx.client.request('GET', `/api/v1/flows?${q}`);
        if (ctx.format !== 'table') return ctx.show({ items, lost });
        io.out(`${line(COLUMNS.map((c) => c.header))}\n`);
        for (const f of items as Flow[]) io.out(`${line(COLUMNS.map((c) => c.get(f)))}\n`);
        const dropped = (lost as Array<{ lost: number }>).reduce((n, l) => n + l.lost, 0);
        const held = (lost as Array<{ held: number }>).reduce((n, l) => n + l.held, 0);
        if (held > 0) io.err(`(${held} new connections were not recorded: over the hosts' rate limits)\n`);
        if (dropped > 0) io.err(`(${dropped} records were lost on the way from the kernels: a full queue or an agent's buffer while the server was away)\n`);
        return;
      }
      q.set('follow', '1');
      const body = await ctx.client.stream(`/api/v1/flows?${q}`);
      if (ctx.format === 'table') io.out(`${line(COLUMNS.map((c) => c.header))}\n`);
      for await (const text of linesOf(body)) {
        if (!text) continue;
        if (ctx.format !== 'table') io.out(`${text}\n`);
        else io.out(`${line(COLUMNS.map((c) => c.get(JSON.parse(text) as Flow)))}\n`);
      }
    }));
}

/** Bytes as a person reads them: 1.5 MB, 12 kB, 300 B (powers of 1000, as link speeds are given). */
export function bytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return i === 0 ? `${n} B` : `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

export function topCommands(program: Command, io: Io): void {
  leaf(program, {
    name: 'top', summary: 'a tenant\'s rules by the connections they decided, its pairs of groups by connections (from flow records), its groups by traffic',
    example: ['weft top -t shop', 'weft top -t shop --limit 30 -o json'],
  })
    .option('--limit <n>', 'how many of each', intArg('--limit', 1, 999), 10)
    .addHelpText('after', `
Counted from flow records since the server started: connections over the hosts' rate limits are not
counted by rule, only in all (shown below the tables). TRAFFIC: bytes and packets each group's endpoints
sent and received, read from their veths every 10 s by the hosts (records on). The same counts, for
Prometheus: GET /api/v1/flows/metrics (with a token).
`)
    .action(act(io, async (ctx) => {
      const top = await ctx.client.request('GET', `/api/v1/flows/top?tenant=${encodeURIComponent(ctx.tenant)}&limit=${ctx.opts['limit']}`);
      if (ctx.format !== 'table') return ctx.show(top);
      ctx.print('RULES');
      ctx.table(top.rules, [
        { header: 'CONNECTIONS', get: (r: any) => r.connections }, { header: 'VERDICT', get: (r: any) => r.verdict },
        { header: 'RULE', get: (r: any) => (r.rule !== null ? `${r.policy ?? r.layer}/${r.rule}` : r.layer) }, { header: 'LAYER', get: (r: any) => r.layer },
      ]);
      ctx.print('\nGROUPS');
      ctx.table(top.groups, [
        { header: 'CONNECTIONS', get: (g: any) => g.connections }, { header: 'VERDICT', get: (g: any) => g.verdict },
        { header: 'FROM', get: (g: any) => g.from }, { header: 'TO', get: (g: any) => g.to },
      ]);
      ctx.print('\nTRAFFIC');
      ctx.table(top.traffic ?? [], [
        { header: 'GROUP', get: (g: any) => g.group || '(no group)' },
        { header: 'SENT', get: (g: any) => `${bytes(g.sentBytes)} (${g.sentPackets} packets)` }, { header: 'RECEIVED', get: (g: any) => `${bytes(g.receivedBytes)} (${g.receivedPackets} packets)` },
      ]);
      if (top.held > 0) io.err(`(${top.held} new connections were not recorded: over the hosts' rate limits)\n`);
      if (top.lost > 0) io.err(`(${top.lost} records were lost on the way from the kernels: a full queue or an agent's buffer)\n`);
    }));
}
