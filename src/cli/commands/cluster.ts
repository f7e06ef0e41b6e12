import { Option, type Command } from 'commander';
import { ENCRYPTIONS } from '../../model/plain.js';
import { CliError, EXIT, usage } from '../errors.js';
import { act, done, intArg, leaf, type Ctx, type Io } from '../kit.js';
import { hostCommands } from './host.js';
import { labelChanges } from '../labels.js';

export function clusterCommands(program: Command, io: Io): void {
  const ep = program.command('endpoint').alias('ep').description('endpoints: container interfaces (created by the plugins)');
  leaf(ep, { name: 'ls', summary: 'list endpoints', example: ['weft endpoint ls', 'weft endpoint ls -a --host node1'] })
    .option('-a, --all', 'endpoints of every tenant')
    .option('--host <host>', 'only endpoints on this host')
    .action(act(io, async (ctx) => {
      const q = new URLSearchParams();
      if (!ctx.opts['all']) q.set('tenant', ctx.tenant);
      if (ctx.opts['host']) q.set('host', ctx.opts['host']);
      const { items } = await ctx.client.request('GET', `/api/v1/endpoints?${q}`);
      ctx.table(items, [
        { header: 'ID', get: (e: any) => e.id }, { header: 'TENANT', get: (e: any) => e.tenant }, { header: 'NETWORK', get: (e: any) => e.network },
        { header: 'GROUP', get: (e: any) => e.group }, { header: 'IP', get: (e: any) => [e.ip, e.ip6].filter(Boolean).join(',') }, { header: 'HOST', get: (e: any) => e.host },
        { header: 'CONTAINER', get: (e: any) => e.containerName ?? e.containerId.slice(0, 12) },
        // Which interface of the container; `weft attach` made it (`weft detach` removes it), or its runtime.
        { header: 'IFACE', get: (e: any) => (e.attached ? `${e.ifname} (attached)` : e.ifname) },
      ], (e: any) => e.id);
    }));
  leaf(ep, { name: 'inspect <id>', summary: 'show an endpoint, found by a piece of its id, container id or container name', example: 'weft ep inspect 8a1f', tenant: false })
    .action(act(io, async (ctx, needle) => ctx.show(await findEndpoint(ctx.client, needle))));

  leaf(ep, {
    name: 'label <id> <labels...>', summary: "set (key=value) or remove (key-) an endpoint's labels: what NetworkPolicy selectors and service selectors match",
    example: ['weft ep label 8a1f tier=web', 'weft ep label web-1 tier- canary=true'], tenant: false,
  })
    .addHelpText('after', `
The endpoint is found as by \`weft ep inspect\`. Its namespace, network and group labels never change.
A NetworkPolicy or service that selects by the changed labels takes effect on every host at once.
`)
    .action(act(io, async (ctx, needle, joined) => {
      const labels = labelChanges(joined);
      const e = await findEndpoint(ctx.client, needle);
      done(ctx, await ctx.client.request('PATCH', `/api/v1/endpoints/${e.id}`, { labels }), `endpoint ${e.id} labelled`);
    }));

  hostCommands(program, io);

  const g = program.command('global').description('cluster-wide settings: VNI range, underlay MTU, ARP mode, encryption between hosts');
  leaf(g, { name: 'inspect', summary: 'show the global settings (also what `weft global` alone does)', example: ['weft global', 'weft global inspect -o json'], tenant: false, isDefault: true })
    .action(act(io, async (ctx) => ctx.show(await ctx.client.request('GET', '/api/v1/global'))));
  leaf(g, {
    name: 'set', summary: 'change global settings (admin)', tenant: false,
    example: ['weft global set --encryption wireguard', 'weft global set --tunnel-range 100.80.0.0/20 --key-rotation-days 7', 'weft global set --vxlan-range 20000-29999', 'weft global set --arp-mode flood --mtu 9000'],
  })
    .option('-x, --vxlan-range <N-M>', 'VNIs networks get automatically')
    .option('--mtu <bytes>', 'underlay MTU; networks default to this minus 50 (VXLAN), minus 60 more when encrypted', intArg('--mtu', 1280, 9216))
    .option('-a, --arp-mode <proxy|flood>', 'answer ARP from known endpoints, or flood')
    .addOption(new Option('--encryption <mode>', 'wireguard: traffic between hosts goes through WireGuard (networks made with --encrypt=false stay clear); none: plain VXLAN').choices(ENCRYPTIONS))
    .option('--tunnel-range <cidr>', "where hosts' tunnel addresses come from (default 100.64.0.0/16); changing it re-addresses every host")
    .option('--key-rotation-days <n>', 'each host makes a new WireGuard key pair this often; 0: never (default 30)', intArg('--key-rotation-days', 0, 3650))
    .addHelpText('after', `
Encryption is switched on and off live: established connections survive. Each host makes its own key pair
(the private half never leaves it) and uses the kernel's WireGuard, or wireguard-go where the kernel has none.
`)
    .action(act(io, async (ctx) => {
      const o = ctx.opts;
      const flags = { vxlanRange: o['vxlanRange'], mtu: o['mtu'], arpMode: o['arpMode'], encryption: o['encryption'], tunnelRange: o['tunnelRange'], keyRotationDays: o['keyRotationDays'] };
      const body = Object.fromEntries(Object.entries(flags).filter(([, v]) => v !== undefined));
      if (Object.keys(body).length === 0) throw usage('global set: give at least one of --vxlan-range, --mtu, --arp-mode, --encryption, --tunnel-range, --key-rotation-days');
      done(ctx, await ctx.client.request('PATCH', '/api/v1/global', body), 'global settings updated');
    }));
}

/** The one endpoint (of those the user sees) whose id, container id or container name holds `needle`. */
async function findEndpoint(client: Ctx['client'], needle: string): Promise<any> {
  const { items } = await client.request('GET', '/api/v1/endpoints');
  const exact = items.filter((e: any) => e.id === needle || e.containerId === needle || e.containerName === needle);
  const hits = exact.length === 1 ? exact : items.filter((e: any) => e.id.includes(needle) || e.containerId.includes(needle) || (e.containerName ?? '').includes(needle));
  if (hits.length === 0) throw new CliError(`no endpoint matches '${needle}'`, EXIT.notFound);
  if (hits.length > 1) throw usage(`'${needle}' matches ${hits.length} endpoints (${hits.slice(0, 5).map((e: any) => e.id).join(', ')}); give more of the id`);
  return hits[0];
}
