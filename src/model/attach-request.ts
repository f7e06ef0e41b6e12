import { WeftError } from './errors.js';
import { parseIp } from './ipv4.js';
import { NAME_PATTERN } from './objects.js';

/**
 * `weft attach` and `weft detach` as they cross the agent's socket (root only): the CLI resolves a
 * container or namespace to a namespace path and an id, the agent checks everything again here and does
 * the rest. No TypeBox: the CLI's bundle must stay light (cli/README.md).
 */
export interface AttachRequest {
  tenant: string;
  network: string;
  group?: string;
  /** The target's network namespace: a bind-mounted file (/run/netns/NAME, a runtime's sandbox key). */
  netns: string;
  /** The endpoint's container id: the container's own, or `netns-INODE` for a bare namespace. */
  containerId: string;
  /** Its DNS name in the tenant: the container's or namespace's name. */
  name?: string;
  ip?: string;
  mac?: string;
  /** The interface in the target; the agent picks the first free eth1, eth2, ... when absent. */
  ifname?: string;
  /** Whether the interface takes the target's default route (default: false, its subnet only). */
  defaultRoute?: boolean;
  labels?: Record<string, string>;
}

export interface DetachRequest {
  tenant: string;
  network: string;
  /** The target's id; or, when the target is gone or unknown to the CLI, `endpoint` names the interface. */
  containerId?: string;
  /** One attached endpoint by its id (`weft endpoint ls`), whatever its container. */
  endpoint?: string;
  /** Only this interface; all of the target's attached interfaces on the network when absent. */
  ifname?: string;
}

/** What the agent answers an attach with. */
export interface AttachAnswer {
  endpoint: string;
  ifname: string;
  /** Its IPv4 address, prefix length and gateway: absent on an IPv6-only network. */
  ip?: string;
  prefixLength?: number;
  gateway?: string;
  /** On a network with a subnet6: the IPv6 address, its prefix length and gateway. */
  ip6?: string;
  prefixLength6?: number;
  gateway6?: string;
  mac: string;
  /** The tenant's DNS server (the network's gateway) and search domain, when the host serves DNS. */
  dns?: { nameservers: string[]; search: string[] };
}

// The same rules as the API's (model/schemas.ts), restated here without TypeBox.
const NAME = new RegExp(NAME_PATTERN);
const CONTAINER_ID = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/;
const CONTAINER_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
const IFNAME = /^[A-Za-z0-9_.-]{1,15}$/;
const MAC = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;
const LABEL_KEY = /^[A-Za-z0-9]([A-Za-z0-9._/_-]{0,62})$/;
const LABEL_VALUE = /^[A-Za-z0-9._-]{0,63}$/;
/** Interface names the kernel or the runtimes own in a namespace. */
const RESERVED_IFNAMES = new Set(['lo', '.', '..']);

const bad = (field: string, why: string) => new WeftError('WEFT_INVALID_FIELD', `${field}: ${why}`, { field });
const shown = (v: unknown) => JSON.stringify(v)?.slice(0, 80) ?? String(v);

type Rule = (v: unknown, field: string) => void;
const str = (re: RegExp, what: string): Rule => (v, field) => {
  if (typeof v !== 'string' || !re.test(v)) throw bad(field, `${shown(v)} is not ${what}`);
};
const RULES: Record<string, Rule> = {
  tenant: str(NAME, 'a name (a DNS label: a-z, 0-9 and inner -, at most 63)'),
  network: str(NAME, 'a name (a DNS label: a-z, 0-9 and inner -, at most 63)'),
  group: str(NAME, 'a name (a DNS label: a-z, 0-9 and inner -, at most 63)'),
  containerId: str(CONTAINER_ID, 'a container id (1-128 of [A-Za-z0-9_.:-])'),
  endpoint: str(/^[0-9a-f]{16}$/, 'an endpoint id (16 hex digits, as `weft endpoint ls` shows)'),
  name: str(CONTAINER_NAME, 'a container name (1-128 of [A-Za-z0-9_.-], starting with a letter or digit)'),
  ifname: (v, field) => {
    str(IFNAME, 'an interface name (1-15 of [A-Za-z0-9_.-])')(v, field);
    if (RESERVED_IFNAMES.has(v as string)) throw bad(field, `${shown(v)} cannot be attached`);
  },
  ip: (v, field) => {
    if (typeof v !== 'string' || parseIp(v) === undefined) throw bad(field, `${shown(v)} is not an IPv4 address`);
  },
  mac: (v, field) => {
    if (typeof v !== 'string' || !MAC.test(v)) throw bad(field, `${shown(v)} is not a MAC address (xx:xx:xx:xx:xx:xx)`);
    if (/^00(:00){5}$/.test(v)) throw bad(field, 'is all zeros');
    if (parseInt(v.slice(0, 2), 16) & 1) throw bad(field, `${v} is a multicast address`);
  },
  defaultRoute: (v, field) => {
    if (typeof v !== 'boolean') throw bad(field, `${shown(v)} is not true or false`);
  },
  netns: (v, field) => {
    if (typeof v !== 'string' || !v.startsWith('/') || v.length > 4096 || v.includes('\0')) throw bad(field, `${shown(v)} is not an absolute path`);
    if (v.split('/').includes('..')) throw bad(field, `${shown(v)} holds "..": give the namespace's own path`);
    // /proc/PID/ns/net names a process, not a namespace: when it ends, its number comes back for another
    // process, and a later repair would wire that one. A bind mount lives exactly as long as the namespace.
    if (/^\/proc\//.test(v)) throw bad(field, `${v} dies with its process and its number is reused; pin the namespace first (ip netns attach NAME PID) and give /run/netns/NAME`);
  },
  labels: (v, field) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad(field, 'is not an object of labels');
    const entries = Object.entries(v);
    if (entries.length > 64) throw bad(field, `holds ${entries.length} labels (at most 64)`);
    for (const [k, x] of entries) {
      if (!LABEL_KEY.test(k)) throw bad(`${field}.${k}`, 'is not a label key (1-63 of [A-Za-z0-9._/-], starting with a letter or digit)');
      if (typeof x !== 'string' || !LABEL_VALUE.test(x)) throw bad(`${field}.${k}`, `${shown(x)} is not a label value (at most 63 of [A-Za-z0-9._-])`);
    }
  },
};

function checked<T>(text: string, required: readonly string[], optional: readonly string[]): T {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (e) {
    throw new WeftError('WEFT_MALFORMED', `the request is not JSON: ${(e as Error).message}`);
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new WeftError('WEFT_MALFORMED', 'the request is not a JSON object');
  const known = new Set([...required, ...optional]);
  for (const k of Object.keys(body)) if (!known.has(k)) throw new WeftError('WEFT_UNKNOWN_FIELD', `${k}: unknown field`, { field: k });
  const o = body as Record<string, unknown>;
  for (const k of required) if (o[k] === undefined) throw bad(k, 'is required');
  for (const k of known) if (o[k] !== undefined) (RULES[k] as Rule)(o[k], k);
  return body as T;
}

export function parseAttachRequest(text: string): AttachRequest {
  return checked<AttachRequest>(text, ['tenant', 'network', 'netns', 'containerId'], ['group', 'name', 'ip', 'mac', 'ifname', 'defaultRoute', 'labels']);
}

export function parseDetachRequest(text: string): DetachRequest {
  const r = checked<DetachRequest>(text, ['tenant', 'network'], ['containerId', 'endpoint', 'ifname']);
  if ((r.containerId === undefined) === (r.endpoint === undefined)) throw bad('containerId', 'give the target (containerId) or one endpoint, not both or neither');
  return r;
}
