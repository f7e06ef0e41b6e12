import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { YAML } from './output.js';
import { goldenFiles } from '../testkit/golden.js';
import {
  ascii, compileInventory, escapeGroupPart, groupName, renderHostVarsJson, renderInventoryIni, renderInventoryJson, renderInventoryYaml, sanitiseHost, Unsafe,
  type Inventory, type InventoryEndpoint, type InventoryHost,
} from './inventory.js';

const { golden } = goldenFiles('cli');

// A small cluster: node3 carries nothing; red's endpoint has no container name; labels as the server sets them.
const HOSTS: InventoryHost[] = [
  { name: 'node2', vtepIp: '192.0.2.2', state: 'down', lastSeen: '2026-11-23T09:50:00.000Z', labels: { zone: 'b' } },
  { name: 'node1', vtepIp: '192.0.2.1', state: 'up', tunnelIp: '100.64.0.1', agentVersion: '0.1.0', lastSeen: '2026-11-23T10:00:00.000Z', labels: { zone: 'a', rack: 'r1' } },
  { name: 'node3', vtepIp: '192.0.2.3', state: 'up', lastSeen: '2026-11-23T10:00:00.000Z' },
];
const ENDPOINTS: InventoryEndpoint[] = [
  { id: 'b0b0b0b0b0b0b0b0', tenant: 'red', network: 'web', ip: '10.1.2.2', mac: '02:00:00:00:00:03', host: 'node2', ifname: 'eth0', containerId: 'f00dfeedf00dfeedf00d', labels: {}, state: 'active' },
  { id: '8a1f0c2d3e4f5a6b', tenant: 'blue', network: 'web', group: 'db', ip: '10.1.2.3', mac: '02:00:00:00:00:01', host: 'node1', ifname: 'eth0', containerId: 'abc123', containerName: 'db-1', labels: { group: 'db', network: 'web' }, state: 'active' },
  { id: '9b2e1d3c4b5a6978', tenant: 'blue', network: 'web', ip: '10.1.2.4', mac: '02:00:00:00:00:02', host: 'node2', ifname: 'eth0', containerId: 'def456', containerName: 'web-1', labels: { app: 'web', network: 'web' }, state: 'created' },
];

// What a hostile agent or user could try if the server's schemas ever let it through: line breaks of every
// kind (Python's splitlines ends lines at U+2028 and U+0085 too), INI and YAML syntax, quotes, a Jinja
// template, a lone surrogate, names that sanitise alike, a host named like a group, keys Ansible's JSON
// decoder acts on (a dictionary with `__ansible_vault` becomes a vault secret, one with `__ansible_unsafe` its value).
const VAULT = '$ANSIBLE_VAULT;1.1;AES256\n6162636465';
const HOSTILE_HOSTS: InventoryHost[] = [
  { name: 'node1', vtepIp: '192.0.2.1', state: 'up', agentVersion: "{{ lookup('pipe', 'id') }}", labels: { zone: 'a-b', 'x]\n[all:vars]\nansible_user': 'root\'#"\\ =1', 'u\u2028v': 'w\u0085z', emoji: '\u{1F600}\uD800', '{{ k }}': 'v', __ansible_vault: VAULT, __ansible_unsafe: 'owned', __ansible_x: 'y' } },
  { name: 'node2', vtepIp: '192.0.2.2\nevil=1', state: 'up', labels: { zone: 'a_b' } },
  { name: 'tenant_blue', vtepIp: '192.0.2.3' },
  { name: 'evil host\n[weft_hosts:vars]\n#', vtepIp: 'True', state: 'None' },
];
const HOSTILE_ENDPOINTS: InventoryEndpoint[] = [
  { id: '1111111111111111', tenant: 'blue', network: 'a-b', group: 'g', ip: '10.0.0.1', host: 'node1', containerId: 'c1', containerName: 'web 1\n[weft_endpoints:vars]', labels: { app: 'yes', __ansible_vault: VAULT, 'role/db': 'x', role: 'db_x' } },
  { id: '2222222222222222', tenant: 'blue-a', network: 'b', ip: '10.0.0.2', host: 'node2', containerId: 'c2', containerName: '{{ x }}', labels: {} },
  { id: '3333333333333333', tenant: 'blue', network: 'a-b', ip: '10.0.0.3', host: 'ghost', containerId: 'c3', labels: {} },
];

test('golden: hosts and endpoints as Ansible INI (hosts grouped by label, tenant > network; endpoints by tenant > network, group, label)', () => {
  golden('inventory-endpoints.ini', renderInventoryIni(compileInventory(HOSTS, ENDPOINTS, true)));
});

test('golden: hosts only, as the dynamic-inventory JSON and as Ansible YAML', () => {
  const inv = compileInventory(HOSTS, ENDPOINTS, false);
  const node1 = { ansible_host: '192.0.2.1', weft_kind: 'host', weft_name: 'node1', weft_state: 'up', weft_labels: { rack: 'r1', zone: 'a' }, weft_tenants: ['blue'], weft_networks: ['blue/web'], weft_tunnel_ip: '100.64.0.1', weft_agent_version: '0.1.0', weft_last_seen: '2026-11-23T10:00:00.000Z' };
  assert.deepEqual(JSON.parse(renderInventoryJson(inv)), {
    _meta: { hostvars: {
      node1,
      node2: { ansible_host: '192.0.2.2', weft_kind: 'host', weft_name: 'node2', weft_state: 'down', weft_labels: { zone: 'b' }, weft_tenants: ['blue', 'red'], weft_networks: ['blue/web', 'red/web'], weft_last_seen: '2026-11-23T09:50:00.000Z' },
      node3: { ansible_host: '192.0.2.3', weft_kind: 'host', weft_name: 'node3', weft_state: 'up', weft_labels: {}, weft_tenants: [], weft_networks: [], weft_last_seen: '2026-11-23T10:00:00.000Z' },
    } },
    all: { children: ['weft_hosts'] },
    weft_hosts: { hosts: ['node1', 'node2', 'node3'], children: ['label_rack__r1', 'label_zone__a', 'label_zone__b', 'tenant_blue', 'tenant_red'] },
    label_rack__r1: { hosts: ['node1'] }, label_zone__a: { hosts: ['node1'] }, label_zone__b: { hosts: ['node2'] },
    tenant_blue: { children: ['network_blue__web'] }, network_blue__web: { hosts: ['node1', 'node2'] },
    tenant_red: { children: ['network_red__web'] }, network_red__web: { hosts: ['node2'] },
  });
  assert.deepEqual(JSON.parse(renderHostVarsJson(inv, 'node1') ?? 'null'), node1, '--host NAME: that host\'s variables');
  assert.equal(renderHostVarsJson(inv, 'nobody'), undefined);
  golden('inventory-hosts.yml', renderInventoryYaml(inv));
});

test('an empty cluster is an empty inventory in every format', () => {
  const inv = compileInventory([], [], true);
  assert.deepEqual(JSON.parse(renderInventoryJson(inv)), { _meta: { hostvars: {} }, all: { children: [] } });
  assert.equal(renderInventoryIni(inv), '# Ansible inventory from Weft (weft inventory --format ansible): 0 hosts, 0 groups\n');
  assert.equal(renderInventoryYaml(inv), '# Ansible inventory from Weft (weft inventory --format yaml): 0 hosts, 0 groups\nall:\n');
});

test('group names are one-to-one: a kind, _, parts escaped into [a-z0-9_] and joined by __; host names without ports, ranges or quotes', () => {
  assert.equal(escapeGroupPart('app.kubernetes.io/name'), 'app_dkubernetes_dio_sname');
  assert.equal(escapeGroupPart('a_b-c'), 'a_ub_hc');
  assert.equal(escapeGroupPart('Db'), '_x44b', 'upper case escaped: group_vars files may sit on a case-insensitive disk');
  assert.equal(escapeGroupPart('\u00e9\u{1F600}\uD800 '), '_xc3_xa9_xf0_x9f_x98_x80_xed_xa0_x80_x20', 'UTF-8 bytes; a lone surrogate as WTF-8, not as U+FFFD');
  assert.equal(escapeGroupPart(''), '');
  assert.equal(groupName('ep_label', 'blue', 'role', 'db'), 'ep_label_blue__role__db');
  assert.equal(groupName('ep_label', 'blue', 'role/db', 'x'), 'ep_label_blue__role_sdb__x');
  assert.equal(groupName('ep_label', 'blue', 'role', 'db_x'), 'ep_label_blue__role__db_ux');
  assert.equal(groupName('network', 'a', 'b-c'), 'network_a__b_hc');
  assert.equal(groupName('network', 'a-b', 'c'), 'network_a_hb__c');
  assert.equal(groupName('label', 'zone', ''), 'label_zone__');

  // Read back: every name parses to exactly the parts it was made of, so two tuples never make one name.
  const tricky = ['', '_', '__', '-', '_h', 'x', '_x41', 'a_', '_a', 'A', 'a/b', 'a.b', '\uD800', '\uFFFD', '\u{1F600}', ' ', '0', '9z', 'ab'];
  let seed = 7;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const alphabet = ['a', 'z', '0', '_', '-', '.', '/', 'h', 'd', 's', 'x', 'u', 'A', ' ', '\u00e9', '\uD800', '\u{1F600}'];
  const random = () => Array.from({ length: Math.floor(rnd() * 6) }, () => alphabet[Math.floor(rnd() * alphabet.length)]).join('');
  const seen = new Map<string, string>();
  for (let i = 0; i < 5000; i++) {
    const parts = i < tricky.length ** 2 ? [tricky[i % tricky.length] as string, tricky[Math.floor(i / tricky.length)] as string] : [random(), random(), random()].slice(0, 1 + (i % 3));
    const name = groupName('ep_label', ...parts);
    assert.match(name, /^[a-z][a-z0-9_]*$/, 'what Ansible takes as a group name');
    assert.deepEqual(parseGroupName(name.slice('ep_label_'.length)), parts, name);
    const key = JSON.stringify(parts);
    assert.equal(seen.get(name) ?? key, key, `${name}: two tuples`);
    seen.set(name, key);
  }

  assert.equal(sanitiseHost('node-1.example'), 'node-1.example');
  assert.equal(sanitiseHost('-x:22[1:3] #'), 'x-x_22_1_3___');
  assert.equal(ascii('\u{1F600}\u2028\uD800"\n'), '"\\U0001f600\\u2028\\ufffd\\"\\n"', 'one escape per character, nothing that ends a line');
});

/** The inverse of groupName's part list: `__` between parts, `_u _h _d _s _xHH` escapes within them. */
function parseGroupName(s: string): string[] {
  const parts: string[] = [];
  let bytes: number[] = [];
  const flush = () => {
    parts.push(bytes.length ? decodeWtf8(bytes) : '');
    bytes = [];
  };
  for (let i = 0; i < s.length; ) {
    const c = s[i] as string;
    if (c !== '_') { bytes.push(c.charCodeAt(0)); i += 1; continue; }
    const n = s[i + 1];
    if (n === '_') { flush(); i += 2; continue; }
    const short: Record<string, string> = { u: '_', h: '-', d: '.', s: '/' };
    if (n !== undefined && n in short) { bytes.push((short[n] as string).charCodeAt(0)); i += 2; continue; }
    assert.equal(n, 'x', `bad escape in ${s}`);
    const hex = s.slice(i + 2, i + 4);
    assert.match(hex, /^[0-9a-f]{2}$/, s);
    bytes.push(parseInt(hex, 16));
    i += 4;
  }
  flush();
  return parts;
}

/** UTF-8 that may hold surrogates (WTF-8) back to a JS string. */
function decodeWtf8(bytes: number[]): string {
  let out = '';
  for (let i = 0; i < bytes.length; ) {
    const b = bytes[i] as number;
    const len = b < 0x80 ? 1 : b < 0xe0 ? 2 : b < 0xf0 ? 3 : 4;
    let cp = len === 1 ? b : b & (0xff >> (len + 1));
    for (let j = 1; j < len; j++) cp = (cp << 6) | ((bytes[i + j] as number) & 0x3f);
    out += String.fromCodePoint(cp);
    i += len;
  }
  return out;
}

test('names that sanitised alike are different groups under their own names, with no hash and no note; only a host may still need a suffix', () => {
  const hosts = (order: InventoryHost[]) => compileInventory(order, [], false);
  const a: InventoryHost = { name: 'n1', labels: { zone: 'a-b', 'role/db': 'x' } };
  const b: InventoryHost = { name: 'n2', labels: { zone: 'a_b', role: 'db_x' } };
  const inv = hosts([a, b]);
  assert.deepEqual([...inv.groups.keys()], ['weft_hosts', 'label_role__db_ux', 'label_role_sdb__x', 'label_zone__a_hb', 'label_zone__a_ub']);
  assert.deepEqual(['label_role_sdb__x', 'label_zone__a_hb', 'label_role__db_ux', 'label_zone__a_ub'].map((g) => inv.groups.get(g)?.hosts), [['n1'], ['n1'], ['n2'], ['n2']]);
  assert.deepEqual(inv.notes, []);
  assert.deepEqual([...hosts([b, a]).groups.keys()], [...inv.groups.keys()], 'the same names whatever the order the API lists them in');

  // Across tenants and networks: a-b/c and a/b-c, host and endpoint groups alike; and a host named like a
  // group never takes the group's name (the one collision left: sanitiseHost is not one-to-one).
  const ep = (id: string, tenant: string, network: string, host: string): InventoryEndpoint => ({ id, tenant, network, ip: '10.0.0.1', host, containerId: id });
  const inv2 = compileInventory([{ name: 'node1' }, { name: 'tenant_a' }], [ep('e1', 'a-b', 'c', 'node1'), ep('e2', 'a', 'b-c', 'node1')], true);
  assert.deepEqual(inv2.groups.get('network_a_hb__c')?.hosts, ['node1']);
  assert.deepEqual(inv2.groups.get('ep_network_a_hb__c')?.hosts, ['e1.e1']);
  assert.deepEqual(inv2.groups.get('ep_network_a__b_hc')?.hosts, ['e2.e2']);
  assert.deepEqual(inv2.groups.get('tenant_a')?.children, ['network_a__b_hc']);
  assert.deepEqual(inv2.groups.get('tenant_a_hb')?.children, ['network_a_hb__c']);
  assert.ok(!inv2.hostvars.has('tenant_a'), [...inv2.hostvars.keys()].join(' '));
  assert.ok([...inv2.hostvars.keys()].some((h) => /^tenant_a_[0-9a-f]{6}$/.test(h)));
  assert.deepEqual(inv2.notes.length, 1);
  assert.match(inv2.notes[0] ?? '', /^tenant_a is also a group's name: named tenant_a_[0-9a-f]{6} \("host tenant_a"\)$/);
});

test("endpoint label groups are per tenant: a tenant labelling its container role=db never joins another tenant's role=db group", () => {
  const ep = (id: string, tenant: string, labels: Record<string, string>): InventoryEndpoint => ({ id, tenant, network: 'web', ip: '10.0.0.1', host: 'node1', containerId: id, labels });
  const inv = compileInventory([{ name: 'node1' }], [ep('op1', 'ops', { role: 'db' }), ep('ev1', 'evil', { role: 'db' }), ep('ev2', 'evil', { 'role/db': 'x' }), ep('ev3', 'evil', { role: 'db_x' })], true);
  assert.deepEqual(inv.groups.get('ep_label_ops__role__db')?.hosts, ['op1.op1']);
  assert.deepEqual(inv.groups.get('ep_label_evil__role__db')?.hosts, ['ev1.ev1']);
  assert.deepEqual(inv.groups.get('ep_label_evil__role_sdb__x')?.hosts, ['ev2.ev2']);
  assert.deepEqual(inv.groups.get('ep_label_evil__role__db_ux')?.hosts, ['ev3.ev3']);
  assert.deepEqual(inv.groups.get('ep_tenant_ops')?.children, ['ep_network_ops__web', 'ep_label_ops__role__db'], "a tenant's label groups are children of its endpoint group");
  assert.deepEqual(inv.groups.get('weft_endpoints')?.children, ['ep_tenant_evil', 'ep_tenant_ops'], 'no label group directly under weft_endpoints');
  assert.deepEqual(inv.notes, []);
  // Of every group but weft_endpoints (and all), the endpoints within it, its children's included, are one tenant's.
  const tenantOf = (h: string) => (inv.hostvars.get(h)?.['weft_tenant'] as string | undefined);
  const within = (g: string): string[] => [...(inv.groups.get(g)?.hosts ?? []), ...(inv.groups.get(g)?.children ?? []).flatMap(within)];
  for (const g of inv.groups.keys()) {
    if (g === 'weft_endpoints') continue;
    const tenants = new Set(within(g).map(tenantOf).filter((t) => t !== undefined));
    assert.ok(tenants.size <= 1, `${g}: ${[...tenants].join(' ')}`);
  }
});

test("keys Ansible's JSON decoder acts on (__ansible_vault, __ansible_unsafe, any __ansible...) are left out of what comes from the server, in every format, and noted", () => {
  const inv = compileInventory(HOSTILE_HOSTS, HOSTILE_ENDPOINTS, true);
  const text = renderInventoryJson(inv);
  const json = JSON.parse(text);
  assert.deepEqual(Object.keys(json._meta.hostvars.node1.weft_labels).filter((k) => k.startsWith('__')), []);
  const ep = Object.values(json._meta.hostvars as Record<string, any>).find((v) => v.weft_endpoint_id === '1111111111111111');
  assert.deepEqual(ep.weft_labels, { app: 'yes', role: 'db_x', 'role/db': 'x' });
  assert.deepEqual(json._meta.hostvars.node1.weft_agent_version, { __ansible_unsafe: "{{ lookup('pipe', 'id') }}" }, "Weft's own markers stay");
  assert.deepEqual(text.match(/"__ansible[^"]*"/g)?.sort(), ['"__ansible_unsafe"', '"__ansible_unsafe"'], 'the only __ansible keys: the markers for the two templates');
  for (const other of [renderInventoryIni(inv), renderInventoryYaml(inv)]) assert.doesNotMatch(other.split('\n').filter((l) => !l.startsWith('#')).join('\n'), /__ansible/);
  assert.ok(inv.notes.includes('host node1: Ansible\'s JSON decoder would act on weft_labels key "__ansible_unsafe", weft_labels key "__ansible_vault", weft_labels key "__ansible_x": left out'), inv.notes.join('\n'));
  assert.ok(inv.notes.some((n) => /^host web_1__weft_endpoints_vars_\.1111111111111111: Ansible's JSON decoder would act on weft_labels key "__ansible_vault": left out$/.test(n)), inv.notes.join('\n'));

  // And the JSON renderer drops such a key whatever the model holds: only Weft's own markers pass.
  const hand: Inventory = { hostvars: new Map([['h', { v: { __ansible_vault: VAULT, ok: 1 }, __ansible_unsafe: 'x', u: new Unsafe('{{ x }}') }]]), groups: new Map([['g', { hosts: ['h'], children: [] }]]), top: ['g'], notes: [] };
  assert.deepEqual(JSON.parse(renderInventoryJson(hand))._meta.hostvars.h, { v: { ok: 1 }, u: { __ansible_unsafe: '{{ x }}' } });
  assert.deepEqual(JSON.parse(renderHostVarsJson(hand, 'h') ?? 'null'), { v: { ok: 1 }, u: { __ansible_unsafe: '{{ x }}' } });
});

test('hostile names and values never add a line, a group or a variable: INI lines keep to the grammar, YAML and JSON read back as the same inventory', () => {
  const inv = compileInventory(HOSTILE_HOSTS, HOSTILE_ENDPOINTS, true);
  const ini = renderInventoryIni(inv);
  const yaml = renderInventoryYaml(inv);
  for (const text of [ini, yaml]) assert.match(text, /^[\x20-\x7e\n]*$/, 'printable ASCII and \\n only: no line break Python or YAML 1.1 knows of');
  const word = String.raw`(?:[A-Za-z_][A-Za-z0-9_.-]*|\d{1,3}(?:\.\d{1,3}){3}|'[^'\n]*')`;
  const grammar = new RegExp(String.raw`^(?:|# .*|\[[A-Za-z_][A-Za-z0-9_]*(?::children)?\]|[A-Za-z0-9][A-Za-z0-9._-]*(?: [a-z_]+=${word})*)$`);
  for (const line of ini.split('\n')) assert.match(line, grammar);
  assert.equal(ini.match(/^\[/gm)?.length, [...inv.groups.values()].reduce((n, g) => n + (g.hosts.length ? 1 : 0) + (g.children.length ? 1 : 0), 0), 'a section per group and its children, no more');
  assert.ok(!/^\[(all|weft_hosts|weft_endpoints):vars\]/m.test(ini));

  const json = JSON.parse(renderInventoryJson(inv));
  const unsafeTag = { tag: '!unsafe', resolve: (s: string) => ({ __ansible_unsafe: s }) };
  assert.deepEqual(meaningOfYaml(YAML().parse(yaml, { version: '1.1', customTags: [unsafeTag] })), meaning(json), 'YAML (read as YAML 1.1) says what the JSON says');
  assert.deepEqual(json._meta.hostvars.node1.weft_labels, { 'x]\n[all:vars]\nansible_user': 'root\'#"\\ =1', 'u\u2028v': 'w\u0085z', emoji: '\u{1F600}\uFFFD', zone: 'a-b' }, 'values intact, the lone surrogate replaced, __ansible keys left out');
  assert.ok(!inv.hostvars.has('ghost') && !Object.keys(json).some((g) => /ghost/.test(g)), 'an endpoint on an unknown host places no host anywhere');
});

test('a value Jinja would render is marked unsafe in JSON and YAML, left out of INI (which cannot mark it), and noted', () => {
  const inv = compileInventory(HOSTILE_HOSTS, HOSTILE_ENDPOINTS, true);
  const json = JSON.parse(renderInventoryJson(inv));
  assert.deepEqual(json._meta.hostvars.node1.weft_agent_version, { __ansible_unsafe: "{{ lookup('pipe', 'id') }}" });
  assert.ok(!('{{ k }}' in json._meta.hostvars.node1.weft_labels), 'a label key that is a template is left out');
  const ep = Object.values(json._meta.hostvars as Record<string, any>).find((v) => v.weft_endpoint_id === '2222222222222222');
  assert.deepEqual(ep.weft_container_name, { __ansible_unsafe: '{{ x }}' });
  assert.match(renderInventoryYaml(inv), /^ {10}weft_agent_version: !unsafe "\{\{ lookup\('pipe', 'id'\) \}\}"$/m);
  const lines = renderInventoryIni(inv).split('\n').filter((l) => !l.startsWith('#'));
  assert.doesNotMatch(lines.join('\n'), /\{\{|weft_agent_version/, 'only the note, a comment, names them');
  assert.ok(inv.notes.some((n) => n === 'host node1: Jinja would render weft_labels key "{{ k }}" (left out), weft_agent_version: marked unsafe (YAML, JSON), left out of INI'), inv.notes.join('\n'));
});

const ansibleVersion = spawnSync('ansible-inventory', ['--version'], { encoding: 'utf8' });
const noAnsible = ansibleVersion.status !== 0 && 'ansible-inventory is not installed (Debian: apt-get install ansible-core): the checks by the formats\' own rules above still ran';

test('ansible-inventory reads the INI, the YAML and a dynamic-inventory script as the inventory Weft compiled, hostile input included', { skip: noAnsible }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-inv-'));
  try {
    for (const [hosts, endpoints] of [[HOSTS, ENDPOINTS], [HOSTILE_HOSTS, HOSTILE_ENDPOINTS]] as const) {
      const inv = compileInventory(hosts, endpoints, true);
      const ours = meaning(JSON.parse(renderInventoryJson(inv)));
      writeFileSync(join(dir, 'hosts.ini'), renderInventoryIni(inv));
      writeFileSync(join(dir, 'hosts.yml'), renderInventoryYaml(inv));
      writeFileSync(join(dir, 'list.json'), renderInventoryJson(inv));
      writeFileSync(join(dir, 'weft-inventory'), `#!/bin/sh\n[ "$1" = --list ] && exec cat '${join(dir, 'list.json')}'\necho '{}'\n`);
      chmodSync(join(dir, 'weft-inventory'), 0o755);
      assert.deepEqual(ansibleList(dir, 'hosts.ini', 'ini'), { ...ours, hostvars: withoutUnsafe(ours.hostvars) }, 'INI (its unsafe variables left out)');
      assert.deepEqual(ansibleList(dir, 'hosts.yml', 'yaml'), ours, 'YAML');
      assert.deepEqual(ansibleList(dir, 'weft-inventory', 'script'), ours, 'dynamic-inventory script');
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('Ansible prints a host\'s Jinja text as text: from YAML and from the script it never runs (as it would from a plain INI value)', { skip: noAnsible }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-inv-'));
  try {
    const inv = compileInventory(HOSTILE_HOSTS, [], false);
    writeFileSync(join(dir, 'hosts.yml'), renderInventoryYaml(inv));
    writeFileSync(join(dir, 'list.json'), renderInventoryJson(inv));
    writeFileSync(join(dir, 'weft-inventory'), `#!/bin/sh\n[ "$1" = --list ] && exec cat '${join(dir, 'list.json')}'\necho '{}'\n`);
    chmodSync(join(dir, 'weft-inventory'), 0o755);
    for (const [file, plugin] of [['hosts.yml', 'yaml'], ['weft-inventory', 'script']] as const) {
      // debug runs on the controller: nothing connects to node1.
      const r = spawnSync('ansible', ['-i', join(dir, file), 'node1', '-c', 'local', '-m', 'debug', '-a', 'msg={{ weft_agent_version }}'], {
        cwd: dir, encoding: 'utf8', timeout: 120_000,
        env: { PATH: process.env['PATH'] ?? '', HOME: dir, ANSIBLE_LOCAL_TEMP: join(dir, 'tmp'), ANSIBLE_INVENTORY_ENABLED: plugin, ANSIBLE_NOCOLOR: '1' },
      });
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /"msg": "\{\{ lookup\('pipe', 'id'\) \}\}"/, `${file}: ${r.stdout}`);
      assert.doesNotMatch(r.stdout, /uid=/);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("ansible-inventory: __ansible label keys reach Ansible as nothing (unfiltered, one would replace weft_labels), and tenants' role=db groups stay apart", { skip: noAnsible }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-inv-'));
  try {
    const ep = (id: string, tenant: string, labels: Record<string, string>): InventoryEndpoint => ({ id, tenant, network: 'web', ip: '10.0.0.1', host: 'node1', containerId: id, labels });
    const hosts: InventoryHost[] = [{ name: 'node1', vtepIp: '192.0.2.1', labels: { zone: 'a', __ansible_unsafe: 'owned', __ansible_vault: VAULT } }];
    const inv = compileInventory(hosts, [ep('op1', 'ops', { role: 'db' }), ep('ev1', 'evil', { role: 'db', __ansible_unsafe: 'owned' }), ep('ev2', 'evil', { 'role/db': 'x' }), ep('ev3', 'evil', { role: 'db_x' })], true);
    const script = (name: string, list: string) => {
      writeFileSync(join(dir, `${name}.json`), list);
      writeFileSync(join(dir, name), `#!/bin/sh\n[ "$1" = --list ] && exec cat '${join(dir, `${name}.json`)}'\necho '{}'\n`);
      chmodSync(join(dir, name), 0o755);
    };
    script('weft-inventory', renderInventoryJson(inv));
    const got = ansibleList(dir, 'weft-inventory', 'script');
    assert.deepEqual(got.hostvars['node1'], { ansible_host: '192.0.2.1', weft_kind: 'host', weft_name: 'node1', weft_labels: { zone: 'a' }, weft_tenants: ['evil', 'ops'], weft_networks: ['evil/web', 'ops/web'] });
    assert.deepEqual((got.hostvars['ev1.ev1'] as any).weft_labels, { role: 'db' });
    assert.deepEqual(got.groups['ep_label_ops__role__db'], { hosts: ['op1.op1'], children: [] });
    assert.deepEqual(got.groups['ep_label_evil__role__db'], { hosts: ['ev1.ev1'], children: [] });
    assert.deepEqual(got.groups['ep_label_evil__role_sdb__x'], { hosts: ['ev2.ev2'], children: [] });
    assert.deepEqual(got.groups['ep_label_evil__role__db_ux'], { hosts: ['ev3.ev3'], children: [] });
    assert.deepEqual(got.groups['ep_tenant_ops'], { hosts: [], children: ['ep_label_ops__role__db', 'ep_network_ops__web'] });

    // The control: the same JSON with a label key left in. Ansible reads weft_labels as that key's value, an
    // unsafe string instead of the dictionary (which ansible-inventory writes back as {"__ansible_unsafe": ...}).
    const raw = JSON.parse(renderInventoryJson(inv));
    raw._meta.hostvars.node1.weft_labels = { zone: 'a', __ansible_unsafe: 'owned' };
    script('unfiltered', JSON.stringify(raw));
    assert.deepEqual((ansibleList(dir, 'unfiltered', 'script').hostvars['node1'] as any).weft_labels, { __ansible_unsafe: 'owned' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** `ansible-inventory -i FILE --list` with only PLUGIN enabled, a parse failure an error, and no warning. */
function ansibleList(dir: string, file: string, plugin: string): Meaning {
  const env = { PATH: process.env['PATH'] ?? '', HOME: dir, ANSIBLE_LOCAL_TEMP: join(dir, 'tmp'), ANSIBLE_INVENTORY_ENABLED: plugin, ANSIBLE_INVENTORY_UNPARSED_FAILED: 'true', ANSIBLE_NOCOLOR: '1' };
  const r = spawnSync('ansible-inventory', ['-i', join(dir, file), '--list'], { cwd: dir, env, encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, `ansible-inventory -i ${file}: ${r.stderr}`);
  assert.doesNotMatch(r.stderr, /WARNING/, `ansible-inventory -i ${file}`);
  return meaning(JSON.parse(r.stdout));
}

interface Meaning { groups: Record<string, { hosts: string[]; children: string[] }>; hostvars: Record<string, unknown> }

/** What a `--list` answer means to Ansible: each group's direct hosts and children, and each host's variables. */
function meaning(list: Record<string, any>): Meaning {
  const groups: Meaning['groups'] = {};
  for (const [name, g] of Object.entries(list)) {
    if (name === '_meta') continue;
    groups[name] = { hosts: [...(g.hosts ?? [])].sort(), children: [...(g.children ?? [])].filter((c) => c !== 'ungrouped').sort() };
  }
  return { groups, hostvars: list['_meta']?.hostvars ?? {} };
}

/** The same for Ansible's YAML inventory: a tree from `all`, each host's variables where it is first listed. */
function meaningOfYaml(doc: any): Meaning {
  const out: Meaning = { groups: {}, hostvars: {} };
  const walk = (name: string, node: any): void => {
    out.groups[name] = { hosts: Object.keys(node?.hosts ?? {}).sort(), children: Object.keys(node?.children ?? {}).sort() };
    for (const [h, vars] of Object.entries(node?.hosts ?? {})) if (vars && Object.keys(vars).length) out.hostvars[h] = vars;
    for (const [c, child] of Object.entries(node?.children ?? {})) walk(c, child);
  };
  walk('all', doc.all);
  return out;
}

function withoutUnsafe(hostvars: Record<string, unknown>): Record<string, unknown> {
  const unsafe = (v: unknown) => JSON.stringify(v)?.includes('"__ansible_unsafe"');
  return Object.fromEntries(Object.entries(hostvars).map(([h, vars]) => [h, Object.fromEntries(Object.entries(vars as object).filter(([, v]) => !unsafe(v)))]));
}
