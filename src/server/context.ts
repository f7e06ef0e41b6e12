import type { FastifyRequest } from 'fastify';
import { WeftError } from '../model/index.js';
import type { Principal } from '../control/index.js';

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null;
  }
}

export function principalOf(req: FastifyRequest): Principal {
  if (!req.principal) throw new WeftError('WEFT_UNAUTHENTICATED', 'send a token: Authorization: Bearer <token>');
  return req.principal;
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
