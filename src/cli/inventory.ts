import { createHash } from 'node:crypto';

/**
 * `weft inventory`: Weft's hosts (and, asked, its endpoints) as an Ansible inventory. Pure: one model
 * (compileInventory), rendered as Ansible INI, the dynamic-inventory JSON (`--list`, `--host`) and Ansible's
 * YAML. No I/O.
 *
 * The hazards are Ansible's parsers. An INI host line is split like a shell line and each value handed
 * to Python's `ast.literal_eval`; Ansible's YAML is YAML 1.1 (PyYAML), where `yes` is a boolean and U+2028
 * ends a line; Python's `splitlines` also ends lines at U+0085, U+2028 and friends. So names are cut down
 * to safe characters, and every value that is not plainly a word is written as a quoted ASCII-only
 * literal: nothing a host, label or container name holds can start a line, a group or a variable.
 *
 * Group names are escaped one-to-one (escapeGroupPart), so no two things ever share a group, and every group
 * an endpoint's tenant can name (its networks, groups, labels) sits under that tenant: a tenant's labels
 * never put its containers into a group another tenant's containers are in.
 */

/** A host as `GET /api/v1/hosts` gives it (a tenant user's view has no addresses). */
export interface InventoryHost {
  name: string;
  vtepIp?: string;
  tunnelIp?: string;
  state?: string;
  agentVersion?: string;
  lastSeen?: string;
  /** Not in the API yet; grouped by (label_KEY_VALUE) as soon as hosts carry them. */
  labels?: Record<string, string>;
}

/** An endpoint as `GET /api/v1/endpoints` gives it. */
export interface InventoryEndpoint {
  id: string;
  tenant: string;
  network: string;
  group?: string;
  /** Its IPv4 address, else (an IPv6-only network) its IPv6 one: where Ansible reaches it. */
  ip?: string;
  ip6?: string;
  mac?: string;
  host: string;
  ifname?: string;
  containerId: string;
  containerName?: string;
  labels?: Record<string, string>;
  state?: string;
}

/**
 * A string Jinja would render (`{{`, `{%`, `{#`): Ansible templates variables when a play reads them, so
 * a host that registers such a text would run code in the operator's Ansible. Written as Ansible's unsafe
 * (`!unsafe` in YAML, `__ansible_unsafe` in JSON); INI cannot say it, so there the variable is left out.
 */
export class Unsafe {
  constructor(readonly text: string) {}
}

export type VarValue = string | number | boolean | null | Unsafe | VarValue[] | { [key: string]: VarValue };
export type Vars = Record<string, VarValue>;

export interface InventoryGroup {
  /** Direct members (inventory host names), sorted. */
  hosts: string[];
  /** Child groups, in output order. */
  children: string[];
}

export interface Inventory {
  /** Inventory host name -> its variables, hosts first, then endpoints. */
  hostvars: Map<string, Vars>;
  /** Every group, each after its parent (a tree under `top`). */
  groups: Map<string, InventoryGroup>;
  /** The children of Ansible's `all`. */
  top: string[];
  /** What a user should know: names that had to be told apart. One line each, ASCII. */
  notes: string[];
}

/**
 * Kinds of group (an id's first part, and its name's prefix), in the order groups are listed under their
 * parent. No prefix (with its `_`) begins another, so names of different kinds never meet.
 */
const KINDS = ['weft_hosts', 'weft_endpoints', 'label', 'tenant', 'network', 'ep_tenant', 'ep_network', 'ep_group', 'ep_label'] as const;

interface GroupSpec { id: string; name: string; parent: string; rank: number; members: Set<string> }
interface Member { id: string; want: string; what: string; vars: Vars }

/** The inventory of what the user sees: hosts, their labels, the tenants and networks they carry endpoints of. */
export function compileInventory(unsortedHosts: readonly InventoryHost[], unsortedEndpoints: readonly InventoryEndpoint[], withEndpoints: boolean): Inventory {
  // Sorted, so the same cluster gives the same text (diffable, cacheable by Ansible).
  const hosts = [...unsortedHosts].sort((a, b) => compare(a.name, b.name));
  const endpoints = [...unsortedEndpoints].sort((a, b) => compare(a.tenant, b.tenant) || compare(a.network, b.network) || compare(a.id, b.id));
  const groups = new Map<string, GroupSpec>();
  /** The group of that kind and those parts (its id: they, NUL-joined; its name: groupName's), under parent. */
  const join = (kind: (typeof KINDS)[number], parts: string[], parent: string, member?: string): string => {
    const id = [kind, ...parts].join('\0');
    let g = groups.get(id);
    if (!g) groups.set(id, (g = { id, name: parts.length ? groupName(kind, ...parts) : kind, parent, rank: KINDS.indexOf(kind), members: new Set() }));
    if (member !== undefined) g.members.add(member);
    return id;
  };
  const hostId = (name: string) => `host\0${name}`;
  const known = new Set(hosts.map((h) => h.name));
  for (const h of hosts) {
    join('weft_hosts', [], '', hostId(h.name));
    // Hosts' labels are the operator's (a host is registered by an admin), so one label group spans them all.
    for (const [k, v] of entries(h.labels)) join('label', [k, v], 'weft_hosts', hostId(h.name));
  }
  for (const e of endpoints) {
    // An endpoint on a host that is not registered (yet, or any more) places no host anywhere.
    if (!known.has(e.host)) continue;
    const t = join('tenant', [e.tenant], 'weft_hosts');
    join('network', [e.tenant, e.network], t, hostId(e.host));
  }
  const onHost = new Map<string, InventoryEndpoint[]>();
  for (const e of endpoints) push(onHost, e.host, e);
  const members: Member[] = hosts.map((h) => ({ id: hostId(h.name), want: h.name, what: `host ${h.name}`, vars: hostVars(h, onHost.get(h.name) ?? []) }));
  if (withEndpoints) {
    for (const e of endpoints) {
      const id = `endpoint\0${e.id}`;
      join('weft_endpoints', [], '', id);
      const t = join('ep_tenant', [e.tenant], 'weft_endpoints');
      join('ep_network', [e.tenant, e.network], t, id);
      if (e.group !== undefined) join('ep_group', [e.tenant, e.group], t, id);
      // A tenant sets its endpoints' labels: per tenant, or its `role=db` would join the operator's db plays.
      for (const [k, v] of entries(e.labels)) join('ep_label', [e.tenant, k, v], t, id);
      // A dot: a host's name (a DNS label) never has one, so an endpoint never takes a host's name.
      members.push({ id, want: `${e.containerName ?? e.containerId.slice(0, 12)}.${e.id}`, what: `endpoint ${e.id}`, vars: endpointVars(e) });
    }
  }
  return assemble([...groups.values()], members);
}

/** Names the hosts (a host may not take a group's name) and lays the groups out as a tree. */
function assemble(specs: GroupSpec[], members: Member[]): Inventory {
  const notes: string[] = [];
  // `all`, `ungrouped` are Ansible's own groups; `_meta` is where the JSON keeps host variables.
  const groupNames = new Set(['all', 'ungrouped', '_meta']);
  for (const g of specs) {
    // Cannot happen (one-to-one names, distinct prefixes); were it to, two things would share a group.
    if (groupNames.has(g.name)) throw new Error(`inventory: two groups named ${g.name}`);
    groupNames.add(g.name);
  }
  const hostName = uniqueNames(members, sanitiseHost, groupNames, notes);
  const hostvars = new Map(members.map((m) => {
    const name = hostName.get(m.id) as string;
    return [name, guardVars(m.vars, name, notes)] as const;
  }));
  const byParent = new Map<string, GroupSpec[]>();
  for (const g of specs) push(byParent, g.parent, g);
  const name = (g: GroupSpec) => g.name;
  const ordered = (parent: string) => (byParent.get(parent) ?? []).sort((a, b) => a.rank - b.rank || compare(name(a), name(b)));
  const groups = new Map<string, InventoryGroup>();
  const visit = (g: GroupSpec): void => {
    const children = ordered(g.id);
    groups.set(name(g), { hosts: [...g.members].map((m) => hostName.get(m) as string).sort(compare), children: children.map(name) });
    children.forEach(visit);
  };
  const top = ordered('');
  top.forEach(visit);
  return { hostvars, groups, top: top.map(name), notes };
}

/**
 * A group's name: its kind, `_`, and its parts escaped and joined by `__` (network_blue__web,
 * ep_label_blue__role__db). Letters, digits and underscores, starting with a letter: what Ansible takes.
 * One-to-one: an escaped part has `_` only as the first character of an escape, never `__` and never a
 * `_` at its end, so the `__` between parts is always found again; and KINDS' prefixes are prefix-free.
 */
export function groupName(kind: string, ...parts: string[]): string {
  return `${kind}_${parts.map(escapeGroupPart).join('__')}`;
}

/**
 * One-to-one into [a-z0-9_]: a-z and 0-9 stay; `_` is `_u`, `-` `_h`, `.` `_d`, `/` `_s`; anything else
 * (upper case too: Ansible's group_vars may sit on a case-insensitive disk) is `_x` and two hex digits per
 * byte of its UTF-8 (a lone surrogate as its code point would be, so it is told apart from U+FFFD).
 */
export function escapeGroupPart(s: string): string {
  let out = '';
  for (const c of s) {
    if (/^[a-z0-9]$/.test(c)) out += c;
    else if (c in SHORT) out += SHORT[c];
    else for (const b of utf8(c.codePointAt(0) ?? 0)) out += `_x${b.toString(16).padStart(2, '0')}`;
  }
  return out;
}

const SHORT: Record<string, string> = { _: '_u', '-': '_h', '.': '_d', '/': '_s' };

/** A code point's UTF-8 bytes (a surrogate's too, as WTF-8 writes it). */
function utf8(cp: number): number[] {
  if (cp < 0x80) return [cp];
  if (cp < 0x800) return [0xc0 | (cp >> 6), 0x80 | (cp & 0x3f)];
  if (cp < 0x10000) return [0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f)];
  return [0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 0x3f), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f)];
}

/** A host name without what INI reads as a port (`:`), a range (`[`), a comment or a quote. */
export function sanitiseHost(want: string): string {
  const s = want.replace(/[^A-Za-z0-9._-]/g, '_');
  return /^[A-Za-z0-9]/.test(s) ? s : `x${s}`;
}

/**
 * A host's name per id: the sanitised wish, unless two ids (or a group's name) wish alike; then every one
 * of them gets a suffix from a hash of its id (so it depends on nothing else), and a note says who became
 * what. Never silently one name for two things, and never first come, first served. Only host names need
 * it (group names are one-to-one), and only for names the server refuses today: its host names are DNS
 * labels (no `_`, so never a group's name, and sanitised as they are), and an endpoint's ends in `.ID`.
 */
function uniqueNames(items: ReadonlyArray<{ id: string; want: string; what: string }>, sanitise: (s: string) => string, taken: ReadonlySet<string>, notes: string[]): Map<string, string> {
  const byBase = new Map<string, Array<{ id: string; what: string }>>();
  for (const it of items) push(byBase, sanitise(it.want), it);
  const out = new Map<string, string>();
  const used = new Set(taken);
  for (const [base, claim] of byBase) {
    if (claim.length === 1 && !taken.has(base)) {
      out.set((claim[0] as { id: string }).id, base);
      used.add(base);
    }
  }
  for (const [base, claim] of byBase) {
    if (claim.length === 1 && !taken.has(base)) continue;
    const given = [...claim].sort((a, b) => compare(a.what, b.what)).map((c) => {
      let n = 6;
      let name = `${base}_${digest(c.id, n)}`;
      while (used.has(name)) name = `${base}_${digest(c.id, (n += 6))}`;
      used.add(name);
      out.set(c.id, name);
      return `${name} (${ascii(c.what)})`;
    });
    const why = taken.has(base) ? `${base} is also a group's name` : `${claim.length} names make ${base}`;
    notes.push(`${why}: named ${given.join(', ')}`);
  }
  return out;
}

const digest = (id: string, n: number) => createHash('sha256').update(id).digest('hex').slice(0, n);

function push<K, V>(m: Map<K, V[]>, key: K, value: V): void {
  const list = m.get(key);
  if (list) list.push(value);
  else m.set(key, [value]);
}

/** Own entries only, sorted: labels arrive as JSON, where `__proto__` is just a key. */
function entries(labels: Record<string, string> | undefined): Array<[string, string]> {
  return Object.entries(labels ?? {}).sort(([a], [b]) => compare(a, b));
}

/** Code-unit order, the same on every machine (localeCompare is not). */
const compare = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

const dict = (pairs: ReadonlyArray<[string, VarValue]>): { [key: string]: VarValue } => Object.fromEntries(pairs);
/** The variables that have a value (a tenant user's hosts have no addresses). */
const present = (v: Record<string, VarValue | undefined>): Vars => dict(Object.entries(v).filter((kv): kv is [string, VarValue] => kv[1] !== undefined));

function hostVars(h: InventoryHost, mine: readonly InventoryEndpoint[]): Vars {
  const sorted = (xs: string[]) => [...new Set(xs)].sort(compare);
  return present({
    ansible_host: h.vtepIp, weft_kind: 'host', weft_name: h.name, weft_state: h.state, weft_labels: dict(entries(h.labels)),
    weft_tenants: sorted(mine.map((e) => e.tenant)), weft_networks: sorted(mine.map((e) => `${e.tenant}/${e.network}`)),
    weft_tunnel_ip: h.tunnelIp, weft_agent_version: h.agentVersion, weft_last_seen: h.lastSeen,
  });
}

function endpointVars(e: InventoryEndpoint): Vars {
  return present({
    ansible_host: e.ip ?? e.ip6, weft_kind: 'endpoint', weft_endpoint_id: e.id, weft_tenant: e.tenant, weft_network: e.network,
    weft_group: e.group, weft_host: e.host, weft_container_id: e.containerId, weft_container_name: e.containerName,
    weft_ifname: e.ifname, weft_mac: e.mac, weft_state: e.state, weft_labels: dict(entries(e.labels)),
  });
}

/**
 * A double-quoted string, printable ASCII only: JSON's escapes, and \u or \U for the rest, which YAML and
 * Python read alike (a surrogate pair written as two \u escapes would be two broken characters to PyYAML).
 * Safe in a comment line: nothing in it ends the line, for Python's splitlines either.
 */
export function ascii(s: string): string {
  return JSON.stringify(wellFormed(s)).replace(/[^\x20-\x7e]/gu, (c) => {
    const cp = c.codePointAt(0) ?? 0xfffd;
    return cp > 0xffff ? `\\U${cp.toString(16).padStart(8, '0')}` : `\\u${cp.toString(16).padStart(4, '0')}`;
  });
}

/** A lone surrogate cannot be written as UTF-8 (Python refuses it): it becomes U+FFFD. */
function wellFormed(s: string): string {
  return s.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD');
}

const TEMPLATE = /\{[{%#]/;

/**
 * A key Ansible's JSON decoder acts on (ansible/parsing/ajson.py): a dictionary holding `__ansible_vault`
 * becomes a vault-encrypted value, one holding `__ansible_unsafe` that key's value. Weft writes only its
 * own `__ansible_unsafe` markers; a key from the server with this prefix is left out.
 */
export const isAnsibleKey = (k: string): boolean => k.startsWith('__ansible');

/**
 * Marks every string Jinja would render as Unsafe and leaves out dictionary keys that would be (labels'
 * keys), and keys Ansible's JSON decoder acts on (in every format, so they all say the same); replaces
 * lone surrogates, so every format carries the same text.
 */
function guardVars(vars: Vars, host: string, notes: string[]): Vars {
  const hits: string[] = [];
  const markers: string[] = [];
  const guard = (v: VarValue, path: string): VarValue => {
    if (typeof v === 'string') return TEMPLATE.test(v) ? (hits.push(path), new Unsafe(wellFormed(v))) : wellFormed(v);
    if (Array.isArray(v)) return v.map((x, i) => guard(x, `${path}[${i}]`));
    if (v === null || typeof v !== 'object' || v instanceof Unsafe) return v;
    const kept = Object.entries(v).filter(([k]) =>
      isAnsibleKey(wellFormed(k)) ? (markers.push(`${path} key ${ascii(k)}`), false) : !TEMPLATE.test(k) || (hits.push(`${path} key ${ascii(k)} (left out)`), false));
    return dict(kept.map(([k, x]) => [wellFormed(k), guard(x, `${path}.${ascii(k)}`)]));
  };
  const out = dict(Object.entries(vars).filter(([k]) => !isAnsibleKey(k) || (markers.push(ascii(k)), false)).map(([k, v]) => [k, guard(v, k)]));
  if (hits.length) notes.push(`host ${host}: Jinja would render ${hits.join(', ')}: marked unsafe (YAML, JSON), left out of INI`);
  if (markers.length) notes.push(`host ${host}: Ansible's JSON decoder would act on ${markers.join(', ')}: left out`);
  return out;
}

const hasUnsafe = (v: VarValue): boolean =>
  v instanceof Unsafe || (Array.isArray(v) ? v.some(hasUnsafe) : v !== null && typeof v === 'object' && Object.values(v).some(hasUnsafe));

/** Ansible INI: `[group]` host lines with their variables where the host first appears, `[group:children]`. */
export function renderInventoryIni(inv: Inventory): string {
  const out = [...header(inv, 'ansible')];
  const placed = new Set<string>();
  for (const [name, g] of inv.groups) {
    if (g.hosts.length) out.push('', `[${name}]`);
    for (const h of g.hosts) {
      const vars = placed.has(h) ? [] : Object.entries(inv.hostvars.get(h) ?? {}).filter(([, v]) => !hasUnsafe(v));
      out.push([h, ...vars.map(([k, v]) => `${k}=${iniValue(v)}`)].join(' '));
      placed.add(h);
    }
    if (g.children.length) out.push('', `[${name}:children]`, ...g.children);
  }
  return `${out.join('\n')}\n`;
}

function header(inv: Inventory, format: string): string[] {
  const counts = `${inv.hostvars.size} hosts, ${inv.groups.size} groups`;
  // Notes are ASCII already; a comment line must hold nothing that ends it.
  return [`# Ansible inventory from Weft (weft inventory --format ${format}): ${counts}`, ...inv.notes.map((n) => `# note: ${n.replace(/[^\x20-\x7e]/g, '?')}`)];
}

/**
 * An INI value is cut out of the line like a shell word, then given to Python's ast.literal_eval (a
 * string where that fails). A word that starts with a letter is a name to Python, never a literal
 * (True, False and None aside), and an IPv4 address is a syntax error: both stay bare. Anything else
 * is a Python literal in single quotes, which the shell-like split removes and literal_eval reads back.
 */
function iniValue(v: VarValue): string {
  if (typeof v === 'string' && ((/^[A-Za-z_][A-Za-z0-9_.-]*$/.test(v) && !['True', 'False', 'None'].includes(v)) || /^\d{1,3}(\.\d{1,3}){3}$/.test(v))) return v;
  return `'${python(v)}'`;
}

/** A Python literal in printable ASCII, without a single quote. */
function python(v: VarValue): string {
  if (v === null) return 'None';
  if (typeof v === 'boolean') return v ? 'True' : 'False';
  if (typeof v === 'number') return Number.isFinite(v) ? String(v) : 'None';
  if (typeof v === 'string') return pythonString(v);
  if (v instanceof Unsafe) return 'None';
  if (Array.isArray(v)) return `[${v.map(python).join(', ')}]`;
  return `{${Object.entries(v).map(([k, x]) => `${pythonString(k)}: ${python(x)}`).join(', ')}}`;
}

/** ascii() is a Python literal too; a single quote would end the INI word around it. */
const pythonString = (s: string) => ascii(s).replace(/'/g, '\\u0027');

/** The dynamic-inventory answer to `--list`: every group, and every host's variables under `_meta`. */
export function renderInventoryJson(inv: Inventory): string {
  const doc: Record<string, unknown> = { _meta: { hostvars: Object.fromEntries(inv.hostvars) }, all: { children: inv.top } };
  for (const [name, g] of inv.groups) doc[name] = { ...(g.hosts.length ? { hosts: g.hosts } : {}), ...(g.children.length ? { children: g.children } : {}) };
  return jsonText(doc);
}

/** The answer to `--host NAME`: that host's variables; undefined when the inventory has no such host. */
export function renderHostVarsJson(inv: Inventory, host: string): string | undefined {
  const vars = inv.hostvars.get(host);
  return vars && jsonText(vars);
}

/**
 * JSON for Ansible's loader: an Unsafe as `{"__ansible_unsafe": TEXT}`, which it turns back into an unsafe
 * string (ansible/parsing/ajson.py). Any other `__ansible` key is dropped here too (guardVars has left
 * them out already, with a note): only Weft's own markers reach the decoder.
 */
function jsonText(doc: unknown): string {
  const markers = new WeakSet<object>();
  return JSON.stringify(doc, function (this: unknown, key: string, v: unknown): unknown {
    if (isAnsibleKey(key) && !(key === '__ansible_unsafe' && markers.has(this as object))) return undefined;
    if (!(v instanceof Unsafe)) return v;
    const marker = { __ansible_unsafe: v.text };
    markers.add(marker);
    return marker;
  }, 2);
}

/**
 * Ansible's YAML inventory: the group tree nested from `all`. Written here rather than by the YAML
 * library: Ansible reads YAML 1.1, which the library's 1.2 output does not always mean the same way
 * (`yes`, `0777`, U+2028), and `!unsafe` must sit on exactly the strings that need it. So every string
 * is a double-quoted ASCII scalar (JSON's escapes are YAML's), and variables are flow collections.
 */
export function renderInventoryYaml(inv: Inventory): string {
  const out = [...header(inv, 'yaml'), 'all:'];
  const placed = new Set<string>();
  const group = (name: string, depth: number): void => {
    const pad = '  '.repeat(depth);
    const g = inv.groups.get(name) ?? { hosts: [], children: [] };
    out.push(`${pad}${name}:`);
    if (g.hosts.length) out.push(`${pad}  hosts:`);
    for (const h of g.hosts) {
      const vars = placed.has(h) ? [] : Object.entries(inv.hostvars.get(h) ?? {});
      placed.add(h);
      out.push(`${pad}    ${ascii(h)}:${vars.length ? '' : ' {}'}`, ...vars.map(([k, v]) => `${pad}      ${k}: ${yamlValue(v)}`));
    }
    if (g.children.length) out.push(`${pad}  children:`);
    for (const c of g.children) group(c, depth + 2);
  };
  if (inv.top.length) out.push('  children:');
  for (const t of inv.top) group(t, 2);
  return `${out.join('\n')}\n`;
}

function yamlValue(v: VarValue): string {
  if (v instanceof Unsafe) return `!unsafe ${ascii(v.text)}`;
  if (typeof v === 'string') return ascii(v);
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
  if (Array.isArray(v)) return `[${v.map(yamlValue).join(', ')}]`;
  return `{${Object.entries(v).map(([k, x]) => `${ascii(k)}: ${yamlValue(x)}`).join(', ')}}`;
}
