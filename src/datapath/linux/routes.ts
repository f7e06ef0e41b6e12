import type { Runner } from '../../exec/index.js';
import { ROUTE_PROTO, type HostRoute } from '../routed.js';
import { ipBatchOrLookAgain } from './observe.js';

/** One route as `ip -j route show` prints it (what a comparison needs). */
interface RouteJson { type?: string; dst: string; gateway?: string; dev?: string }

/** A route's identity for comparison: its kind, destination and next hop (or device, for an on-link one). */
const keyOf = (r: { unreachable?: boolean; dst: string; via?: string; dev?: string }) =>
  `${r.unreachable ? 'unreachable' : 'unicast'} ${r.dst} ${r.via ?? `dev ${r.dev ?? ''}`}`;

/** Whether a route is IPv6 (its destination says). */
export const isRoute6 = (r: Pick<HostRoute, 'dst'>): boolean => r.dst.includes(':');

/**
 * Weft's routes (proto 87) in a namespace (undefined: the agent's own), main table: IPv4, and IPv6 too when
 * `six` (a second read, made only where IPv6 routes are or were wanted). An IPv6 unreachable route is
 * listed on `lo`: it is compared without its device.
 */
export async function observeRoutes(runner: Runner, ns: string | undefined, six = false): Promise<Map<string, RouteJson>> {
  const out = new Map<string, RouteJson>();
  for (const family of six ? ['-4', '-6'] : ['-4']) {
    const argv = ['ip', ...(ns === undefined ? [] : ['-n', ns]), family, '-j', 'route', 'show', 'table', 'main', 'proto', String(ROUTE_PROTO)];
    const res = await runner.run(argv, { allowFailure: true });
    for (const listed of JSON.parse(res.stdout || '[]') as RouteJson[]) {
      // A host route is listed without its length.
      const r = listed.dst.includes('/') ? listed : { ...listed, dst: `${listed.dst}/${family === '-6' ? 128 : 32}` };
      const un = r.type === 'unreachable';
      out.set(keyOf({ unreachable: un, dst: r.dst, ...(r.gateway ? { via: r.gateway } : { dev: un ? '' : r.dev ?? '' }) }), r);
    }
  }
  return out;
}

/**
 * The `ip -batch` lines that make Weft's routes in one namespace exactly `want`: routes of other origins
 * (the kernel's, bird's, the administrator's) are never touched, being of another protocol, nor
 * replaced by one of ours of the same prefix (its `add` fails instead). A route without a next hop is on
 * its device (`src`: the gateway a tenant's routed bridge holds).
 */
export function routeCommands(want: readonly HostRoute[], have: ReadonlyMap<string, RouteJson>): string[] {
  const wanted = new Map(want.map((r) => [keyOf(r), r]));
  const out: string[] = [];
  for (const [k, r] of have) {
    if (wanted.has(k)) continue;
    out.push(r.type === 'unreachable'
      ? `route del unreachable ${r.dst} table main proto ${ROUTE_PROTO}`
      : `route del ${r.dst} ${r.gateway ? `via ${r.gateway}` : `dev ${r.dev}`} table main proto ${ROUTE_PROTO}`);
  }
  for (const [k, r] of wanted) {
    if (have.has(k)) continue;
    // `add`, never `replace`: a route of the same prefix that is not ours (the administrator's) is left as it
    // is, and the refusal says so, rather than being taken over and later deleted as ours.
    if (r.unreachable) out.push(`route add unreachable ${r.dst} table main proto ${ROUTE_PROTO}`);
    else if (r.via) out.push(`route add ${r.dst} via ${r.via}${r.dev ? ` dev ${r.dev}` : ''} table main proto ${ROUTE_PROTO}`);
    else out.push(`route add ${r.dst} dev ${r.dev} table main proto ${ROUTE_PROTO}${isRoute6(r) ? '' : ' scope link'}${r.src ? ` src ${r.src}` : ''}`);
  }
  return out;
}

/**
 * Converges Weft's routes in a namespace; an exec per family to read them, and one to change them only if
 * needed. A line refused because someone else changed them between the look and the batch (an ADD wiring
 * a routed endpoint adds its /128 at once: "File exists") costs one more look, and what is still not as
 * wanted is done again; any other refusal, or a second one (an administrator's route of that prefix), is the error.
 */
export async function ensureRoutes(runner: Runner, ns: string | undefined, want: readonly HostRoute[], six = want.some(isRoute6)): Promise<void> {
  const look = async () => routeCommands(want, await observeRoutes(runner, ns, six));
  await ipBatchOrLookAgain(runner, ns, await look(), look);
}
