import type { FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import { LoginInput, Name, UserInput, partialOf } from '../../model/index.js';
import { requireRole } from '../../control/index.js';
import { principalOf } from '../context.js';

const NameParams = Type.Object({ name: Name }, { additionalProperties: false });
const tags = ['users'];

export function userRoutes(app: FastifyInstance): void {
  const u = app.control.users;

  app.post<{ Body: LoginInput }>('/api/v1/login', { schema: { body: LoginInput, tags, summary: 'Exchange a user name and password for a token' } }, async (req) => ({
    token: await u.login(req.body.username, req.body.password),
  }));

  app.get('/api/v1/whoami', { schema: { tags, summary: 'Who the token belongs to' } }, async (req) => principalOf(req));

  app.get('/api/v1/users', { schema: { tags, summary: 'List users (admin)' } }, async (req) => {
    requireRole(principalOf(req), ['admin'], 'list users');
    return u.list();
  });
  app.post<{ Body: UserInput }>('/api/v1/users', { schema: { body: UserInput, tags, summary: 'Create a user (admin)' } }, async (req, reply) => {
    const p = principalOf(req);
    requireRole(p, ['admin'], 'create users');
    return reply.code(201).send(await u.create(p.user, req.body));
  });
  app.get<{ Params: { name: string } }>('/api/v1/users/:name', { schema: { params: NameParams, tags, summary: 'Read a user (admin, or yourself)' } }, async (req) => {
    const p = principalOf(req);
    if (p.user !== req.params.name) requireRole(p, ['admin'], 'read other users');
    return u.get(req.params.name);
  });
  app.patch<{ Params: { name: string }; Body: Partial<UserInput> }>('/api/v1/users/:name', {
    schema: { params: NameParams, body: partialOf(UserInput), tags, summary: 'Change a user; anyone may change their own password' },
  }, async (req) => {
    const p = principalOf(req);
    const onlyOwnPassword = p.user === req.params.name && Object.keys(req.body).every((k) => k === 'password');
    if (!onlyOwnPassword) requireRole(p, ['admin'], 'change users');
    return u.update(p.user, req.params.name, req.body);
  });
  app.delete<{ Params: { name: string } }>('/api/v1/users/:name', { schema: { params: NameParams, tags, summary: 'Delete a user and its tokens (admin)' } }, async (req, reply) => {
    const p = principalOf(req);
    requireRole(p, ['admin'], 'delete users');
    await u.remove(p.user, req.params.name);
    return reply.code(204).send();
  });
}
