import { ERROR_CATALOGUE, isWeftError, type ErrorCode, type PortMapping } from '../../model/index.js';
import { ApiError } from '../../client/index.js';
import { CniError, expectedAddresses, formatAddResult, formatError, parseRequest, versionAnswer, type AddResultInput, type Attachment, type CniRequest } from './protocol.js';
import { addParamsOf } from './add.js';

export interface AddRequest {
  tenant: string;
  network: string;
  group?: string;
  /** The CNI network (conflist name) the runtime called; none for `weft attach`. */
  cniNetwork?: string;
  containerId: string;
  containerName?: string;
  ifname: string;
  netns: string;
  ip?: string;
  /** A requested IPv6 address (dual-stack networks). */
  ip6?: string;
  mac?: string;
  labels: Record<string, string>;
  portMappings: PortMapping[];
  /** Not from a runtime: `weft attach` (the agent's own verb) adds an interface to a running container. */
  attached?: { defaultRoute: boolean };
}

export interface Scope {
  tenant: string;
  network: string;
  group?: string;
  /** The CNI network's name (the conflist's `name`): two conflists may name one Weft scope. */
  cniNetwork: string;
}

/** What the agent provides to the protocol layer: it makes every decision and touches the kernel. */
export interface CniHost {
  add(req: AddRequest): Promise<AddResultInput>;
  del(containerId: string, ifname: string): Promise<void>;
  /** A problem with the attachment, or undefined; `expected`: the addresses prevResult gives it (CIDR text). */
  check(containerId: string, ifname: string, netns: string, expected: readonly string[]): Promise<string | undefined>;
  gc(scope: Scope, valid: ReadonlyArray<Attachment>): Promise<void>;
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
    if (req.command === 'VERSION') return { code: 0, stdout: json(versionAnswer(req.version)) };
    version = req.version;
    return await dispatch(host, req);
  } catch (e) {
    return { code: 1, stdout: json(formatError(version, toCniError(e))) };
  }
}

async function dispatch(host: CniHost, req: CniRequest): Promise<CniOutcome> {
  const c = req.config;
  const scope: Scope = { tenant: c.tenant ?? 'default', network: c.network, ...(c.group ? { group: c.group } : {}), cniNetwork: c.name };
  switch (req.command) {
    case 'ADD': {
      const params = addParamsOf(req);
      const result = await host.add({ ...scope, containerId: req.containerId, ifname: req.ifname, netns: req.netns, ...params });
      return { code: 0, stdout: json(formatAddResult(req.version, result)) };
    }
    case 'DEL':
      await host.del(req.containerId, req.ifname);
      return { code: 0, stdout: '' };
    case 'CHECK': {
      const problem = await host.check(req.containerId, req.ifname, req.netns, expectedAddresses(req.raw, req.ifname));
      if (problem) throw new CniError(100, `endpoint check failed: ${problem}`);
      return { code: 0, stdout: '' };
    }
    case 'GC':
      await host.gc(scope, req.validAttachments);
      return { code: 0, stdout: '' };
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
    return new CniError(e.code && Object.hasOwn(ERROR_CATALOGUE, e.code) ? ERROR_CATALOGUE[e.code as ErrorCode].cni : 999, e.message);
  }
  // The agent's own checks raise catalogue errors too; they keep their code rather than become "internal".
  if (isWeftError(e)) return new CniError(ERROR_CATALOGUE[e.code].cni, e.message);
  // Only the message: a stack trace would tell a runtime (and its logs) about the agent's insides.
  return new CniError(999, 'internal error in the weft agent', e instanceof Error ? e.message : String(e));
}
