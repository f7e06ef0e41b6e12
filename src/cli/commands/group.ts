import type { Command } from 'commander';
import { usage } from '../errors.js';
import { parseLabelList } from '../../model/plain.js';
import { act, inspectAndRm, collect, done, fillsFields, leaf, listScoped, tenantPath, type Io, seg } from '../kit.js';

/** The body fields group options fill under other names (the server's refusal names the option: kit.ts byOption). */
const GROUP_FIELDS = { policy: 'policies', label: 'labels' };

const labels = (items: string[] | undefined) => (items ? parseLabelList(items, '--label') : undefined);

export function groupCommands(program: Command, io: Io): void {
  const g = program.command('group').description('groups of endpoints (Contiv endpoint groups); policies attach here');
  fillsFields(leaf(g, {
    name: 'create <network> <name>', summary: 'create a group on a network',
    example: ['weft group create -p db-policy contiv-net db', 'weft group create -t blue -p web -n gold -r 10.1.1.10-10.1.1.50 web-net web'],
  }), GROUP_FIELDS)
    .option('-p, --policy <policy>', 'attach a policy (repeatable)', collect)
    .option('-n, --netprofile <profile>', 'bandwidth/DSCP profile')
    .option('-r, --ip-pool <range>', 'addresses for this group only, a.b.c.d-e.f.g.h')
    .option('-l, --label <key=value>', 'label (repeatable)', collect)
    .action(act(io, async (ctx, network, name) => {
      const o = ctx.opts;
      const body = {
        name, network,
        ...(o['policy'] ? { policies: o['policy'] } : {}),
        ...(o['netprofile'] ? { netprofile: o['netprofile'] } : {}),
        ...(o['ipPool'] ? { ipPool: o['ipPool'] } : {}),
        ...(o['label'] ? { labels: labels(o['label']) } : {}),
      };
      const grp = await ctx.client.request('POST', tenantPath(ctx, 'groups'), body);
      done(ctx, grp, `group ${ctx.tenant}/${name} created on network ${network}`);
    }));
  fillsFields(leaf(g, {
    name: 'update <name>', summary: "change a group's policies, netprofile or labels",
    example: ['weft group update -n gold db', 'weft group update -p db-policy -p audit db', 'weft group update --no-netprofile db'],
  }), GROUP_FIELDS)
    .option('-p, --policy <policy>', 'the policies to attach (repeatable; replaces the list)', collect)
    .option('--no-policies', 'detach every policy')
    .option('-n, --netprofile <profile>', 'bandwidth/DSCP profile')
    .option('--no-netprofile', 'detach the netprofile')
    .option('-l, --label <key=value>', 'labels (repeatable; replaces them)', collect)
    .action(act(io, async (ctx, name) => {
      const o = ctx.opts;
      const body: Record<string, unknown> = {};
      if (o['policy'] && o['policies'] === false) throw usage('give -p/--policy or --no-policies, not both');
      if (o['policy']) body['policies'] = o['policy'];
      else if (o['policies'] === false) body['policies'] = [];
      if (typeof o['netprofile'] === 'string') body['netprofile'] = o['netprofile'];
      else if (o['netprofile'] === false) body['netprofile'] = '';
      if (o['label']) body['labels'] = labels(o['label']);
      if (Object.keys(body).length === 0) throw usage('group update: nothing to change; give -p/--no-policies, -n/--no-netprofile or -l');
      const grp = await ctx.client.request('PATCH', tenantPath(ctx, `groups/${seg(name)}`), body);
      done(ctx, grp, `group ${ctx.tenant}/${name} updated`);
    }));
  leaf(g, { name: 'ls', summary: 'list groups', example: ['weft group ls', 'weft group ls -a'] })
    .option('-a, --all', 'groups of every tenant')
    .action(act(io, async (ctx) => {
      const items = await listScoped<any>(ctx, 'groups', Boolean(ctx.opts['all']));
      ctx.table(items, [
        { header: 'TENANT', get: (x) => x.tenant }, { header: 'GROUP', get: (x) => x.name }, { header: 'NETWORK', get: (x) => x.network },
        { header: 'POLICIES', get: (x) => x.policies }, { header: 'NETPROFILE', get: (x) => x.netprofile }, { header: 'IP POOL', get: (x) => x.ipPool },
      ], (x) => x.name);
    }));
  inspectAndRm(io, g, 'groups', 'group', ' (refused while endpoints, rules or app-profiles use it)');
}
