import { LABEL_KEY_PATTERN, LABEL_VALUE_PATTERN, NAME_PATTERN, formatIp6, parseIp, parseIp6, type PortMapping } from '../../model/index.js';
import { CniError, shown, type CniRequest, type PluginConfig } from './protocol.js';

// What ADD asks for beyond the ids. Only ADD reads these, so a DEL of a container added under other
// rules (an older weft, a runtime's extra CNI_ARGS) never fails on them.

/** CNI_ARGS keys weft reads, or that Kubernetes and podman always send; others need IgnoreUnknown, as in libcni's LoadArgs. */
const KNOWN_ARGS = new Set(['IgnoreUnknown', 'IP', 'MAC', 'K8S_POD_NAME', 'K8S_POD_NAMESPACE', 'K8S_POD_INFRA_CONTAINER_ID', 'K8S_POD_UID', 'WEFT_LABELS']);
// A pod name is a DNS subdomain (at most 253); the server's containerName holds 128. A longer legal name
// costs the pod its DNS name, not its network: refusing would keep a valid pod from starting.
const POD_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,252}$/;
/** A Kubernetes namespace name: a DNS label (RFC 1123), as Weft's own names. */
const NAMESPACE = new RegExp(NAME_PATTERN);
const CONTAINER_NAME_MAX = 128;

/** `K1=V1;K2=V2`, split as libcni's LoadArgs does (values cannot hold `=`); returns the known keys, checked. */
export function parseArgs(text: string): Record<string, string> {
  const all = new Map<string, string>();
  for (const pair of text.split(';')) {
    if (!pair) continue;
    const parts = pair.split('=');
    if (parts.length !== 2 || !parts[0]) throw new CniError(4, `CNI_ARGS: ${shown(pair)} is not KEY=VALUE`);
    all.set(parts[0], parts[1] ?? '');
  }
  const ignore = all.get('IgnoreUnknown')?.toLowerCase() ?? 'false';
  if (!['1', 'true', '0', 'false'].includes(ignore)) throw new CniError(4, `CNI_ARGS: IgnoreUnknown=${shown(ignore)} is not one of 1, true, 0, false`);
  const unknown = [...all.keys()].filter((k) => !KNOWN_ARGS.has(k));
  if (unknown.length && ignore !== '1' && ignore !== 'true') {
    throw new CniError(4, `CNI_ARGS: unknown key${unknown.length > 1 ? 's' : ''} ${unknown.slice(0, 5).map(shown).join(', ')} (IgnoreUnknown=1 ignores them)`);
  }
  const known: Record<string, string> = {};
  for (const [k, v] of all) if (KNOWN_ARGS.has(k)) known[k] = v;
  const problems: Array<[string, string | undefined]> = [
    ['IP', known['IP'] === undefined ? undefined : addressesOf(known['IP'].split(',')).problem],
    ['MAC', known['MAC'] === undefined ? undefined : macProblem(known['MAC'])],
    ['K8S_POD_NAME', known['K8S_POD_NAME'] === undefined || POD_NAME.test(known['K8S_POD_NAME']) ? undefined : 'is not a pod name (1-253 of [A-Za-z0-9_.-], starting with a letter or digit)'],
    ['WEFT_LABELS', known['WEFT_LABELS'] === undefined ? undefined : labelsProblem(known['WEFT_LABELS'])],
  ];
  for (const [k, problem] of problems) if (problem) throw new CniError(4, `CNI_ARGS: ${k}=${shown(known[k] ?? '')} ${problem}`);
  return known;
}

// An endpoint label as the server takes it (model/schemas.ts Labels).
const LABEL_KEY = new RegExp(LABEL_KEY_PATTERN);
const LABEL_VALUE = new RegExp(LABEL_VALUE_PATTERN);
const LABELS_MAX = 64;

/**
 * `WEFT_LABELS=key:value,key:value`: labels for runtimes that cannot put `args.cni.labels` in the config
 * (podman passes its own CNI_ARGS environment through). A value cannot hold `=` (CNI_ARGS' own syntax),
 * `,` or `:`; label keys and values never do.
 */
export function labelsOfArg(text: string): Record<string, string> {
  // fromEntries: every key an own property (`__proto__` included, and refused as a key below).
  return Object.fromEntries(text.split(',').filter(Boolean).map((item) => {
    const at = item.indexOf(':');
    return at < 0 ? [item, ''] : [item.slice(0, at), item.slice(at + 1)];
  }));
}

function labelsProblem(text: string): string | undefined {
  const entries = Object.entries(labelsOfArg(text));
  if (entries.length > LABELS_MAX) return `holds ${entries.length} labels (at most ${LABELS_MAX})`;
  for (const item of text.split(',')) if (item && !item.includes(':')) return `has ${shown(item)} without a value (key:value, comma-separated)`;
  const bad = entries.find(([k, v]) => !LABEL_KEY.test(k) || !LABEL_VALUE.test(v));
  const ns = entries.find(([k]) => k === 'namespace')?.[1];
  if (!bad && ns !== undefined && !NAMESPACE.test(ns)) return `has namespace ${shown(ns)}, which is not a namespace name (a DNS label: a-z, 0-9 and inner -, at most 63)`;
  if (!bad) return undefined;
  return LABEL_KEY.test(bad[0])
    ? `has label ${shown(bad[0])} with value ${shown(bad[1])}: at most 63 of [A-Za-z0-9._-]`
    : `has label key ${shown(bad[0])}: 1-63 of [A-Za-z0-9._/_-], starting with a letter or digit`;
}

/** `a.b.c.d` or `a.b.c.d/len` (runtimes send either; the prefix is the network's anyway). */
function ipOf(text: string): string | undefined {
  const [ip = '', len, ...more] = text.split('/');
  if (more.length || parseIp(ip) === undefined) return undefined;
  if (len !== undefined && !(/^[0-9]{1,2}$/.test(len) && Number(len) <= 32)) return undefined;
  return ip;
}

/** `x::y` or `x::y/len`, canonical. */
function ip6Of(text: string): string | undefined {
  const [ip = '', len, ...more] = text.split('/');
  const n = parseIp6(ip);
  if (more.length || n === undefined) return undefined;
  if (len !== undefined && !(/^[0-9]{1,3}$/.test(len) && Number(len) <= 128)) return undefined;
  return formatIp6(n);
}

/** Requested addresses (host-local's forms, comma-separated in CNI_ARGS): at most one of each family. */
function addressesOf(list: readonly string[]): { ip?: string; ip6?: string; problem?: string; index?: number } {
  const out: { ip?: string; ip6?: string } = {};
  for (const [index, text] of list.entries()) {
    const v4 = ipOf(text);
    const v6 = v4 === undefined ? ip6Of(text) : undefined;
    if (v4 === undefined && v6 === undefined) return { problem: 'is not an IPv4 or IPv6 address', index };
    if ((v4 !== undefined && out.ip !== undefined) || (v6 !== undefined && out.ip6 !== undefined)) return { problem: 'is a second address of its family (an interface gets one IPv4 and, on a dual-stack network, one IPv6 address)', index };
    if (v4 !== undefined) out.ip = v4;
    if (v6 !== undefined) out.ip6 = v6;
  }
  return out;
}

/** A MAC an interface can take: well formed, not all zeros and not multicast (the kernel refuses both). */
function macProblem(mac: string): string | undefined {
  if (!/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(mac)) return 'is not a MAC address (xx:xx:xx:xx:xx:xx)';
  if (/^00(:00){5}$/.test(mac)) return 'is all zeros';
  if (parseInt(mac.slice(0, 2), 16) & 1) return 'is a multicast address';
  return undefined;
}

export interface AddParams {
  ip?: string;
  ip6?: string;
  mac?: string;
  containerName?: string;
  labels: Record<string, string>;
  portMappings: PortMapping[];
}

/** What ADD asks for beyond the ids: CNI_ARGS win over runtimeConfig, which wins over nothing. */
export function addParamsOf(req: CniRequest): AddParams {
  const args = parseArgs(req.cniArgs);
  const c = req.config;
  const ips = c.runtimeConfig?.ips ?? [];
  if (ips.length > 2) throw new CniError(7, `invalid network configuration: runtimeConfig.ips: ${ips.length} addresses; weft gives an interface one IPv4 address and, on a dual-stack network, one IPv6 address`);
  const fromConfig = addressesOf(ips);
  if (fromConfig.problem) throw new CniError(7, `invalid network configuration: runtimeConfig.ips.${fromConfig.index}: ${shown(ips[fromConfig.index ?? 0] ?? '')} ${fromConfig.problem}`);
  const macProblemOf = c.runtimeConfig?.mac === undefined ? undefined : macProblem(c.runtimeConfig.mac);
  if (macProblemOf) throw new CniError(7, `invalid network configuration: runtimeConfig.mac: ${shown(c.runtimeConfig?.mac ?? '')} ${macProblemOf}`);
  const fromArgs = args['IP'] === undefined ? undefined : addressesOf(args['IP'].split(','));
  const ip = fromArgs ? fromArgs.ip : fromConfig.ip;
  const ip6 = fromArgs ? fromArgs.ip6 : fromConfig.ip6;
  const mac = args['MAC'] ?? c.runtimeConfig?.mac;
  const pod = args['K8S_POD_NAME'];
  const name = pod !== undefined && pod.length <= CONTAINER_NAME_MAX ? pod : undefined;
  const labels: Record<string, string> = {};
  for (const l of c.args?.cni?.labels ?? []) labels[l.key] = l.value;
  // A pod's namespace (what NetworkPolicy's namespaceSelector and per-namespace podSelectors match) is
  // the label `namespace`: K8S_POD_NAMESPACE when the runtime sends a namespace name there, else the label
  // as given. Podman sends the container's name, which may not be one (My_Box): that costs the label,
  // never the container its network.
  const namespace = args['K8S_POD_NAMESPACE'];
  if (namespace !== undefined && NAMESPACE.test(namespace)) labels['namespace'] = namespace;
  // WEFT_LABELS last: the runtime's arguments are about this container (the config's labels about all of
  // its network), and its `namespace` is the user's word over podman's container name in K8S_POD_NAMESPACE.
  Object.assign(labels, labelsOfArg(args['WEFT_LABELS'] ?? ''));
  return {
    labels, portMappings: portMappingsOf(c),
    ...(ip ? { ip } : {}), ...(ip6 ? { ip6 } : {}), ...(mac ? { mac: mac.toLowerCase() } : {}), ...(name ? { containerName: name } : {}),
  };
}

function portMappingsOf(c: PluginConfig): PortMapping[] {
  return (c.runtimeConfig?.portMappings ?? []).map((p, i) => {
    const at = `runtimeConfig.portMappings.${i}`;
    const protocol = (p.protocol ?? 'tcp').toLowerCase();
    if (protocol !== 'tcp' && protocol !== 'udp') throw new CniError(2, `${at}.protocol: ${shown(p.protocol ?? '')} is not supported (tcp, udp)`);
    // Ports are published on every host address; honouring only some would silently widen what the user asked.
    if (p.hostIP && p.hostIP !== '0.0.0.0') throw new CniError(2, `${at}.hostIP: ${shown(p.hostIP)} is not supported (weft publishes on every host address; leave it empty)`);
    return { hostPort: p.hostPort, containerPort: p.containerPort, protocol };
  });
}
