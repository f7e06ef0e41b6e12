import type { FastifyInstance } from 'fastify';
import { Control, type QuotaLimits } from '../control/index.js';
import { MemoryStore, type Store } from '../store/index.js';
import { buildApp, type AppOptions } from './app.js';
import type { AuditSink } from './audit-file.js';
import type { Limits } from './limits.js';

/** An in-process server on a memory store (or the store given), for API tests (no sockets). */
export interface TestApi {
  app: FastifyInstance;
  control: Control;
  token: string;
  call(method: string, url: string, body?: unknown, headers?: Record<string, string>, token?: string): Promise<{ status: number; json: any; headers: Record<string, unknown> }>;
}

export async function testApi(opts: { audit?: AuditSink; quota?: QuotaLimits; limits?: Partial<Limits>; store?: Store; validators?: AppOptions['validators'] } = {}): Promise<TestApi> {
  const control = new Control(opts.store ?? new MemoryStore(), undefined, opts.quota ? { quota: opts.quota } : {});
  const { adminToken } = await control.bootstrap();
  const app = await buildApp({ control, logger: false, ...(opts.audit ? { audit: opts.audit } : {}), ...(opts.limits ? { limits: opts.limits } : {}), ...(opts.validators ? { validators: opts.validators } : {}) });
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

/**
 * Tenant `default`'s network `net` (10.8.0.0/16) and group `db` of `n` endpoints on h1, each let in by a
 * rule naming its own address on a port of its own and let out to it by another, and `sources` more
 * addresses of no endpoint named both ways too: each address tells sources apart and destinations apart,
 * the shape whose pairs grow as endpoints squared (policy/budget.ts; named one way only, they would be
 * linear: policy/roles.ts).
 */
export async function perEndpointTenant(api: TestApi, n: number, sources = 0): Promise<void> {
  const ok = (r: { status: number; json: unknown }, status: number) => { if (r.status !== status) throw new Error(`${r.status} ${JSON.stringify(r.json)}`); return r; };
  ok(await api.call('POST', '/api/v1/tenants/default/networks', { name: 'net', subnet: '10.8.0.0/16' }), 201);
  ok(await api.call('POST', '/api/v1/tenants/default/groups', { name: 'db', network: 'net' }), 201);
  const cidrs: string[] = [];
  for (let i = 0; i < n; i++) {
    const r = ok(await api.call('POST', '/api/v1/endpoints', { tenant: 'default', network: 'net', group: 'db', containerId: `c${i}`, host: 'h1', ifname: 'eth0' }), 201);
    cidrs.push(`${(r.json as { ip: string }).ip}/32`);
  }
  for (let i = 0; i < sources; i++) cidrs.push(`172.20.${i >> 8}.${i & 255}/32`);
  const rules = cidrs.flatMap((cidr, i) => [{ id: `r${i}`, direction: 'in', action: 'allow', protocol: 'tcp', ports: String(20000 + i), fromCidr: cidr },
    { id: `o${i}`, direction: 'out', action: 'allow', protocol: 'tcp', ports: String(20000 + i), toCidr: cidr }]);
  ok(await api.call('POST', '/api/v1/tenants/default/policies', { name: 'each', rules }), 201);
  ok(await api.call('PUT', '/api/v1/tenants/default/groups/db', { name: 'db', network: 'net', policies: ['each'] }), 200);
}
