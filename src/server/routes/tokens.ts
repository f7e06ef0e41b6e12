import type { FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import { TokenCreated, TokenId, TokenInput, TokenList, TokenQuery } from '../../model/index.js';
import type { Static } from '@sinclair/typebox';
import { requireRole } from '../../control/index.js';
import { principalOf } from '../context.js';

const IdParams = Type.Object({ id: TokenId }, { additionalProperties: false });
const tags = ['tokens'];

/** Tokens: listed and revoked by their owner or an admin. A secret appears once, in the answer that creates it. */
export function tokenRoutes(app: FastifyInstance): void {
  const u = app.control.users;

  app.get<{ Querystring: Static<typeof TokenQuery> }>('/api/v1/tokens', {
    schema: { querystring: TokenQuery, response: { 200: TokenList }, tags, summary: 'List your tokens (an admin: everyone\'s, ?user= filters); never a secret' },
  }, async (req) => {
    const p = principalOf(req);
    const user = req.query.user ?? (p.role === 'admin' ? undefined : p.user);
    if (user !== p.user) requireRole(p, ['admin'], 'list the tokens of other users');
    return { items: await u.tokens.list(user, p.credential) };
  });

  app.post<{ Body: TokenInput }>('/api/v1/tokens', {
    schema: { body: TokenInput, response: { 201: TokenCreated }, tags, summary: 'Create a token for yourself (an admin: for any user); the secret is shown only here' },
  }, async (req, reply) => reply.code(201).send(await u.createToken(principalOf(req), req.body)));

  app.delete<{ Params: { id: string } }>('/api/v1/tokens/:id', {
    schema: { params: IdParams, tags, summary: 'Revoke a token (its owner or an admin); other users get 404' },
  }, async (req, reply) => {
    await u.revokeToken(principalOf(req), req.params.id);
    return reply.code(204).send();
  });
}
