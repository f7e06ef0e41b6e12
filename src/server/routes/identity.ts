import type { FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import { CsrInput, JoinInput, JoinTokenInput, Name } from '../../model/index.js';
import { requireRole } from '../../control/index.js';
import { principalOf } from '../context.js';

const NameParams = Type.Object({ name: Name }, { additionalProperties: false });
const tags = ['hosts'];

/** Per-host identity: invitations (join tokens), the join itself, renewal, the CA, and revocation. */
export function identityRoutes(app: FastifyInstance): void {
  const c = app.control;

  app.get('/api/v1/ca.crt', { schema: { tags, summary: "Weft's CA certificate (PEM); check it against the hash in a join token before trusting it" } }, async (_req, reply) =>
    reply.type('application/x-pem-file').send((await c.ca.get()).certPem));

  app.post<{ Params: { name: string }; Body: JoinTokenInput }>('/api/v1/hosts/:name/join-token', {
    schema: { params: NameParams, body: JoinTokenInput, tags, summary: 'Invite a host: a one-time join token bound to its name (admin)' },
  }, async (req, reply) => {
    const p = principalOf(req);
    requireRole(p, ['admin'], 'add hosts');
    const ttl = req.body.expiresIn === undefined ? undefined : req.body.expiresIn * 1000;
    return reply.code(201).send({ host: req.params.name, ...(await c.identities.invite(p.user, req.params.name, ttl)) });
  });

  app.post<{ Body: JoinInput }>('/api/v1/join', {
    schema: { body: JoinInput, tags, summary: 'Redeem a join token and a CSR for the host\'s client certificate (once)' },
  }, async (req) => c.identities.redeem(req.body.token, req.body.csr));

  app.post<{ Params: { name: string }; Body: CsrInput }>('/api/v1/hosts/:name/certificate', {
    schema: { params: NameParams, body: CsrInput, tags, summary: 'Renew a host\'s certificate (the host itself, with its current certificate)' },
  }, async (req) => {
    const p = principalOf(req);
    requireRole(p, ['host'], 'renew host certificates (only a host renews its own)');
    return c.identities.renew(req.params.name, req.body.csr);
  });

  app.get('/api/v1/host-identities', { schema: { tags, summary: 'Invited and joined hosts, with their certificates (admin, ops)' } }, async (req) => {
    requireRole(principalOf(req), ['admin', 'ops'], 'list host identities');
    return { items: await c.identities.list() };
  });

  app.delete<{ Params: { name: string } }>('/api/v1/hosts/:name', {
    schema: { params: NameParams, tags, summary: 'Remove a host: revoke its certificates at once, release its endpoints, forget it (admin)' },
  }, async (req, reply) => {
    const p = principalOf(req);
    requireRole(p, ['admin'], 'remove hosts');
    await c.forgetHost(p.user, req.params.name);
    return reply.code(204).send();
  });
}
