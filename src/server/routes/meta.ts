import type { FastifyInstance } from 'fastify';

export function metaRoutes(app: FastifyInstance): void {
  app.get('/healthz', { schema: { tags: ['meta'], summary: 'Liveness and the store revision' } }, async () => ({
    status: 'ok',
    revision: await app.control.store.revision(),
  }));
  app.get('/metrics', { schema: { tags: ['meta'], summary: 'Prometheus metrics' } }, async (_req, reply) => {
    app.metrics.revision.set(await app.control.store.revision());
    return reply.type(app.metrics.registry.contentType).send(await app.metrics.registry.metrics());
  });
  app.get('/api/v1/openapi.json', { schema: { tags: ['meta'], summary: 'This API, described as OpenAPI 3' } }, async () => app.swagger());
}
