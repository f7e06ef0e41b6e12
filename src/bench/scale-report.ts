import { KINDS, type Seen } from './scale-changes.js';
import type { FleetOptions, FleetResult, Usages } from './scale-fleet-run.js';
import { mib, type Usage } from './procstat.js';
import { ms, summarise } from './stats.js';

const row = (...cells: string[]) => `| ${cells.join(' | ')} |`;
const lat = (xs: number[]) => {
  const s = summarise(xs);
  return s.n ? `${ms(s.p50)} / ${ms(s.p99)} / ${ms(s.max)}` : 'none seen by all';
};
const seenBy = (seen: Seen[], kind?: string) => seen.filter((s) => (kind === undefined || s.kind === kind) && s.missing === 0 && !s.error).map((s) => s.ms);
const pct = (u: Usage | undefined) => (u ? `${(u.cores * 100).toFixed(0)} %` : '—');
const cpuMs = (u: Usage | undefined, n: number) => (u ? (u.cpuS * 1000) / n : NaN);

/** CPU per change above what the server spends idle with the same watchers connected. */
function perChange(u: Usages, idle: Usages, n: number, who = 'server'): number {
  const busy = u[who];
  const rest = idle[who];
  if (!busy || !rest) return NaN;
  return ((busy.cpuS - (rest.cpuS / rest.wallS) * busy.wallS) * 1000) / n;
}

function propagation(r: FleetResult, o: FleetOptions): string[] {
  const out = [row(`change (${o.rounds} / ${o.heartbeatRounds} of each)`, `seen by all ${o.hosts} agents, p50 / p99 / max: no heartbeats`, `with heartbeats every ${o.heartbeatMs / 1000} s`, 'target'), row('---', '---', '---', '---')];
  for (const k of KINDS) out.push(row(k, lat(seenBy(r.quiet.seen, k)), lat(seenBy(r.heartbeats.seen, k)), ''));
  out.push(row(`**all changes (${r.quiet.seen.length} / ${r.heartbeats.seen.length})**`, lat(seenBy(r.quiet.seen)), lat(seenBy(r.heartbeats.seen)), 'p99 ≤ 1 s'));
  const missed = (seen: Seen[]) => `${seen.filter((s) => s.missing > 0).length} (${seen.reduce((n, s) => n + s.missing, 0)} agent-changes)`;
  out.push(row(`changes some agent had not applied after ${o.timeoutMs / 1000} s`, missed(r.quiet.seen), missed(r.heartbeats.seen), '0'));
  const failed = (seen: Seen[]) => {
    const f = seen.filter((s) => s.error);
    return f.length ? `${f.length}: ${f[0]?.error}` : '0';
  };
  out.push(row('writes that failed (the change was not made)', failed(r.quiet.seen), failed(r.heartbeats.seen), '0'));
  const a = r.anchor.fanout;
  out.push(row(`anchor: one ${r.anchor.bytes}-byte line from a trivial Node HTTPS server to ${r.anchor.streams} streams (same processes, same client)`, `${ms(a.lat.p50)} / ${ms(a.lat.p99)} / ${ms(a.lat.max)}`, '(run between the two phases)', '(anchor)'));
  return out;
}

function costs(r: FleetResult): string[] {
  const n = r.quiet.seen.length;
  const base = cpuMs(r.baseline.usage['server'], r.baseline.changes);
  const quiet = perChange(r.quiet.usage, r.idle, n);
  const fan = quiet - base;
  const out = [row('cost', 'result', 'note'), row('---', '---', '---')];
  out.push(row('server CPU per change, nobody watching', `${base.toFixed(2)} ms`, 'the write alone'));
  out.push(row(`server CPU per change, ${r.start.agents} agents watching (above idle)`, `${quiet.toFixed(2)} ms`, `fan-out ≈ ${fan.toFixed(2)} ms per change, ${((fan * 1000) / r.start.agents).toFixed(1)} µs per agent`));
  out.push(row(`anchor CPU per line to ${r.anchor.streams} streams`, `${r.anchor.fanout.cpuMsPerLine.toFixed(2)} ms`, `${((r.anchor.fanout.cpuMsPerLine * 1000) / r.anchor.streams).toFixed(1)} µs per stream`));
  out.push(row('server idle with every agent watching (no heartbeats)', pct(r.idle['server']), `RSS ${mib(r.idle['server']?.lastRss ?? NaN)}`));
  const phase = (u: Usages) => `peak RSS ${mib(u['server']?.peakRss ?? NaN)}; the worker processes used ${pct(u['workers'])}`;
  out.push(row('server while the changes ran, no heartbeats', pct(r.quiet.usage['server']), phase(r.quiet.usage)));
  out.push(row('server while the changes ran, with heartbeats', pct(r.heartbeats.usage['server']), phase(r.heartbeats.usage)));
  if (r.store === 'etcd') {
    out.push(row('etcd while the changes ran, no heartbeats / with heartbeats', `${pct(r.quiet.usage['etcd'])} / ${pct(r.heartbeats.usage['etcd'])}`, `peak RSS ${mib(r.heartbeats.usage['etcd']?.peakRss ?? NaN)}`));
  }
  out.push(row(`${r.start.agents} agents listing and opening their watch`, `${(r.start.ms / 1000).toFixed(1)} s`, `server CPU ${r.start.usage['server']?.cpuS.toFixed(1)} s, RSS after ${mib(r.start.usage['server']?.lastRss ?? NaN)}`));
  out.push(row('server busy after the heartbeats stopped (above 25 % of a core: the watch backlog of host changes)', Number.isNaN(r.drainMs) ? 'still busy after 10 min' : `${(r.drainMs / 1000).toFixed(0)} s`, 'the steps below ran after it'));
  const { own, ownUsage, full, fullUsage } = r.relists;
  const cpuOf = (u: Usages, n: number) => `server CPU ${u['server']?.cpuS.toFixed(1)} s (${cpuMs(u['server'], n).toFixed(1)} ms per list)`;
  out.push(row(`${own.agents} agents re-list at once, each its own host's endpoints (as after a server restart)${failedWhy(own.failures)}`, `${(own.ms / 1000).toFixed(1)} s`, cpuOf(ownUsage, own.agents)));
  out.push(row(`${full.lists} real agents' full endpoint lists at once (${mib(full.bytesEach)} each)${failedWhy(full.failures)}`, `${(full.ms / 1000).toFixed(1)} s`, cpuOf(fullUsage, full.lists)));
  const w = r.workers;
  out.push(row('simulated agents (worker processes): RSS, V8 heap', `${mib(w.rss)}, ${mib(w.heapUsed)}`, `${(w.heapUsed / 1024 / Math.max(1, w.agents)).toFixed(0)} KiB heap per agent (each holds every host)`));
  out.push(row('watch lines applied by all agents / re-lists after the first / heartbeats (failed)', `${w.lines} / ${w.relists} / ${w.heartbeats} (${w.heartbeatFailures})`, ''));
  const agentWarned = Object.entries(w.warnings).sort((x, y) => y[1] - x[1]).slice(0, 4).map(([m, n]) => `${n} × ${m}`).join('; ');
  out.push(row('agents\' warnings, most frequent first', agentWarned || 'none', ''));
  const warned = Object.entries(r.warnings).map(([m, n]) => `${n} × ${m}`).join('; ');
  out.push(row('server warnings during the run', warned || 'none', ''));
  return out;
}

/** `, N failed (2 × why; 1 × why)`: a count of failures says nothing without what they were. */
function failedWhy(failures: readonly string[]): string {
  if (failures.length === 0) return '';
  const counts = new Map<string, number>();
  for (const f of failures) counts.set(f, (counts.get(f) ?? 0) + 1);
  const why = [...counts].sort((a, b) => b[1] - a[1]).slice(0, 3).map(([m, n]) => `${n} × ${m.replace(/\|/g, '/').slice(0, 160)}`).join('; ');
  return `, ${failures.length} failed (${why})`;
}

export function fleetReport(r: FleetResult, o: FleetOptions): string {
  const a = r.allocations;
  const setup = [
    row('setup', 'result', 'target'), row('---', '---', '---'),
    row(`${o.hosts} hosts through the real join flow (join token, CA pin, CSR), ${o.clients} at a time`, `${r.joins.seconds.toFixed(1)} s (per join p50 ${ms(r.joins.lat.p50)}, p99 ${ms(r.joins.lat.p99)})`, '—'),
    row(`endpoint allocations: ${a.created} POST /api/v1/endpoints, each host with its certificate, ${o.clients} concurrent clients`, `${a.rate.toFixed(0)} /s, p50 / p99 / max ${ms(a.lat.p50)} / ${ms(a.lat.p99)} / ${ms(a.lat.max)}${a.failures.length ? `, ${a.failures.length} failed` : ''}`, r.store === 'sqlite' ? '≥ 5,000 /s, p99 ≤ 10 ms' : '—'),
    row(`one real agent's list (listAll: every endpoint, ${r.lists.endpoints}, ${mib(r.lists.fullBytes)} of JSON)`, `${ms(r.lists.fullMs)}`, `× ${o.hosts} agents after a server restart ≈ ${((r.lists.fullMs * o.hosts) / 60000).toFixed(0)} min`),
    row('one simulated agent\'s endpoint list (its own host\'s, ?host=)', ms(r.lists.ownMs), '—'),
    row(`one agent's host list (every host, ${r.lists.hosts}, ${mib(r.lists.hostsBytes)} of JSON)`, ms(r.lists.hostsMs), `× ${o.hosts} agents at their start ≈ ${((r.lists.hostsMs * o.hosts) / 1000).toFixed(0)} s of server time`),
    row(`anchor: 10,000 POSTs to a trivial Node HTTPS server, ${o.clients} concurrent clients`, `${r.anchor.requests.rate.toFixed(0)} /s, p99 ${ms(r.anchor.requests.lat.p99)}`, '(anchor)'),
    row('every agent holds what the server holds at the end (policies, groups, its endpoints, host count)', r.consistent.error ? `not checked: ${r.consistent.error}` : `${r.consistent.agents - r.consistent.mismatched} of ${r.consistent.agents}`, `all ${o.hosts}`),
    row(`tunnel range change (re-addresses ${o.hosts} hosts in one transaction)`, r.tunnelRange.ok ? `${ms(r.tunnelRange.ms)}; seen by all agents after ${ms(r.tunnelRange.seenMs)} (${r.tunnelRange.missing} missing)` : `refused after ${ms(r.tunnelRange.ms)}: ${r.tunnelRange.answer}`, 'works, or a precise error'),
  ];
  return [`#### ${r.store}`, '', ...setup, '', ...propagation(r, o), '', ...costs(r), ''].join('\n');
}
