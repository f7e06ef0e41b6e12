import type { Command } from 'commander';
import { parseLabelList } from '../../model/plain.js';
import { usage } from '../errors.js';
import { act, inspectAndRm, collect, done, intArg, leaf, listScoped, tenantPath, type Io, seg } from '../kit.js';

/** `80:8080:TCP` (service port : target port : protocol). */
export function parseServicePort(text: string): { port: number; targetPort: number; protocol: string } {
  const m = /^([0-9]{1,5}):([0-9]{1,5}):(TCP|UDP|tcp|udp)$/.exec(text);
  const port = Number(m?.[1]);
  const targetPort = Number(m?.[2]);
  if (!m?.[3] || port < 1 || port > 65535 || targetPort < 1 || targetPort > 65535) {
    throw usage(`--port: '${text}' is not PORT:TARGETPORT:PROTOCOL, e.g. 80:8080:TCP`);
  }
  return { port, targetPort, protocol: m[3].toUpperCase() };
}

function simpleLs(io: Io, parent: Command, collection: string, title: string, extra: Array<{ header: string; get: (x: any) => unknown }>) {
  leaf(parent, { name: 'ls', summary: `list ${collection}`, example: `weft ${parent.name()} ls` })
    .option('-a, --all', 'of every tenant')
    .action(act(io, async (ctx) => {
      const items = await listScoped<any>(ctx, collection, Boolean(ctx.opts['all']));
      ctx.table(items, [{ header: 'TENANT', get: (x) => x.tenant }, { header: title, get: (x) => x.name }, ...extra], (x) => x.name);
    }));
  inspectAndRm(io, parent, collection, parent.name());
}

export function profileCommands(program: Command, io: Io): void {
  const np = program.command('netprofile').description('bandwidth and DSCP profiles for groups');
  for (const verb of ['create', 'update'] as const) {
    leaf(np, {
      name: `${verb} <name>`, summary: verb === 'create' ? 'create a netprofile' : 'replace a netprofile (its groups\' endpoints follow live)',
      example: verb === 'create' ? 'weft netprofile create -b 10mbps -s 500 -d 10 gold' : 'weft netprofile update -b 100mbps -d 10 gold',
    })
      .option('-b, --bandwidth <rate>', 'each way, per endpoint, e.g. 10mbps, 1gbps')
      .option('-s, --burst <KB>', 'burst size in KB', intArg('--burst', 2, 10486))
      .option('-d, --dscp <0-63>', 'DSCP mark on the endpoints\' packets', intArg('--dscp', 0, 63))
      .action(act(io, async (ctx, name) => {
        const o = ctx.opts;
        const body = { name, ...(o['bandwidth'] ? { bandwidth: o['bandwidth'] } : {}), ...(o['burst'] !== undefined ? { burst: o['burst'] } : {}), ...(o['dscp'] !== undefined ? { dscp: o['dscp'] } : {}) };
        const r = verb === 'create'
          ? await ctx.client.request('POST', tenantPath(ctx, 'netprofiles'), body)
          : await ctx.client.request('PUT', tenantPath(ctx, `netprofiles/${seg(name)}`), body);
        done(ctx, r, `netprofile ${ctx.tenant}/${name} ${verb}d`);
      }));
  }
  simpleLs(io, np, 'netprofiles', 'NETPROFILE', [{ header: 'BANDWIDTH', get: (x) => x.bandwidth }, { header: 'BURST', get: (x) => x.burst }, { header: 'DSCP', get: (x) => x.dscp }]);

  const svc = program.command('service').description('service VIPs: east-west load balancing to endpoints matching labels');
  leaf(svc, { name: 'create <name>', summary: 'create a service', example: ['weft service create -s contiv-net -l group=db -p 80:8888:TCP dbsvc', 'weft service create -s svc-net -l app=web -p 80:8080:TCP --ip 10.1.2.200 websvc'] })
    .requiredOption('-s, --network <network>', 'network the VIP comes from')
    .option('-l, --selector <key=value>', 'backend label (repeatable; all must match)', collect)
    .option('-p, --port <port:target:proto>', 'e.g. 80:8080:TCP (repeatable)', collect)
    .option('--ip <vip>', 'a specific VIP (default: next free)')
    .option('--ip6 <vip6>', 'on a dual-stack network: a specific IPv6 VIP (default: next free of its subnet6)')
    .action(act(io, async (ctx, name) => {
      const o = ctx.opts;
      if (!o['selector']) throw usage('--selector: at least one key=value is required');
      if (!o['port']) throw usage('--port: at least one PORT:TARGETPORT:PROTOCOL is required');
      const body = { name, network: o['network'], selector: parseLabelList(o['selector'], '--selector'), ports: (o['port'] as string[]).map(parseServicePort), ...(o['ip'] ? { vip: o['ip'] } : {}), ...(o['ip6'] ? { vip6: o['ip6'] } : {}) };
      const s = await ctx.client.request('POST', tenantPath(ctx, 'services'), body);
      done(ctx, s, `service ${ctx.tenant}/${name} created with VIP ${[s.vip, s.vip6].filter(Boolean).join(' and ')}`);
    }));
  simpleLs(io, svc, 'services', 'SERVICE', [{ header: 'NETWORK', get: (x) => x.network }, { header: 'VIP', get: (x) => [x.vip, x.vip6].filter(Boolean).join(',') }, { header: 'SELECTOR', get: (x) => x.selector }, { header: 'PORTS', get: (x) => x.ports.map((p: any) => `${p.port}:${p.targetPort}/${p.protocol}`) }]);

  const app = program.command('app-profile').description('applications: named sets of groups');
  for (const verb of ['create', 'update'] as const) {
    leaf(app, { name: `${verb} <name>`, summary: `${verb} an app-profile`, example: `weft app-profile ${verb} -g web,db myapp` })
      .requiredOption('-g, --group <groups>', 'comma-separated group names')
      .action(act(io, async (ctx, name) => {
        const body = { name, groups: String(ctx.opts['group']).split(',').map((g) => g.trim()).filter(Boolean) };
        if (body.groups.length === 0) throw usage(`--group: '${String(ctx.opts['group'])}' names no group (e.g. -g web,db)`);
        const a = verb === 'create'
          ? await ctx.client.request('POST', tenantPath(ctx, 'app-profiles'), body)
          : await ctx.client.request('PUT', tenantPath(ctx, `app-profiles/${seg(name)}`), body);
        done(ctx, a, `app-profile ${ctx.tenant}/${name} ${verb}d`);
      }));
  }
  leaf(app, { name: 'group-ls <name>', summary: 'list the groups of an app-profile', example: 'weft app-profile group-ls myapp' })
    .action(act(io, async (ctx, name) => {
      const a = await ctx.client.request('GET', tenantPath(ctx, `app-profiles/${seg(name)}`));
      ctx.table(a.groups.map((g: string) => ({ g })), [{ header: 'GROUP', get: (x: any) => x.g }], (x: any) => x.g);
    }));
  simpleLs(io, app, 'app-profiles', 'APP-PROFILE', [{ header: 'GROUPS', get: (x) => x.groups }]);
}
