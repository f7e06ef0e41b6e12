import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cliSession, http, WEFT_BIN } from '../testkit/server.js';
import { EXIT } from './errors.js';

// `weft inventory` as a user runs it, against a real `weft server` (no root needed), and read back by the
// real ansible-inventory: from INI, from YAML, and with weft itself as the dynamic-inventory script.

const session = cliSession();
const dir = mkdtempSync(join(tmpdir(), 'weft-inv-cli-'));
let weftArgv: string[] = [];
let bobToken = '';
const ips: Record<string, string> = {};

before(async () => {
  await session.start();
  const { url, token } = session.srv;
  const ok = async (method: string, path: string, body?: unknown, as = token) => {
    const r = await http(url, as, method, path, body);
    assert.ok(r.status < 300, `${method} ${path}: ${r.status} ${JSON.stringify(r.json)}`);
    return r.json;
  };
  for (const [t, subnet] of [['blue', '10.1.0.0/24'], ['red', '10.2.0.0/24']] as const) {
    await ok('POST', '/api/v1/tenants', { name: t });
    await ok('POST', `/api/v1/tenants/${t}/networks`, { name: 'web', subnet });
  }
  await ok('POST', '/api/v1/tenants/blue/groups', { name: 'db', network: 'web' });
  await ok('PUT', '/api/v1/hosts/node1', { name: 'node1', vtepIp: '192.0.2.1', agentVersion: '0.1.0' });
  // What the API lets a host say of itself: a Jinja template in its agent version.
  await ok('PUT', '/api/v1/hosts/node2', { name: 'node2', vtepIp: '192.0.2.2', agentVersion: "{{ lookup('pipe', 'id') }}" });
  const ep = async (key: string, body: Record<string, unknown>) => (ips[key] = (await ok('POST', '/api/v1/endpoints', { ifname: 'eth0', ...body })).ip);
  await ep('db-1', { tenant: 'blue', network: 'web', group: 'db', host: 'node1', containerId: 'c0ffee01', containerName: 'db-1', labels: { zone: 'a-b', 'role/db': 'x' } });
  await ep('web-1', { tenant: 'blue', network: 'web', host: 'node2', containerId: 'c0ffee02', containerName: 'web-1', labels: { zone: 'a_b', role: 'db_x' } });
  // Tenant red labels its container as blue's (the operator's) db role: a group of red's own, never blue's.
  await ep('red', { tenant: 'red', network: 'web', host: 'node2', containerId: 'docker:c0ffee03', labels: { role: 'db_x' } });
  await ok('POST', '/api/v1/users', { name: 'bob', role: 'tenant', tenants: ['blue'], password: 'bob-password' });
  bobToken = (await ok('POST', '/api/v1/login', { username: 'bob', password: 'bob-password' })).token;
  weftArgv = await pickWeft();
});
after(async () => {
  await session.stop();
  rmSync(dir, { recursive: true, force: true });
});

/**
 * The installed CLI once it knows `inventory` (program.ts wired, `npm run build` run). Until then, the
 * compiled CLI's own runCli with the one line program.ts is to get, so exit codes and flags are the real ones.
 */
async function pickWeft(): Promise<string[]> {
  const real = await weft(['inventory', '--help'], {}, [WEFT_BIN]);
  if (real.code === 0 && real.stdout.includes('--endpoints')) return [WEFT_BIN];
  const here = (f: string) => JSON.stringify(fileURLToPath(new URL(f, import.meta.url)));
  const runner = join(dir, 'weft-runner.mjs');
  writeFileSync(runner, `import { COMMAND_MODULES, runCli } from ${here('./program.js')};
import { inventoryCommands } from ${here('./commands/inventory.js')};
if (!COMMAND_MODULES.some((m) => m.names.includes('inventory'))) COMMAND_MODULES.push({ names: ['inventory'], load: async () => inventoryCommands });
const io = { out: (s) => void process.stdout.write(s), err: (s) => void process.stderr.write(s), env: process.env };
process.exitCode = await runCli(process.argv.slice(2), io, {});
`);
  return [runner];
}

function env(token?: string): Record<string, string> {
  return { ...session.env, WEFT_CA: session.srv.caFile, ...(token ? { WEFT_TOKEN: token } : {}) };
}

function weft(args: string[], extra: Record<string, string> = {}, argv = weftArgv): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [...argv, ...args], { env: { PATH: process.env['PATH'] ?? '', ...env(), ...extra }, timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

async function ok(args: string[], extra: Record<string, string> = {}): Promise<{ stdout: string; stderr: string }> {
  const r = await weft(args, extra);
  assert.equal(r.code, 0, `weft ${args.join(' ')}: ${r.stderr}`);
  return r;
}

test('the inventory says what Weft has: hosts at their underlay addresses, grouped by the tenants and networks they carry; endpoints at their IPs', async () => {
  const list = JSON.parse((await ok(['inventory', '--list', '--endpoints'])).stdout);
  assert.deepEqual(list.all, { children: ['weft_hosts', 'weft_endpoints'] });
  assert.deepEqual(list.weft_hosts.hosts, ['node1', 'node2']);
  assert.deepEqual([list._meta.hostvars.node1.ansible_host, list._meta.hostvars.node2.ansible_host], ['192.0.2.1', '192.0.2.2']);
  assert.deepEqual(list.tenant_blue, { children: ['network_blue__web'] });
  assert.deepEqual(list.network_blue__web.hosts, ['node1', 'node2']);
  assert.deepEqual(list.network_red__web.hosts, ['node2']);
  assert.deepEqual(list._meta.hostvars.node2.weft_tenants, ['blue', 'red']);
  const db = Object.keys(list._meta.hostvars).find((h) => h.startsWith('db-1.')) as string;
  assert.deepEqual(list.ep_group_blue__db.hosts, [db]);
  assert.equal(list._meta.hostvars[db].ansible_host, ips['db-1'], 'an endpoint is reached at the address the server gave it');
  assert.ok(Object.keys(list._meta.hostvars).some((h) => /^docker_c0ffe\.[0-9a-f]{16}$/.test(h)), 'a container id with a colon (a port to INI) is sanitised');
  assert.deepEqual(list._meta.hostvars.node2.weft_agent_version, { __ansible_unsafe: "{{ lookup('pipe', 'id') }}" }, "a host's template is never rendered by Ansible");

  const host = await ok(['inventory', '--host', 'node1']);
  assert.deepEqual(JSON.parse(host.stdout), list._meta.hostvars.node1, '--host NAME: the same variables');
  assert.deepEqual((await ok(['inventory', '-q'])).stdout, 'node1\nnode2\n');
});

test('labels that sanitised alike (zone=a-b, zone=a_b; role/db=x, role=db_x) are groups under their own one-to-one names, per tenant, with no warning', async () => {
  const r = await ok(['inventory', '--list', '--endpoints']);
  const list = JSON.parse(r.stdout);
  const named = (prefix: string) => Object.keys(list._meta.hostvars).find((h) => h.startsWith(prefix)) as string;
  const [db, web, red] = [named('db-1.'), named('web-1.'), named('docker_c0ffe.')];
  assert.deepEqual(list.ep_label_blue__zone__a_hb, { hosts: [db] });
  assert.deepEqual(list.ep_label_blue__zone__a_ub, { hosts: [web] });
  assert.deepEqual(list.ep_label_blue__role_sdb__x, { hosts: [db] });
  assert.deepEqual(list.ep_label_blue__role__db_ux, { hosts: [web] }, "blue's role=db_x: blue's container only");
  assert.deepEqual(list.ep_label_red__role__db_ux, { hosts: [red] }, "red's role=db_x: a group of red's own");
  assert.deepEqual(list.weft_endpoints.children, ['ep_tenant_blue', 'ep_tenant_red'], 'every label group sits under its tenant');
  assert.deepEqual(list.ep_tenant_red.children, ['ep_network_red__web', 'ep_label_red__network__web', 'ep_label_red__role__db_ux'], 'the network label the server sets is per tenant too');
  assert.deepEqual(list.ep_label_red__network__web, { hosts: [red] });
  // node2's agent version is a template: that warning only, none of names told apart.
  assert.equal(r.stderr, 'warning: host node2: Jinja would render weft_agent_version: marked unsafe (YAML, JSON), left out of INI\n');
  assert.deepEqual((await ok(['inventory', '--endpoints'])).stdout.match(/^# note.*/gm), ['# note: host node2: Jinja would render weft_agent_version: marked unsafe (YAML, JSON), left out of INI']);
});

test('a tenant user sees what the server shows it: its tenant\'s endpoints only, hosts without addresses', async () => {
  const list = JSON.parse((await ok(['inventory', '--list', '--endpoints'], { WEFT_TOKEN: bobToken })).stdout);
  assert.deepEqual(Object.keys(list).filter((g) => /red/.test(g)), []);
  assert.deepEqual(list.network_blue__web.hosts, ['node1', 'node2']);
  assert.equal(list._meta.hostvars.node1.ansible_host, undefined);
  assert.deepEqual(list._meta.hostvars.node2.weft_tenants, ['blue'], 'not even a count of what red has there');
  assert.ok(Object.values(list._meta.hostvars).every((v: any) => v.weft_kind === 'host' || v.weft_tenant === 'blue'));
  const red = await weft(['inventory', '-t', 'red'], { WEFT_TOKEN: bobToken });
  assert.equal(red.code, EXIT.notFound, red.stderr);
  const admin = JSON.parse((await ok(['inventory', '--list', '-t', 'red'])).stdout);
  assert.deepEqual(Object.keys(admin).filter((g) => g.startsWith('tenant_')), ['tenant_red'], '-t: only that tenant');
});

test('usage errors and unknown hosts have their exit codes', async () => {
  assert.equal((await weft(['inventory', '--list', '--host', 'node1'])).code, EXIT.usage);
  assert.equal((await weft(['inventory', '--host', 'node1', '--format', 'ansible'])).code, EXIT.usage);
  assert.equal((await weft(['inventory', '--format', 'toml'])).code, EXIT.usage);
  const none = await weft(['inventory', '--host', 'nobody']);
  assert.equal(none.code, EXIT.notFound);
  assert.match(none.stderr, /no inventory host 'nobody'/);
  const help = await ok(['inventory', '--help']);
  assert.match(help.stdout, /As an Ansible dynamic inventory/);
  assert.match(help.stdout, /ansible_host is what the server was told: a host's is the address its agent reported, so a compromised\s+host can point the plays meant for it/);
  assert.match(help.stdout, /ep_label_T__K__V/);
  assert.match(help.stdout, /_ is _u, - is _h, \. is _d, \/ is _s/);
});

const noAnsible = spawnSync('ansible-inventory', ['--version']).status !== 0 && 'ansible-inventory is not installed (Debian: apt-get install ansible-core)';

test('ansible-inventory reads weft\'s INI, its YAML, and weft as a dynamic-inventory script, as what `weft inventory --list` says', { skip: noAnsible }, async () => {
  const ours = meaning(JSON.parse((await ok(['inventory', '--list', '--endpoints'])).stdout));
  writeFileSync(join(dir, 'hosts.ini'), (await ok(['inventory', '--endpoints', '--format', 'ansible'])).stdout);
  writeFileSync(join(dir, 'hosts.yml'), (await ok(['inventory', '--endpoints', '--format', 'yaml'])).stdout);
  // The wrapper the help shows, with this test's node and weft.
  const script = join(dir, 'weft-inventory');
  writeFileSync(script, `#!/bin/sh\nexec ${[process.execPath, ...weftArgv].map((a) => `'${a}'`).join(' ')} inventory --endpoints "$@"\n`);
  chmodSync(script, 0o755);
  const unsafe = (v: unknown) => JSON.stringify(v).includes('"__ansible_unsafe"');
  const iniVars = Object.fromEntries(Object.entries(ours.hostvars).map(([h, vars]) => [h, Object.fromEntries(Object.entries(vars as object).filter(([, v]) => !unsafe(v)))]));
  assert.deepEqual(ansibleList('hosts.ini', 'ini'), { ...ours, hostvars: iniVars }, 'INI: all but the unsafe variable');
  assert.deepEqual(ansibleList('hosts.yml', 'yaml'), ours, 'YAML');
  const viaScript = ansibleList('weft-inventory', 'script');
  assert.deepEqual(viaScript, ours, 'weft as the script');
  // What Ansible itself makes of the groups: red's role=db_x and blue's are two, each of one tenant's endpoints.
  const tenantsIn = (g: string) => new Set(viaScript.groups[g]?.hosts.map((h) => (viaScript.hostvars[h] as any).weft_tenant));
  assert.deepEqual([...tenantsIn('ep_label_blue__role__db_ux')], ['blue']);
  assert.deepEqual([...tenantsIn('ep_label_red__role__db_ux')], ['red']);
  assert.deepEqual(viaScript.groups['ep_label_blue__role_sdb__x']?.hosts.length, 1);
});

function ansibleList(file: string, plugin: string): ReturnType<typeof meaning> {
  const vars = { ...env(), PATH: process.env['PATH'] ?? '', HOME: dir, ANSIBLE_LOCAL_TEMP: join(dir, 'ansible-tmp'), ANSIBLE_INVENTORY_ENABLED: plugin, ANSIBLE_INVENTORY_UNPARSED_FAILED: 'true', ANSIBLE_NOCOLOR: '1' };
  const r = spawnSync('ansible-inventory', ['-i', join(dir, file), '--list'], { cwd: dir, env: vars, encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, `ansible-inventory -i ${file}: ${r.stderr}`);
  return meaning(JSON.parse(r.stdout));
}

/** A `--list` answer as Ansible means it: each group's direct hosts and children, each host's variables. */
function meaning(list: Record<string, any>): { groups: Record<string, { hosts: string[]; children: string[] }>; hostvars: Record<string, unknown> } {
  const groups: Record<string, { hosts: string[]; children: string[] }> = {};
  for (const [name, g] of Object.entries(list)) {
    if (name !== '_meta') groups[name] = { hosts: [...(g.hosts ?? [])].sort(), children: [...(g.children ?? [])].filter((c) => c !== 'ungrouped').sort() };
  }
  return { groups, hostvars: list['_meta']?.hostvars ?? {} };
}
