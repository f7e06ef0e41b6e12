import type { FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import { Name, WeftError, formatIp6, inRuleSpace6, parseIp6, PROTOCOL_NUMBER, type Endpoint, type Policy } from '../../model/index.js';
import { explainerYielding, type Explainer } from '../../policy/index.js';
import { canSeeTenant, policiesYielding, requireRole, requireTenantAccess, type Principal } from '../../control/index.js';
import { principalOf } from '../context.js';
import { TimeSlices } from '../slices.js';
import { tenantPolicy } from './explain.js';
import { annotator, ExplainBudget, FLOWS_PER_TENANT, protocolName, type Flow, type GroupTraffic, type ReportedFlow } from '../flows.js';
import { endAtExpiry, samePowers } from './changes.js';

/** At most this many records per report (agent/flows.ts FLOW_BATCH). */
const REPORT_MAX = 1000;
/** A reported time may be this far in the past (an agent that kept records while the server was away); later ones are clamped to now. */
const PAST_MS = 15 * 60_000;
/** A tenant's evaluator, once the store changed, is made again after at least this long and this many times what it cost; so many tenants' are kept. */
const EXPLAINER_MS = 1000;
const EXPLAINER_BUDGET = 10;
const EXPLAINERS = 64;
/** Milliseconds a second this server spends explaining records (flows.ts ExplainBudget): a tenth of a core. */
const EXPLAIN_MS_PER_S = 100;
/** At most this many records counted lost per tenant per report (the agent's buffer holds 4,096). */
const LOST_MAX = 1_000_000;
/** At most this many held back per tenant per report (a report covers ~250 ms). */
const HELD_MAX = 100_000_000;
/** Unsent bytes past which a follower that does not read is cut off. */
const FOLLOW_BUFFER = 1 << 20;
/** Series of the per-tenant counters: the busiest rules and group pairs per tenant, and tenants. */
const METRICS_PER_TENANT = 20;
const METRICS_TENANTS = 200;
const TopQuery = Type.Object({ tenant: Name, limit: Type.Optional(Type.String({ pattern: '^[1-9][0-9]{0,2}$' })) }, { additionalProperties: false });

const Ipv4 = Type.String({ pattern: '^(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$' });
/** An IPv6 address as weft-netwatch prints it (RFC 5952: lower case, no zone); checked again by parsing. */
const Ipv6 = Type.String({ pattern: '^[0-9a-f.]*:[0-9a-f:.]*$', maxLength: 45 });
const Address = Type.Union([Ipv4, Ipv6]);
const Port = Type.Integer({ minimum: 0, maximum: 65535 });
/** Per second, the most one host's endpoints of a group are believed to move: 400 Gbit/s, 100 million packets. */
const BYTES_PER_S = 5e10;
const PACKETS_PER_S = 1e8;
/** Bytes or packets one host's endpoints of a group moved between two reports (10 s at 100 Gbit/s is 1.25e11 bytes). */
const Volume = Type.Integer({ minimum: 0, maximum: 1e15 });
const Count = Type.Object({ tenant: Name, count: Type.Integer({ minimum: 1, maximum: 1e12 }) }, { additionalProperties: false });
const ReportParams = Type.Object({ name: Type.String({ minLength: 1, maxLength: 253 }) }, { additionalProperties: false });
const Report = Type.Object({
  flows: Type.Array(Type.Object({
    tenant: Name, at: Type.Integer({ minimum: 0 }), verdict: Type.Union([Type.Literal('allow'), Type.Literal('deny'), Type.Literal('audit')]),
    proto: Type.Integer({ minimum: 0, maximum: 255 }), src: Address, sport: Port, dst: Address, dport: Port,
  }, { additionalProperties: false }), { maxItems: REPORT_MAX }),
  lost: Type.Array(Count, { maxItems: REPORT_MAX }),
  held: Type.Optional(Type.Array(Count, { maxItems: REPORT_MAX, description: 'per tenant, connections the rate limits kept from being logged' })),
  traffic: Type.Optional(Type.Array(Type.Object({
    tenant: Name, group: Type.Union([Name, Type.Literal('')], { description: "'' for endpoints without a group" }),
    sentBytes: Volume, sentPackets: Volume, receivedBytes: Volume, receivedPackets: Volume,
  }, { additionalProperties: false }), { maxItems: REPORT_MAX, description: "per tenant and group of the host's endpoints, what they sent and received since the last report" })),
}, { additionalProperties: false });

const Query = Type.Object({
  tenant: Type.Optional(Name),
  verdict: Type.Optional(Type.Union([Type.Literal('allow'), Type.Literal('deny'), Type.Literal('audit')])),
  since: Type.Optional(Type.String({ pattern: '^(?:[0-9]{1,6}[smhd]|[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z)$', description: 'a duration back from now (30s, 10m, 2h, 1d) or an RFC 3339 UTC time' })),
  group: Type.Optional(Name),
  host: Type.Optional(Type.String({ minLength: 1, maxLength: 253 })),
  protocol: Type.Optional(Type.String({ pattern: `^(tcp|udp|sctp|icmp|icmpv6|${PROTOCOL_NUMBER})$`, description: 'icmp also matches icmpv6 (icmp rules decide both)' })),
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
    && (protocol === undefined || f.protocol === protocol || (protocol === 'icmp' && f.protocol === 'icmpv6')) && (port === undefined || f.dst.port === port);
}

type Tenants = { tenants: { createdAt(name: string): Promise<number | undefined> } };

/** Of these tenants, those still the ones of a listing at `listedAt`, with their create revisions (read together). */
async function stillListed(c: Tenants, names: Iterable<string>, listedAt: number): Promise<Map<string, number>> {
  const all = [...new Set(names)];
  const ats = await Promise.all(all.map((t) => c.tenants.createdAt(t).catch(() => undefined)));
  const out = new Map<string, number>();
  all.forEach((t, i) => {
    const at = ats[i];
    if (at !== undefined && at <= listedAt) out.set(t, at);
  });
  return out;
}

/** Of these tenants, read again together, those no longer the one created at the revision given. */
async function remade(c: Tenants, created: ReadonlyMap<string, number>): Promise<string[]> {
  const all = [...created];
  const same = await Promise.all(all.map(([t, at]) => c.tenants.createdAt(t).then((now) => now === at, () => true)));
  return all.filter((_, i) => !same[i]).map(([t]) => t);
}

/**
 * Flow records (issue 16). Agents report what their kernels logged (`POST /api/v1/hosts/{name}/flows`:
 * a host only for itself, and only connections to or from its own endpoints); the server names the
 * endpoints and the deciding rule and keeps them (server/flows.ts). `GET /api/v1/flows` lists them, or
 * with `follow=1` streams them as NDJSON; a tenant user sees only its tenants' records.
 */
export function flowRoutes(app: FastifyInstance): void {
  const c = app.control;
  /** A tenant the caller may see that exists now: else 404, as every other route with a tenant answers. */
  const requireTenant = async (tenant: string, p: Principal) => {
    requireTenantAccess(p, tenant);
    await c.tenants.get(tenant);
  };

  /** When each host last reported traffic (its next report may say at most what its links carry in the time since). */
  const trafficAt = new Map<string, number>();
  /** Hosts with a report being taken: one at a time each (an agent sends every 250 ms; it keeps what is refused). */
  const taking = new Set<string>();
  /**
   * Per tenant, an evaluator of its policy as stored. Reused while the store has not changed since it was
   * made; after a change, made again only once EXPLAINER_BUDGET times its own cost has passed (at least
   * EXPLAINER_MS): naming records takes at most a tenth of a core however large the tenant, and at 50,000
   * rules with changes every second a rule's name on a record can lag a change by some seconds.
   */
  const budget = new ExplainBudget(EXPLAIN_MS_PER_S, 2 * EXPLAIN_MS_PER_S);
  type Made = { at: number; costMs: number; revision: number; tenant: number; explain: Explainer; endpoints: Endpoint[]; policies: readonly Policy[] };
  const explainers = new Map<string, Made>();
  /** Builds under way, per tenant and its revision: reports arriving meanwhile wait for it instead of building their own. */
  const building = new Map<string, Promise<Made>>();
  const explainerOf = async (t: string): Promise<Made> => {
    const now = Date.now();
    const had = explainers.get(t);
    const revision = await c.store.revision();
    // Never another tenant's: one deleted and made again under this name (or changed) is read afresh.
    const tenant = (await c.tenants.get(t)).revision;
    if (had && had.tenant === tenant && (had.revision === revision || now - had.at < Math.max(EXPLAINER_MS, had.costMs * EXPLAINER_BUDGET))) return had;
    // Keyed by the tenant's revision too: a build begun before the tenant was deleted and made again
    // would name the new one's records with the old one's endpoints and rules.
    const key = `${t} ${tenant}`;
    const under = building.get(key);
    if (under) return under;
    const build = (async () => {
      // Reading a large tenant and classifying it were each 50-140 ms at a stretch (every API call waited
      // behind them): both now yield every SLICE_MS, and the policies whose heads have not moved since the
      // last evaluator are taken from it unread. Its cost (which spaces rebuilds) is the time spent working.
      const slices = new TimeSlices();
      const pause = slices.pause;
      const reuse = new Map(had?.tenant === tenant ? had.policies.map((p) => [p.name, p] as const) : []);
      const { state, endpoints } = await tenantPolicy(c, t, async (x) => ({ items: await policiesYielding(c.store, x, reuse, pause) }));
      await pause();
      const explain = await explainerYielding(state, pause);
      const made = { at: now, costMs: slices.spent(), revision, tenant: state.tenant.revision, explain, endpoints, policies: state.policies };
      // One made from a later revision of the store meanwhile stays.
      const current = explainers.get(t);
      if (current && current.revision > revision) return current;
      explainers.delete(t);
      explainers.set(t, made);
      // The oldest go first past EXPLAINERS (a Map keeps insertion order).
      for (const k of explainers.keys()) if (explainers.size > EXPLAINERS) explainers.delete(k);
      return made;
    })();
    building.set(key, build);
    try {
      return await build;
    } finally {
      building.delete(key);
    }
  };

  app.post<{ Params: { name: string }; Body: { flows: ReportedFlow[]; lost: Array<{ tenant: string; count: number }>; held?: Array<{ tenant: string; count: number }>; traffic?: GroupTraffic[] } }>('/api/v1/hosts/:name/flows', {
    schema: { params: ReportParams, body: Report, tags: ['flows'], summary: 'An agent reports the new connections its kernel logged, with their verdicts' },
  }, async (req) => {
    const p = principalOf(req);
    if (p.role !== 'host') requireRole(p, ['admin'], 'report flow records');
    const host = req.params.name;
    const pairs = new Set<string>();
    // What the kernel can log: both ends of one family; IPv6 as weft-netwatch prints it (RFC 5952), and of
    // the kinds a tenant's packets carry (global unicast, unique local, NAT64: no ::, multicast, link-local or mapped).
    for (const [i, f] of req.body.flows.entries()) {
      if (f.src.includes(':') !== f.dst.includes(':')) throw new WeftError('WEFT_INVALID_FIELD', `flows.${i}.dst: '${f.dst}' is not of the family of src '${f.src}'`, { field: `flows.${i}.dst` });
      for (const k of ['src', 'dst'] as const) {
        const a = f[k];
        if (!a.includes(':')) continue;
        const n = parseIp6(a);
        if (n === undefined || formatIp6(n) !== a) throw new WeftError('WEFT_INVALID_FIELD', `flows.${i}.${k}: '${a}' is not an IPv6 address in RFC 5952 text`, { field: `flows.${i}.${k}` });
        if (!inRuleSpace6(n)) throw new WeftError('WEFT_INVALID_FIELD', `flows.${i}.${k}: '${a}' is not a global unicast, unique local or NAT64 address (no tenant's packet carries one elsewhere)`, { field: `flows.${i}.${k}` });
      }
    }
    for (const [i, t] of (req.body.traffic ?? []).entries()) {
      const k = `${t.tenant} ${t.group}`;
      if (pairs.has(k)) throw new WeftError('WEFT_INVALID_FIELD', `traffic.${i}: tenant ${t.tenant} group '${t.group}' is listed twice`, { field: `traffic.${i}` });
      pairs.add(k);
    }
    for (const field of ['lost', 'held'] as const) {
      const seen = new Set<string>();
      for (const [i, l] of (req.body[field] ?? []).entries()) {
        if (seen.has(l.tenant)) throw new WeftError('WEFT_INVALID_FIELD', `${field}.${i}: tenant ${l.tenant} is listed twice`, { field: `${field}.${i}` });
        seen.add(l.tenant);
      }
    }
    if (taking.has(host)) throw new WeftError('WEFT_TOO_MANY_REPORTS', `host ${host}: its last flow report is still being taken; send again shortly`);
    taking.add(host);
    try {
      const now = Date.now();
      let refused = 0;
      const byTenant = new Map<string, ReportedFlow[]>();
      for (const f of req.body.flows) {
        const list = byTenant.get(f.tenant) ?? [];
        list.push({ ...f, at: Math.min(Math.max(f.at, now - PAST_MS), now) });
        byTenant.set(f.tenant, list);
      }
      for (const l of [...req.body.lost, ...(req.body.held ?? [])]) if (!byTenant.has(l.tenant)) byTenant.set(l.tenant, []);
      const taken: Flow[] = [];
      const counted = new Map<string, number>();
      const heldBy = new Map<string, number>();
      // Only tenants where the reporting host holds endpoints, and only their connections: checked (one
      // listing of the host's endpoints) before any tenant's policy is read, so a host cannot make the
      // server read a tenant it is not in, however many tenants a report names.
      const mine = new Map<string, Set<string>>();
      /** Per tenant, the groups ('' none) of the host's endpoints: a host counts traffic only for them. */
      const groupsHere = new Map<string, Set<string>>();
      const listed = await c.endpoints.list({ host }).catch(() => ({ items: [] as Endpoint[], revision: 0 }));
      for (const e of listed.items) {
        if (e.host !== host) continue;
        const ips = mine.get(e.tenant) ?? new Set<string>();
        if (e.ip !== undefined) ips.add(e.ip);
        if (e.ip6 !== undefined) ips.add(e.ip6);
        mine.set(e.tenant, ips);
        const gs = groupsHere.get(e.tenant) ?? new Set<string>();
        gs.add(e.group ?? '');
        groupsHere.set(e.tenant, gs);
      }
      const traffic = (req.body.traffic ?? []).filter((t) => groupsHere.get(t.tenant)?.has(t.group));
      let trafficRefused = (req.body.traffic?.length ?? 0) - traffic.length;
      // No more than a host's links could have carried since its last report: a hostile host cannot make
      // a group's totals whatever it likes (nor push them past what a double holds exactly).
      const since = Math.min(Math.max((now - (trafficAt.get(host) ?? now - 10_000)) / 1000, 1), PAST_MS / 1000);
      if (traffic.length > 0) trafficAt.set(host, now);
      for (const t of traffic) {
        t.sentBytes = Math.min(t.sentBytes, since * BYTES_PER_S);
        t.receivedBytes = Math.min(t.receivedBytes, since * BYTES_PER_S);
        t.sentPackets = Math.min(t.sentPackets, since * PACKETS_PER_S);
        t.receivedPackets = Math.min(t.receivedPackets, since * PACKETS_PER_S);
      }
      const lostOf = new Map(req.body.lost.map((l) => [l.tenant, l.count]));
      const heldOf = new Map((req.body.held ?? []).map((l) => [l.tenant, l.count]));
      for (const [t, records] of byTenant) {
        const local = mine.get(t) ?? new Set<string>();
        if (local.size === 0) {
          refused += records.length;
          continue;
        }
        const kept = records.filter((r) => local.has(r.src) || local.has(r.dst));
        refused += records.length - kept.length;
        if (kept.length > 0) {
          const { explain, endpoints } = await explainerOf(t).catch(() => ({ explain: undefined, endpoints: [] }));
          if (explain) {
            // One explanation at 50,000 rules is ~10-40 ms of this event loop: other requests go between.
            const one = annotator(host, explain, endpoints, budget);
            const slices = new TimeSlices();
            for (const r of kept) {
              taken.push(one(r));
              if (slices.due()) await slices.pause();
            }
          }
          else refused += kept.length;
        }
        const lost = lostOf.get(t);
        if (lost !== undefined) counted.set(t, Math.min(lost, LOST_MAX));
        const held = heldOf.get(t);
        if (held !== undefined) heldBy.set(t, Math.min(held, HELD_MAX));
      }
      // Only for a tenant that is still the one the host's endpoints were listed in: one deleted since, or
      // deleted and made again under its name (created after the listing), whether this server heard of it
      // yet or not (an etcd event on its way, another server's delete), gets nothing of this report, nor
      // does one that cannot be read now (it keeps what it had). The book refuses one it knows deleted.
      const created = await stillListed(c, [...taken.map((f) => f.tenant), ...counted.keys(), ...heldBy.keys(), ...traffic.map((x) => x.tenant)], listed.revision);
      for (const [t, at] of created) if (!app.flows.admit(t, at)) created.delete(t);
      const added = taken.filter((f) => created.has(f.tenant));
      refused += taken.length - added.length;
      app.flows.add(added);
      for (const [t, n] of counted) if (created.has(t)) app.flows.countLost(t, n);
      for (const [t, n] of heldBy) if (created.has(t)) app.flows.countHeld(t, n);
      const counts = traffic.filter((t) => created.has(t.tenant));
      trafficRefused += traffic.length - counts.length;
      for (const t of counts) app.flows.countTraffic(t);
      // One deleted or made again while those reads waited (on etcd), its deletion not yet heard of here
      // (the book would have refused it): read once more, forgotten unless still the one read (a read that
      // fails changes nothing).
      let accepted = added.length;
      for (const t of await remade(c, created)) {
        // (Unless a later tenant of that name got into the book meanwhile: its admission dropped these.)
        app.flows.forgetHeld(t, created.get(t) as number);
        const n = added.filter((f) => f.tenant === t).length;
        accepted -= n;
        refused += n;
      }
      app.metrics.flowRecords.inc({ outcome: 'accepted' }, accepted);
      app.metrics.flowRecords.inc({ outcome: 'refused' }, refused);
      return { accepted, refused, ...(req.body.traffic ? { trafficRefused } : {}) };
    } finally {
      taking.delete(host);
    }
  });

  app.get<{ Querystring: { tenant: string; limit?: string } }>('/api/v1/flows/top', {
    schema: { querystring: TopQuery, tags: ['flows'], summary: 'A tenant\'s rules by the connections they decided, its pairs of groups by connections (flow records), and its groups by bytes sent and received (the hosts\' veth counters)' },
  }, async (req) => {
    await requireTenant(req.query.tenant, principalOf(req));
    const n = Number(req.query.limit ?? 10);
    const t = app.flows.tallies.get(req.query.tenant);
    return {
      tenant: req.query.tenant,
      rules: t ? app.flows.top(t.rules, n) : [],
      groups: t ? app.flows.top(t.groups, n) : [],
      traffic: app.flows.topTraffic(req.query.tenant, n),
      lost: app.flows.lost.get(req.query.tenant) ?? 0,
      held: app.flows.held.get(req.query.tenant) ?? 0,
    };
  });

  /**
   * The per-tenant flow counters as Prometheus text, only of the tenants the caller may see (so not on
   * the server's own /metrics, which tenant users may not read): scrape with a token (`authorization: Bearer`, an ops user's).
   */
  app.get('/api/v1/flows/metrics', { schema: { tags: ['flows'], summary: 'Per-tenant rule hits, group connections and lost records, as Prometheus text (the caller\'s tenants)' } }, async (req, reply) => {
    const p = principalOf(req);
    reply.type('text/plain; version=0.0.4');
    return app.flows.metricsText((t) => canSeeTenant(p, t), METRICS_PER_TENANT, METRICS_TENANTS);
  });

  app.get<{ Querystring: QueryT }>('/api/v1/flows', {
    config: { longLived: true },
    schema: { querystring: Query, tags: ['flows'], summary: 'Recent new connections with their verdicts and the rules that decided; follow=1 streams them (NDJSON)' },
  }, async (req, reply) => {
    const p = principalOf(req);
    const q = req.query;
    if (q.tenant !== undefined) await requireTenant(q.tenant, p);
    // A tenant user without a tenant named sees its own tenants' records, never anyone else's.
    const tenants = q.tenant !== undefined ? new Set([q.tenant]) : p.role === 'tenant' ? new Set(p.tenants) : undefined;
    const keep = filterOf(q);
    const limit = Math.min(Number(q.limit ?? (q.follow ? 20 : 1000)), FLOWS_PER_TENANT);
    const past = app.flows.list(tenants, keep, limit);
    if (!q.follow) {
      const lost = [...(tenants ?? new Set([...app.flows.lost.keys(), ...app.flows.held.keys()]))].filter((t) => canSeeTenant(p, t))
        .map((t) => ({ tenant: t, lost: app.flows.lost.get(t) ?? 0, held: app.flows.held.get(t) ?? 0 }));
      return { items: past, lost };
    }
    const release = app.watchSlots.take(p);
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-cache' });
    res.flushHeaders();
    let dead = false;
    const send = (f: Flow) => {
      if (dead) return;
      if (res.writableLength > FOLLOW_BUFFER) {
        dead = true;
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
      dead = true;
      unfollow();
      forget();
      cancelExpiry();
      release();
    };
    if (req.raw.socket.destroyed) closed();
    else res.once('close', closed);
  });
}
