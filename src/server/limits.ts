import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { LIMIT_DEFAULTS, WeftError } from '../model/index.js';
import type { Principal } from '../control/index.js';
import { problemOf } from './problem.js';

/** What one client may cost the server. Each is a `weft server` flag; see docs/decisions.md for the defaults. */
export interface Limits {
  /** --body-limit: bytes of request body. */
  bodyLimit: number;
  /** --headers-timeout: from a connection's first byte (or its open) to the end of the request headers. */
  headersTimeoutMs: number;
  /** --body-timeout: from the first byte to the end of the request body (Node's requestTimeout). */
  bodyTimeoutMs: number;
  /** --request-timeout: from the headers to the last byte of the answer; watch streams are exempt. */
  requestTimeoutMs: number;
  /** --keepalive-timeout: an idle kept-alive connection is closed after this. */
  keepAliveTimeoutMs: number;
  /** --max-watchers: open watch streams per principal (user, or host) on one server. */
  maxWatchers: number;
  /** --watch-buffer: unsent bytes a watch stream may hold before the server ends it. */
  watchBufferBytes: number;
  /** --max-logins: password checks running at once; beyond, 429 (a login flood must not starve the rest). */
  maxLogins: number;
}

export const DEFAULT_LIMITS: Limits = {
  bodyLimit: LIMIT_DEFAULTS.bodyLimit,
  headersTimeoutMs: LIMIT_DEFAULTS.headersTimeoutMs,
  bodyTimeoutMs: LIMIT_DEFAULTS.bodyTimeoutMs,
  requestTimeoutMs: LIMIT_DEFAULTS.requestTimeoutMs,
  keepAliveTimeoutMs: LIMIT_DEFAULTS.keepAliveTimeoutMs,
  maxWatchers: LIMIT_DEFAULTS.maxWatchers,
  watchBufferBytes: LIMIT_DEFAULTS.watchBufferBytes,
  maxLogins: LIMIT_DEFAULTS.maxLogins,
};

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Streams that stay open by design (watch): no whole-request timeout. */
    longLived?: boolean;
  }
}

/** Sockets whose request headers have arrived and whose answer has not finished: a timeout there is the body's. */
const inFlight = new WeakSet<Socket>();

/**
 * Node's own timers cut slow clients (headers, body, keep-alive) and answer through `clientErrorHandler`;
 * the whole-request deadline is ours, since Node's stops counting once the request is received.
 */
export function installTimeouts(app: FastifyInstance, limits: Limits): void {
  const server = app.server;
  server.headersTimeout = limits.headersTimeoutMs;
  server.requestTimeout = limits.bodyTimeoutMs;
  server.keepAliveTimeout = limits.keepAliveTimeoutMs;
  // Node checks the two request timeouts every 30 s by default, so a 10 s limit could take 40 s; it reads
  // this when the server starts listening.
  (server as { connectionsCheckingInterval?: number }).connectionsCheckingInterval = Math.max(250, Math.min(1000, limits.headersTimeoutMs / 4));

  // A callback hook, not an async one: no promise a request for what does not wait.
  app.addHook('onRequest', (req, reply, done) => {
    const socket = req.raw.socket;
    inFlight.add(socket);
    // The one read of fastify's routeOptions for this request (it builds a new object each time): the
    // route's pattern is kept for the hooks after this one (routeOf).
    const route = req.routeOptions;
    req.routeUrl = route.url ?? '';
    const timer = route.config?.longLived ? undefined : setTimeout(() => expire(req, reply, limits), limits.requestTimeoutMs);
    reply.raw.once('close', () => {
      clearTimeout(timer);
      inFlight.delete(socket);
    });
    done();
  });
}

function expire(req: FastifyRequest, reply: FastifyReply, limits: Limits): void {
  // Already answering (a client reading slowly): nothing more can be said, only the connection cut.
  if (reply.sent || reply.raw.headersSent) {
    req.raw.socket.destroy();
    return;
  }
  req.log.warn({ url: req.url }, 'request deadline passed');
  const e = new WeftError('WEFT_DEADLINE',
    `the request was not finished within ${limits.requestTimeoutMs} ms (--request-timeout); a write may or may not have been made: re-read before retrying`);
  void reply.header('connection', 'close').code(e.status).type('application/problem+json').send(problemOf(e));
}

/** Answers what Node refuses before fastify sees a request (timeouts, oversized headers) as problem+json. */
export function clientErrorHandler(limits: Limits) {
  return function (this: FastifyInstance, err: NodeJS.ErrnoException, socket: Socket): void {
    if (err.code === 'ECONNRESET' || socket.destroyed) return;
    let e: WeftError;
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      e = inFlight.has(socket)
        ? new WeftError('WEFT_REQUEST_TIMEOUT', `the request body did not arrive within ${limits.bodyTimeoutMs} ms (--body-timeout)`)
        : new WeftError('WEFT_REQUEST_TIMEOUT', `the request headers did not arrive within ${limits.headersTimeoutMs} ms (--headers-timeout)`);
    } else if (err.code === 'HPE_HEADER_OVERFLOW') {
      e = new WeftError('WEFT_TOO_LARGE', 'the request headers are larger than 16 KiB');
    } else {
      e = new WeftError('WEFT_MALFORMED', `malformed HTTP request (${err.code ?? err.message})`);
    }
    const body = JSON.stringify(problemOf(e));
    if (socket.writable) {
      socket.write(`HTTP/1.1 ${e.status} ${STATUS_CODES[e.status] ?? 'Error'}\r\nconnection: close\r\ncontent-type: application/problem+json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    }
    socket.destroy();
  };
}

/** Counts open watch streams per principal on this server; admins are not limited (they set the limit). */
export class WatchSlots {
  private readonly open = new Map<string, number>();

  constructor(private readonly max: number) {}

  /** Takes a slot or refuses with 429; the returned function gives it back (once, however often called). */
  take(p: Principal): () => void {
    const n = this.open.get(p.user) ?? 0;
    if (p.role !== 'admin' && n >= this.max) {
      throw new WeftError('WEFT_TOO_MANY_WATCHERS',
        `${p.user} already has ${n} watch streams open on this server, the most allowed (--max-watchers ${this.max}); close one first`);
    }
    this.open.set(p.user, n + 1);
    let given = false;
    return () => {
      if (given) return;
      given = true;
      const left = (this.open.get(p.user) ?? 1) - 1;
      if (left > 0) this.open.set(p.user, left);
      else this.open.delete(p.user);
    };
  }
}
