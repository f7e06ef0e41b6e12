import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { YAML } from './output.js';
import {
  ascii, compileInventory, renderHostVarsJson, renderInventoryIni, renderInventoryJson, renderInventoryYaml, sanitiseGroup, sanitiseHost,
  type Inventory, type InventoryEndpoint, type InventoryHost,
} from './inventory.js';

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
// template, a lone surrogate, names that sanitise alike, a host named like a group.
const HOSTILE_HOSTS: InventoryHost[] = [
  { name: 'node1', vtepIp: '192.0.2.1', state: 'up', agentVersion: "{{ lookup('pipe', 'id') }}", labels: { zone: 'a-b', 'x]\n[all:vars]\nansible_user': 'root\'#"\\ =1', 'u\u2028v': 'w\u0085z', emoji: '\u{1F600}\uD800', '{{ k }}': 'v' } },
  { name: 'node2', vtepIp: '192.0.2.2\nevil=1', state: 'up', labels: { zone: 'a_b' } },
  { name: 'tenant_blue', vtepIp: '192.0.2.3' },
  { name: 'evil host\n[weft_hosts:vars]\n#', vtepIp: 'True', state: 'None' },
];
const HOSTILE_ENDPOINTS: InventoryEndpoint[] = [
  { id: '1111111111111111', tenant: 'blue', network: 'a-b', group: 'g', ip: '10.0.0.1', host: 'node1', containerId: 'c1', containerName: 'web 1\n[weft_endpoints:vars]', labels: { app: 'yes' } },
  { id: '2222222222222222', tenant: 'blue-a', network: 'b', ip: '10.0.0.2', host: 'node2', containerId: 'c2', containerName: '{{ x }}', labels: {} },
  { id: '3333333333333333', tenant: 'blue', network: 'a-b', ip: '10.0.0.3', host: 'ghost', containerId: 'c3', labels: {} },
];

test('golden: hosts and endpoints as Ansible INI (hosts grouped by label, tenant > network; endpoints by tenant > network, group, label)', () => {
  assert.equal(renderInventoryIni(compileInventory(HOSTS, ENDPOINTS, true)), `# Ansible inventory from Weft (weft inventory --format ansible): 6 hosts, 17 groups

[weft_hosts]
node1 ansible_host=192.0.2.1 weft_kind=host weft_name=node1 weft_state=up weft_labels='{"rack": "r1", "zone": "a"}' weft_tenants='["blue"]' weft_networks='["blue/web"]' weft_tunnel_ip=100.64.0.1 weft_agent_version='"0.1.0"' weft_last_seen='"2026-11-23T10:00:00.000Z"'
node2 ansible_host=192.0.2.2 weft_kind=host weft_name=node2 weft_state=down weft_labels='{"zone": "b"}' weft_tenants='["blue", "red"]' weft_networks='["blue/web", "red/web"]' weft_last_seen='"2026-11-23T09:50:00.000Z"'
node3 ansible_host=192.0.2.3 weft_kind=host weft_name=node3 weft_state=up weft_labels='{}' weft_tenants='[]' weft_networks='[]' weft_last_seen='"2026-11-23T10:00:00.000Z"'

[weft_hosts:children]
label_rack_r1
label_zone_a
label_zone_b
tenant_blue
tenant_red

[label_rack_r1]
node1

[label_zone_a]
node1

[label_zone_b]
node2

[tenant_blue:children]
network_blue_web

[network_blue_web]
node1
node2

[tenant_red:children]
network_red_web

[network_red_web]
node2

[weft_endpoints]
db-1.8a1f0c2d3e4f5a6b ansible_host=10.1.2.3 weft_kind=endpoint weft_endpoint_id='"8a1f0c2d3e4f5a6b"' weft_tenant=blue weft_network=web weft_group=db weft_host=node1 weft_container_id=abc123 weft_container_name=db-1 weft_ifname=eth0 weft_mac='"02:00:00:00:00:01"' weft_state=active weft_labels='{"group": "db", "network": "web"}'
f00dfeedf00d.b0b0b0b0b0b0b0b0 ansible_host=10.1.2.2 weft_kind=endpoint weft_endpoint_id=b0b0b0b0b0b0b0b0 weft_tenant=red weft_network=web weft_host=node2 weft_container_id=f00dfeedf00dfeedf00d weft_ifname=eth0 weft_mac='"02:00:00:00:00:03"' weft_state=active weft_labels='{}'
web-1.9b2e1d3c4b5a6978 ansible_host=10.1.2.4 weft_kind=endpoint weft_endpoint_id='"9b2e1d3c4b5a6978"' weft_tenant=blue weft_network=web weft_host=node2 weft_container_id=def456 weft_container_name=web-1 weft_ifname=eth0 weft_mac='"02:00:00:00:00:02"' weft_state=created weft_labels='{"app": "web", "network": "web"}'

[weft_endpoints:children]
ep_tenant_blue
ep_tenant_red
ep_label_app_web
ep_label_group_db
ep_label_network_web

[ep_tenant_blue:children]
ep_network_blue_web
ep_group_blue_db

[ep_network_blue_web]
db-1.8a1f0c2d3e4f5a6b
web-1.9b2e1d3c4b5a6978

[ep_group_blue_db]
db-1.8a1f0c2d3e4f5a6b

[ep_tenant_red:children]
ep_network_red_web

[ep_network_red_web]
f00dfeedf00d.b0b0b0b0b0b0b0b0

[ep_label_app_web]
web-1.9b2e1d3c4b5a6978

[ep_label_group_db]
db-1.8a1f0c2d3e4f5a6b

[ep_label_network_web]
db-1.8a1f0c2d3e4f5a6b
web-1.9b2e1d3c4b5a6978
`);
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
    weft_hosts: { hosts: ['node1', 'node2', 'node3'], children: ['label_rack_r1', 'label_zone_a', 'label_zone_b', 'tenant_blue', 'tenant_red'] },
    label_rack_r1: { hosts: ['node1'] }, label_zone_a: { hosts: ['node1'] }, label_zone_b: { hosts: ['node2'] },
    tenant_blue: { children: ['network_blue_web'] }, network_blue_web: { hosts: ['node1', 'node2'] },
    tenant_red: { children: ['network_red_web'] }, network_red_web: { hosts: ['node2'] },
  });
  assert.deepEqual(JSON.parse(renderHostVarsJson(inv, 'node1') ?? 'null'), node1, '--host NAME: that host\'s variables');
  assert.equal(renderHostVarsJson(inv, 'nobody'), undefined);
  assert.equal(renderInventoryYaml(inv), `# Ansible inventory from Weft (weft inventory --format yaml): 3 hosts, 8 groups
all:
  children:
    weft_hosts:
      hosts:
        "node1":
          ansible_host: "192.0.2.1"
          weft_kind: "host"
          weft_name: "node1"
          weft_state: "up"
          weft_labels: {"rack": "r1", "zone": "a"}
          weft_tenants: ["blue"]
          weft_networks: ["blue/web"]
          weft_tunnel_ip: "100.64.0.1"
          weft_agent_version: "0.1.0"
          weft_last_seen: "2026-11-23T10:00:00.000Z"
        "node2":
          ansible_host: "192.0.2.2"
          weft_kind: "host"
          weft_name: "node2"
          weft_state: "down"
          weft_labels: {"zone": "b"}
          weft_tenants: ["blue", "red"]
          weft_networks: ["blue/web", "red/web"]
          weft_last_seen: "2026-11-23T09:50:00.000Z"
        "node3":
          ansible_host: "192.0.2.3"
          weft_kind: "host"
          weft_name: "node3"
          weft_state: "up"
          weft_labels: {}
          weft_tenants: []
          weft_networks: []
          weft_last_seen: "2026-11-23T10:00:00.000Z"
      children:
        label_rack_r1:
          hosts:
            "node1": {}
        label_zone_a:
          hosts:
            "node1": {}
        label_zone_b:
          hosts:
            "node2": {}
        tenant_blue:
          children:
            network_blue_web:
              hosts:
                "node1": {}
                "node2": {}
        tenant_red:
          children:
            network_red_web:
              hosts:
                "node2": {}
`);
});

test('an empty cluster is an empty inventory in every format', () => {
  const inv = compileInventory([], [], true);
  assert.deepEqual(JSON.parse(renderInventoryJson(inv)), { _meta: { hostvars: {} }, all: { children: [] } });
  assert.equal(renderInventoryIni(inv), '# Ansible inventory from Weft (weft inventory --format ansible): 0 hosts, 0 groups\n');
  assert.equal(renderInventoryYaml(inv), '# Ansible inventory from Weft (weft inventory --format yaml): 0 hosts, 0 groups\nall:\n');
});

test('names fit Ansible: group names of letters, digits and _, not starting with a digit; host names without ports, ranges or quotes', () => {
  assert.equal(sanitiseGroup('label_app.kubernetes.io/name_web'), 'label_app_kubernetes_io_name_web');
  assert.equal(sanitiseGroup('1st'), '_1st');
  assert.equal(sanitiseHost('node-1.example'), 'node-1.example');
  assert.equal(sanitiseHost('-x:22[1:3] #'), 'x-x_22_1_3___');
  assert.equal(ascii('\u{1F600}\u2028\uD800"\n'), '"\\U0001f600\\u2028\\ufffd\\"\\n"', 'one escape per character, nothing that ends a line');
});

test('two things whose names sanitise alike both get a suffix from a hash of what they are, and a note says which is which', () => {
  const hosts = (order: InventoryHost[]) => compileInventory(order, [], false);
  const a: InventoryHost = { name: 'n1', labels: { zone: 'a-b' } };
  const b: InventoryHost = { name: 'n2', labels: { zone: 'a_b' } };
  const inv = hosts([a, b]);
  const zones = [...inv.groups.keys()].filter((g) => g.startsWith('label_zone_a_b'));
  assert.equal(zones.length, 2);
  assert.ok(zones.every((g) => /^label_zone_a_b_[0-9a-f]{6}$/.test(g)), zones.join(' '));
  assert.deepEqual(zones.map((g) => inv.groups.get(g)?.hosts).sort(), [['n1'], ['n2']], 'never one group for both');
  assert.equal(inv.notes.length, 1);
  assert.match(inv.notes[0] ?? '', /^2 names make label_zone_a_b: named label_zone_a_b_[0-9a-f]{6} \("host label zone=a-b"\), label_zone_a_b_[0-9a-f]{6} \("host label zone=a_b"\)$/);
  assert.deepEqual([...hosts([b, a]).groups.keys()], [...inv.groups.keys()], 'the same names whatever the order the API lists them in');
  assert.deepEqual([...hosts([a]).groups.keys()], ['weft_hosts', 'label_zone_a_b'], 'alone, a name is left as it is');

  // Across tenants and networks: a-b/c and a/b-c; and a host named like a group never takes the group's name.
  const ep = (id: string, tenant: string, network: string, host: string): InventoryEndpoint => ({ id, tenant, network, ip: '10.0.0.1', host, containerId: id });
  const inv2 = compileInventory([{ name: 'node1' }, { name: 'tenant_a' }], [ep('e1', 'a-b', 'c', 'node1'), ep('e2', 'a', 'b-c', 'node1')], false);
  assert.equal([...inv2.groups.keys()].filter((g) => g.startsWith('network_a_b_c_')).length, 2);
  assert.ok(inv2.groups.has('tenant_a') && !inv2.hostvars.has('tenant_a'), [...inv2.hostvars.keys()].join(' '));
  assert.ok([...inv2.hostvars.keys()].some((h) => /^tenant_a_[0-9a-f]{6}$/.test(h)));
  assert.ok(inv2.notes.some((n) => n.startsWith("tenant_a is also a group's name")), inv2.notes.join('\n'));
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
  assert.deepEqual(json._meta.hostvars.node1.weft_labels, { 'x]\n[all:vars]\nansible_user': 'root\'#"\\ =1', 'u\u2028v': 'w\u0085z', emoji: '\u{1F600}\uFFFD', zone: 'a-b' }, 'values intact, the lone surrogate replaced');
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
