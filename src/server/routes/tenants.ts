import type { FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import { Name, RuleInput, TenantInput, partialOf } from '../../model/index.js';
import { canSeeTenant, requireRole, requireTenantAccess } from '../../control/index.js';
import { ifMatchOf, principalOf } from '../context.js';

const TenantParams = Type.Object({ tenant: Name }, { additionalProperties: false });
const PolicyParams = Type.Object({ tenant: Name, policy: Name }, { additionalProperties: false });
const RuleParams = Type.Object({ tenant: Name, policy: Name, id: Name }, { additionalProperties: false });

export function tenantRoutes(app: FastifyInstance): void {
  const c = app.control;
  const tags = ['tenants'];

  app.get('/api/v1/tenants', { schema: { tags, summary: 'List tenants (those the caller may see)' } }, async (req) => {
    const p = principalOf(req);
    const l = await c.tenants.list();
    return { items: l.items.filter((t) => canSeeTenant(p, t.name)), revision: l.revision };
  });

  app.post<{ Body: TenantInput }>('/api/v1/tenants', { schema: { body: TenantInput, tags, summary: 'Create a tenant' } }, async (req, reply) => {
    const p = principalOf(req);
    requireRole(p, ['admin', 'ops'], 'create tenants');
    return reply.code(201).send(await c.tenants.create(p.user, req.body));
  });

  app.get<{ Params: { tenant: string } }>('/api/v1/tenants/:tenant', { schema: { params: TenantParams, tags, summary: 'Read a tenant' } }, async (req) => {
    requireTenantAccess(principalOf(req), req.params.tenant);
    return c.tenants.get(req.params.tenant);
  });

  for (const method of ['put', 'patch'] as const) {
    app[method]<{ Params: { tenant: string }; Body: Partial<TenantInput> }>('/api/v1/tenants/:tenant', {
      schema: { params: TenantParams, body: method === 'put' ? TenantInput : partialOf(TenantInput), tags, summary: 'Change a tenant (its defaultAction)' },
    }, async (req) => {
      const p = principalOf(req);
      requireTenantAccess(p, req.params.tenant);
      return c.tenants.update(p.user, req.params.tenant, req.body, ifMatchOf(req));
    });
  }

  app.delete<{ Params: { tenant: string } }>('/api/v1/tenants/:tenant', { schema: { params: TenantParams, tags, summary: 'Delete an empty tenant' } }, async (req, reply) => {
    const p = principalOf(req);
    requireTenantAccess(p, req.params.tenant);
    requireRole(p, ['admin', 'ops'], 'delete tenants');
    await c.tenants.remove(p.user, req.params.tenant, ifMatchOf(req));
    return reply.code(204).send();
  });

  const rules = '/api/v1/tenants/:tenant/policies/:policy/rules';
  const rtags = ['rules'];
  app.get<{ Params: { tenant: string; policy: string } }>(rules, { schema: { params: PolicyParams, tags: rtags, summary: 'List the rules of a policy' } }, async (req) => {
    requireTenantAccess(principalOf(req), req.params.tenant);
    return c.rules.list(req.params.tenant, req.params.policy);
  });
  app.post<{ Params: { tenant: string; policy: string }; Body: RuleInput }>(rules, { schema: { params: PolicyParams, body: RuleInput, tags: rtags, summary: 'Add a rule' } }, async (req, reply) => {
    const p = principalOf(req);
    requireTenantAccess(p, req.params.tenant);
    return reply.code(201).send(await c.rules.add(p.user, req.params.tenant, req.params.policy, req.body, ifMatchOf(req)));
  });
  app.get<{ Params: { tenant: string; policy: string; id: string } }>(`${rules}/:id`, { schema: { params: RuleParams, tags: rtags, summary: 'Read a rule' } }, async (req) => {
    requireTenantAccess(principalOf(req), req.params.tenant);
    return c.rules.get(req.params.tenant, req.params.policy, req.params.id);
  });
  app.put<{ Params: { tenant: string; policy: string; id: string }; Body: RuleInput }>(`${rules}/:id`, { schema: { params: RuleParams, body: RuleInput, tags: rtags, summary: 'Replace a rule' } }, async (req) => {
    const p = principalOf(req);
    requireTenantAccess(p, req.params.tenant);
    return c.rules.replace(p.user, req.params.tenant, req.params.policy, req.params.id, req.body, ifMatchOf(req));
  });
  app.delete<{ Params: { tenant: string; policy: string; id: string } }>(`${rules}/:id`, { schema: { params: RuleParams, tags: rtags, summary: 'Remove a rule' } }, async (req, reply) => {
    const p = principalOf(req);
    requireTenantAccess(p, req.params.tenant);
    await c.rules.remove(p.user, req.params.tenant, req.params.policy, req.params.id, ifMatchOf(req));
    return reply.code(204).send();
  });
}
