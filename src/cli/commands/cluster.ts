import type { Command } from 'commander';
import { CliError, EXIT, usage } from '../errors.js';
import { act, done, durationArg, intArg, leaf, type Io, seg } from '../kit.js';

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

  const host = program.command('host').description('hosts running a weft agent: invite (join tokens), list, remove');
  leaf(host, { name: 'ls', summary: 'list hosts: joined, invited, their state and certificates', example: 'weft host ls', tenant: false })
    .action(act(io, async (ctx) => {
      const { items } = await ctx.client.request('GET', '/api/v1/hosts');
      const ids = await ctx.client.request('GET', '/api/v1/host-identities').then((r: any) => r.items as any[], () => [] as any[]);
      const byName = new Map<string, any>(items.map((h: any) => [h.name, { ...h }]));
      for (const i of ids) byName.set(i.name, { ...(byName.get(i.name) ?? { name: i.name, state: i.state }), identity: i });
      const rows = [...byName.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
      ctx.table(rows, [
        { header: 'HOST', get: (h: any) => h.name }, { header: 'STATE', get: (h: any) => h.state }, { header: 'VTEP', get: (h: any) => h.vtepIp }, { header: 'WIREGUARD KEY', get: (h: any) => h.wgPublicKey },
        { header: 'AGENT', get: (h: any) => h.agentVersion }, { header: 'LAST SEEN', get: (h: any) => h.lastSeen },
        { header: 'JOINED', get: (h: any) => (h.identity ? (h.identity.joinedAt ? `${h.identity.joinedAt} (added by ${h.identity.addedBy})` : `invited by ${h.identity.addedBy}, token until ${h.identity.joinExpiresAt}`) : 'token (no certificate)') },
        { header: 'CERT EXPIRES', get: (h: any) => h.identity?.certExpiresAt },
      ], (h: any) => h.name);
    }));
  leaf(host, { name: 'inspect <name>', summary: 'show a host', example: 'weft host inspect node1', tenant: false })
    .action(act(io, async (ctx, name) => ctx.show(await ctx.client.request('GET', `/api/v1/hosts/${seg(name)}`))));
  leaf(host, {
    name: 'add <name>', tenant: false, output: 'short',
    summary: 'invite a host (admin): print a one-time join token bound to NAME that pins this server\'s CA',
    example: ['weft host add node2', 'weft host add node2 --ttl 15m -o json'],
  })
    .option('--ttl <duration>', 'how long the token can be used: 90s, 15m, 1h, 2d (at most 7d)', durationArg('--ttl', 1, 7 * 86_400), 3600)
    .addHelpText('after', '\nOn the new host, as root:\n  $ weft agent --server https://THIS-SERVER:9700 --join weftjoin1....\nThe agent checks the server against the CA hash in the token, gets its own certificate (kept 0600 in\n/var/lib/weft/agent/), and uses it from then on. The token works once; `weft host rm NAME` revokes the host.\n')
    .action(act(io, async (ctx, name) => {
      const r = await ctx.client.request('POST', `/api/v1/hosts/${seg(name)}/join-token`, { expiresIn: ctx.opts['ttl'] });
      if (ctx.format !== 'table') return ctx.show(r);
      const server = ctx.opts['server'] ?? io.env['WEFT_SERVER'] ?? 'https://SERVER:9700';
      ctx.print(`join token for ${name} (one use, until ${r.expiresAt}):\n  ${r.token}\n\non ${name}, as root:\n  weft agent --server ${server.split(',')[0]} --join '${r.token}'`);
    }));
  leaf(host, { name: 'rm <name>', summary: 'remove a host (admin): revoke its certificate at once, release its endpoints, forget it', example: 'weft host rm node2', tenant: false })
    .action(act(io, async (ctx, name) => {
      await ctx.client.request('DELETE', `/api/v1/hosts/${seg(name)}`);
      ctx.print(`host ${name} removed: its certificate is revoked and its endpoints released`);
    }));

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
