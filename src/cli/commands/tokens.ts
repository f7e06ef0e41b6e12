import type { Command } from 'commander';
import { usage } from '../errors.js';
import { act, leaf, seg, type Io } from '../kit.js';
import { ttlArg } from '../durations.js';

/** A token id is 16 hex characters; a secret passed here by mistake is refused before it is sent anywhere. */
const tokenIdArg = (value: string): string => {
  if (/^weft/i.test(value)) throw usage('revoke: that is a token itself, not its id (it is now in your shell history: revoke it); `weft token ls` shows ids');
  if (!/^[0-9a-f]{16}$/.test(value)) throw usage(`revoke: '${value}' is not a token id (16 hex characters, see \`weft token ls\`)`);
  return value;
};

export function tokenCommands(program: Command, io: Io): void {
  const t = program.command('token').description('API tokens: list yours, create one (shown once), revoke one by its id');
  leaf(t, { name: 'ls', summary: 'list your tokens (an admin: everyone\'s); never shows a secret', example: ['weft token ls', 'weft token ls --user bob -o json'], tenant: false })
    .option('--user <name>', 'only this user\'s tokens (admin)')
    .action(act(io, async (ctx) => {
      const q = ctx.opts['user'] ? `?user=${seg(ctx.opts['user'])}` : '';
      const { items } = await ctx.client.request('GET', `/api/v1/tokens${q}`);
      ctx.table(items, [
        { header: 'CURRENT', get: (x: any) => (x.current ? '*' : '') }, { header: 'ID', get: (x: any) => x.id }, { header: 'USER', get: (x: any) => x.user },
        { header: 'STATE', get: (x: any) => x.state }, { header: 'EXPIRES', get: (x: any) => x.expiresAt ?? 'never' },
        { header: 'CREATED', get: (x: any) => x.createdAt }, { header: 'DESCRIPTION', get: (x: any) => x.description },
      ], (x: any) => x.id);
    }));
  leaf(t, {
    name: 'create', summary: 'create a token; it is printed once (with -q: only the token, for a file). A user holds at most 100 (logins count too): revoke old ones with `weft token revoke ID`', tenant: false,
    example: ['weft token create --ttl 30d --description ci-deploy', '(umask 077; weft token create -q --ttl 7d > ~/.weft-token)', 'weft token create --user bob --ttl 12h   # admin'],
  })
    .option('--ttl <duration>', 'lifetime: 30m, 12h, 7d or never (default: the server\'s --token-ttl; never longer than the token you use)')
    .option('--description <text>', 'what the token is for')
    .option('--user <name>', 'for another user (admin)')
    .action(act(io, async (ctx) => {
      const o = ctx.opts;
      if (o['ttl'] !== undefined) ttlArg(o['ttl']);
      const body = { ...(o['ttl'] ? { ttl: o['ttl'] } : {}), ...(o['description'] ? { description: o['description'] } : {}), ...(o['user'] ? { user: o['user'] } : {}) };
      const made = await ctx.client.request('POST', '/api/v1/tokens', body);
      if (o['quiet']) return ctx.print(made.token);
      if (ctx.format !== 'table') return ctx.show(made);
      ctx.print(`token ${made.id} created, ${made.expiresAt ? `expires ${made.expiresAt}` : 'never expires'}; it is shown only now:\n  ${made.token}`);
    }));
  leaf(t, { name: 'revoke <id>', summary: 'revoke a token by its id (yours, or anyone\'s as admin)', example: 'weft token revoke 3f9c2a51d07be6a4', tenant: false, output: false })
    .action(act(io, async (ctx, id) => {
      await ctx.client.request('DELETE', `/api/v1/tokens/${seg(tokenIdArg(id))}`);
      ctx.print(`token ${id} revoked`);
    }));

}
