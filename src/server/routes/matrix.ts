import type { FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import { Name, WeftError, addressOf, parseIp, PROTOCOL_NUMBER, type Endpoint } from '../../model/index.js';
import { requireTenantAccess } from '../../control/index.js';
import type { Explainer } from '../../policy/index.js';
import { askerOf, endedSignal, principalOf } from '../context.js';
import type { LaneTurn } from '../lane.js';
import { side } from './explain.js';

/** Groups in one matrix (cells grow with the square): past this, the first ones by name and `truncated`. */
export const MATRIX_GROUPS = 60;
/** Address classes per group looked at: a group whose members differ in more ways is judged by its largest classes (`partial`). */
export const MATRIX_CLASSES = 8;
/** Matrices under way in this server (they take turns in its lane), and by one caller: more are refused with 429 at once. */
const RUNNING_ALL = 4;
const RUNNING_EACH = 1;
/** Compute time one matrix may take (it runs in the server's lane, a slice at a time: lane.ts); past it, 422 naming fewer groups. */
export const MATRIX_BUDGET_MS = 3000;
/** Matrices kept, by tenant, its objects' fingerprint and the question: tabs redrawn after a change ask the same one. */
const CACHED = 16;

const GROUP = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?';
const Params = Type.Object({ tenant: Name }, { additionalProperties: false });
const Query = Type.Object({
  protocol: Type.Optional(Type.String({ pattern: `^(tcp|udp|sctp|icmp|${PROTOCOL_NUMBER})$`, description: 'default tcp' })),
  port: Type.Optional(Type.String({ pattern: '^[0-9]{1,5}$', description: 'the destination port; without it, rules limited to ports do not match' })),
  groups: Type.Optional(Type.String({ pattern: `^${GROUP}(,${GROUP})*$`, maxLength: 4096, description: `comma-separated group names (at most ${MATRIX_GROUPS}); default: all` })),
}, { additionalProperties: false });
type QueryT = { protocol?: string; port?: string; groups?: string };

type Side = ReturnType<typeof side>;
/** What a connection between one class of each group gets. */
interface Variant { allowed: boolean; egress: Side | null; ingress: Side | null; audit?: { egress: Side | null; ingress: Side | null }; from: Rep; to: Rep; pairs: number }
interface Rep { id: string; ip: string; name: string }
/** The members of a group that get the same answers (one address class), with one of them to ask for. */
interface Klass { rep: Endpoint; count: number }

/** IPv4 addresses first, in order, then IPv6-only endpoints' by their text. */
function byAddress(a: Endpoint, b: Endpoint): number {
  if (a.ip !== undefined && b.ip !== undefined) return (parseIp(a.ip) ?? 0) - (parseIp(b.ip) ?? 0);
  if (a.ip !== undefined || b.ip !== undefined) return a.ip !== undefined ? -1 : 1;
  return (a.ip6 ?? '') < (b.ip6 ?? '') ? -1 : (a.ip6 ?? '') > (b.ip6 ?? '') ? 1 : 0;
}

const repOf = (e: Endpoint): Rep => ({ id: e.id, ip: addressOf(e), name: e.containerName ?? e.containerId.slice(0, 12) });

/** Per group, its members split by address class (largest first, then by address). */
function classesOf(endpoints: readonly Endpoint[], explain: Explainer): Map<string, Klass[]> {
  const byGroup = new Map<string, Map<number, Klass>>();
  for (const e of endpoints) {
    if (e.group === undefined) continue;
    const cls = explain.classOf(addressOf(e));
    const g = byGroup.get(e.group) ?? new Map<number, Klass>();
    byGroup.set(e.group, g);
    const had = g.get(cls);
    if (!had) g.set(cls, { rep: e, count: 1 });
    else {
      had.count++;
      if (byAddress(e, had.rep) < 0) had.rep = e;
    }
  }
  const out = new Map<string, Klass[]>();
  for (const [g, m] of byGroup) out.set(g, [...m.values()].sort((a, b) => b.count - a.count || byAddress(a.rep, b.rep)));
  return out;
}

/** Same decision, same sides: variants that say the same are one. */
const sameAnswer = (a: Omit<Variant, 'from' | 'to' | 'pairs'>, b: Omit<Variant, 'from' | 'to' | 'pairs'>) =>
  JSON.stringify([a.allowed, a.egress, a.ingress, a.audit ?? null]) === JSON.stringify([b.allowed, b.egress, b.ingress, b.audit ?? null]);

/**
 * The policy matrix (issue 16, the UI): for each ordered pair of groups, what a new connection from one
 * to the other gets, decided by the evaluator `weft explain` uses over the policy as stored now. Members of
 * a group that the policy can tell apart (address classes: CIDR rules covering some of them, NetworkPolicy
 * labels) are asked about separately; a cell whose members get different answers lists each answer with
 * how many endpoint pairs get it (`variants`), the most common first. A group without endpoints has no
 * verdicts (null cells).
 */
export function matrixRoutes(app: FastifyInstance): void {
  const c = app.control;
  let running = 0;
  const runningBy = new Map<string, number>();
  const cache = new Map<string, unknown>();
  /** Tenants with a matrix being computed. */
  const runningFor = new Set<string>();
  const remember = (key: string, answer: unknown) => {
    cache.delete(key);
    cache.set(key, answer);
    for (const k of cache.keys()) if (cache.size > CACHED) cache.delete(k);
  };
  const who = askerOf;

  app.get<{ Params: { tenant: string }; Querystring: QueryT }>('/api/v1/tenants/:tenant/matrix', {
    schema: { params: Params, querystring: Query, tags: ['policy'], summary: 'What a new connection between each pair of groups gets, and which rule decides' },
  }, async (req, reply) => {
    const t = req.params.tenant;
    const p = principalOf(req);
    requireTenantAccess(p, t);
    const protocol = req.query.protocol ?? 'tcp';
    const port = req.query.port === undefined ? undefined : Number(req.query.port);
    if (port !== undefined && port > 65535) throw new WeftError('WEFT_INVALID_FIELD', `port: ${port} is not a port (0-65535)`, { field: 'port' });
    const asked = req.query.groups?.split(',');
    if (asked && asked.length > MATRIX_GROUPS) throw new WeftError('WEFT_INVALID_FIELD', `groups: ${asked.length} named; at most ${MATRIX_GROUPS}`, { field: 'groups' });
    const mine = runningBy.get(who(p)) ?? 0;
    // One slot per tenant too: the users of one tenant cannot hold every slot and keep others' matrices at 429.
    const ours = runningFor.has(t);
    if (running >= RUNNING_ALL || mine >= RUNNING_EACH || ours) {
      throw new WeftError('WEFT_BUSY', mine >= RUNNING_EACH ? 'your last policy matrix is still being computed; ask again when it is done'
        : ours ? `a policy matrix of tenant ${t} is being computed already; ask again when it is done` : `${running} policy matrices are being computed already; try again in a moment`);
    }
    running++;
    runningBy.set(who(p), mine + 1);
    runningFor.add(t);
    try {
      // Turns by tenant; a matrix whose request ended gives its place up (lane.ts).
      return await app.lane.run(t, (turn) => matrixOf(turn), endedSignal(reply));
    } finally {
      running--;
      runningFor.delete(t);
      const n = (runningBy.get(who(p)) ?? 1) - 1;
      if (n > 0) runningBy.set(who(p), n);
      else runningBy.delete(who(p));
    }

    async function matrixOf(turn: LaneTurn) {
      const { state, endpoints, explain, fingerprint } = await app.explainers.of(t, turn);
      const known = new Set(state.groups.map((g) => g.name));
      for (const g of asked ?? []) if (!known.has(g)) throw new WeftError('WEFT_INVALID_REFERENCE', `groups: no group ${t}/${g}`, { field: 'groups' });
      const all = asked ? [...new Set(asked)] : [...known].sort();
      const names = all.slice(0, MATRIX_GROUPS);
      const key = JSON.stringify([t, fingerprint, protocol, port ?? null, names]);
      // A read that spanned a write has no fingerprint: its answer is given, never kept.
      const keep = (answer: unknown) => fingerprint !== undefined && remember(key, answer);
      const hit = fingerprint === undefined ? undefined : cache.get(key);
      if (hit instanceof WeftError) throw hit;
      if (hit) return hit;

      const classes = classesOf(endpoints, explain);
      // The budget is the cells' work: reading the tenant is done away, making its evaluator before this.
      const base = turn.spent();
      const cells: Array<Array<(Omit<Variant, 'from' | 'to' | 'pairs'> & { variants?: Variant[]; partial?: true }) | null>> = [];
      for (const from of names) {
        const row: (typeof cells)[number] = [];
        for (const to of names) {
          const a = (classes.get(from) ?? []).slice(0, MATRIX_CLASSES);
          const b = (classes.get(to) ?? []).slice(0, MATRIX_CLASSES);
          if (a.length === 0 || b.length === 0) {
            row.push(null);
            continue;
          }
          const variants: Variant[] = [];
          for (const x of a) {
            for (const y of b) {
              const e = explain(addressOf(x.rep), addressOf(y.rep), protocol, port);
              const v = { allowed: e.allowed, egress: side(e.egress) ?? null, ingress: side(e.ingress) ?? null, ...(e.audit ? { audit: { egress: side(e.audit.egress) ?? null, ingress: side(e.audit.ingress) ?? null } } : {}) };
              const same = variants.find((w) => sameAnswer(w, v));
              if (same) same.pairs += x.count * y.count;
              else variants.push({ ...v, from: repOf(x.rep), to: repOf(y.rep), pairs: x.count * y.count });
            }
          }
          variants.sort((u, w) => w.pairs - u.pairs);
          const { from: _f, to: _t, pairs: _p, ...first } = variants[0] as Variant;
          const partial = (classes.get(from)?.length ?? 0) > MATRIX_CLASSES || (classes.get(to)?.length ?? 0) > MATRIX_CLASSES;
          row.push({ ...first, ...(variants.length > 1 ? { variants } : {}), ...(partial ? { partial: true as const } : {}) });
        }
        cells.push(row);
        // A large tenant is computed in slices: the server answers others (agents, watches, other
        // askers' questions in the lane) in between.
        await turn.pause();
        if (turn.spent() - base > MATRIX_BUDGET_MS) {
          const slow = new WeftError('WEFT_INVALID_VALUE', `groups: the matrix of ${names.length} groups of tenant ${t} takes more than ${MATRIX_BUDGET_MS / 1000} s to compute; name fewer groups (groups=a,b,...)`, { field: 'groups' });
          // Kept as an answer: the same question about the same objects would only burn another 3 s.
          keep(slow);
          throw slow;
        }
      }
      const answer = {
        tenant: t,
        protocol,
        port: port ?? null,
        groups: names.map((g) => {
          const k = classes.get(g) ?? [];
          return { name: g, endpoints: k.reduce((n, x) => n + x.count, 0), classes: k.length, representative: k[0] ? repOf(k[0].rep) : null };
        }),
        cells,
        ...(all.length > names.length ? { truncated: all.length - names.length } : {}),
      };
      keep(answer);
      return answer;
    }
  });
}
