import { existsSync } from 'node:fs';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { Name, PortMapping } from '../../model/index.js';

export const SUPPORTED_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;

/** A CNI error: printed as JSON on stdout with exit status 1. */
export class CniError extends Error {
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
    }))),
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

export interface CniRequest {
  command: Command;
  containerId: string;
  netns: string;
  ifname: string;
  args: Record<string, string>;
  config: PluginConfig;
  /** The parsed stdin, for keys outside the schema (GC's valid-attachments). */
  raw: Record<string, unknown>;
  version: string;
}

const CONTAINER_ID = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/** Validates in the order libcni's skel does, so each mistake gets the code a runtime expects. */
export function parseRequest(env: Record<string, string>, stdin: string): CniRequest {
  const command = env['CNI_COMMAND'] ?? '';
  if (!['ADD', 'DEL', 'CHECK', 'GC', 'STATUS', 'VERSION'].includes(command)) {
    throw new CniError(4, `CNI_COMMAND: '${command}' is not one of ADD, DEL, CHECK, GC, STATUS, VERSION`);
  }
  const perContainer = command === 'ADD' || command === 'DEL' || command === 'CHECK';
  const containerId = env['CNI_CONTAINERID'] ?? '';
  const ifname = env['CNI_IFNAME'] ?? '';
  const netns = env['CNI_NETNS'] ?? '';
  if (perContainer) {
    if (!containerId) throw new CniError(4, 'CNI_CONTAINERID: missing');
    if (!CONTAINER_ID.test(containerId)) throw new CniError(4, `CNI_CONTAINERID: '${containerId}' has characters outside [a-zA-Z0-9_.-]`);
    if (!ifname) throw new CniError(4, 'CNI_IFNAME: missing');
    if (Buffer.byteLength(ifname) > 15 || ifname === '.' || ifname === '..' || /[/:\s]/.test(ifname)) {
      throw new CniError(4, `CNI_IFNAME: '${ifname}' is not a valid interface name (at most 15 bytes, no '/', ':' or spaces)`);
    }
    if (command !== 'DEL') {
      if (!netns) throw new CniError(4, 'CNI_NETNS: missing');
      if (!existsSync(netns)) throw new CniError(4, `CNI_NETNS: ${netns} does not exist`);
    }
  }
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(stdin) as Record<string, unknown>;
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error('not a JSON object');
  } catch (e) {
    throw new CniError(6, 'failed to decode the network configuration on stdin', (e as Error).message);
  }
  const version = typeof raw['cniVersion'] === 'string' ? raw['cniVersion'] : '';
  if (command !== 'VERSION' && !(SUPPORTED_VERSIONS as readonly string[]).includes(version)) {
    throw new CniError(1, `cniVersion '${version}' is not supported (supported: ${SUPPORTED_VERSIONS.join(', ')})`);
  }
  if (command === 'VERSION') return { command, containerId, netns, ifname, args: {}, config: raw as PluginConfig, raw, version };
  const first = Value.Errors(PluginConfig, raw).First();
  if (first) {
    const field = first.path.replace(/^\//, '').replace(/\//g, '.') || 'config';
    throw new CniError(7, `invalid network configuration: ${field}: ${first.message}`);
  }
  return { command: command as Command, containerId, netns, ifname, args: parseArgs(env['CNI_ARGS'] ?? ''), config: raw as PluginConfig, raw, version };
}

/** `K1=V1;K2=V2`, as libcni's LoadArgs splits it (values cannot contain `=`). */
export function parseArgs(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of text.split(';')) {
    if (!pair) continue;
    const parts = pair.split('=');
    if (parts.length !== 2 || !parts[0]) throw new CniError(4, `CNI_ARGS: '${pair}' is not KEY=VALUE`);
    out[parts[0]] = parts[1] ?? '';
  }
  return out;
}

export function portMappingsOf(c: PluginConfig): PortMapping[] {
  return (c.runtimeConfig?.portMappings ?? []).map((p, i) => {
    const protocol = (p.protocol ?? 'tcp').toLowerCase();
    if (protocol !== 'tcp' && protocol !== 'udp') throw new CniError(2, `runtimeConfig.portMappings.${i}.protocol: '${p.protocol}' is not supported (tcp, udp)`);
    return { hostPort: p.hostPort, containerPort: p.containerPort, protocol };
  });
}

export interface AddResultInput {
  hostVeth: string;
  ifname: string;
  mac: string;
  mtu: number;
  netns: string;
  ip: string;
  prefixLength: number;
  gateway: string;
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
    ips: [{ ...(old ? { version: '4' } : {}), address: `${r.ip}/${r.prefixLength}`, gateway: r.gateway, interface: 1 }],
    routes: [{ dst: '0.0.0.0/0', gw: r.gateway }],
    dns: r.dns ?? {},
  };
}

export function formatError(version: string, e: CniError): Record<string, unknown> {
  return { cniVersion: version || '1.1.0', code: e.code, msg: e.message, ...(e.details ? { details: e.details } : {}) };
}

export function versionAnswer(requested: string): Record<string, unknown> {
  return { cniVersion: requested || '1.1.0', supportedVersions: [...SUPPORTED_VERSIONS] };
}
