import type { FastifyInstance } from 'fastify';
import { Type, type TObject } from '@sinclair/typebox';
import { Name, partialOf } from '../../model/index.js';
import { requireTenantAccess, type Crud, type Principal } from '../../control/index.js';
import { ifMatchOf, principalOf } from '../context.js';
import { requireOnHost } from '../hostgate.js';

const TenantParams = Type.Object({ tenant: Name }, { additionalProperties: false });
const ObjectParams = Type.Object({ tenant: Name, name: Name }, { additionalProperties: false });
interface P { tenant: string; name: string }

/**
 * The six routes every tenant-scoped collection has: list, create, read, replace, merge, delete.
 * `notice`: what a create should warn about (an HTTP `Warning` header, as Kubernetes sends; the CLI
 * prints it), e.g. a conflist name that became ambiguous.
 */
export function scopedRoutes<I extends { name: string }>(
  app: FastifyInstance,
  path: string,
  crud: Crud<I, { tenant: string; name: string; revision: number; createdAt: string; updatedAt: string }>,
  input: TObject,
  kind: string,
  notice?: (p: Principal, tenant: string, name: string) => Promise<string | undefined>,
  /** Refuses a write this principal may not make (beyond tenant access): the body, and the object's name when it exists. */
  guard?: (p: Principal, body: Partial<I>, tenant: string, name?: string) => Promise<void>,
): void {
  const base = `/api/v1/tenants/:tenant/${path}`;
  const tags = [path];

  app.get<{ Params: Omit<P, 'name'> }>(base, { schema: { params: TenantParams, tags, summary: `List the ${path} of a tenant` } }, async (req) => {
    requireTenantAccess(principalOf(req), req.params.tenant);
    await app.control.tenants.get(req.params.tenant);
    return crud.list(req.params.tenant);
  });

  app.post<{ Params: Omit<P, 'name'>; Body: I }>(base, { schema: { params: TenantParams, body: input, tags, summary: `Create a ${kind}` } }, async (req, reply) => {
    const p = principalOf(req);
    requireTenantAccess(p, req.params.tenant);
    await guard?.(p, req.body as I, req.params.tenant);
    const made = await crud.create(p.user, req.params.tenant, req.body as I);
    const warning = await notice?.(p, made.tenant, made.name);
    if (warning) reply.header('warning', `299 weft "${warning.replace(/["\\]/g, '')}"`);
    return reply.code(201).send(made);
  });

  app.get<{ Params: P }>(`${base}/:name`, { schema: { params: ObjectParams, tags, summary: `Read a ${kind}` } }, async (req, reply) => {
    requireTenantAccess(principalOf(req), req.params.tenant);
    const o = await crud.get(req.params.tenant, req.params.name);
    return reply.header('etag', `"${o.revision}"`).send(o);
  });

  app.put<{ Params: P; Body: I }>(`${base}/:name`, { schema: { params: ObjectParams, body: input, tags, summary: `Replace a ${kind}` } }, async (req) => {
    const p = principalOf(req);
    requireTenantAccess(p, req.params.tenant);
    await guard?.(p, req.body as I, req.params.tenant, req.params.name);
    return crud.replace(p.user, req.params.tenant, req.params.name, req.body as I, ifMatchOf(req));
  });

  app.patch<{ Params: P; Body: Partial<I> }>(`${base}/:name`, { schema: { params: ObjectParams, body: partialOf(input), tags, summary: `Change some fields of a ${kind}` } }, async (req) => {
    const p = principalOf(req);
    requireTenantAccess(p, req.params.tenant);
    await guard?.(p, req.body as Partial<I>, req.params.tenant, req.params.name);
    return crud.patch(p.user, req.params.tenant, req.params.name, req.body as I, ifMatchOf(req));
  });

  app.delete<{ Params: P }>(`${base}/:name`, { schema: { params: ObjectParams, tags, summary: `Delete a ${kind}` } }, async (req, reply) => {
    const p = principalOf(req);
    requireTenantAccess(p, req.params.tenant);
    // A host deletes only its own Docker network mappings: checked again on what the delete reads.
    const allowed = p.role === 'host' ? (o: object) => requireOnHost(p, (o as { host?: unknown }).host, 'the mapping\'s host') : undefined;
    await crud.remove(p.user, req.params.tenant, req.params.name, ifMatchOf(req), allowed);
    return reply.code(204).send();
  });
}

/**
 * The list route alone, for kinds written only through `weft apply` (Kubernetes' NetworkPolicy and
 * Namespace): agents list them, and `weft get` reads them as documents.
 */
export function listRoute(app: FastifyInstance, path: string, crud: Pick<Crud<{ name: string }, { tenant: string; name: string; revision: number; createdAt: string; updatedAt: string }>, 'list'>, kind: string): void {
  app.get<{ Params: Omit<P, 'name'> }>(`/api/v1/tenants/:tenant/${path}`, { schema: { params: TenantParams, tags: [path], summary: `List the ${kind} objects of a tenant (written by POST /api/v1/apply)` } }, async (req) => {
    requireTenantAccess(principalOf(req), req.params.tenant);
    await app.control.tenants.get(req.params.tenant);
    return crud.list(req.params.tenant);
  });
}
