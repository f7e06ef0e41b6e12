import type { Command } from 'commander';
import { createInterface } from 'node:readline';
import { resolveTarget, resolveToken, writeConfig } from '../config.js';
import { Client, fetchPinnedCa } from '../../client/index.js';
import { usage } from '../errors.js';
import { act, collect, done, leaf, type Io, seg } from '../kit.js';
import { quotaCommand } from './quota.js';

/** Reads one line from stdin: the password, for scripts (`--password-stdin`) and people alike. */
async function readPassword(prompt: string, io: Io): Promise<string> {
  return (await readPasswords([prompt], io))[0] as string;
}

/** One line of stdin per prompt (a prompt is shown only on a terminal): `--password-stdin` takes them in order. */
async function readPasswords(prompts: readonly string[], io: Io): Promise<string[]> {
  if (process.stdin.isTTY) {
    const out: string[] = [];
    for (const prompt of prompts) out.push(await readHidden(prompt, io));
    return out;
  }
  const rl = createInterface({ input: process.stdin, terminal: false });
  const lines = rl[Symbol.asyncIterator]();
  const out: string[] = [];
  try {
    for (const prompt of prompts) {
      if (process.stdin.isTTY) io.err(prompt);
      const next = await lines.next();
      if (next.done) throw usage(`no ${prompt.replace(/: $/, '').toLowerCase()} on standard input`);
      out.push(String(next.value).replace(/\r$/, ''));
    }
  } finally {
    rl.close();
  }
  return out;
}

/** A password typed at a terminal, not echoed: the terminal in raw mode for the line (backspace works; Ctrl-C and an empty Ctrl-D give up). */
function readHidden(prompt: string, io: Io): Promise<string> {
  const stdin = process.stdin;
  // Echo off before the prompt shows: a password typed at once must not be echoed by the terminal.
  stdin.setRawMode(true);
  io.err(prompt);
  return new Promise((resolve, reject) => {
    let value = '';
    const finish = (error?: Error) => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      io.err('\n');
      if (error) reject(error);
      else resolve(value);
    };
    const onData = (chunk: string) => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n') return finish();
        if (ch === '\u0003' || (ch === '\u0004' && value === '')) return finish(usage(`no ${prompt.replace(/: $/, '').toLowerCase()} typed`));
        if (ch === '\u0004') return finish();
        if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
        else value += ch;
      }
      return undefined;
    };
    stdin.setEncoding('utf8');
    stdin.on('data', onData);
    stdin.resume();
  });
}

export function authCommands(program: Command, io: Io): void {
  leaf(program, {
    name: 'login', tenant: false, output: false,
    summary: 'log in and save the server, CA and token in ~/.config/weft/config.json (0600)',
    example: [
      'weft login --user alice',
      'echo "$PASSWORD" | weft login --server https://10.0.0.5:9700 --ca ./weft-ca.crt --user alice --password-stdin',
      'weft login --server https://10.0.0.5:9700 --ca-pin sha256:3f0c...e1 --user alice   # the hash in a join token',
      'weft login --token-file /var/lib/weft/admin.token',
    ],
  })
    .option('-u, --user <name>', 'user name (omit with --token-file)')
    .option('--password-stdin', 'read the password from standard input')
    .option('--ca-pin <sha256:hex>', "fetch the server's CA and trust it only if its SHA-256 is this (from `weft host add` or `weft ca`)")
    .action(act(io, async (ctx) => {
      const o = ctx.opts;
      let target = resolveTarget({ server: o['server'], ca: o['ca'] }, io.env);
      if (o['caPin'] !== undefined) {
        if (!/^sha256:[0-9a-fA-F]{64}$/.test(o['caPin'])) throw usage(`--ca-pin: '${o['caPin']}' is not sha256:<64 hex digits>`);
        target = { ...target, tls: { ca: await fetchPinnedCa(target.servers[0] as string, o['caPin']) } };
      }
      if (o['user'] !== undefined && (o['token'] !== undefined || o['tokenFile'] !== undefined)) {
        throw usage(`login: --user logs in with a password, ${o['token'] !== undefined ? '--token' : '--token-file'} with a token; give one`);
      }
      let token = resolveToken({ token: o['token'], tokenFile: o['tokenFile'] }, {});
      let expiry: string | null | undefined;
      if (token === undefined) {
        if (!o['user']) throw usage('login: give --user NAME (and a password), or --token-file FILE');
        const password = await readPassword('Password: ', io);
        const made = await new Client({ ...target, token: undefined }).request('POST', '/api/v1/login', { username: o['user'], password });
        token = String(made.token);
        expiry = made.expiresAt;
      }
      const who = await new Client({ ...target, token }).request('GET', '/api/v1/whoami');
      const file = writeConfig({ server: target.servers.join(','), token, ...(target.tls ? { ca: target.tls.ca } : {}) }, io.env, (line) => io.err(`${line}\n`));
      const until = expiry === undefined ? '' : expiry === null ? '; the token does not expire' : `; the token expires at ${expiry}`;
      ctx.print(`logged in to ${target.servers.join(', ')} as ${who.user} (role ${who.role})${until}; saved in ${file}`);
    }));

  const u = program.command('user').description('users and their roles: admin, ops (every tenant), tenant (listed tenants only)');
  leaf(u, { name: 'create <name>', summary: 'create a user (admin)', example: ['weft user create --role ops olga', 'echo "$PW" | weft user create --role tenant --tenant blue --password-stdin bob'], tenant: false })
    .requiredOption('-r, --role <role>', 'admin, ops or tenant')
    .option('--tenant <tenant>', 'a tenant this user may use (repeatable; role tenant)', collect)
    .option('--password-stdin', 'read the password from standard input')
    .action(act(io, async (ctx, name) => {
      const o = ctx.opts;
      const password = o['passwordStdin'] ? await readPassword('Password: ', io) : undefined;
      const body = { name, role: o['role'], ...(o['tenant'] ? { tenants: o['tenant'] } : {}), ...(password !== undefined ? { password } : {}) };
      done(ctx, await ctx.client.request('POST', '/api/v1/users', body), `user ${name} created (role ${o['role']})`);
    }));
  leaf(u, { name: 'ls', summary: 'list users (admin)', example: 'weft user ls', tenant: false })
    .action(act(io, async (ctx) => {
      const { items } = await ctx.client.request('GET', '/api/v1/users');
      ctx.table(items, [{ header: 'USER', get: (x: any) => x.name }, { header: 'ROLE', get: (x: any) => x.role }, { header: 'TENANTS', get: (x: any) => x.tenants }, { header: 'PASSWORD', get: (x: any) => (x.hasPassword ? 'set' : 'none') }], (x: any) => x.name);
    }));
  leaf(u, {
    name: 'passwd <name>', tenant: false,
    summary: "set a user's password (admin, or your own with your current one); revokes that user's other tokens",
    example: ['weft user passwd bob', 'printf "%s\\n%s\\n" "$OLD" "$NEW" | weft user passwd --password-stdin alice   # your own: current, then new'],
  })
    .option('--password-stdin', 'read the password(s) from standard input: your current one first when changing your own')
    .action(act(io, async (ctx, name) => {
      const who = await ctx.client.request('GET', '/api/v1/whoami');
      const own = who.user === name && who.role !== 'admin';
      const [first, second] = await readPasswords(own ? ['Current password: ', 'New password: '] : ['New password: '], io);
      const body = own ? { currentPassword: first, password: second } : { password: first };
      await ctx.client.request('PATCH', `/api/v1/users/${seg(name)}`, body);
      ctx.print(`password of ${name} changed; ${name}'s other tokens are revoked`);
    }));
  leaf(u, { name: 'rm <name>', summary: 'delete a user and its tokens (admin)', example: 'weft user rm bob', tenant: false })
    .action(act(io, async (ctx, name) => {
      await ctx.client.request('DELETE', `/api/v1/users/${seg(name)}`);
      done(ctx, { deleted: { kind: 'user', name } }, `user ${name} deleted`);
    }));
  quotaCommand(u, io);
}
