import type { FastifyRequest } from 'fastify';
import { WeftError } from '../model/index.js';
import type { Principal } from '../control/index.js';

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null;
    /** The matched route's pattern, '' for none; null until read (routeOf). */
    routeUrl: string | null;
  }
}

/**
 * The matched route's pattern (`/api/v1/endpoints/:id`), undefined when none matched. Read once a request:
 * fastify's `routeOptions` builds a new object of a dozen fields on every read, and four hooks ask. (A
 * handler that calls `reply.callNotFound()` would change the route after it was kept: none does.)
 */
export function routeOf(req: FastifyRequest): string | undefined {
  let r = req.routeUrl;
  if (r === null || r === undefined) r = req.routeUrl = req.routeOptions.url ?? '';
  return r === '' ? undefined : r;
}

export function principalOf(req: FastifyRequest): Principal {
  if (!req.principal) throw new WeftError('WEFT_UNAUTHENTICATED', 'send a token: Authorization: Bearer <token>');
  return req.principal;
}

/** Who asks, for per-user limits and turns: a user, or a host by its certificate. */
export function askerOf(p: Principal): string {
  return `${p.role}:${p.user}:${p.host ?? ''}`;
}

/** Aborted once the request's answer is done or its connection gone (its deadline's 503, a client that left). */
export function endedSignal(reply: { raw: { once(event: 'close', f: () => void): unknown } }): AbortSignal {
  const ended = new AbortController();
  reply.raw.once('close', () => ended.abort());
  return ended.signal;
}

/** `If-Match: 12` or `If-Match: "12"`; absent means "any revision". */
export function ifMatchOf(req: FastifyRequest): number | undefined {
  const h = req.headers['if-match'];
  if (h === undefined) return undefined;
  const text = (Array.isArray(h) ? h[0] ?? '' : h).trim().replace(/^W\//, '').replace(/^"(.*)"$/, '$1');
  if (!/^[0-9]{1,15}$/.test(text)) {
    throw new WeftError('WEFT_INVALID_FIELD', `If-Match: '${text}' is not a revision number`, { field: 'If-Match' });
  }
  return Number(text);
}

/**
 * The path of a request target without its query. HTTP allows the absolute form (`POST https://x/api/v1/
 * login HTTP/1.1`), which the router accepts: taken raw, it would not start with /api/ and slip past the
 * authentication and audit that key on the path.
 */
export function pathOf(url: string): string {
  const p = url.split('?')[0] ?? '';
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(p)) return p;
  try {
    return new URL(p).pathname;
  } catch {
    return p;
  }
}
