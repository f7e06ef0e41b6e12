import type { Command } from 'commander';
import { AUDIT_EVENTS, DURATION_PATTERN, isWeftError, parseDuration } from '../../model/index.js';
import { usage } from '../errors.js';
import { act, intArg, leaf, seg, type Io } from '../kit.js';

const ttlArg = (value: string): string => {
  if (!new RegExp(DURATION_PATTERN).test(value)) throw usage(`--ttl: '${value}' is not a duration like 30m, 12h, 7d, or never`);
  return value;
};

/** A token id is 16 hex characters; a secret passed here by mistake is refused before it is sent anywhere. */
const tokenIdArg = (value: string): string => {
  if (/^weft/i.test(value)) throw usage('revoke: that is a token itself, not its id (it is now in your shell history: revoke it); `weft token ls` shows ids');
  if (!/^[0-9a-f]{16}$/.test(value)) throw usage(`revoke: '${value}' is not a token id (16 hex characters, see \`weft token ls\`)`);
  return value;
};

/** `--since`: an ISO time, or a duration meaning that long ago (`1h`). */
function sinceArg(value: string): string {
  if (/^[0-9]+[smhd]$/.test(value)) {
    try {
      return new Date(Date.now() - (parseDuration(value, '--since') ?? 0)).toISOString();
    } catch (e) {
      throw usage(isWeftError(e) ? e.message : String(e));
    }
  }
  if (!/^[0-9]{4}-[0-9]{2}-[0-9]{2}T/.test(value) || Number.isNaN(Date.parse(value))) throw usage(`--since: '${value}' is not an ISO time (2026-01-31T12:00:00Z) or a duration ago (30m, 2h, 7d)`);
  return new Date(value).toISOString();
}

const eventArg = (value: string): string => {
  if (!(AUDIT_EVENTS as readonly string[]).includes(value)) throw usage(`--event: '${value}' is not one of ${AUDIT_EVENTS.join(', ')}`);
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
    name: 'create', summary: 'create a token; it is printed once (with -q: only the token, for a file)', tenant: false,
    example: ['weft token create --ttl 30d --description ci-deploy', '(umask 077; weft token create -q --ttl 7d > ~/.weft-token)', 'weft token create --user bob --ttl 12h   # admin'],
  })
    .option('--ttl <duration>', 'lifetime: 30m, 12h, 7d or never (default: the server\'s --token-ttl; never longer than the token you use)', ttlArg)
    .option('--description <text>', 'what the token is for')
    .option('--user <name>', 'for another user (admin)')
    .action(act(io, async (ctx) => {
      const o = ctx.opts;
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

export function auditCommands(program: Command, io: Io): void {
  leaf(program, {
    name: 'audit', summary: "the server's audit log: every write, refusal and login, with actor, source and credential (admin)", tenant: false,
    example: ['weft audit', 'weft audit --since 1h --event refused', 'weft audit --actor bob --since 2026-01-31T00:00:00Z -o json'],
  })
    .option('--since <time>', 'entries from this ISO time, or this long ago (30m, 2h, 7d)', sinceArg)
    .option('--actor <name>', 'only this actor (a user name, or host:NAME)')
    .option('--event <event>', `only ${AUDIT_EVENTS.join(', ')}`, eventArg)
    .option('--limit <n>', 'the last n entries', intArg('--limit', 1, 99999), 100)
    .action(act(io, async (ctx) => {
      const o = ctx.opts;
      const q = new URLSearchParams({ limit: String(o['limit']) });
      for (const k of ['since', 'actor', 'event']) if (o[k] !== undefined) q.set(k, String(o[k]));
      const { items } = await ctx.client.request('GET', `/api/v1/audit?${q}`);
      ctx.table(items, [
        { header: 'TIME', get: (e: any) => e.time }, { header: 'EVENT', get: (e: any) => e.event },
        { header: 'ACTOR', get: (e: any) => e.actor ?? (e.user ? `tried:${e.user}` : '-') }, { header: 'CREDENTIAL', get: (e: any) => e.credential },
        { header: 'SOURCE', get: (e: any) => e.source }, { header: 'METHOD', get: (e: any) => e.method }, { header: 'PATH', get: (e: any) => e.path },
        { header: 'STATUS', get: (e: any) => e.status }, { header: 'CODE', get: (e: any) => e.code },
      ]);
    }));
}
