import type { FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import { LoginInput, Name, TokenCreated, UserInput, WeftError } from '../../model/index.js';
import { requireRole } from '../../control/index.js';
import { principalOf } from '../context.js';

const NameParams = Type.Object({ name: Name }, { additionalProperties: false });
const UserPatch = Type.Composite([Type.Partial(UserInput), Type.Object({ currentPassword: Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: 'your current password, to change your own' })) })], { additionalProperties: false });
const tags = ['users'];

export function userRoutes(app: FastifyInstance): void {
  const u = app.control.users;

  // Each login costs one scrypt on libuv's small thread pool (which TLS keys and DNS share): a flood is
  // answered 429 at once rather than queued until real logins time out.
  // A password change checks the current password and hashes the new one: it takes a slot too (it
  // did not, so any token holder could flood the pool, and guess the current password, unthrottled).
  let loginsRunning = 0;
  const withSlot = async <T>(fn: () => Promise<T>): Promise<T> => {
    if (loginsRunning >= app.limits.maxLogins) {
      throw new WeftError('WEFT_TOO_MANY_LOGINS', `${loginsRunning} logins are being checked already (--max-logins ${app.limits.maxLogins}); try again in a moment`);
    }
    loginsRunning++;
    try {
      return await fn();
    } finally {
      loginsRunning--;
    }
  };
  app.post<{ Body: LoginInput }>('/api/v1/login', {
    schema: { body: LoginInput, response: { 200: TokenCreated }, tags, summary: 'Exchange a user name and password for a token (it expires after the server\'s --token-ttl)' },
  }, async (req) => {
    req.auditLogin = { user: req.body.username };
    return withSlot(async () => {
      const issued = await u.login(req.body.username, req.body.password);
      req.auditLogin = { user: req.body.username, credential: issued.id };
      return issued;
    });
  });

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
  app.patch<{ Params: { name: string }; Body: Partial<UserInput> & { currentPassword?: string } }>('/api/v1/users/:name', {
    schema: { params: NameParams, body: UserPatch, tags, summary: 'Change a user; anyone may change their own password with their current one (which revokes their other tokens)' },
  }, async (req) => {
    const p = principalOf(req);
    const own = p.user === req.params.name;
    const { currentPassword, ...change } = req.body;
    if (!own || !Object.keys(change).every((k) => k === 'password')) requireRole(p, ['admin'], 'change users');
    // A stolen token alone must not become the account: changing your own password takes the current one
    // (an admin, who could reset anyone's, is not asked).
    if (own && p.role !== 'admin' && change.password !== undefined) {
      return withSlot(async () => {
        await u.checkPassword(req.params.name, currentPassword);
        return u.update(p.user, req.params.name, change, p.credential);
      });
    }
    return u.update(p.user, req.params.name, change, own ? p.credential : undefined);
  });
  app.delete<{ Params: { name: string } }>('/api/v1/users/:name', { schema: { params: NameParams, tags, summary: 'Delete a user and its tokens (admin)' } }, async (req, reply) => {
    const p = principalOf(req);
    requireRole(p, ['admin'], 'delete users');
    await u.remove(p.user, req.params.name);
    return reply.code(204).send();
  });
}
