import type { FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import { Name, QuotaInput } from '../../model/index.js';
import { requireRole } from '../../control/index.js';
import { principalOf } from '../context.js';

const NameParams = Type.Object({ name: Name }, { additionalProperties: false });
const tags = ['users'];

/** A user's quota: what it owns, its limits, and an admin's override of the server defaults. */
export function quotaRoutes(app: FastifyInstance): void {
  const c = app.control;

  app.get<{ Params: { name: string } }>('/api/v1/users/:name/quota', {
    schema: { params: NameParams, tags, summary: "A user's quota: objects and rules owned, and the limits (admin, or yourself)" },
  }, async (req) => {
    const p = principalOf(req);
    if (p.user !== req.params.name) {
      requireRole(p, ['admin'], "read other users' quotas");
      await c.users.get(req.params.name);
    }
    return c.quota.view(c.store, req.params.name);
  });

  app.put<{ Params: { name: string }; Body: QuotaInput }>('/api/v1/users/:name/quota', {
    schema: { params: NameParams, body: QuotaInput, tags, summary: "Set a user's own limits; a field left out follows the server default (admin)" },
  }, async (req) => {
    const p = principalOf(req);
    requireRole(p, ['admin'], 'set quotas');
    return c.quota.setOverride(c.store, p.user, req.params.name, { objects: req.body.objects ?? null, rules: req.body.rules ?? null });
  });
}
