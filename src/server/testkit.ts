import type { FastifyInstance } from 'fastify';
import { Control, type QuotaLimits } from '../control/index.js';
import { MemoryStore, type Store } from '../store/index.js';
import { buildApp } from './app.js';
import type { AuditSink } from './audit-file.js';
import type { Limits } from './limits.js';

/** An in-process server on a memory store (or the store given), for API tests (no sockets). */
export interface TestApi {
  app: FastifyInstance;
  control: Control;
  token: string;
  call(method: string, url: string, body?: unknown, headers?: Record<string, string>, token?: string): Promise<{ status: number; json: any; headers: Record<string, unknown> }>;
}

export async function testApi(opts: { audit?: AuditSink; quota?: QuotaLimits; limits?: Partial<Limits>; store?: Store } = {}): Promise<TestApi> {
  const control = new Control(opts.store ?? new MemoryStore(), undefined, opts.quota ? { quota: opts.quota } : {});
  const { adminToken } = await control.bootstrap();
  const app = await buildApp({ control, logger: false, ...(opts.audit ? { audit: opts.audit } : {}), ...(opts.limits ? { limits: opts.limits } : {}) });
  const token = adminToken ?? '';
  return {
    app,
    control,
    token,
    async call(method, url, body, headers = {}, as = token) {
      const payload = typeof body === 'string' ? body : body === undefined ? undefined : JSON.stringify(body);
      const res = await app.inject({
        method: method as 'GET',
        url,
        headers: { ...(as ? { authorization: `Bearer ${as}` } : {}), ...(payload !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
        ...(payload !== undefined ? { payload } : {}),
      });
      let json: unknown;
      try {
        json = res.body ? JSON.parse(res.body) : undefined;
      } catch {
        json = res.body;
      }
      return { status: res.statusCode, json, headers: res.headers };
    },
  };
}
