import type { Command } from 'commander';
import { usage } from '../errors.js';
import { act, inspectAndRm, done, fillsFields, intArg, leaf, listScoped, tenantPath, type Io, seg } from '../kit.js';

const RULE_FLAGS: Array<[string, string]> = [
  ['direction', 'direction'], ['priority', 'priority'], ['protocol', 'protocol'], ['port', 'ports'], ['action', 'action'],
  ['fromGroup', 'fromGroup'], ['toGroup', 'toGroup'], ['fromNetwork', 'fromNetwork'], ['toNetwork', 'toNetwork'],
  ['fromCidr', 'fromCidr'], ['toCidr', 'toCidr'],
];

export function policyCommands(program: Command, io: Io): void {
  const p = program.command('policy').description('policies: prioritised allow/deny rules, attached to groups');
  leaf(p, { name: 'create <name>', summary: 'create an empty policy', example: ['weft policy create db-policy', 'weft policy create watch-db --mode audit'] })
    .option('--mode <enforce|audit>', 'audit: its rules are evaluated, and what they would drop passes, counted and logged', 'enforce')
    .action(act(io, async (ctx, name) => {
      const mode = String(ctx.opts['mode']);
      if (mode !== 'enforce' && mode !== 'audit') throw usage(`--mode: '${mode}' is not enforce or audit`);
      done(ctx, await ctx.client.request('POST', tenantPath(ctx, 'policies'), { name, ...(mode === 'audit' ? { mode } : {}) }), `policy ${ctx.tenant}/${name} created${mode === 'audit' ? ' (audit mode)' : ''}`);
    }));
  leaf(p, { name: 'ls', summary: 'list policies', example: ['weft policy ls', 'weft policy ls -a'] })
    .option('-a, --all', 'policies of every tenant')
    .action(act(io, async (ctx) => {
      const items = await listScoped<any>(ctx, 'policies', Boolean(ctx.opts['all']));
      ctx.table(items, [{ header: 'TENANT', get: (x) => x.tenant }, { header: 'POLICY', get: (x) => x.name }, { header: 'MODE', get: (x) => x.mode ?? 'enforce' }, { header: 'RULES', get: (x) => x.rules.length }], (x) => x.name);
    }));
  inspectAndRm(io, p, 'policies', 'policy', ' (refused while attached to a group)');

  fillsFields(leaf(p, {
    name: 'rule-add <policy> <id>', output: 'long',
    summary: 'add a rule; in each direction the matching rule with the highest priority decides, deny wins ties',
    example: [
      'weft policy rule-add db-policy 1 -d in -l tcp -j deny',
      'weft policy rule-add db-policy 2 -direction=in -protocol=tcp -port=8888 -action=allow -priority=10',
      'weft policy rule-add -t blue web 3 -d in -g app -l tcp -P 80 -p 100',
    ],
  }), Object.fromEntries(RULE_FLAGS))
    .option('-d, --direction <in|out>', 'in: traffic to the group; out: traffic from it', 'in')
    .option('-p, --priority <1-100>', 'higher wins', intArg('--priority', 1, 100))
    .option('-l, --protocol <proto>', 'tcp, udp, sctp, icmp, any or a protocol number')
    .option('-P, --port <port>', 'port or range, e.g. 8888 or 8000-8080')
    .option('-g, --from-group <group>', 'peer group (in rules)')
    .option('-e, --to-group <group>', 'peer group (out rules)')
    .option('-n, --from-network <network>', 'peer network (in rules)')
    .option('-o, --to-network <network>', 'peer network (out rules)')
    .option('-i, --from-cidr <cidr>', 'peer addresses (in rules); netctl: --from-ip-address')
    .option('-s, --to-cidr <cidr>', 'peer addresses (out rules); netctl: --to-ip-address')
    .option('-j, --action <allow|deny>', 'what the rule does', 'allow')
    .action(act(io, async (ctx, policy, id) => {
      const body: Record<string, unknown> = { id };
      for (const [flag, field] of RULE_FLAGS) if (ctx.opts[flag] !== undefined) body[field] = ctx.opts[flag];
      const r = await ctx.client.request('POST', tenantPath(ctx, `policies/${seg(policy)}/rules`), body);
      done(ctx, r, `rule ${id} added to policy ${ctx.tenant}/${policy}`);
    }));
  leaf(p, { name: 'rule-rm <policy> <id>', summary: 'remove a rule', example: 'weft policy rule-rm db-policy 3' })
    .action(act(io, async (ctx, policy, id) => {
      await ctx.client.request('DELETE', tenantPath(ctx, `policies/${seg(policy)}/rules/${seg(id)}`));
      ctx.print(`rule ${id} removed from policy ${ctx.tenant}/${policy}`);
    }));
  leaf(p, { name: 'rule-ls <policy>', summary: "list a policy's rules, highest priority first", example: 'weft policy rule-ls db-policy' })
    .action(act(io, async (ctx, policy) => {
      const { items } = await ctx.client.request('GET', tenantPath(ctx, `policies/${seg(policy)}/rules`));
      const sorted = [...items].sort((a: any, b: any) => b.priority - a.priority || (a.action === 'deny' ? -1 : 1));
      ctx.table(sorted, [
        { header: 'ID', get: (r: any) => r.id }, { header: 'PRIORITY', get: (r: any) => r.priority }, { header: 'DIRECTION', get: (r: any) => r.direction },
        { header: 'FROM', get: (r: any) => r.fromGroup ?? r.fromNetwork ?? r.fromCidr }, { header: 'TO', get: (r: any) => r.toGroup ?? r.toNetwork ?? r.toCidr },
        { header: 'PROTOCOL', get: (r: any) => r.protocol }, { header: 'PORT', get: (r: any) => r.ports }, { header: 'ACTION', get: (r: any) => r.action },
      ], (r: any) => r.id);
    }));
}
