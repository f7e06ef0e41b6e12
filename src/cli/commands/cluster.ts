import type { Command } from 'commander';
import { CliError, EXIT, usage } from '../errors.js';
import { act, done, intArg, leaf, type Io, seg } from '../kit.js';

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
        { header: 'GROUP', get: (e: any) => e.group }, { header: 'IP', get: (e: any) => e.ip }, { header: 'HOST', get: (e: any) => e.host },
        { header: 'CONTAINER', get: (e: any) => e.containerName ?? e.containerId.slice(0, 12) },
      ], (e: any) => e.id);
    }));
  leaf(ep, { name: 'inspect <id>', summary: 'show an endpoint, found by a piece of its id, container id or container name', example: 'weft ep inspect 8a1f', tenant: false })
    .action(act(io, async (ctx, needle) => {
      const { items } = await ctx.client.request('GET', '/api/v1/endpoints');
      const hits = items.filter((e: any) => e.id.includes(needle) || e.containerId.includes(needle) || (e.containerName ?? '').includes(needle));
      if (hits.length === 0) throw new CliError(`no endpoint matches '${needle}'`, EXIT.notFound);
      if (hits.length > 1) throw usage(`'${needle}' matches ${hits.length} endpoints (${hits.slice(0, 5).map((e: any) => e.id).join(', ')}); give more of the id`);
      ctx.show(hits[0]);
    }));

  const host = program.command('host').description('hosts running a weft agent');
  leaf(host, { name: 'ls', summary: 'list hosts', example: 'weft host ls', tenant: false })
    .action(act(io, async (ctx) => {
      const { items } = await ctx.client.request('GET', '/api/v1/hosts');
      ctx.table(items, [
        { header: 'HOST', get: (h: any) => h.name }, { header: 'STATE', get: (h: any) => h.state }, { header: 'VTEP', get: (h: any) => h.vtepIp },
        { header: 'AGENT', get: (h: any) => h.agentVersion }, { header: 'LAST SEEN', get: (h: any) => h.lastSeen },
      ], (h: any) => h.name);
    }));
  leaf(host, { name: 'inspect <name>', summary: 'show a host', example: 'weft host inspect node1', tenant: false })
    .action(act(io, async (ctx, name) => ctx.show(await ctx.client.request('GET', `/api/v1/hosts/${seg(name)}`))));

  const g = program.command('global').description('cluster-wide settings');
  leaf(g, { name: 'inspect', summary: 'show the global settings', example: 'weft global inspect', tenant: false })
    .action(act(io, async (ctx) => ctx.show(await ctx.client.request('GET', '/api/v1/global'))));
  leaf(g, { name: 'set', summary: 'change global settings (admin)', example: ['weft global set --vxlan-range 20000-29999', 'weft global set --arp-mode flood --mtu 9000'], tenant: false })
    .option('-x, --vxlan-range <N-M>', 'VNIs networks get automatically')
    .option('--mtu <bytes>', 'underlay MTU; networks default to this minus 50', intArg('--mtu', 1280, 9216))
    .option('-a, --arp-mode <proxy|flood>', 'answer ARP from known endpoints, or flood')
    .action(act(io, async (ctx) => {
      const o = ctx.opts;
      const body = { ...(o['vxlanRange'] ? { vxlanRange: o['vxlanRange'] } : {}), ...(o['mtu'] !== undefined ? { mtu: o['mtu'] } : {}), ...(o['arpMode'] ? { arpMode: o['arpMode'] } : {}) };
      if (Object.keys(body).length === 0) throw usage('global set: give at least one of --vxlan-range, --mtu, --arp-mode');
      done(ctx, await ctx.client.request('PATCH', '/api/v1/global', body), 'global settings updated');
    }));
}
