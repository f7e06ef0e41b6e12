import { NAME_PATTERN, parseDualStackRefusal } from '../model/plain.js';
import { dockerMessage, type DockerApi } from './docker-api.js';
import type { ClientRequest } from './protocol.js';

/** A refusal the client sees as Docker's own (`Error response from daemon: …`). */
export class HookRefusal extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/** Weft's names (tenants, networks, groups): DESIGN.md's, as the server checks them. */
const NAME = new RegExp(NAME_PATTERN);
const KEYS = { tenant: 'WEFT_TENANT', network: 'WEFT_NETWORK', group: 'WEFT_GROUP' } as const;
const LABELS = { tenant: 'weft.tenant', network: 'weft.network', group: 'weft.group' } as const;
type Part = keyof typeof KEYS;
export interface Target { tenant: string; network?: string; group?: string }

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The tenant, network and group a container asks for by `-e WEFT_*` or `--label weft.*`; undefined: none. */
export function targetOf(config: Record<string, unknown>): Target | undefined {
  const env = new Map<string, string>();
  const list = config['Env'];
  if (Array.isArray(list)) for (const item of list) if (typeof item === 'string' && item.startsWith('WEFT_')) {
    const at = item.indexOf('=');
    if (at > 0) env.set(item.slice(0, at), item.slice(at + 1));
  }
  const labels = isRecord(config['Labels']) ? config['Labels'] : {};
  const got: Partial<Record<Part, string>> = {};
  for (const part of Object.keys(KEYS) as Part[]) {
    const e = env.get(KEYS[part]);
    const l = labels[LABELS[part]];
    if (l !== undefined && typeof l !== 'string') throw new HookRefusal(400, `label ${LABELS[part]}: must be a string`);
    if (e !== undefined && l !== undefined && e !== l) throw new HookRefusal(400, `${KEYS[part]}=${e} and label ${LABELS[part]}=${l} disagree: give one`);
    const v = e ?? l;
    if (v === undefined) continue;
    if (!NAME.test(v)) throw new HookRefusal(400, `${KEYS[part]}: '${v.slice(0, 80)}' is not a Weft name (lower-case letters, digits and '-', at most 63)`);
    got[part] = v;
  }
  if (!got.tenant && !got.network && !got.group) return undefined;
  if (!got.network && !got.group) throw new HookRefusal(400, `${KEYS.tenant} alone does not say where the container goes: add ${KEYS.network} or ${KEYS.group}`);
  return { tenant: got.tenant ?? 'default', ...(got.network ? { network: got.network } : {}), ...(got.group ? { group: got.group } : {}) };
}

/**
 * The Docker network for a target: `weft.TENANT.NETWORK[.GROUP]` (`_` for a network left to the group).
 * Weft's names have no dots, so two targets never share a name.
 */
export function dockerNetworkName(t: Target): string {
  return ['weft', t.tenant, t.network ?? '_', ...(t.group ? [t.group] : [])].join('.');
}

/** The options Weft's Docker driver takes (`-o tenant= -o network= -o group=`). */
function optionsOf(t: Target): Record<string, string> {
  return { tenant: t.tenant, ...(t.network ? { network: t.network } : {}), ...(t.group ? { group: t.group } : {}) };
}

/**
 * The Docker network exists with Weft's driver and the target's options: made on first use (two
 * `docker run`s racing both end on the one made first); an existing network of that name made otherwise
 * is refused, never used.
 */
async function ensureNetwork(docker: DockerApi, driver: string, t: Target): Promise<string> {
  const name = dockerNetworkName(t);
  const want = optionsOf(t);
  for (let attempt = 0; attempt < 3; attempt++) {
    const got = await docker.call('GET', `/networks/${encodeURIComponent(name)}`);
    if (got.status === 200) {
      const n = got.json as { Driver?: string; Options?: Record<string, string>; IPAM?: { Driver?: string } };
      const opts = n.Options ?? {};
      const same = n.Driver === driver && n.IPAM?.Driver === driver && Object.keys(want).length === Object.keys(opts).length && Object.entries(want).every(([k, v]) => opts[k] === v);
      if (!same) throw new HookRefusal(409, `Docker network ${name} exists but is not Weft's (driver ${n.Driver}, options ${JSON.stringify(opts)}); remove it or rename it`);
      return name;
    }
    if (got.status !== 404) throw new HookRefusal(502, `Docker: looking up network ${name}: ${dockerMessage(got)}`);
    const create = (six?: { tenant: string; network: string }) => docker.call('POST', '/networks/create', {
      Name: name, Driver: driver, Options: want, CheckDuplicate: true, Labels: { 'io.weft.made-by': 'docker-proxy' },
      // A dual-stack Weft network: Docker asks the driver for the IPv6 pool too, which the options name.
      ...(six ? { EnableIPv6: true, IPAM: { Driver: driver, Options: six } } : { IPAM: { Driver: driver } }),
    });
    let made = await create();
    // Which network a target (a group alone) is on, and whether it is dual-stack, only the driver knows: it
    // refuses a Docker network without IPv6 on a dual-stack one, naming it; the proxy then makes it with IPv6.
    const dual = made.status >= 400 && made.status !== 409 ? parseDualStackRefusal(dockerMessage(made)) : undefined;
    if (dual !== undefined && dual.tenant === t.tenant) made = await create(dual);
    if (made.status === 201 || made.status === 200) return name;
    // Someone made it meanwhile: read it again.
    if (made.status !== 409) throw new HookRefusal(made.status >= 400 && made.status < 500 ? made.status : 502, `Docker: creating network ${name} (driver ${driver}): ${dockerMessage(made)}`);
  }
  throw new HookRefusal(502, `Docker network ${name} kept appearing and vanishing`);
}

/**
 * Docker's decoder (Go) takes object keys case-insensitively, the last one winning; JSON.parse does not:
 * `{"HostConfig": {...}, "hostconfig": {"NetworkMode": "host"}}` would be read one way here and another by
 * Docker. A key that differs from the canonical one only in case is refused.
 */
function refuseCaseVariants(o: Record<string, unknown>, keys: readonly string[], prefix: string): void {
  for (const k of Object.keys(o)) {
    const canonical = keys.find((c) => c.toLowerCase() === k.toLowerCase());
    if (canonical && canonical !== k) throw new HookRefusal(400, `${prefix}${k}: write it ${prefix}${canonical} (Docker would read it as that, case aside)`);
  }
}

/** The modes a `docker run` without --network sends: Docker's default network, which WEFT_* replaces. */
const DEFAULT_MODES = new Set(['', 'default', 'bridge']);

/**
 * The built-in pre-hook on `POST /containers/create`: a container that asks for Weft by WEFT_* or weft.*
 * is created on the Weft-driven Docker network of its target; any other call passes unchanged.
 */
export async function weftPreHook(req: ClientRequest, docker: DockerApi, driver: string): Promise<ClientRequest> {
  if (req.Body === null || !/\/containers\/create$/.test(req.Request.split('?')[0] ?? '')) return req;
  let config: unknown;
  try {
    config = JSON.parse(req.Body);
  } catch {
    return req; // Docker answers a body it cannot read itself.
  }
  if (!isRecord(config)) return req;
  refuseCaseVariants(config, ['HostConfig', 'NetworkingConfig', 'Env', 'Labels'], '');
  if (isRecord(config['HostConfig'])) refuseCaseVariants(config['HostConfig'], ['NetworkMode'], 'HostConfig.');
  if (isRecord(config['NetworkingConfig'])) refuseCaseVariants(config['NetworkingConfig'], ['EndpointsConfig'], 'NetworkingConfig.');
  const target = targetOf(config);
  if (!target) return req;
  const name = dockerNetworkName(target);
  const host = isRecord(config['HostConfig']) ? config['HostConfig'] : {};
  const mode = typeof host['NetworkMode'] === 'string' ? host['NetworkMode'] : '';
  if (!DEFAULT_MODES.has(mode) && mode !== name) throw new HookRefusal(400, `WEFT_* puts the container on ${name}, but --network ${mode} was given too: give one`);
  await ensureNetwork(docker, driver, target);
  config['HostConfig'] = { ...host, NetworkMode: name };
  const nc = isRecord(config['NetworkingConfig']) ? config['NetworkingConfig'] : undefined;
  const eps = nc && isRecord(nc['EndpointsConfig']) ? nc['EndpointsConfig'] : undefined;
  if (eps) {
    // --network-alias, --ip and the like were said of the default network: they now belong to Weft's.
    for (const k of Object.keys(eps)) if (k !== name && (DEFAULT_MODES.has(k) || k === mode)) {
      eps[name] = eps[k];
      delete eps[k];
    }
  }
  return { ...req, Body: JSON.stringify(config) };
}
