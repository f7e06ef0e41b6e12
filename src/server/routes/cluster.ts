import type { FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import { EndpointPatch, EndpointRequest, GlobalInput, HostInput, HostLabelsPatch, Name, WeftError, notFound, partialOf } from '../../model/index.js';
import { canSeeTenant, hostFor, requireRole, selectEndpoints, visibilityKey } from '../../control/index.js';
import { ifMatchOf, principalOf } from '../context.js';
import { requireOnHost } from '../hostgate.js';

const IdParams = Type.Object({ id: Type.String({ pattern: '^[0-9a-f]{16}$' }) }, { additionalProperties: false });
const NameParams = Type.Object({ name: Name }, { additionalProperties: false });
const EndpointQuery = Type.Object({ tenant: Type.Optional(Name), host: Type.Optional(Name) }, { additionalProperties: false });

/** Endpoints (written by agents), hosts (registered by agents) and the global settings. */
export function clusterRoutes(app: FastifyInstance): void {
  const c = app.control;

  app.get<{ Querystring: { tenant?: string; host?: string } }>('/api/v1/endpoints', {
    schema: { querystring: EndpointQuery, tags: ['endpoints'], summary: 'List endpoints, optionally of one tenant or host' },
  }, async (req, reply) => {
    const p = principalOf(req);
    // A tenant the caller may not see is refused as if it did not exist, as every tenant's own route does.
    if (req.query.tenant !== undefined && !canSeeTenant(p, req.query.tenant)) throw notFound(`tenant ${req.query.tenant}`);
    const s = await c.endpoints.snapshot();
    // The same answer, serialized once, for everyone asking the same at this revision (agents re-listing
    // after a server restart); keyed by what the asker may see, so RBAC decides as before.
    const key = JSON.stringify([req.query.tenant ?? null, req.query.host ?? null, visibilityKey(p)]);
    const body = s.memo(key, () => JSON.stringify({ items: selectEndpoints(s, req.query).filter((e) => canSeeTenant(p, e.tenant)), revision: s.revision }));
    return reply.type('application/json; charset=utf-8').send(body);
  });

  app.post<{ Body: EndpointRequest }>('/api/v1/endpoints', {
    schema: { body: EndpointRequest, tags: ['endpoints'], summary: 'Create an endpoint and allocate its address (agents)' },
  }, async (req, reply) => {
    const p = principalOf(req);
    requireRole(p, ['admin', 'ops', 'host'], 'create endpoints');
    return reply.code(201).send(await c.endpoints.create(p.user, req.body));
  });

  app.get<{ Params: { id: string } }>('/api/v1/endpoints/:id', { schema: { params: IdParams, tags: ['endpoints'], summary: 'Read an endpoint' } }, async (req) => {
    const e = await c.endpoints.get(req.params.id);
    if (!canSeeTenant(principalOf(req), e.tenant)) throw notFound(`endpoint ${req.params.id}`);
    return e;
  });

  app.patch<{ Params: { id: string }; Body: EndpointPatch }>('/api/v1/endpoints/:id', {
    schema: { params: IdParams, body: EndpointPatch, tags: ['endpoints'], summary: "Change an endpoint's labels (users of its tenant), or record its container name or published ports (agents)" },
  }, async (req) => {
    const p = principalOf(req);
    if (p.role !== 'tenant') {
      requireRole(p, ['admin', 'ops', 'host'], 'change endpoints');
      // A host changes only its own endpoints (hostgate.ts), and may give one its first namespace.
      return c.endpoints.update(p.user, req.params.id, req.body, (e) => requireOnHost(p, e.host, `the host of endpoint ${e.id}`), p.role === 'host');
    }
    // A tenant user relabels its own pods (what moves them between selectors); what the runtime
    // recorded (its name, the host ports it holds) stays the agents' word.
    return c.endpoints.update(p.user, req.params.id, req.body, (e) => {
      if (!canSeeTenant(p, e.tenant)) throw notFound(`endpoint ${req.params.id}`);
      const other = Object.keys(req.body).find((k) => k !== 'labels');
      if (other) throw new WeftError('WEFT_FORBIDDEN', `user ${p.user} (role tenant) may change an endpoint's labels, not its ${other}`);
    });
  });

  app.delete<{ Params: { id: string } }>('/api/v1/endpoints/:id', {
    schema: { params: IdParams, tags: ['endpoints'], summary: 'Delete an endpoint and release its address; idempotent' },
  }, async (req, reply) => {
    const p = principalOf(req);
    requireRole(p, ['admin', 'ops', 'host'], 'delete endpoints');
    await c.endpoints.remove(p.user, req.params.id, p.role === 'host' ? async (_tx, e) => {
      requireOnHost(p, e.host, `the host of endpoint ${e.id}`);
      return true;
    } : undefined);
    return reply.code(204).send();
  });

  app.get('/api/v1/hosts', { schema: { tags: ['hosts'], summary: 'List hosts (tenant users: without underlay addresses)' } }, async (req) => {
    const p = principalOf(req);
    const l = await c.hosts.list();
    return { ...l, items: l.items.map((h) => hostFor(p, h)) };
  });
  app.get<{ Params: { name: string } }>('/api/v1/hosts/:name', { schema: { params: NameParams, tags: ['hosts'], summary: 'Read a host (tenant users: without its underlay address)' } }, async (req) => {
    return hostFor(principalOf(req), await c.hosts.get(req.params.name));
  });
  app.put<{ Params: { name: string }; Body: HostInput }>('/api/v1/hosts/:name', {
    schema: { params: NameParams, body: HostInput, tags: ['hosts'], summary: 'Register or refresh a host (agents)' },
  }, async (req) => {
    const p = principalOf(req);
    requireRole(p, ['admin', 'ops', 'host'], 'register hosts');
    if (req.body.name !== req.params.name) throw new WeftError('WEFT_INVALID_FIELD', `name: the body names '${req.body.name}' but the path names '${req.params.name}'`, { field: 'name' });
    return c.hosts.register(p.user, req.body);
  });
  app.patch<{ Params: { name: string }; Body: HostLabelsPatch }>('/api/v1/hosts/:name/labels', {
    schema: { params: NameParams, body: HostLabelsPatch, tags: ['hosts'], summary: "Set or remove a host's labels (admin, ops): never a host's own word, since inventories and plays follow them" },
  }, async (req) => {
    const p = principalOf(req);
    requireRole(p, ['admin', 'ops'], 'label hosts');
    return c.hosts.label(p.user, req.params.name, req.body.labels);
  });
  app.post<{ Params: { name: string } }>('/api/v1/hosts/:name/rotate-key', {
    schema: { params: NameParams, tags: ['hosts'], summary: "Rotate a host's WireGuard key (admin): its agent makes a new key pair, its peers follow the new public key" },
  }, async (req) => {
    const p = principalOf(req);
    requireRole(p, ['admin'], 'rotate host keys');
    return c.hosts.rotateKey(p.user, req.params.name);
  });
  app.get('/api/v1/global', { schema: { tags: ['global'], summary: 'Read the global settings' } }, async (req) => {
    principalOf(req);
    return c.global.get();
  });
  for (const method of ['put', 'patch'] as const) {
    app[method]<{ Body: GlobalInput }>('/api/v1/global', {
      schema: { body: method === 'put' ? GlobalInput : partialOf(GlobalInput), tags: ['global'], summary: 'Change the global settings (admin)' },
    }, async (req) => {
      const p = principalOf(req);
      requireRole(p, ['admin'], 'change global settings');
      return c.global.update(p.user, req.body, ifMatchOf(req));
    });
  }
}
