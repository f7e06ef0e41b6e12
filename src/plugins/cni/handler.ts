import { ERROR_CATALOGUE, isWeftError, type ErrorCode, type PortMapping } from '../../model/index.js';
import { ApiError } from '../../client/index.js';
import { CniError, formatAddResult, formatError, parseRequest, portMappingsOf, versionAnswer, type AddResultInput, type CniRequest } from './protocol.js';

export interface AddRequest {
  tenant: string;
  network: string;
  group?: string;
  containerId: string;
  containerName?: string;
  ifname: string;
  netns: string;
  ip?: string;
  mac?: string;
  labels: Record<string, string>;
  portMappings: PortMapping[];
}

export interface Scope {
  tenant: string;
  network: string;
  group?: string;
}

/** What the agent provides to the protocol layer: it makes every decision and touches the kernel. */
export interface CniHost {
  add(req: AddRequest): Promise<AddResultInput>;
  del(containerId: string, ifname: string): Promise<void>;
  check(containerId: string, ifname: string, netns: string): Promise<string | undefined>;
  gc(scope: Scope, valid: ReadonlyArray<{ containerID: string; ifname: string }>): Promise<void>;
  status(): Promise<string | undefined>;
}

export interface CniOutcome {
  code: number;
  stdout: string;
}

const json = (o: unknown) => `${JSON.stringify(o)}\n`;

/** Runs one plugin invocation: exit 0 with the result (or nothing), or exit 1 with error JSON on stdout. */
export async function handleCni(host: CniHost, env: Record<string, string>, stdin: string): Promise<CniOutcome> {
  let version = '';
  try {
    const req = parseRequest(env, stdin);
    version = req.version;
    return await dispatch(host, req);
  } catch (e) {
    return { code: 1, stdout: json(formatError(version, toCniError(e))) };
  }
}

async function dispatch(host: CniHost, req: CniRequest): Promise<CniOutcome> {
  const c = req.config;
  const scope: Scope = { tenant: c.tenant ?? 'default', network: c.network, ...(c.group ? { group: c.group } : {}) };
  switch (req.command) {
    case 'VERSION':
      return { code: 0, stdout: json(versionAnswer(req.version)) };
    case 'ADD': {
      const labels: Record<string, string> = {};
      for (const l of c.args?.cni?.labels ?? []) labels[l.key] = l.value;
      const ip = req.args['IP'] ?? c.runtimeConfig?.ips?.[0];
      const mac = req.args['MAC'] ?? c.runtimeConfig?.mac;
      const name = req.args['K8S_POD_NAME'];
      const result = await host.add({
        ...scope, containerId: req.containerId, ifname: req.ifname, netns: req.netns, labels,
        portMappings: portMappingsOf(c),
        ...(ip ? { ip: ip.split('/')[0] ?? ip } : {}),
        ...(mac ? { mac: mac.toLowerCase() } : {}),
        ...(name ? { containerName: name } : {}),
      });
      return { code: 0, stdout: json(formatAddResult(req.version, result)) };
    }
    case 'DEL':
      await host.del(req.containerId, req.ifname);
      return { code: 0, stdout: '' };
    case 'CHECK': {
      if (req.version.startsWith('0.3')) throw new CniError(1, `CHECK needs cniVersion 0.4.0 or newer (got ${req.version})`);
      const problem = await host.check(req.containerId, req.ifname, req.netns);
      if (problem) throw new CniError(100, `endpoint check failed: ${problem}`);
      return { code: 0, stdout: '' };
    }
    case 'GC': {
      const valid = (req.raw['cni.dev/valid-attachments'] ?? req.raw['cni.dev/attachments'] ?? []) as Array<{ containerID: string; ifname: string }>;
      await host.gc(scope, Array.isArray(valid) ? valid : []);
      return { code: 0, stdout: '' };
    }
    case 'STATUS': {
      const problem = await host.status();
      if (problem) throw new CniError(50, problem);
      return { code: 0, stdout: '' };
    }
  }
}

/** Maps every failure once: our catalogue's CNI code for server errors, 11 when no server answers. */
export function toCniError(e: unknown): CniError {
  if (e instanceof CniError) return e;
  if (e instanceof ApiError) {
    if (e.status === 0) return new CniError(11, 'the weft server cannot be reached; try again later', e.message);
    const entry = e.code && e.code in ERROR_CATALOGUE ? ERROR_CATALOGUE[e.code as ErrorCode] : undefined;
    return new CniError(entry?.cni ?? 999, e.message);
  }
  // The agent's own refusals (a netns that is the host's) say what is wrong, like the server's.
  if (isWeftError(e)) return new CniError(ERROR_CATALOGUE[e.code].cni ?? 999, e.message);
  return new CniError(999, 'internal error in the weft agent', (e as Error)?.message ?? String(e));
}
