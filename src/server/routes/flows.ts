import type { FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import { Name, WeftError } from '../../model/index.js';
import { canSeeTenant, requireRole, requireTenantAccess } from '../../control/index.js';
import { principalOf } from '../context.js';
import { tenantPolicy } from './explain.js';
import { annotate, protocolName, type Flow, type ReportedFlow } from '../flows.js';
import { endAtExpiry, samePowers } from './changes.js';

/** At most this many records per report (agent/flows.ts FLOW_BATCH). */
const REPORT_MAX = 1000;
/** A reported time may be this far in the past (an agent that kept records while the server was away); later ones are clamped to now. */
const PAST_MS = 15 * 60_000;
/** Unsent bytes past which a follower that does not read is cut off. */
const FOLLOW_BUFFER = 1 << 20;

const Ipv4 = Type.String({ pattern: '^(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$' });
const Port = Type.Integer({ minimum: 0, maximum: 65535 });
const ReportParams = Type.Object({ name: Type.String({ minLength: 1, maxLength: 253 }) }, { additionalProperties: false });
const Report = Type.Object({
  flows: Type.Array(Type.Object({
    tenant: Name, at: Type.Integer({ minimum: 0 }), verdict: Type.Union([Type.Literal('allow'), Type.Literal('deny'), Type.Literal('audit')]),
    proto: Type.Integer({ minimum: 0, maximum: 255 }), src: Ipv4, sport: Port, dst: Ipv4, dport: Port,
  }, { additionalProperties: false }), { maxItems: REPORT_MAX }),
  lost: Type.Array(Type.Object({ tenant: Name, count: Type.Integer({ minimum: 1, maximum: 1e12 }) }, { additionalProperties: false }), { maxItems: REPORT_MAX }),
}, { additionalProperties: false });

const Query = Type.Object({
  tenant: Type.Optional(Name),
  verdict: Type.Optional(Type.Union([Type.Literal('allow'), Type.Literal('deny'), Type.Literal('audit')])),
  since: Type.Optional(Type.String({ pattern: '^(?:[0-9]{1,6}[smhd]|[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z)$', description: 'a duration back from now (30s, 10m, 2h, 1d) or an RFC 3339 UTC time' })),
  group: Type.Optional(Name),
  host: Type.Optional(Type.String({ minLength: 1, maxLength: 253 })),
  protocol: Type.Optional(Type.String({ pattern: '^(tcp|udp|sctp|icmp|[0-9]{1,3})$' })),
  port: Type.Optional(Type.String({ pattern: '^[0-9]{1,5}$' })),
  limit: Type.Optional(Type.String({ pattern: '^[1-9][0-9]{0,4}$' })),
  follow: Type.Optional(Type.Union([Type.Literal('1'), Type.Literal('true')])),
}, { additionalProperties: false });
type QueryT = { tenant?: string; verdict?: Flow['verdict']; since?: string; group?: string; host?: string; protocol?: string; port?: string; limit?: string; follow?: string };

const UNIT: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

function sinceOf(text: string | undefined): number {
  if (text === undefined) return 0;
  const m = /^([0-9]+)([smhd])$/.exec(text);
  const at = m ? Date.now() - Number(m[1]) * (UNIT[m[2] as string] as number) : Date.parse(text);
  if (Number.isNaN(at)) throw new WeftError('WEFT_INVALID_FIELD', `since: '${text}' is not a duration (10m) or an RFC 3339 time`, { field: 'since' });
  return at;
}

/** The query as one test of a record. */
function filterOf(q: QueryT): (f: Flow) => boolean {
  const since = q.since === undefined ? undefined : new Date(sinceOf(q.since)).toISOString();
  const protocol = q.protocol === undefined ? undefined : /^[0-9]+$/.test(q.protocol) ? protocolName(Number(q.protocol)) : q.protocol;
  const port = q.port === undefined ? undefined : Number(q.port);
  return (f) => (q.verdict === undefined || f.verdict === q.verdict) && (since === undefined || f.time >= since)
    && (q.group === undefined || f.src.group === q.group || f.dst.group === q.group) && (q.host === undefined || f.host === q.host)
    && (protocol === undefined || f.protocol === protocol) && (port === undefined || f.dst.port === port);
}

/**
 * Flow records (issue 16). Agents report what their kernels logged (`POST /api/v1/hosts/{name}/flows`:
 * a host only for itself, and only connections to or from its own endpoints); the server names the
 * endpoints and the deciding rule and keeps them (server/flows.ts). `GET /api/v1/flows` lists them, or
 * with `follow=1` streams them as NDJSON; a tenant user sees only its tenants' records.
 */
export function flowRoutes(app: FastifyInstance): void {
  const c = app.control;

  app.post<{ Params: { name: string }; Body: { flows: ReportedFlow[]; lost: Array<{ tenant: string; count: number }> } }>('/api/v1/hosts/:name/flows', {
    schema: { params: ReportParams, body: Report, tags: ['flows'], summary: 'An agent reports the new connections its kernel logged, with their verdicts' },
  }, async (req) => {
    const p = principalOf(req);
    if (p.role !== 'host') requireRole(p, ['admin'], 'report flow records');
    const host = req.params.name;
    const now = Date.now();
    const byTenant = new Map<string, ReportedFlow[]>();
    for (const f of req.body.flows) {
      const list = byTenant.get(f.tenant) ?? [];
      list.push({ ...f, at: Math.min(Math.max(f.at, now - PAST_MS), now) });
      byTenant.set(f.tenant, list);
    }
    let accepted = 0;
    let refused = 0;
    for (const [t, records] of byTenant) {
      const exists = await c.tenants.get(t).then(() => true, () => false);
      if (!exists) {
        refused += records.length;
        continue;
      }
      const { state, endpoints } = await tenantPolicy(c, t);
      // A host speaks only for connections of its own endpoints: it cannot put words in another host's mouth.
      const mine = new Set(endpoints.filter((e) => e.host === host).map((e) => e.ip));
      const kept = records.filter((r) => mine.has(r.src) || mine.has(r.dst));
      refused += records.length - kept.length;
      accepted += kept.length;
      app.flows.add(annotate(host, state, endpoints, kept));
    }
    for (const l of req.body.lost) if (await c.tenants.get(l.tenant).then(() => true, () => false)) app.flows.countLost(l.tenant, l.count);
    app.metrics.flowRecords.inc({ outcome: 'accepted' }, accepted);
    app.metrics.flowRecords.inc({ outcome: 'refused' }, refused);
    return { accepted, refused };
  });

  app.get<{ Querystring: QueryT }>('/api/v1/flows', {
    config: { longLived: true },
    schema: { querystring: Query, tags: ['flows'], summary: 'Recent new connections with their verdicts and the rules that decided; follow=1 streams them (NDJSON)' },
  }, async (req, reply) => {
    const p = principalOf(req);
    const q = req.query;
    if (q.tenant !== undefined) requireTenantAccess(p, q.tenant);
    // A tenant user without a tenant named sees its own tenants' records, never anyone else's.
    const tenants = q.tenant !== undefined ? new Set([q.tenant]) : p.role === 'tenant' ? new Set(p.tenants) : undefined;
    const keep = filterOf(q);
    const limit = Number(q.limit ?? (q.follow ? 20 : 1000));
    const past = app.flows.list(tenants, keep, limit);
    if (!q.follow) {
      const lost = [...(tenants ?? app.flows.lost.keys())].filter((t) => canSeeTenant(p, t)).map((t) => ({ tenant: t, lost: app.flows.lost.get(t) ?? 0 }));
      return { items: past, lost };
    }
    const release = app.watchSlots.take(p);
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-cache' });
    res.flushHeaders();
    const send = (f: Flow) => {
      if (res.writableLength > FOLLOW_BUFFER) {
        req.log.warn({ user: p.user }, 'flow stream ended: its client was not reading');
        res.destroy();
        return;
      }
      res.write(`${JSON.stringify(f)}\n`);
    };
    for (const f of past) send(f);
    const unfollow = app.flows.follow(tenants, (f) => keep(f) && send(f));
    const end = () => res.destroy();
    const opened = p;
    const forget = app.streams.add({ principal: opened, stillValid: () => req.reauthenticate().then((now) => samePowers(opened, now)), end });
    const cancelExpiry = endAtExpiry(req, end);
    const closed = () => {
      unfollow();
      forget();
      cancelExpiry();
      release();
    };
    if (req.raw.socket.destroyed) closed();
    else res.once('close', closed);
  });
}
