import Fastify, { LogController, type FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import type { Logger } from 'pino';
import { NetworkInput, GroupInput, PolicyInput, NetprofileInput, ServiceInput, AppProfileInput, DockerNetworkInput, WeftError } from '../model/index.js';
import { canSeeTenant, conflistNotice, requireFabricRights, storedNetwork, type Control, type Principal } from '../control/index.js';
import { authenticate } from './auth.js';
import { checkHost } from './hostgate.js';
import { Lane } from './lane.js';
import { Streams } from './streams.js';
import { sendProblem } from './problem.js';
import { pathOf, routeOf } from './context.js';
import { createMetrics, type Metrics } from './metrics.js';
import { listRoute, scopedRoutes } from './routes/scoped.js';
import { tenantRoutes } from './routes/tenants.js';
import { clusterRoutes } from './routes/cluster.js';
import { userRoutes } from './routes/users.js';
import { changeRoutes } from './routes/changes.js';
import { metaRoutes } from './routes/meta.js';
import { explainRoutes } from './routes/explain.js';
import { matrixRoutes } from './routes/matrix.js';
import { uiRoutes } from './ui.js';
import { flowRoutes } from './routes/flows.js';
import { FlowBook } from './flows.js';
import { verifyRoutes } from './routes/verify.js';
import { applyRoutes } from './routes/apply.js';
import { identityRoutes } from './routes/identity.js';
import { tokenRoutes } from './routes/tokens.js';
import { registerAudit } from './audit.js';
import type { AuditSink } from './audit-file.js';
import { quotaRoutes } from './routes/quota.js';
import type { WatchStream } from './watch.js';
import { DEFAULT_LIMITS, WatchSlots, clientErrorHandler, installTimeouts, type Limits } from './limits.js';
import { lazyValidators } from './validators.js';
import { parseJsonBody } from './json-body.js';

declare module 'fastify' {
  interface FastifyInstance {
    control: Control;
    metrics: Metrics;
    streams: Streams;
    limits: Limits;
    watchSlots: WatchSlots;
    /** Flow records agents reported to this server (flows.ts). */
    flows: FlowBook;
    /** Open watch streams, for the unsent-bytes gauge. */
    watchStreams: Set<WatchStream>;
    /** Costly questions (explain, matrix) take turns here, a slice at a time (lane.ts). */
    lane: Lane;
  }
  interface FastifyRequest {
    /** Authenticates the request again with the credential it came with (long-lived streams). */
    reauthenticate: () => Promise<Principal>;
  }
}

export interface AppOptions {
  control: Control;
  logger?: Logger | false;
  version?: string;
  /** Serve HTTPS with this material, asking clients for a certificate signed by `ca` (hosts) but not requiring one (people). */
  tls?: { key: string; cert: string; ca: string };
  /** Where audit lines go; none when absent. */
  audit?: AuditSink;
  limits?: Partial<Limits>;
  /** The validator factory (tests count compilations with their own); default: lazyValidators(). */
  validators?: ReturnType<typeof lazyValidators>;
}

/** Paths anyone may call without a token: the join is protected by its one-time token, ca.crt is public. */
const PUBLIC = new Set(['/healthz', '/api/v1/login', '/api/v1/openapi.json', '/api/v1/join', '/api/v1/ca.crt']);
/**
 * Paths outside /api/ that need a token all the same: /metrics counts every tenant's requests by route and
 * answer (how many endpoints were made, networks, rules), which no tenant may learn of another (DESIGN §10).
 */
const GUARDED = new Set(['/metrics']);

export async function buildApp(opts: AppOptions): Promise<FastifyInstance> {
  const limits: Limits = { ...DEFAULT_LIMITS, ...opts.limits };
  const app = Fastify({
    loggerInstance: opts.logger || undefined,
    // Per-request log lines would cost more than the allocation itself; metrics count requests instead.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: limits.bodyLimit,
    clientErrorHandler: clientErrorHandler(limits),
    // Watch streams never end by themselves: on close, end every connection so a stopping server exits
    // at once and its watchers reconnect to another server.
    forceCloseConnections: true,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: false } },
    // Each route's schemas compile on its first request, not at start-up (validators.ts).
    schemaController: { compilersFactory: { buildValidator: opts.validators ?? lazyValidators() } },
    // A client that connects and never finishes its handshake is cut like one that never sends its headers.
    ...(opts.tls ? { https: { ...opts.tls, requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2', handshakeTimeout: limits.headersTimeoutMs } } : {}),
  } as Parameters<typeof Fastify>[0]) as unknown as FastifyInstance;
  app.decorate('control', opts.control);
  const watchStreams = new Set<WatchStream>();
  app.decorate('watchStreams', watchStreams);
  const flows = new FlowBook();
  app.decorate('metrics', createMetrics(() => [...watchStreams].reduce((n, w) => n + w.unsent, 0), { storeCommits: opts.control.store.onCommitTime !== undefined }));
  app.decorate('limits', limits);
  app.decorate('watchSlots', new WatchSlots(limits.maxWatchers));
  app.decorateRequest('principal', null);
  app.decorateRequest('routeUrl', null);
  app.decorateRequest('reauthenticate', null as unknown as () => Promise<Principal>);
  app.decorate('streams', new Streams());
  app.decorate('flows', flows);
  app.decorate('lane', new Lane());
  const stopCommitTimes = opts.control.store.onCommitTime?.((seconds) => app.metrics.storeCommit?.observe(seconds));
  const unsubscribe = opts.control.store.subscribe((changes) => {
    app.streams.onChanges(changes);
    // A deleted tenant's records go with it: a tenant made again under its name must not see them.
    for (const ch of changes) if (ch.op === 'delete' && ch.key.startsWith('tenants/') && !ch.key.includes('/', 8)) app.flows.forget(ch.key.slice(8), ch.revision);
  }, () => {
    app.streams.recheckAll();
    void app.flows.recheck((t) => opts.control.tenants.createdAt(t));
  });
  app.addHook('onClose', async () => { unsubscribe(); stopCommitTimes?.(); });
  installTimeouts(app, limits);
  acceptJsonOnly(app);

  app.setErrorHandler((err, req, reply) => sendProblem(req, reply, err instanceof Error ? err : new Error(String(err))));
  app.setNotFoundHandler((req, reply) => sendProblem(req, reply, new WeftError('WEFT_NOT_FOUND', `no route ${req.method} ${pathOf(req.url)}`)));

  app.addHook('onRequest', async (req) => {
    // The matched route decides, not the raw target (absolute form, percent-encoding): what the router
    // will run is what must be authenticated.
    const path = routeOf(req) ?? pathOf(req.url);
    if (PUBLIC.has(path) || (!path.startsWith('/api/') && !GUARDED.has(path))) return;
    req.reauthenticate = () => authenticate(opts.control, req);
    req.principal = await req.reauthenticate();
  });
  app.addHook('preHandler', async (req) => {
    if (req.principal) await checkHost(opts.control, req.principal, req);
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'Weft API', version: opts.version ?? '0.1.0', description: 'Policy-based container networking: tenants, networks, groups, policies.' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
  });

  registerAudit(app, opts.audit);
  // After the audit's: a metric that threw would end the hooks after it, and the audit line must not go with it.
  app.addHook('onResponse', (req, reply, done) => {
    const route = routeOf(req) ?? 'unknown';
    app.metrics.requests.inc({ method: req.method, route, status: reply.statusCode });
    app.metrics.latency.observe({ method: req.method, route }, reply.elapsedTime / 1000);
    done();
  });
  const c = opts.control;
  tenantRoutes(app);
  const cniNotice = (p: Principal, t: string, n: string) => conflistNotice(c.store, t, n, (other) => canSeeTenant(p, other));
  scopedRoutes(app, 'networks', c.networks, NetworkInput, 'network', cniNotice,
    (p, body, tenant, name) => requireFabricRights(p, body, 'encap', name === undefined ? undefined : () => storedNetwork(c, tenant, name)));
  scopedRoutes(app, 'groups', c.groups, GroupInput, 'group', cniNotice);
  scopedRoutes(app, 'policies', c.policies, PolicyInput, 'policy');
  scopedRoutes(app, 'netprofiles', c.netprofiles, NetprofileInput, 'netprofile');
  scopedRoutes(app, 'services', c.services, ServiceInput, 'service');
  scopedRoutes(app, 'app-profiles', c.appProfiles, AppProfileInput, 'app-profile');
  scopedRoutes(app, 'docker-networks', c.dockerNetworks, DockerNetworkInput, 'docker network mapping');
  listRoute(app, 'networkpolicies', c.networkPolicies, 'NetworkPolicy');
  listRoute(app, 'namespaces', c.namespaces, 'Namespace');
  listRoute(app, 'adminnetworkpolicies', c.adminNetworkPolicies, 'AdminNetworkPolicy');
  listRoute(app, 'baselineadminnetworkpolicies', c.baselineAdminNetworkPolicies, 'BaselineAdminNetworkPolicy');
  clusterRoutes(app);
  identityRoutes(app);
  userRoutes(app);
  tokenRoutes(app);
  quotaRoutes(app);
  changeRoutes(app);
  explainRoutes(app);
  matrixRoutes(app);
  verifyRoutes(app);
  flowRoutes(app);
  applyRoutes(app);
  metaRoutes(app, opts.audit);
  uiRoutes(app);
  await app.ready();
  return app;
}

/**
 * Bodies are JSON, and JSON between systems is UTF-8 (RFC 8259 §8.1): a body declared as another charset
 * or as text is refused (415 naming the header) instead of parsed as if it were UTF-8 JSON. Parsed once
 * by our own parser, with fastify's guard against __proto__ and constructor keys; what it refuses is said
 * precisely (json-body.ts: the JSON parser's message, or which field holds such a key).
 */
function acceptJsonOnly(app: FastifyInstance): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    const other = charsetsOf(req.headers['content-type'] ?? '').find((c) => c !== 'utf-8' && c !== 'utf8');
    if (other !== undefined) {
      done(new WeftError('WEFT_UNSUPPORTED_MEDIA', `content-type: charset '${other.slice(0, 32)}'; send the body as UTF-8 JSON (application/json)`, { field: 'content-type' }), undefined);
      return;
    }
    let value: unknown;
    try {
      value = parseJsonBody(body as string);
    } catch (e) {
      done(e as Error, undefined);
      return;
    }
    done(null, value);
  });
}

/** Every charset parameter of a media type, lower-cased and unquoted (a quoted value of another parameter is not one). */
function charsetsOf(type: string): string[] {
  const out: string[] = [];
  if (!type.includes(';')) return out;
  for (const m of type.matchAll(/;\s*([^=;\s]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)/g)) {
    if (m[1]?.toLowerCase() !== 'charset') continue;
    const v = (m[2] ?? '').trim();
    out.push((v.startsWith('"') ? v.slice(1, -1).replace(/\\(.)/g, '$1') : v).toLowerCase());
  }
  return out;
}
