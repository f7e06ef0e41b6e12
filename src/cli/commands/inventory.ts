import { Option, type Command } from 'commander';
import { CliError, EXIT, usage } from '../errors.js';
import { act, leaf, type Ctx, type Io } from '../kit.js';
import {
  compileInventory, renderHostVarsJson, renderInventoryIni, renderInventoryJson, renderInventoryYaml,
  type Inventory, type InventoryEndpoint, type InventoryHost,
} from '../inventory.js';

const FORMATS = ['ansible', 'json', 'yaml'] as const;
type Format = (typeof FORMATS)[number];

export function inventoryCommands(program: Command, io: Io): void {
  leaf(program, {
    name: 'inventory', tenant: false, output: false,
    summary: 'hosts (and endpoints) as an Ansible inventory: INI, dynamic-inventory JSON, or YAML',
    example: [
      'weft inventory --format ansible > hosts.ini', 'weft inventory --format yaml --endpoints -t blue > weft.yml',
      'weft inventory --list', 'weft inventory --host node1', 'weft inventory -q --endpoints',
    ],
  })
    .addOption(new Option('--format <format>', 'ansible (INI), json (dynamic inventory) or yaml (default: json with --list or --host, else ansible)').choices(FORMATS))
    .option('--list', 'the whole inventory: what Ansible asks a dynamic-inventory script for')
    .option('--host <name>', "one inventory host's variables, as JSON (the dynamic-inventory protocol's other question)")
    .option('--endpoints', 'endpoints as inventory hosts too (ansible_host: their address), grouped by tenant, network, group and label')
    .option('-t, --tenant <name>', "only this tenant's endpoints and groups (default: every tenant you may see)")
    .addHelpText('after', HELP)
    .action(act(io, async (ctx) => {
      const o = ctx.opts;
      if (o['list'] && o['host'] !== undefined) throw usage('give --list or --host, not both');
      const format: Format = o['format'] ?? (o['list'] || o['host'] !== undefined ? 'json' : 'ansible');
      if (o['host'] !== undefined && format !== 'json') throw usage(`--host answers Ansible's dynamic-inventory protocol, in JSON (not --format ${format})`);
      const inv = await fetchInventory(ctx, o['tenant'], o['endpoints'] === true);
      // On stderr, which Ansible shows from an inventory script too: a renamed group is worth a look.
      for (const n of inv.notes) io.err(`warning: ${n}\n`);
      if (o['host'] !== undefined) {
        const vars = renderHostVarsJson(inv, o['host']);
        if (vars === undefined) throw new CliError(`no inventory host '${o['host']}' (\`weft inventory -q${o['endpoints'] ? ' --endpoints' : ''}\` lists them)`, EXIT.notFound, 'not-found');
        return ctx.print(vars);
      }
      if (o['quiet']) {
        if (inv.hostvars.size) ctx.print([...inv.hostvars.keys()].join('\n'));
        return;
      }
      io.out(format === 'ansible' ? renderInventoryIni(inv) : format === 'yaml' ? renderInventoryYaml(inv) : `${renderInventoryJson(inv)}\n`);
    }));
}

/** What the server lets this user see: hosts (a tenant user's without addresses) and the endpoints of visible tenants. */
async function fetchInventory(ctx: Ctx, tenant: string | undefined, withEndpoints: boolean): Promise<Inventory> {
  const query = tenant === undefined ? '' : `?${new URLSearchParams({ tenant })}`;
  const [hosts, endpoints] = await Promise.all([
    ctx.client.request<{ items: InventoryHost[] }>('GET', '/api/v1/hosts'),
    ctx.client.request<{ items: InventoryEndpoint[] }>('GET', `/api/v1/endpoints${query}`),
  ]);
  return compileInventory(hosts.items, endpoints.items, withEndpoints);
}

const HELP = `
Groups (a tree under Ansible's \`all\`):
  weft_hosts                every host; ansible_host is the address its agent reported (VTEP)
    label_K__V              hosts by label K=V (labels of hosts are the operator's)
    tenant_T                hosts carrying endpoints of tenant T, through its networks:
      network_T__N          hosts carrying endpoints of network T/N
  weft_endpoints            with --endpoints: every endpoint, named CONTAINER.ID; ansible_host is its IP
    ep_tenant_T             tenant T's endpoints, only ever through these (none spans tenants):
      ep_network_T__N       endpoints of network T/N
      ep_group_T__G         endpoints of group T/G
      ep_label_T__K__V      T's endpoints labelled K=V (another tenant's K=V is another group)
Variables: ansible_host, weft_kind (host or endpoint), weft_state, weft_labels; hosts: weft_name,
weft_tenants, weft_networks, weft_tunnel_ip, weft_agent_version, weft_last_seen; endpoints:
weft_endpoint_id, weft_tenant, weft_network, weft_group, weft_host, weft_container_id,
weft_container_name, weft_ifname, weft_mac.

Group names are a kind, _, and the parts joined by __, each part escaped one-to-one into what Ansible
takes: a-z and 0-9 stay, _ is _u, - is _h, . is _d, / is _s, anything else (upper case too) _x and its
UTF-8 bytes in hex. So two things never share a group and no name is renamed: network web-1 of tenant
blue is network_blue__web_h1, label app.kubernetes.io/name=web of tenant blue's endpoints is
ep_label_blue__app_dkubernetes_dio_sname__web, host label tier=Db is label_tier___x44b. Host names keep
letters, digits, ., - and _; should two come out alike (or a host take a group's name), each gets a suffix
from a hash of what it is, and a warning on stderr (and a comment in INI and YAML) says which is which.
A value that Jinja would treat as a template is marked unsafe (JSON, YAML), or left out of INI, which
cannot mark it; a label key starting with __ansible (which Ansible's JSON decoder acts on) is left out.
ansible_host is what the server was told: a host's is the address its agent reported, so a compromised
host can point the plays meant for it (and their secrets) elsewhere; an endpoint's is the IP Weft gave it.
You see what the server lets you see: a tenant user gets only its tenants' endpoints, and hosts without
their addresses (so no ansible_host).

As an Ansible dynamic inventory (Ansible runs it with --list and reads every host's variables from it):
  $ printf '#!/bin/sh\\nexec weft inventory --endpoints "$@"\\n' > weft-inventory && chmod +x weft-inventory
  $ ansible-inventory -i weft-inventory --graph
  $ ansible -i weft-inventory tenant_blue -m ping
The script finds the server and token as weft always does (WEFT_SERVER, WEFT_TOKEN_FILE, \`weft login\`).
`;
