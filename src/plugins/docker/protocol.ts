import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { Value, type ValueError } from '@sinclair/typebox/value';
import type { PortMapping } from '../../model/index.js';

/**
 * Docker's remote plugin protocol (libnetwork NetworkDriver + IpamDriver): HTTP POST `/<Subsystem>.<Method>`
 * with PascalCase JSON. Field names and the CIDR-versus-plain-IP conventions are Docker's: IPAM answers
 * addresses as CIDRs, Join's Gateway is a plain IP, IPv4Data's Gateway is a CIDR.
 */
const Str = Type.String();
const StrMap = Type.Record(Type.String(), Type.String());
const Id = Type.String({ pattern: '^[a-f0-9]{64}$' });

export const RequestPool = Type.Object({ AddressSpace: Str, Pool: Str, SubPool: Str, Options: Type.Union([StrMap, Type.Null()]), V6: Type.Boolean() });
export const ReleasePool = Type.Object({ PoolID: Str });
export const RequestAddress = Type.Object({ PoolID: Str, Address: Str, Options: Type.Union([StrMap, Type.Null()]) });
export const ReleaseAddress = Type.Object({ PoolID: Str, Address: Str });
const IpamData = Type.Object({ AddressSpace: Type.Optional(Str), Pool: Str, Gateway: Type.Optional(Str), AuxAddresses: Type.Optional(Type.Union([StrMap, Type.Null()])) });
export const CreateNetwork = Type.Object({
  NetworkID: Id,
  Options: Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()]),
  IPv4Data: Type.Union([Type.Array(IpamData), Type.Null()]),
  IPv6Data: Type.Union([Type.Array(IpamData), Type.Null()]),
});
export const NetworkOnly = Type.Object({ NetworkID: Id });
export const CreateEndpoint = Type.Object({
  NetworkID: Id,
  EndpointID: Id,
  Interface: Type.Union([Type.Object({ Address: Type.Optional(Str), AddressIPv6: Type.Optional(Str), MacAddress: Type.Optional(Str) }), Type.Null()]),
  Options: Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()]),
});
export const EndpointOnly = Type.Object({ NetworkID: Id, EndpointID: Id });
export const ExternalConnectivity = Type.Object({ NetworkID: Id, EndpointID: Id, Options: Type.Optional(Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()])) });
export const Join = Type.Object({ NetworkID: Id, EndpointID: Id, SandboxKey: Str, Options: Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()]) });

export type RequestPool = Static<typeof RequestPool>;
export type RequestAddress = Static<typeof RequestAddress>;
export type ReleaseAddress = Static<typeof ReleaseAddress>;
export type CreateNetwork = Static<typeof CreateNetwork>;
export type CreateEndpoint = Static<typeof CreateEndpoint>;
export type Join = Static<typeof Join>;
export type ExternalConnectivity = Static<typeof ExternalConnectivity>;

export interface JoinResult {
  InterfaceName: { SrcName: string; DstPrefix: string };
  Gateway: string;
  /** Dual stack: the IPv6 default route's next hop. */
  GatewayIPv6?: string;
  StaticRoutes: Array<{ Destination: string; RouteType: number; NextHop?: string }>;
  DisableGatewayService: boolean;
}

/** What the agent provides: every decision and every change to the kernel is its. */
export interface DockerHost {
  requestPool(r: RequestPool): Promise<{ PoolID: string; Pool: string; Data: Record<string, string> }>;
  releasePool(poolId: string): Promise<void>;
  requestAddress(r: RequestAddress): Promise<{ Address: string; Data: Record<string, string> }>;
  releaseAddress(r: ReleaseAddress): Promise<void>;
  createNetwork(r: CreateNetwork): Promise<void>;
  deleteNetwork(networkId: string): Promise<void>;
  createEndpoint(r: CreateEndpoint): Promise<{ Interface?: { MacAddress: string } }>;
  deleteEndpoint(networkId: string, endpointId: string): Promise<void>;
  join(r: Join): Promise<JoinResult>;
  leave(networkId: string, endpointId: string): Promise<void>;
  programExternalConnectivity(r: { NetworkID: string; EndpointID: string; Options: Record<string, unknown> | null }): Promise<void>;
  revokeExternalConnectivity(r: { NetworkID: string; EndpointID: string }): Promise<void>;
}

/** A request Docker sent that is malformed: HTTP 400 with `Err` naming the field. */
export class BadRequest extends Error {}

export function parse<T extends TSchema>(schema: T, body: string): Static<T> {
  let value: unknown;
  try {
    value = body.trim() === '' ? {} : JSON.parse(body);
  } catch (e) {
    throw new BadRequest(`the request body is not JSON: ${(e as Error).message}`);
  }
  const first = Value.Errors(schema, value).First();
  if (first) {
    const e = deepest(first);
    throw new BadRequest(`${e.path.replace(/^\//, '').replace(/\//g, '.') || 'body'}: ${e.message}`);
  }
  return value as Static<T>;
}

/**
 * Inside a union (most fields are `X | null`), TypeBox reports only "Expected union value" at the union;
 * the variant that got furthest into the value names the field at fault (`Options.tenant`, not `Options`),
 * and when none got into it, the message says what each variant wanted ("Expected object or null").
 */
function deepest(e: ValueError): ValueError {
  const firsts = e.errors.flatMap((variant) => variant.First() ?? []).map(deepest);
  const deeper = firsts.filter((d) => d.path.length > e.path.length).sort((x, y) => y.path.length - x.path.length)[0];
  if (deeper) return deeper;
  if (firsts.length === 0 || !firsts.every((d) => d.message.startsWith('Expected '))) return e;
  return { ...e, message: `Expected ${firsts.map((d) => d.message.slice('Expected '.length)).join(' or ')}` };
}

/** The driver options given with `docker network create -o key=value`. */
export function genericOptions(options: Record<string, unknown> | null): Record<string, string> {
  const g = options?.['com.docker.network.generic'];
  if (g === undefined || g === null) return {};
  if (typeof g !== 'object' || Array.isArray(g)) throw new BadRequest('Options.com.docker.network.generic: must be an object');
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(g as Record<string, unknown>)) {
    // `-o key=value` always gives text: anything else (null, a number) is not something a user typed.
    if (typeof v !== 'string') throw new BadRequest(`Options.com.docker.network.generic.${k}: must be a string (-o ${k}=VALUE)`);
    out[k] = v;
  }
  return out;
}

/** A published port as Docker asked for it: `family` when the binding named one family's wildcard. */
export interface DockerBinding extends PortMapping {
  /** `-p 0.0.0.0:…` (4) or `-p [::]:…` (6): that family only; absent (`-p 8080:80`): every family. */
  family?: 4 | 6;
}

const WILDCARDS: Record<string, 4 | 6 | undefined> = { '': undefined, '0.0.0.0': 4, '::': 6 };

const portOf = (v: unknown, field: string, what: string): number => {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 65535) throw new BadRequest(`${field}: ${JSON.stringify(v) ?? 'nothing'} is not a ${what} (1-65535)`);
  return v;
};

/**
 * `com.docker.network.portmap`: [{Proto: 6|17, Port, HostPort, HostPortEnd, HostIP}] → the bindings.
 * Weft publishes on every address of the host, so a binding to one address (`-p 127.0.0.1:8080:80`) is
 * refused rather than widened; a family's wildcard is kept as that family (the caller checks it against
 * the endpoint's), and the same port bound in both families is one binding.
 */
export function portMapOf(options: Record<string, unknown> | null): DockerBinding[] {
  const list = options?.['com.docker.network.portmap'];
  if (list === undefined || list === null) return [];
  const at = 'Options.com.docker.network.portmap';
  if (!Array.isArray(list)) throw new BadRequest(`${at}: must be a list of port bindings`);
  const out = new Map<string, DockerBinding>();
  for (const [i, p] of list.entries()) {
    if (typeof p !== 'object' || p === null || Array.isArray(p)) throw new BadRequest(`${at}.${i}: must be an object`);
    const m = p as Record<string, unknown>;
    const protocol = m['Proto'] === 6 ? 'tcp' : m['Proto'] === 17 ? 'udp' : undefined;
    if (!protocol) throw new BadRequest(`${at}.${i}.Proto: ${JSON.stringify(m['Proto']) ?? 'nothing'} is not tcp (6) or udp (17)`);
    if (m['HostPort'] === 0 || m['HostPort'] === undefined) throw new BadRequest(`${at}.${i}: a host port is needed (weft does not pick one)`);
    const containerPort = portOf(m['Port'], `${at}.${i}.Port`, 'container port');
    const hostPort = portOf(m['HostPort'], `${at}.${i}.HostPort`, 'host port');
    const end = m['HostPortEnd'];
    if (end !== undefined && end !== 0 && end !== hostPort) throw new BadRequest(`${at}.${i}: host port ranges are not supported`);
    const hostIp = m['HostIP'] ?? '';
    if (typeof hostIp !== 'string') throw new BadRequest(`${at}.${i}.HostIP: must be an address`);
    if (!(hostIp in WILDCARDS)) {
      throw new BadRequest(`${at}.${i}.HostIP: '${hostIp.slice(0, 64)}': weft publishes a port on every address of the host, not on one; leave the address out (-p ${hostPort}:${containerPort})`);
    }
    const family = WILDCARDS[hostIp];
    const key = `${protocol}/${hostPort}/${containerPort}`;
    const seen = out.get(key);
    // Bound in both families (or once with no family): every family.
    if (seen) { if (seen.family !== family) delete seen.family; continue; }
    out.set(key, { hostPort, containerPort, protocol, ...(family !== undefined ? { family } : {}) });
  }
  return [...out.values()];
}
