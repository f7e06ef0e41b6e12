import type { FastifyRequest } from 'fastify';
import { WeftError } from '../model/index.js';
import type { Control, Principal } from '../control/index.js';
import { routeOf } from './context.js';

/**
 * What a host certificate may do (Kubernetes' NodeRestriction, for Weft): read the desired state its agent
 * needs, register and heartbeat itself, renew its own certificate, report its own flow records, and
 * create, change and delete endpoints and Docker network mappings on itself. Everything else is refused, naming this rule.
 */
export const HOST_RULE = 'a host certificate may only read the desired state, register itself, renew its own certificate, report its own flow records, and manage endpoints and Docker network mappings on itself';

const READS = new Set([
  '/api/v1/whoami', '/api/v1/tenants', '/api/v1/tenants/:tenant', '/api/v1/endpoints', '/api/v1/endpoints/:id',
  '/api/v1/hosts', '/api/v1/hosts/:name', '/api/v1/global', '/api/v1/watch',
  ...['networks', 'groups', 'policies', 'services', 'netprofiles', 'docker-networks'].flatMap((c) => [`/api/v1/tenants/:tenant/${c}`, `/api/v1/tenants/:tenant/${c}/:name`]),
  ...['networkpolicies', 'namespaces', 'adminnetworkpolicies', 'baselineadminnetworkpolicies'].map((c) => `/api/v1/tenants/:tenant/${c}`),
]);

type Req = FastifyRequest<{ Params: Record<string, string>; Body: Record<string, unknown> }>;
/** Each allowed write, and whether this request stays on the caller's own host (a reason when not). */
type Check = (req: Req, host: string, c: Control) => Promise<string | undefined>;

const itself = (name: unknown, host: string, what: string) => (name === host ? undefined : `${what} is ${String(name)}, not ${host}`);

const endpointOnSelf: Check = async (req, host, c) => {
  const ep = await c.endpoints.get(req.params['id'] ?? '').catch(() => undefined);
  return ep === undefined ? undefined : itself(ep.host, host, `the host of endpoint ${ep.id}`);
};

const WRITES: Record<string, Check> = {
  'PUT /api/v1/hosts/:name': async (req, host) => itself(req.params['name'], host, 'the host named'),
  'POST /api/v1/hosts/:name/certificate': async (req, host) => itself(req.params['name'], host, 'the host named'),
  'POST /api/v1/hosts/:name/flows': async (req, host) => itself(req.params['name'], host, 'the host named'),
  'POST /api/v1/endpoints': async (req, host) => itself(req.body['host'], host, 'the endpoint\'s host'),
  'PATCH /api/v1/endpoints/:id': endpointOnSelf,
  'DELETE /api/v1/endpoints/:id': endpointOnSelf,
  'POST /api/v1/tenants/:tenant/docker-networks': async (req, host) => itself(req.body['host'], host, 'the mapping\'s host'),
  'PUT /api/v1/tenants/:tenant/verify/:id/reports/:host': async (req, host) => itself(req.params['host'], host, 'the report\'s host'),
  'DELETE /api/v1/tenants/:tenant/docker-networks/:name': async (req, host, c) => {
    const m = await c.dockerNetworks.get(req.params['tenant'] ?? '', req.params['name'] ?? '').catch(() => undefined);
    return m === undefined ? undefined : itself(m.host, host, 'the mapping\'s host');
  },
};

/** Throws 403 naming the rule unless a host principal's request is one its rule allows. */
export async function checkHost(control: Control, p: Principal, req: FastifyRequest): Promise<void> {
  if (p.role !== 'host' || p.host === undefined) return;
  const route = routeOf(req) ?? '';
  if ((req.method === 'GET' || req.method === 'HEAD') && READS.has(route)) return;
  const check = WRITES[`${req.method} ${route}`];
  const why = check ? await check(req as Req, p.host, control) : `${req.method} ${route || req.url.split('?')[0]} is not among them`;
  if (why !== undefined) throw refused(p, why);
}

const refused = (p: Principal, why: string) => new WeftError('WEFT_FORBIDDEN', `${p.user} may not do this: ${HOST_RULE} (${why})`);

/**
 * The same rule, checked again inside the write's own transaction on what it read: checkHost reads the
 * object before, and one missing then (an endpoint id is its container's: made again on another host a
 * moment later) would otherwise be changed or deleted for another host.
 */
export function requireOnHost(p: Principal, host: unknown, what: string): void {
  if (p.role !== 'host' || p.host === undefined) return;
  const why = itself(host, p.host, what);
  if (why !== undefined) throw refused(p, why);
}
