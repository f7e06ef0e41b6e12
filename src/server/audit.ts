import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AuditList, AuditQuery, WeftError, type AuditEntry, type AuditEvent } from '../model/index.js';
import { CredentialRefused, requireRole, type Principal } from '../control/index.js';
import { pathOf, principalOf, routeOf } from './context.js';
import { NoAudit, readAudit, type AuditSink } from './audit-file.js';
import { RefusalThrottle } from './audit-throttle.js';

/** How often the refusals held back are summed up in the log. */
export const SUMMARY_MS = 10_000;

declare module 'fastify' {
  interface FastifyRequest {
    /** The problem this request was answered with (set where problems are sent), for its audit line. */
    problem: WeftError | null;
    /** Set by the login route: the user name tried and, on success, the new token's id. */
    auditLogin: { user: string; credential?: string } | null;
    /** Its audit line was made (at its answer, or when its client left first): one line a request. */
    audited: boolean;
  }
}

const WRITES = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const LOGIN = '/api/v1/login';
/** Status for a request whose client hung up before the answer (nginx's convention). */
export const CLIENT_CLOSED = 499;
const MAX_PATH = 512;

/** Which audit event a request is, if any: every login attempt, every 401/403, every write to the API. */
export function auditEventOf(method: string, path: string, status: number): AuditEvent | undefined {
  if (method === 'POST' && path === LOGIN) return 'login';
  if (status === 401 || status === 403) return 'refused';
  if (WRITES.has(method) && path.startsWith('/api/')) return 'write';
  return undefined;
}

/**
 * The path as logged: no query string, bounded, and with anything shaped like a secret replaced, since
 * people paste a token where an id belongs (`weft token revoke weft_…`) and paths are logged.
 */
export function auditPath(url: string): string {
  const path = (url.split('?')[0] ?? '').replace(/weft(?:_|%5f)[A-Za-z0-9_%-]*|weftjoin1?\.[A-Za-z0-9._%-]*/gi, 'weft_[redacted]');
  return path.length > MAX_PATH ? `${path.slice(0, MAX_PATH)}…` : path;
}

export interface RequestFacts {
  time: string;
  method: string;
  url: string;
  route: string | undefined;
  status: number;
  source: string;
  principal: Principal | null;
  problem: WeftError | null;
  login: { user: string; credential?: string } | null;
}

/** One audit line from what is known about a request, or undefined when the request is not audited. */
export function auditEntryOf(f: RequestFacts): AuditEntry | undefined {
  const path = auditPath(f.url);
  const event = auditEventOf(f.method, path, f.status);
  if (event === undefined) return undefined;
  const p = f.principal;
  const loggedIn = event === 'login' && f.login?.credential !== undefined;
  const actor = p ? (p.host !== undefined ? `host:${p.host}` : p.user) : loggedIn ? f.login?.user ?? null : null;
  const refused = f.problem instanceof CredentialRefused ? f.problem.credential : undefined;
  return {
    time: f.time, event, actor,
    credential: p?.credential ?? (loggedIn ? f.login?.credential : undefined) ?? refused ?? null,
    ...(event === 'login' && f.login ? { user: f.login.user } : {}),
    source: f.source, method: f.method, path, route: f.route ?? null, status: f.status, code: f.problem?.code ?? null,
  };
}

function sourceOf(req: FastifyRequest): string {
  const addr = req.socket?.remoteAddress ?? 'unknown';
  const port = req.socket?.remotePort;
  const host = addr.includes(':') ? `[${addr}]` : addr;
  return port === undefined ? host : `${host}:${port}`;
}

/** The ISO time of the last millisecond asked for: a busy server audits several requests in one. */
let lastMs = -1;
let lastIso = '';
function isoNow(): string {
  const ms = Date.now();
  if (ms !== lastMs) {
    lastMs = ms;
    lastIso = new Date(ms).toISOString();
  }
  return lastIso;
}

function factsOf(req: FastifyRequest, status: number): RequestFacts {
  return {
    time: isoNow(), method: req.method, url: pathOf(req.url), route: routeOf(req), status, source: sourceOf(req),
    principal: req.principal, problem: req.problem, login: req.auditLogin,
  };
}

/**
 * The audit log: one call from app.ts. Every login attempt, refusal and write becomes one JSON line in
 * `sink` after its answer is sent (or when its client hangs up first), and admins read this server's
 * log back with `GET /api/v1/audit`. Nothing from a body or a header is ever logged.
 */
export function registerAudit(app: FastifyInstance, sink: AuditSink = new NoAudit(), throttle = new RefusalThrottle()): void {
  app.decorateRequest('problem', null);
  app.decorateRequest('auditLogin', null);
  app.decorateRequest('audited', false);
  const record = (req: FastifyRequest, status: number) => {
    if (req.audited) return;
    req.audited = true;
    const e = auditEntryOf(factsOf(req, status));
    if (e && throttle.admit(e)) sink.write(e);
  };
  const summarize = () => {
    for (const s of throttle.summaries(new Date().toISOString())) sink.write(s);
  };
  const timer = setInterval(summarize, SUMMARY_MS).unref();
  app.addHook('onClose', async () => {
    clearInterval(timer);
    summarize();
  });
  // Callback hooks: nothing here waits, so no promise a request.
  app.addHook('onResponse', (req: FastifyRequest, reply: FastifyReply, done: () => void) => {
    record(req, reply.statusCode);
    done();
  });
  app.addHook('onRequestAbort', (req: FastifyRequest, done: () => void) => {
    record(req, CLIENT_CLOSED);
    done();
  });
  auditRoute(app, sink);
}

function auditRoute(app: FastifyInstance, sink: AuditSink): void {
  app.get<{ Querystring: AuditQuery }>('/api/v1/audit', {
    schema: { querystring: AuditQuery, response: { 200: AuditList }, tags: ['audit'], summary: "This server's audit log, newest last (admin)" },
  }, async (req) => {
    requireRole(principalOf(req), ['admin'], 'read the audit log');
    const q = req.query;
    const since = q.since === undefined ? undefined : Date.parse(q.since);
    if (since !== undefined && Number.isNaN(since)) throw new WeftError('WEFT_INVALID_FIELD', `since: '${q.since}' is not an ISO time`, { field: 'since' });
    if (sink.file === undefined) throw new WeftError('WEFT_NOT_FOUND', `no audit log to read: ${sink.describe}`);
    const filter = { limit: Number(q.limit ?? 1000), ...(since !== undefined ? { since } : {}), ...(q.actor ? { actor: q.actor } : {}), ...(q.event ? { event: q.event } : {}) };
    sink.flush?.();
    return { items: await readAudit(sink.file, filter) };
  });
}
