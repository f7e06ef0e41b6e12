import type { Command } from 'commander';
import { usage } from '../errors.js';
import { act, leaf, tenantPath, type Io } from '../kit.js';

/** `8889/tcp`, `53/udp`, `9/sctp`, `icmp`, `tcp`. */
export function parseFlow(text: string): { protocol: string; port?: number } {
  const m = /^(?:([0-9]{1,5})\/)?(tcp|udp|sctp|icmp|[0-9]{1,3})$/.exec(text);
  if (!m?.[2]) throw usage(`'${text}' is not PORT/PROTOCOL (8889/tcp, 53/udp) or a protocol (icmp)`);
  const port = m[1] === undefined ? undefined : Number(m[1]);
  if (port !== undefined && (port < 1 || port > 65535)) throw usage(`port ${port} is outside 1-65535`);
  if (port !== undefined && !['tcp', 'udp', 'sctp', '6', '17', '132'].includes(m[2])) throw usage(`${m[2]} has no ports`);
  return { protocol: m[2], ...(port !== undefined ? { port } : {}) };
}

function describe(s: any): string {
  if (!s.rule) return 'default action (no rule matched)';
  const r = s.rule;
  // A NetworkPolicy's isolation: selected by these policies, and none of their rules allowed it.
  if (s.layer === 'networkpolicy' && r.action === 'deny') return `${s.policy}: no rule of theirs allows it`;
  if (s.layer === 'networkpolicy') return `${s.policy} ${r.id} (${r.protocol}${r.ports ? `/${r.ports}` : ''})`;
  if (s.layer === 'adminnetworkpolicy' || s.layer === 'baselineadminnetworkpolicy') return `${s.policy} ${r.id} (${r.action} ${r.protocol}${r.ports ? `/${r.ports}` : ''})`;
  return `${s.policy} rule ${r.id} (priority ${r.priority}, ${r.action} ${r.protocol}${r.ports ? `/${r.ports}` : ''})`;
}

export function explainCommands(program: Command, io: Io): void {
  leaf(program, {
    name: 'explain <from> <to> <flow>',
    summary: 'say why a new connection is allowed or denied, from the same decision the datapath runs',
    example: ['weft explain -t default app-1 db-1 8889/tcp', 'weft explain web 10.1.2.7 icmp -o json'],
  }).action(act(io, async (ctx, from, to, flow) => {
    const f = parseFlow(flow as string);
    const q = new URLSearchParams({ from: from as string, to: to as string, protocol: f.protocol, ...(f.port !== undefined ? { port: String(f.port) } : {}) });
    const e = await ctx.client.request('GET', tenantPath(ctx, `explain?${q}`));
    if (ctx.format !== 'table') return ctx.show(e);
    const line = (label: string, s: any) => s
      ? `  ${label.padEnd(7)} ${`(${s.group ?? 'no group'})`.padEnd(14)} ${s.action.padEnd(6)} ${describe(s)}`
      : `  ${label.padEnd(7)} ${'(outside)'.padEnd(14)} ${'-'.padEnd(6)} not an endpoint: no policy applies`;
    ctx.print([line('egress', e.egress), line('ingress', e.ingress), `  => ${e.allowed ? 'allowed' : 'denied'}`].join('\n'));
  }));
}
