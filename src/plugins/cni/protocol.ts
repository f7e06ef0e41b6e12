import { existsSync } from 'node:fs';
import { isIP } from 'node:net';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { Name } from '../../model/index.js';

export const SUPPORTED_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;

/** A CNI error: printed as JSON on stdout with exit status 1. */
export class CniError extends Error {
  /** The request's cniVersion, once known, so the error JSON answers in it. */
  version?: string;
  constructor(readonly code: number, msg: string, readonly details?: string) {
    super(msg);
    this.name = 'CniError';
  }
}

/**
 * The plugin entry of a weft conflist, plus what runtimes inject. Unknown top-level keys are allowed:
 * runtimes pass through keys they do not know (`capabilities`, `cni.dev/...`); our own keys are strict.
 */
export const PluginConfig = Type.Object({
  cniVersion: Type.String(),
  name: Type.String({ pattern: '^[a-zA-Z0-9][a-zA-Z0-9_.-]*$' }),
  type: Type.String(),
  tenant: Type.Optional(Name),
  network: Name,
  group: Type.Optional(Name),
  agentSocket: Type.Optional(Type.String()),
  runtimeConfig: Type.Optional(Type.Object({
    portMappings: Type.Optional(Type.Array(Type.Object({
      hostPort: Type.Integer({ minimum: 1, maximum: 65535 }),
      containerPort: Type.Integer({ minimum: 1, maximum: 65535 }),
      protocol: Type.Optional(Type.String()),
      hostIP: Type.Optional(Type.String()),
    }), { maxItems: 64 })),
    ips: Type.Optional(Type.Array(Type.String())),
    mac: Type.Optional(Type.String({ pattern: '^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$' })),
  })),
  args: Type.Optional(Type.Object({
    cni: Type.Optional(Type.Object({
      labels: Type.Optional(Type.Array(Type.Object({ key: Type.String(), value: Type.String() }))),
    })),
  })),
});
export type PluginConfig = Static<typeof PluginConfig>;

export type Command = 'ADD' | 'DEL' | 'CHECK' | 'GC' | 'STATUS' | 'VERSION';
export type CniVersion = (typeof SUPPORTED_VERSIONS)[number];
const COMMANDS: readonly Command[] = ['ADD', 'DEL', 'CHECK', 'GC', 'STATUS', 'VERSION'];
/** The first spec version that has each newer command; skel refuses older configurations with code 1. */
const SINCE: Partial<Record<Command, CniVersion>> = { CHECK: '0.4.0', GC: '1.1.0', STATUS: '1.1.0' };
/**
 * The most stdin decoded: a plugin entry with a prevResult is a few KiB, and GC's list of 10,000
 * attachments about 1 MiB. Anything bigger is not a network configuration, so JSON.parse never sees it.
 */
export const MAX_STDIN_BYTES = 4 * 1024 * 1024;
/** The server keeps container ids of at most 128 characters; longer ones are refused before anything is made. */
const MAX_CONTAINER_ID = 128;

export interface Attachment {
  containerID: string;
  ifname: string;
}

export interface CniRequest {
  command: Exclude<Command, 'VERSION'>;
  containerId: string;
  netns: string;
  ifname: string;
  /** CNI_ARGS as given: only ADD reads it (`addParamsOf`), so no other command fails on it. */
  cniArgs: string;
  config: PluginConfig;
  /** The parsed stdin, for keys outside the schema. */
  raw: Record<string, unknown>;
  version: CniVersion;
  /** GC only: the attachments to keep, each checked. */
  validAttachments: Attachment[];
}

export interface VersionRequest {
  command: 'VERSION';
  /** What to echo: the configuration's cniVersion when it looks like one, else the newest. */
  version: string;
}

const CONTAINER_ID = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
// Stricter than the kernel (which takes any bytes but '/', ':' and spaces): the server's endpoint schema
// stores only these, so a name it would refuse is refused here, before the agent does any work.
const IFNAME = /^[a-zA-Z0-9_.-]{1,15}$/;

/** Echoes a value into a message, cut short: a hostile value must not make the error itself huge. */
export function shown(v: string): string {
  return v.length > 64 ? `'${v.slice(0, 64)}...' (${v.length} characters)` : `'${v}'`;
}

/** Attaches the request's version to errors found after it is known, so the error JSON answers in it. */
function inVersion<T>(version: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof CniError) e.version ??= version;
    throw e;
  }
}

/** Validates in the order libcni's skel does (environment, stdin, version, configuration). */
export function parseRequest(env: Record<string, string>, stdin: string): CniRequest | VersionRequest {
  const command = env['CNI_COMMAND'] ?? '';
  if (!(COMMANDS as readonly string[]).includes(command)) {
    throw new CniError(4, command ? `CNI_COMMAND: ${shown(command)} is not one of ${COMMANDS.join(', ')}` : `CNI_COMMAND: missing (one of ${COMMANDS.join(', ')})`);
  }
  if (command === 'VERSION') return { command, version: requestedVersion(stdin) };
  const c = command as CniRequest['command'];
  const ids = idsOf(c, env);
  const raw = decode(stdin);
  const version = versionOf(c, raw);
  return inVersion(version, () => ({
    command: c, ...ids, raw, version, config: configOf(raw, c),
    cniArgs: env['CNI_ARGS'] ?? '',
    validAttachments: c === 'GC' ? attachmentsOf(raw) : [],
  }));
}

function idsOf(command: CniRequest['command'], env: Record<string, string>): Pick<CniRequest, 'containerId' | 'ifname' | 'netns'> {
  const ids = { containerId: env['CNI_CONTAINERID'] ?? '', ifname: env['CNI_IFNAME'] ?? '', netns: env['CNI_NETNS'] ?? '' };
  if (command === 'GC' || command === 'STATUS') return ids;
  const problems: Array<[string, string | undefined]> = [
    ['CNI_CONTAINERID', containerIdProblem(ids.containerId)],
    ['CNI_IFNAME', ifnameProblem(ids.ifname)],
    // DEL works without a netns (the container may be gone); the others work inside it.
    ['CNI_NETNS', command === 'DEL' ? undefined : netnsProblem(ids.netns)],
  ];
  for (const [field, problem] of problems) if (problem) throw new CniError(4, `${field}: ${problem}`);
  return ids;
}

function containerIdProblem(id: string): string | undefined {
  if (!id) return 'missing';
  if (id.length > MAX_CONTAINER_ID) return `${id.length} characters is more than ${MAX_CONTAINER_ID}`;
  if (!CONTAINER_ID.test(id)) return `${shown(id)} must start with a letter or digit and hold only [a-zA-Z0-9_.-]`;
  return undefined;
}

function ifnameProblem(name: string): string | undefined {
  if (!name) return 'missing';
  if (!IFNAME.test(name) || name === '.' || name === '..') return `${shown(name)} is not a valid interface name (1-15 of [a-zA-Z0-9_.-], not . or ..)`;
  return undefined;
}

function netnsProblem(path: string): string | undefined {
  if (!path) return 'missing';
  // A relative path would be resolved against the agent's working directory, not the runtime's.
  if (!path.startsWith('/') || path.includes('\0')) return `${shown(path)} is not an absolute path`;
  if (path.length > 4096) return `${path.length} characters is more than 4096`;
  if (!existsSync(path)) return `${shown(path)} does not exist`;
  return undefined;
}

function decode(stdin: string): Record<string, unknown> {
  const bytes = Buffer.byteLength(stdin);
  if (bytes > MAX_STDIN_BYTES) throw new CniError(7, `stdin: ${bytes} bytes is more than the ${MAX_STDIN_BYTES} a network configuration may have`);
  try {
    const raw: unknown = JSON.parse(stdin);
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error(`${Array.isArray(raw) ? 'an array' : raw === null ? 'null' : typeof raw}, not a JSON object`);
    return raw as Record<string, unknown>;
  } catch (e) {
    throw new CniError(6, 'stdin: failed to decode the network configuration', (e as Error).message);
  }
}

const isSupported = (v: string): v is CniVersion => (SUPPORTED_VERSIONS as readonly string[]).includes(v);
const atLeast = (v: CniVersion, min: CniVersion) => SUPPORTED_VERSIONS.indexOf(v) >= SUPPORTED_VERSIONS.indexOf(min);

function versionOf(command: CniRequest['command'], raw: Record<string, unknown>): CniVersion {
  const v = raw['cniVersion'];
  const supported = `supported: ${SUPPORTED_VERSIONS.join(', ')}`;
  // skel reads a missing cniVersion as 0.1.0, which is incompatible: code 1, like an old version.
  if (v === undefined) throw new CniError(1, `cniVersion: missing (${supported})`);
  if (typeof v !== 'string') throw new CniError(7, `cniVersion: must be a string, not ${JSON.stringify(v).slice(0, 64)}`);
  if (!isSupported(v)) throw new CniError(1, `cniVersion: ${shown(v)} is not supported (${supported})`);
  const since = SINCE[command];
  if (since && !atLeast(v, since)) throw Object.assign(new CniError(1, `cniVersion: ${v} does not allow ${command} (it needs ${since} or newer)`), { version: v });
  return v;
}

/** VERSION never fails on stdin (skel does not even read it); it echoes a cniVersion that looks like one. */
function requestedVersion(stdin: string): string {
  if (Buffer.byteLength(stdin) > MAX_STDIN_BYTES) return '1.1.0';
  try {
    const v = (JSON.parse(stdin) as { cniVersion?: unknown } | null)?.cniVersion;
    return typeof v === 'string' && /^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$/.test(v) ? v : '1.1.0';
  } catch {
    return '1.1.0';
  }
}

function configOf(raw: Record<string, unknown>, command: CniRequest['command']): PluginConfig {
  const first = Value.Errors(PluginConfig, raw).First();
  if (first) throw new CniError(7, `invalid network configuration: ${fieldOf(first.path)}: ${first.message}`);
  if (command === 'CHECK' && raw['prevResult'] !== undefined) checkPrevResult(raw['prevResult']);
  return raw as PluginConfig;
}

const fieldOf = (path: string) => path.replace(/^\//, '').replace(/\//g, '.') || 'config';

/**
 * GC releases every attachment of the network that is not listed, so a missing or malformed list is an
 * error, never "keep nothing". libcni sends the list under both keys (the spec first misnamed it
 * cni.dev/attachments) and encodes an empty Go slice as null, which is the one empty form taken.
 */
function attachmentsOf(raw: Record<string, unknown>): Attachment[] {
  const key = 'cni.dev/valid-attachments' in raw ? 'cni.dev/valid-attachments' : 'cni.dev/attachments';
  if (!(key in raw)) throw new CniError(7, 'cni.dev/valid-attachments: missing (GC keeps only the attachments listed, so it needs the list)');
  const list = raw[key];
  if (list === null) return [];
  if (!Array.isArray(list)) throw new CniError(7, `${key}: must be an array of {containerID, ifname}, not ${typeof list}`);
  return list.map((a: unknown, i) => {
    const at = `${key}.${i}`;
    if (typeof a !== 'object' || a === null || Array.isArray(a)) throw new CniError(7, `${at}: must be an object {containerID, ifname}`);
    const { containerID, ifname } = a as Record<string, unknown>;
    const problems: Array<[string, string | undefined]> = [
      ['containerID', typeof containerID === 'string' ? containerIdProblem(containerID) : 'missing or not a string'],
      ['ifname', typeof ifname === 'string' ? ifnameProblem(ifname) : 'missing or not a string'],
    ];
    for (const [field, problem] of problems) if (problem) throw new CniError(7, `${at}.${field}: ${problem}`);
    return { containerID: containerID as string, ifname: ifname as string };
  });
}

/** The result a runtime hands back on CHECK; only its shape is checked (the agent checks the endpoint itself). */
const PrevResult = Type.Object({
  cniVersion: Type.Optional(Type.String()),
  interfaces: Type.Optional(Type.Array(Type.Object({ name: Type.String(), mac: Type.Optional(Type.String()), sandbox: Type.Optional(Type.String()) }))),
  ips: Type.Optional(Type.Array(Type.Object({ address: Type.String(), gateway: Type.Optional(Type.String()), interface: Type.Optional(Type.Integer({ minimum: 0 })) }))),
  routes: Type.Optional(Type.Array(Type.Object({ dst: Type.String(), gw: Type.Optional(Type.String()) }))),
  dns: Type.Optional(Type.Object({})),
});

function checkPrevResult(prev: unknown): void {
  const first = Value.Errors(PrevResult, prev).First();
  if (first) throw new CniError(7, `invalid network configuration: prevResult${first.path.replace(/\//g, '.')}: ${first.message}`);
  (prev as Static<typeof PrevResult>).ips?.forEach((ip, i) => {
    const [addr = '', len, ...more] = ip.address.split('/');
    const max = isIP(addr) === 4 ? 32 : 128;
    // Node's isIP takes an IPv6 zone (fe80::1%eth0); no runtime's result has one.
    if (!isIP(addr) || addr.includes('%') || len === undefined || more.length || !/^[0-9]{1,3}$/.test(len) || Number(len) > max) {
      throw new CniError(7, `invalid network configuration: prevResult.ips.${i}.address: ${shown(ip.address)} is not an address in CIDR notation`);
    }
  });
}

/**
 * CHECK: the addresses prevResult gives this interface (an entry whose `interface` names another one, a
 * chained plugin's, is not ours to check). Called after checkPrevResult, on a shape already checked.
 */
export function expectedAddresses(raw: Record<string, unknown>, ifname: string): string[] {
  const prev = raw['prevResult'] as Static<typeof PrevResult> | undefined;
  return (prev?.ips ?? []).filter((ip) => ip.interface === undefined || prev?.interfaces?.[ip.interface]?.name === ifname).map((ip) => ip.address);
}

/** Why an endpoint does not hold the addresses CHECK expects (CIDR text, either family), or undefined. */
export function addressMismatch(expected: readonly string[], ep: { ip?: string | undefined; prefixLength?: number | undefined; ip6?: string | undefined; prefixLength6?: number | undefined }): string | undefined {
  const held = [
    ...(ep.ip !== undefined ? [`${ep.ip}/${ep.prefixLength}`] : []),
    ...(ep.ip6 !== undefined ? [`${normal6(ep.ip6)}/${ep.prefixLength6}`] : []),
  ];
  for (const cidr of expected) {
    const [addr = '', len] = cidr.split('/');
    const want = `${isIP(addr) === 6 ? normal6(addr) : addr}/${Number(len)}`;
    if (!held.includes(want)) return `prevResult lists ${shown(cidr)}, which is not this interface's address (${held.join(', ') || 'none'})`;
  }
  return undefined;
}

/** An IPv6 address in one spelling (Node's URL parser writes RFC 5952's). */
const normal6 = (a: string) => new URL(`http://[${a}]/`).hostname.slice(1, -1);

export interface AddResultInput {
  hostVeth: string;
  ifname: string;
  mac: string;
  mtu: number;
  netns: string;
  /** Its IPv4 address, prefix length and gateway: absent on an IPv6-only network. */
  ip?: string;
  prefixLength?: number;
  gateway?: string;
  /** A network's IPv6 address, its prefix length and gateway (dual stack, or IPv6 only). */
  ip6?: string;
  prefixLength6?: number;
  gateway6?: string;
  /** The resolver the container should use (the agent answers at the gateway) and its search domains. */
  dns?: { nameservers: string[]; search: string[] };
}

/** The ADD result in the shape of the request's cniVersion (0.3.x/0.4.0 carry `version` on each ip). */
export function formatAddResult(version: string, r: AddResultInput): Record<string, unknown> {
  const old = version.startsWith('0.');
  return {
    cniVersion: version,
    interfaces: [
      { name: r.hostVeth },
      { name: r.ifname, mac: r.mac, ...(old ? {} : { mtu: r.mtu }), sandbox: r.netns },
    ],
    ips: [
      ...(r.ip !== undefined ? [{ ...(old ? { version: '4' } : {}), address: `${r.ip}/${r.prefixLength}`, gateway: r.gateway, interface: 1 }] : []),
      ...(r.ip6 !== undefined ? [{ ...(old ? { version: '6' } : {}), address: `${r.ip6}/${r.prefixLength6}`, gateway: r.gateway6, interface: 1 }] : []),
    ],
    routes: [...(r.ip !== undefined ? [{ dst: '0.0.0.0/0', gw: r.gateway }] : []), ...(r.ip6 !== undefined ? [{ dst: '::/0', gw: r.gateway6 }] : [])],
    dns: r.dns ?? {},
  };
}

export function formatError(version: string, e: CniError): Record<string, unknown> {
  return { cniVersion: e.version ?? (version || '1.1.0'), code: e.code, msg: e.message, ...(e.details ? { details: e.details } : {}) };
}

export function versionAnswer(requested: string): Record<string, unknown> {
  return { cniVersion: requested || '1.1.0', supportedVersions: [...SUPPORTED_VERSIONS] };
}
