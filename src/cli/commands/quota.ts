import type { Command } from 'commander';
import { act, intArg, leaf, seg, type Io } from '../kit.js';

interface QuotaView { user: string; used: Record<Kind, number>; limits: Record<Kind, number>; override: Partial<Record<Kind, number>>; limited: boolean }
type Kind = 'objects' | 'rules';
const KINDS: Kind[] = ['objects', 'rules'];

/** `N` or `default` (back to the server's --quota-* flag). */
const limitArg = (flag: string) => (value: string): number | 'default' => (value === 'default' ? 'default' : intArg(flag, 0, 1_000_000_000)(value));

/** `weft user quota NAME [--objects N|default] [--rules N|default]`: shows usage and limits, or sets an admin override. */
export function quotaCommand(user: Command, io: Io): void {
  leaf(user, {
    name: 'quota <name>', tenant: false,
    summary: "show what a user owns against its limits, or (admin) override the server's --quota-objects/--quota-rules for it",
    example: ['weft user quota bob', 'weft user quota bob --objects 5000 --rules 50000', 'weft user quota bob --rules default'],
  })
    .option('--objects <n|default>', 'tenants and tenant objects this user may own', limitArg('--objects'))
    .option('--rules <n|default>', 'policy rules this user may add', limitArg('--rules'))
    .action(act(io, async (ctx, name) => {
      const path = `/api/v1/users/${seg(name)}/quota`;
      let view = await ctx.client.request<QuotaView>('GET', path);
      if (KINDS.some((k) => ctx.opts[k] !== undefined)) {
        const override = { ...view.override };
        for (const k of KINDS) {
          const v = ctx.opts[k] as number | 'default' | undefined;
          if (v === 'default') delete override[k];
          else if (v !== undefined) override[k] = v;
        }
        view = await ctx.client.request<QuotaView>('PUT', path, override);
      }
      if (ctx.format !== 'table') return ctx.show(view);
      ctx.table(KINDS.map((k) => ({ k, ...view })), [
        { header: 'USER', get: (r) => r.user }, { header: 'KIND', get: (r) => r.k }, { header: 'USED', get: (r) => r.used[r.k] },
        { header: 'LIMIT', get: (r) => (r.limited ? r.limits[r.k] : 'none (admin)') },
        { header: 'FROM', get: (r) => (r.override[r.k] !== undefined ? 'override' : `--quota-${r.k}`) },
      ]);
    }));
}
