import type { FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import { addressOf, Name, POLICY_PAIRS_DEFAULT, WeftError, type Endpoint } from '../../model/index.js';
import { parseFlows, requireRole, requireTenantAccess, type VerifyReport } from '../../control/index.js';
import { compilePolicy, lookupVerdict, PolicyTooLarge, type CompiledPolicy } from '../../policy/index.js';
import { principalOf } from '../context.js';
import { tenantPolicy } from './explain.js';

/** Tenants whose compiled policy a verification keeps (each can be tens of MB at 50,000 rules). */
const KEPT_COMPILES = 2;
/**
 * A tenant's next compile waits this many times the last one's time: a compile holds the event loop
 * (~300 ms at 10,000 rules), and a tenant changing one rule before each verification would otherwise
 * have one after another.
 */
export const COMPILE_SPACING = 10;

/** At most this many probes in one verification (endpoints × others × flows): each agent's report is one request. */
export const MAX_VERIFY_CELLS = 10_000;

const Params = Type.Object({ tenant: Name }, { additionalProperties: false });
const Body = Type.Object({
  flows: Type.Optional(Type.Array(Type.String({ maxLength: 9 }), { minItems: 1, maxItems: 16, description: 'PORT/PROTOCOL, e.g. 80/tcp (default: 80/tcp)' })),
  timeoutMs: Type.Optional(Type.Integer({ minimum: 50, maximum: 5000, description: 'how long a probe waits for an answer (default 300)' })),
}, { additionalProperties: false });
const ReportParams = Type.Object({ tenant: Name, id: Type.String({ pattern: '^[0-9a-f]{16}$' }), host: Type.String({ minLength: 1, maxLength: 253 }) }, { additionalProperties: false });
const ReportBody = Type.Object({
  results: Type.Array(Type.Tuple([Type.String({ maxLength: 64 }), Type.String({ maxLength: 64 }), Type.Integer({ minimum: 0, maximum: 15 }), Type.Boolean()]), { maxItems: MAX_VERIFY_CELLS }),
  error: Type.Optional(Type.String({ maxLength: 1000 })),
}, { additionalProperties: false });

/** Whether the compiled tables let a flow between two addresses pass (an audit verdict passes, counted). */
function expectations(c: CompiledPolicy) {
  return (src: string, dst: string, protocol: 'tcp' | 'udp', port: number): boolean =>
    lookupVerdict(c, c.classification.byIp(src).id, c.classification.byIp(dst).id, protocol === 'tcp' ? 6 : 17, port) !== 'drop';
}

/**
 * `weft verify` (issue 15): every endpoint of the tenant probes every other on each flow with real
 * packets, from the agent of its host; the answer sets what the packets did beside what the policy says
 * (the compiled tables of the whole tenant, as explain decides), and names the cells that differ.
 */
export function verifyRoutes(app: FastifyInstance): void {
  const c = app.control;
  /** The tenants with a verification in flight. */
  const running = new Set<string>();
  /**
   * Each tenant's last compile: of what (its fingerprint), when it ended, how long it took, and its
   * expectations while it is one of the KEPT_COMPILES latest (the oldest entries go past 1,024 tenants).
   */
  const compiles = new Map<string, { fingerprint: string | undefined; at: number; ms: number; expect: ReturnType<typeof expectations> | undefined; refused?: string }>();
  app.post<{ Params: { tenant: string }; Body: { flows?: string[]; timeoutMs?: number } }>('/api/v1/tenants/:tenant/verify', {
    schema: { params: Params, body: Body, tags: ['policy'], summary: 'Probe every pair of endpoints with real packets and compare with the policy' },
  }, async (req) => {
    const p = principalOf(req);
    requireRole(p, ['admin', 'ops', 'tenant'], 'verify a tenant');
    requireTenantAccess(p, req.params.tenant);
    const t = req.params.tenant;
    const flows = parseFlows(req.body.flows ?? ['80/tcp'], 'flows');
    const timeoutMs = req.body.timeoutMs ?? 300;
    // One at a time per tenant: each makes every host of the tenant start a prober per endpoint, and its
    // expectations compile the tenant's whole policy (~300 ms of the event loop at 10,000 rules), which a
    // tenant with no endpoint to probe could otherwise ask for as often and as many at once as it liked.
    if (running.has(t)) throw new WeftError('WEFT_IN_USE', `a verification of tenant ${t} is running; try again when it is done`);
    running.add(t);
    try {
      return await verify(p.user, t, flows, timeoutMs);
    } finally {
      running.delete(t);
    }
  });

  async function verify(user: string, t: string, flows: ReturnType<typeof parseFlows>, timeoutMs: number) {
    const { state, endpoints, fingerprint } = await tenantPolicy(c, t);
    const probing = endpoints.filter((e) => e.netns !== undefined);
    const cells = probing.length * Math.max(0, endpoints.length - 1) * flows.length;
    if (cells > MAX_VERIFY_CELLS) throw new WeftError('WEFT_INVALID_FIELD', `flows: ${cells} probes (endpoints × others × flows), past ${MAX_VERIFY_CELLS}: name fewer flows`, { field: 'flows' });
    const hosts = new Set(probing.map((e) => e.host));
    // Asked before any probe: whether this one may compile. The same policy needs none, or compiles again
    // without waiting when its compile was let go for other tenants'.
    const last = compiles.get(t);
    const same = fingerprint !== undefined && last?.fingerprint === fingerprint;
    if (!same && last && Date.now() < last.at + COMPILE_SPACING * last.ms) {
      const s = Math.ceil((last.at + COMPILE_SPACING * last.ms - Date.now()) / 1000);
      throw new WeftError('WEFT_BUSY', `tenant ${t}'s policy changed since its last verification, whose compile took ${Math.round(last.ms)} ms; ask again in ${s} s`);
    }
    // The same policy refused before is refused again without compiling (a refusal costs its sweep).
    if (same && last?.refused !== undefined) throw new WeftError('WEFT_TOO_LARGE', last.refused);
    // Compiled before any probe: a policy too large to compile costs no host a prober. The whole tenant's
    // compile holds the event loop: a tenant whose rules give each of its 2,000 endpoints a class of its
    // own would hold it ~9 s and ~500 MB, so it has the agents' budget of pairs.
    let expect = same ? last?.expect : undefined;
    if (!expect) {
      const t0 = performance.now();
      const remember = (x: { expect?: ReturnType<typeof expectations>; refused?: string }) => {
        compiles.delete(t);
        // A read across a write (no fingerprint) is compiled for this answer alone.
        compiles.set(t, { fingerprint, at: Date.now(), ms: performance.now() - t0, expect: fingerprint === undefined ? undefined : x.expect, ...(x.refused !== undefined ? { refused: x.refused } : {}) });
        let n = 0;
        for (const y of [...compiles.values()].reverse()) if (y.expect && ++n > KEPT_COMPILES) y.expect = undefined;
        for (const k of compiles.keys()) if (compiles.size > 1024) compiles.delete(k);
      };
      let compiled: CompiledPolicy;
      try {
        compiled = compilePolicy({ ...state, budget: POLICY_PAIRS_DEFAULT });
      } catch (e) {
        if (!(e instanceof PolicyTooLarge)) throw e;
        const refused = `${e.message}; a verification compiles the whole tenant (every group) within ${POLICY_PAIRS_DEFAULT.toLocaleString('en-US')} (weft matrix and weft explain answer cell by cell)`;
        // Spaced as a compile is: a tenant asking again at once is told to wait, not refused by another sweep.
        remember({ refused });
        throw new WeftError('WEFT_TOO_LARGE', refused);
      }
      expect = expectations(compiled);
      remember({ expect });
    }
    const started = Date.now();
    const reports = new Map<string, VerifyReport>();
    if (hosts.size > 0) {
      const request = await c.verifier.start(user, t, flows, timeoutMs);
      try {
        // Only the hosts that hold the tenant's endpoints count.
        for (const [h, r] of await c.verifier.collect(t, request.id, hosts, started + timeoutMs + 10_000)) if (hosts.has(h)) reports.set(h, r);
      } finally {
        await c.verifier.finish(user, t, request.id);
      }
    }
    const byId = new Map<string, Endpoint>(endpoints.map((e) => [e.id, e]));
    // A host speaks only for probes from its own endpoints (a hostile host cannot answer for another's).
    const results = [...reports.values()].flatMap((r) => r.results.map((x) => [r.host, ...x] as const)).flatMap(([host, src, dst, f, ok]) => {
      const a = byId.get(src);
      const b = byId.get(dst);
      const flow = flows[f];
      if (!a || !b || !flow || a.host !== host) return [];
      return [{ from: a.id, to: b.id, flow: `${flow.port}/${flow.protocol}`, expected: expect(addressOf(a), addressOf(b), flow.protocol, flow.port), observed: ok }];
    });
    return {
      tenant: t, flows: flows.map((f) => `${f.port}/${f.protocol}`),
      endpoints: endpoints.map((e) => ({ id: e.id, name: e.containerName ?? e.containerId.slice(0, 12), ip: addressOf(e), host: e.host })),
      results, differ: results.filter((r) => r.expected !== r.observed),
      missing: [...hosts].filter((h) => !reports.has(h)).sort(), errors: [...reports.values()].flatMap((r) => (r.error ? [`${r.host}: ${r.error}`] : [])),
      ms: Date.now() - started,
    };
  }

  app.put<{ Params: { tenant: string; id: string; host: string }; Body: { results: Array<[string, string, number, boolean]>; error?: string } }>('/api/v1/tenants/:tenant/verify/:id/reports/:host', {
    schema: { params: ReportParams, body: ReportBody, tags: ['policy'], summary: "An agent's probes for a verification (host certificates, their own host only)" },
    bodyLimit: 4 * 1024 * 1024,
  }, async (req, reply) => {
    const p = principalOf(req);
    requireRole(p, ['host'], 'report probes');
    await c.verifier.report(p.user, req.params.tenant, req.params.id, { host: req.params.host, results: req.body.results, ...(req.body.error ? { error: req.body.error } : {}) });
    return reply.code(204).send();
  });
}
