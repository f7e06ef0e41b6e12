import type { Command } from 'commander';
import { act, done, leaf, type Io, seg } from '../kit.js';
import { usage } from '../errors.js';

const action = (v: string) => {
  if (v !== 'allow' && v !== 'deny') throw usage(`--default-action: '${v}' is not allow or deny`);
  return v;
};

export function tenantCommands(program: Command, io: Io): void {
  const t = program.command('tenant').description('tenants: separate routing domains that may reuse subnets');
  leaf(t, { name: 'create <name>', summary: 'create a tenant', example: ['weft tenant create blue', 'weft tenant create --default-action deny locked'], tenant: false })
    .option('--default-action <action>', 'allow or deny traffic no rule matches', action)
    .action(act(io, async (ctx, name) => {
      const o = await ctx.client.request('POST', '/api/v1/tenants', { name, ...(ctx.opts['defaultAction'] ? { defaultAction: ctx.opts['defaultAction'] } : {}) });
      done(ctx, o, `tenant ${name} created`);
    }));
  leaf(t, { name: 'update <name>', summary: "change a tenant's default action", example: 'weft tenant update --default-action deny blue', tenant: false })
    .requiredOption('--default-action <action>', 'allow or deny', action)
    .action(act(io, async (ctx, name) => {
      const o = await ctx.client.request('PATCH', `/api/v1/tenants/${seg(name)}`, { defaultAction: ctx.opts['defaultAction'] });
      done(ctx, o, `tenant ${name} updated`);
    }));
  leaf(t, { name: 'ls', summary: 'list tenants', example: 'weft tenant ls', tenant: false })
    .action(act(io, async (ctx) => {
      const { items } = await ctx.client.request('GET', '/api/v1/tenants');
      ctx.table(items, [{ header: 'TENANT', get: (x: any) => x.name }, { header: 'DEFAULT ACTION', get: (x: any) => x.defaultAction }], (x: any) => x.name);
    }));
  leaf(t, { name: 'inspect <name>', summary: 'show a tenant', example: 'weft tenant inspect blue -o json', tenant: false })
    .action(act(io, async (ctx, name) => ctx.show(await ctx.client.request('GET', `/api/v1/tenants/${seg(name)}`))));
  leaf(t, { name: 'rm <name>', summary: 'delete an empty tenant', example: 'weft tenant rm blue', tenant: false })
    .action(act(io, async (ctx, name) => {
      await ctx.client.request('DELETE', `/api/v1/tenants/${seg(name)}`);
      done(ctx, { deleted: { kind: 'tenant', name } }, `tenant ${name} deleted`);
    }));
}
