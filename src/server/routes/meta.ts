import type { FastifyInstance } from 'fastify';
import { ERROR_CATALOGUE } from '../../model/index.js';
import type { AuditSink } from '../audit-file.js';
import { requireRole } from '../../control/index.js';
import { principalOf } from '../context.js';

/**
 * /healthz answers 200 whenever the server serves: reads still work while the store cannot write, and
 * every server of a cluster shares the store, so taking them out of a load balancer would stop reads
 * too. `status` says `degraded` and `store`/`audit` say what cannot be written. It is public: no path,
 * no etcd address, only the error code and its title (the refused writes themselves say where).
 */
export function metaRoutes(app: FastifyInstance, audit?: AuditSink): void {
  app.get('/healthz', { schema: { tags: ['meta'], summary: 'Liveness, the store revision, and whether the store and the audit log can be written' } }, async () => {
    const h = await app.control.writable.health();
    const store = h.writable || !h.error ? { writable: true } : { writable: false, code: h.error.code, title: ERROR_CATALOGUE[h.error.code].title };
    const log = audit?.health?.() ?? { writable: true, lost: 0 };
    return { status: store.writable && log.writable ? 'ok' : 'degraded', revision: await app.control.store.revision(), store, audit: log };
  });
  app.get('/metrics', { schema: { tags: ['meta'], summary: 'Prometheus metrics (an admin or ops token: they count every tenant\'s requests)' } }, async (req, reply) => {
    requireRole(principalOf(req), ['admin', 'ops'], 'read the server\'s metrics');
    app.metrics.revision.set(await app.control.store.revision());
    return reply.type(app.metrics.registry.contentType).send(await app.metrics.registry.metrics());
  });
  app.get('/api/v1/openapi.json', { schema: { tags: ['meta'], summary: 'This API, described as OpenAPI 3' } }, async () => app.swagger());
}
