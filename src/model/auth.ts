import { Type, type Static } from '@sinclair/typebox';
import { Name } from './schemas.js';
import { AUDIT_EVENTS, DURATION_PATTERN, type AuditEvent } from './durations.js';

/**
 * Tokens and the audit log: request and response schemas (the responses are schemas too, so fastify
 * serialises only the fields named here and a secret or hash can never slip into a list).
 */
export const Duration = Type.String({ pattern: DURATION_PATTERN, description: 'a lifetime like 30m, 12h, 7d, or never' });

/** The public id of a token: the first 16 hex characters of its sha256 (the secret itself is never stored). */
export const TokenId = Type.String({ pattern: '^[0-9a-f]{16}$', description: 'public id of a token (16 hex characters)' });

export const TokenInput = Type.Object({
  // Printable text only: a description is shown in other people's terminals (`weft token ls` for an
  // admin), where control characters could rewrite the screen.
  description: Type.Optional(Type.String({ minLength: 1, maxLength: 200, pattern: '^[^\\u0000-\\u001f\\u007f-\\u009f]+$', description: 'what the token is for (printable text)' })),
  ttl: Type.Optional(Duration),
  user: Type.Optional(Name),
}, { additionalProperties: false });

export const TokenView = Type.Object({
  id: TokenId,
  user: Name,
  description: Type.String(),
  createdAt: Type.String(),
  expiresAt: Type.Optional(Type.String({ description: 'absent: the token does not expire' })),
  state: Type.Unsafe<'active' | 'expired'>({ type: 'string', enum: ['active', 'expired'] }),
  current: Type.Boolean({ description: 'the token making this request' }),
});

export const TokenList = Type.Object({ items: Type.Array(TokenView) });

export const TokenCreated = Type.Object({
  id: TokenId,
  token: Type.String({ description: 'the secret, shown only in this answer' }),
  expiresAt: Type.Union([Type.String(), Type.Null()], { description: 'null: the token does not expire' }),
});

export const TokenQuery = Type.Object({ user: Type.Optional(Name) }, { additionalProperties: false });


/** One line of the audit log. Never a body, a header, a password or a token: only who, from where, what, and the outcome. */
export const AuditEntry = Type.Object({
  time: Type.String(),
  event: Type.Unsafe<AuditEvent>({ type: 'string', enum: [...AUDIT_EVENTS] }),
  actor: Type.Union([Type.String(), Type.Null()], { description: 'user name or host:NAME; null when unauthenticated' }),
  credential: Type.Union([Type.String(), Type.Null()], { description: 'token id or cert:SERIAL; null when none was recognised' }),
  user: Type.Optional(Type.String({ description: 'login: the user name tried' })),
  source: Type.String({ description: 'remote address and port' }),
  method: Type.String(),
  path: Type.String({ description: 'without the query string' }),
  route: Type.Union([Type.String(), Type.Null()]),
  status: Type.Integer(),
  code: Type.Union([Type.String(), Type.Null()], { description: 'the problem code of a refused or failed request' }),
  count: Type.Optional(Type.Integer({ minimum: 1, description: 'suppressed: how many refusals and failed logins of this actor, or from this address, were counted instead of logged one by one' })),
});

export const AuditQuery = Type.Object({
  since: Type.Optional(Type.String({ pattern: '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+(Z|[+-][0-9]{2}:[0-9]{2})$', description: 'ISO time; entries at or after it' })),
  actor: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
  event: Type.Optional(Type.Unsafe<AuditEvent>({ type: 'string', enum: [...AUDIT_EVENTS] })),
  limit: Type.Optional(Type.String({ pattern: '^[1-9][0-9]{0,4}$', description: '1-99999, default 1000' })),
}, { additionalProperties: false });

export const AuditList = Type.Object({ items: Type.Array(AuditEntry) });

export type TokenInput = Static<typeof TokenInput>;
export type TokenView = Static<typeof TokenView>;
export type TokenCreated = Static<typeof TokenCreated>;
export type AuditEntry = Static<typeof AuditEntry>;
export type AuditQuery = Static<typeof AuditQuery>;
