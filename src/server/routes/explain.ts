import type { FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import { Name, WeftError, addressOf, adminPolicyOf, auditOf, baselinePolicyOf, formatIp6, parseIp, parseIp6, PROTOCOL_NUMBER, type Endpoint, type Policy } from '../../model/index.js';
import { policiesYielding, requireTenantAccess, type Control, type Principal, type TenantPolicyObjects } from '../../control/index.js';
import { explainerYielding, layerOf, type Decision, type Explainer, type PolicyState } from '../../policy/index.js';
import { askerOf, endedSignal, principalOf } from '../context.js';
import { LaneLeft, type LaneTurn } from '../lane.js';
import { TimeSlices } from '../slices.js';

const Params = Type.Object({ tenant: Name }, { additionalProperties: false });
const Query = Type.Object({
  from: Type.String({ minLength: 1, maxLength: 128, description: 'endpoint (container name or id), group, or an IPv4 or IPv6 address' }),
  to: Type.String({ minLength: 1, maxLength: 128 }),
  protocol: Type.String({ pattern: `^(tcp|udp|sctp|icmp|${PROTOCOL_NUMBER})$` }),
  port: Type.Optional(Type.String({ pattern: '^[0-9]{1,5}$' })),
}, { additionalProperties: false });

/** One side of the answer: what decided, in words a person can act on. */
export function side(d: (Decision & { group: string | undefined }) | undefined) {
  if (!d) return undefined;
  const r = d.by;
  return {
    group: d.group ?? null,
    action: d.action,
    // Which layer decided (DESIGN §4 and issue 15): Weft's rules, then NetworkPolicy, then the tenant's default.
    layer: layerOf(d),
    ...(r ? { policy: r.policy, rule: r.rule } : { rule: null }),
  };
}

/**
 * Everything a tenant's policy is decided from, read from the store (explain, verify, the matrix), and a
 * fingerprint of it: the highest revision and the count of each kind (any write or delete changes it).
 * `policiesOf`: how its policies are read (the flow evaluator's reads yield: control/policy-store.ts).
 */
export async function tenantPolicy(c: Control, t: string, policiesOf: (t: string) => Promise<{ items: Policy[] }> = (x) => c.policies.list(x)): Promise<{ state: PolicyState; endpoints: Endpoint[]; fingerprint: string | undefined }> {
  // The lists are read at different moments: one read before a write may stand beside one read after a
  // later write, under the later state's fingerprint. Anything newer than the store's revision before the
  // reads means such a write came meanwhile: no fingerprint (nothing may be kept for it).
  const before = await c.store.revision();
  const tenant = await c.tenants.get(t);
  const [networks, groups, policies, eps, nps, nss, anps, banps] = await Promise.all([
    c.networks.list(t), c.groups.list(t), policiesOf(t), c.endpoints.list({ tenant: t }), c.networkPolicies.list(t), c.namespaces.list(t),
    c.adminNetworkPolicies.list(t), c.baselineAdminNetworkPolicies.list(t),
  ]);
  const state = policyStateOf({
    tenant, networks: networks.items, groups: groups.items, policies: policies.items, endpoints: eps.items, networkPolicies: nps.items, namespaces: nss.items,
    adminNetworkPolicies: anps.items, baselineAdminNetworkPolicies: banps.items,
  });
  const lists = [networks, groups, policies, eps, nps, nss, anps, banps].map((l) => l.items as ReadonlyArray<{ revision: number }>);
  let top = tenant.revision;
  for (const l of lists) for (const o of l) if (o.revision > top) top = o.revision;
  return { state, endpoints: eps.items, fingerprint: top <= before ? `${top}:${lists.map((l) => l.length).join(',')}` : undefined };
}

/** The stored objects as the compiler and explain take them. */
export function policyStateOf(o: TenantPolicyObjects): PolicyState {
  const banp = o.baselineAdminNetworkPolicies[0];
  const netpol = {
    policies: o.networkPolicies.map((p) => ({ name: p.policyName, namespace: p.namespace, spec: p.spec, ...auditOf(p) })),
    namespaces: o.namespaces.map((n) => ({ name: n.name, labels: n.labels })),
    anps: o.adminNetworkPolicies.map((a) => ({ ...adminPolicyOf(a.name, a.spec), ...auditOf(a) })),
    banp: banp && { ...baselinePolicyOf(banp.spec), ...auditOf(banp) },
  };
  return { tenant: o.tenant, networks: o.networks, groups: o.groups, policies: o.policies, endpoints: o.endpoints, netpol };
}

/**
 * Explains one user, and the whole server, may have under way at once (answering or waiting for a turn
 * in the server's lane); beyond, 429. A question between endpoints costs ~5 ms of the event loop at
 * 10,000 rules once its evaluator is kept, ~45 ms when it is made; they take turns in the lane a slice at
 * a time, the tenants in a round (lane.ts), so the caps bound how long the queue gets (16 questions: ~80
 * ms of kept ones) and neither one user nor one tenant's users can take every place. Four users asking in a loop from three
 * connections each held a bystander's GET 38 / 257 ms (p50 / p99) side by side; 4-5 / 15-22 ms in the lane.
 */
export const EXPLAINS_EACH = 4;
export const EXPLAINS_TENANT = 8;
export const EXPLAINS_ALL = 16;
/** Tenants whose evaluators are kept. */
const KEPT = 16;

/**
 * Evaluators of tenants' policies, each kept with the fingerprint of what it was made from (tenantPolicy)
 * and the policies it was read from: an answer is always the policy as stored now (any write, delete, or
 * the tenant made again changes the fingerprint), and a question between writes reads the policies' heads,
 * not their rules, and gathers no CIDRs (at 10,000 rules each question cost 13-20 ms of the event loop:
 * four users asking in a loop held every other request ~80 ms). Made with pauses, once per fingerprint
 * however many ask meanwhile.
 */
export class Explainers {
  private readonly made = new Map<string, { fingerprint: string; explain: Explainer; policies: readonly Policy[] }>();
  private readonly building = new Map<string, Promise<Explainer>>();

  constructor(private readonly c: Control) {}

  /** The tenant's policy as stored now and its evaluator; `fingerprint` undefined when the read spanned a write. */
  async of(t: string, turn: LaneTurn): Promise<{ state: PolicyState; endpoints: Endpoint[]; explain: Explainer; fingerprint: string | undefined }> {
    const { pause } = turn;
    // A head's revision is unique to its write, so a policy kept under one is the same policy whatever
    // became of the tenant since (policiesYielding reads again every one whose head moved). Read outside
    // the lane (store reads wait for I/O: etcd's round trips), in slices of its own.
    const reuse = new Map((this.made.get(t)?.policies ?? []).map((p) => [p.name, p] as const));
    const outside = new TimeSlices().pause;
    const { state, endpoints, fingerprint } = await turn.away(tenantPolicy(this.c, t, async (x) => ({ items: await policiesYielding(this.c.store, x, reuse, outside) })));
    if (fingerprint === undefined) return { state, endpoints, explain: await explainerYielding(state, pause), fingerprint };
    const had = this.made.get(t);
    if (had?.fingerprint === fingerprint) return { state, endpoints, explain: had.explain, fingerprint };
    const key = `${t} ${fingerprint}`;
    let build = this.building.get(key);
    if (build) {
      // Another asker's build: waited for outside the lane, where it is being made. Should that asker's
      // request end meanwhile (its build stops at a pause), this one asks again.
      try {
        return { state, endpoints, explain: await turn.away(build), fingerprint };
      } catch (e) {
        if (e instanceof LaneLeft && !turn.left()) return this.of(t, turn);
        throw e;
      }
    }
    build = (async () => {
      const explain = await explainerYielding(state, pause);
      this.made.delete(t);
      this.made.set(t, { fingerprint, explain, policies: state.policies });
      // The least recently made go first past KEPT (a Map keeps insertion order).
      for (const k of this.made.keys()) if (this.made.size > KEPT) this.made.delete(k);
      return explain;
    })();
    this.building.set(key, build);
    void build.finally(() => this.building.delete(key)).catch(() => undefined);
    // This asker's own build, made in its turns.
    return { state, endpoints, explain: await build, fingerprint };
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Kept evaluators of tenants' policies, shared by explain and the policy matrix. */
    explainers: Explainers;
  }
}

/** Counts explains under way per user and per tenant; the returned function gives one back (once). */
class Running {
  private readonly n = new Map<string, number>();
  private all = 0;

  take(p: Principal, tenant: string): () => void {
    const who = askerOf(p);
    const ours = `tenant:${tenant}`;
    const mine = this.n.get(who) ?? 0;
    const tenants = this.n.get(ours) ?? 0;
    if (mine >= EXPLAINS_EACH) throw new WeftError('WEFT_BUSY', `you have ${mine} explains under way, the most one user may; ask again when one has answered`);
    if (tenants >= EXPLAINS_TENANT) throw new WeftError('WEFT_BUSY', `tenant ${tenant} has ${tenants} explains under way, the most one tenant may; ask again in a moment`);
    if (this.all >= EXPLAINS_ALL) throw new WeftError('WEFT_BUSY', 'the server is answering as many explains as it takes at once; ask again in a moment');
    this.n.set(who, mine + 1);
    this.n.set(ours, tenants + 1);
    this.all++;
    let given = false;
    return () => {
      if (given) return;
      given = true;
      this.all--;
      for (const k of [who, ours]) {
        const left = (this.n.get(k) ?? 1) - 1;
        if (left > 0) this.n.set(k, left);
        else this.n.delete(k);
      }
    };
  }
}

export function explainRoutes(app: FastifyInstance): void {
  const c = app.control;
  const explainers = new Explainers(c);
  app.decorate('explainers', explainers);
  const running = new Running();
  app.get<{ Params: { tenant: string }; Querystring: { from: string; to: string; protocol: string; port?: string } }>('/api/v1/tenants/:tenant/explain', {
    schema: { params: Params, querystring: Query, tags: ['policy'], summary: 'Why a new connection between two endpoints is allowed or denied' },
  }, async (req, reply) => {
    const p = principalOf(req);
    requireTenantAccess(p, req.params.tenant);
    const done = running.take(p, req.params.tenant);
    try {
      // Turns by tenant; a question whose request ended (its deadline answered it, its client left)
      // gives its place up.
      return await app.lane.run(req.params.tenant, (turn) => explainOne(req.params.tenant, req.query, turn), endedSignal(reply));
    } finally {
      done();
    }
  });

  async function explainOne(t: string, query: { from: string; to: string; protocol: string; port?: string }, turn: LaneTurn) {
    const { state, endpoints, explain } = await explainers.of(t, turn);
    const { groups } = state;
    // An endpoint's IPv6 address is decided as its IPv4 one (the same class); any other IPv6 address by
    // the rules' IPv6 CIDRs it is in (classes.ts byIp, `ranges6`).
    const resolve = (x: string, field: string): { ip: string; shown?: string; endpoint?: Endpoint } => {
      const six = x.includes(':') ? parseIp6(x) : undefined;
      if (six !== undefined) {
        const shown = formatIp6(six);
        const ep = endpoints.find((e) => e.ip6 === shown);
        return ep ? { ip: addressOf(ep), shown, endpoint: ep } : { ip: shown, shown };
      }
      if (parseIp(x) !== undefined) return { ip: x, ...(endpoints.find((e) => e.ip === x) ? { endpoint: endpoints.find((e) => e.ip === x) as Endpoint } : {}) };
      // An endpoint of an IPv6-only network speaks IPv6 alone: named, it is an IPv6 side.
      const named = (ep: Endpoint) => ({ ip: addressOf(ep), endpoint: ep, ...(ep.ip === undefined ? { shown: ep.ip6 as string } : {}) });
      const ep = endpoints.find((e) => e.containerName === x) ?? endpoints.find((e) => e.id.startsWith(x) || e.containerId.startsWith(x));
      if (ep) return named(ep);
      const member = endpoints.find((e) => e.group === x);
      if (member) return named(member);
      if (groups.some((g) => g.name === x)) throw new WeftError('WEFT_INVALID_VALUE', `${field}: group ${t}/${x} has no endpoints yet; name an endpoint or an address`, { field });
      throw new WeftError('WEFT_INVALID_REFERENCE', `${field}: '${x}' is not an endpoint, group or address in tenant ${t}`, { field });
    };
    const from = resolve(query.from, 'from');
    const to = resolve(query.to, 'to');
    const sixes = [from, to].filter((x) => x.shown !== undefined).length;
    if (sixes === 1 && (parseIp(query.from) !== undefined || parseIp(query.to) !== undefined)) {
      const field = parseIp(query.to) !== undefined ? 'to' : 'from';
      throw new WeftError('WEFT_INVALID_VALUE', `${field}: ${query[field]} is IPv4 and the other side IPv6; a connection has one family`, { field });
    }
    // An endpoint named on one side and an IPv6 address on the other: the endpoint speaks IPv6 too, or
    // there is no such connection.
    const v6 = sixes > 0;
    for (const [x, field] of [[from, 'from'], [to, 'to']] as const) {
      if (v6 && x.shown === undefined && x.endpoint !== undefined && x.endpoint.ip6 === undefined) {
        throw new WeftError('WEFT_INVALID_VALUE', `${field}: endpoint ${x.endpoint.id} has no IPv6 address (its network is IPv4 only), and the other side is IPv6`, { field });
      }
    }
    const shownOf = (x: typeof from) => (v6 ? x.shown ?? x.endpoint?.ip6 ?? x.ip : x.ip);
    const port = query.port === undefined ? undefined : Number(query.port);
    if (port !== undefined && port > 65535) throw new WeftError('WEFT_INVALID_FIELD', `port: ${port} is not a port (0-65535)`, { field: 'port' });
    const { would: _, ...e } = explain(from.ip, to.ip, query.protocol, port);
    return {
      from: { ip: shownOf(from), endpoint: from.endpoint?.id ?? null },
      to: { ip: shownOf(to), endpoint: to.endpoint?.id ?? null },
      protocol: query.protocol,
      port: port ?? null,
      egress: side(e.egress) ?? null,
      ingress: side(e.ingress) ?? null,
      allowed: e.allowed,
      // Policies in audit mode would drop it: it passes, counted and logged (what they would decide).
      ...(e.audit ? { audit: { egress: side(e.audit.egress) ?? null, ingress: side(e.audit.ingress) ?? null, allowed: false } } : {}),
    };
  }
}
