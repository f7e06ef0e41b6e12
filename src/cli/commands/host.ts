import type { Command } from 'commander';
import type { Column } from '../output.js';
import { act, done, leaf, type Io, seg } from '../kit.js';
import { durationArg } from '../durations.js';
import { labelChanges } from '../labels.js';
import type { WireguardStatus } from '../../model/plain.js';

/** A host row as `weft host ls` shows it: the API's host (any field may be missing) and its identity. */
export interface HostRow {
  name: string;
  state?: string;
  vtepIp?: string;
  tunnelIp?: string;
  wgPublicKey?: string;
  agentVersion?: string;
  lastSeen?: string;
  wireguard?: WireguardStatus;
  identity?: { joinedAt?: string; addedBy?: string; joinExpiresAt?: string; certExpiresAt?: string };
}

/** `42s`, `3m`, `5h`, `2d`: how long ago, in the largest whole unit (clock skew reads as 0s). */
export function age(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 172_800) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86_400)}d`;
}

/** `512 B`, `1.2 MiB`: binary units, one decimal past bytes. */
export function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(1)} ${units[i]}`;
}

/** The oldest peer handshake's age: a tunnel is as fresh as its stalest peer; `never` if one has none yet. */
function handshake(h: HostRow, now: number): string | undefined {
  const w = h.wireguard;
  if (!w || w.peers === 0) return undefined;
  if (w.handshaken < w.peers || w.oldestHandshakeAt === undefined) return 'never';
  return age(now - Date.parse(w.oldestHandshakeAt));
}

function traffic(h: HostRow): string | undefined {
  const w = h.wireguard;
  if (!w || w.peers === 0) return undefined;
  return `${bytes(w.rxBytes)}/${bytes(w.txBytes)}`;
}

function joined(h: HostRow): string {
  const i = h.identity;
  if (!i) return 'token (no certificate)';
  return i.joinedAt ? `${i.joinedAt} (added by ${i.addedBy})` : `invited by ${i.addedBy}, token until ${i.joinExpiresAt}`;
}

/** The columns of `weft host ls`, with handshake ages measured from `now`. */
export function hostColumns(now: number): Array<Column<HostRow>> {
  return [
    { header: 'HOST', get: (h) => h.name }, { header: 'STATE', get: (h) => h.state }, { header: 'VTEP', get: (h) => h.vtepIp },
    { header: 'TUNNEL', get: (h) => h.tunnelIp },
    { header: 'WG', get: (h) => (h.wireguard?.error !== undefined ? 'error' : h.wireguard?.mode) },
    { header: 'KEY', get: (h) => (h.wgPublicKey ? `${h.wgPublicKey.slice(0, 8)}…` : undefined) },
    { header: 'HANDSHAKE', get: (h) => handshake(h, now) }, { header: 'TRAFFIC', get: (h) => traffic(h) },
    { header: 'AGENT', get: (h) => h.agentVersion }, { header: 'LAST SEEN', get: (h) => h.lastSeen },
    { header: 'JOINED', get: joined }, { header: 'CERT EXPIRES', get: (h) => h.identity?.certExpiresAt },
  ];
}

export function hostCommands(program: Command, io: Io): void {
  const host = program.command('host').description('hosts running a weft agent: invite (join tokens), list, rotate keys, remove');
  hostReads(host, io);
  hostChanges(host, io);
}

function hostReads(host: Command, io: Io): void {
  leaf(host, {
    name: 'ls', tenant: false,
    summary: 'list hosts: state, underlay and tunnel addresses, WireGuard (mode, key, oldest peer handshake, bytes received/sent), certificates',
    example: ['weft host ls', 'weft host ls -o json'],
  })
    .action(act(io, async (ctx) => {
      const { items } = await ctx.client.request('GET', '/api/v1/hosts');
      const ids = await ctx.client.request('GET', '/api/v1/host-identities').then((r: any) => r.items as any[], () => [] as any[]);
      const byName = new Map<string, any>(items.map((h: any) => [h.name, { ...h }]));
      for (const i of ids) byName.set(i.name, { ...(byName.get(i.name) ?? { name: i.name, state: i.state }), identity: i });
      const rows = [...byName.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
      ctx.table(rows, hostColumns(Date.now()), (h: any) => h.name);
    }));
  leaf(host, { name: 'inspect <name>', summary: 'show a host', example: 'weft host inspect node1', tenant: false })
    .action(act(io, async (ctx, name) => ctx.show(await ctx.client.request('GET', `/api/v1/hosts/${seg(name)}`))));
}

/** What an admin does to hosts: invite, rotate a key, remove. */
function hostChanges(host: Command, io: Io): void {
  leaf(host, {
    name: 'add <name>', tenant: false, output: 'short',
    summary: 'invite a host (admin): print a one-time join token bound to NAME that pins this server\'s CA',
    example: ['weft host add node2', 'weft host add node2 --ttl 15m -o json'],
  })
    .option('--ttl <duration>', 'how long the token can be used: 90s, 15m, 1h, 2d (at most 7d)', '1h')
    .addHelpText('after', '\nOn the new host, as root:\n  $ weft agent --server https://THIS-SERVER:9700 --join weftjoin1....\nThe agent checks the server against the CA hash in the token, gets its own certificate (kept 0600 in\n/var/lib/weft/agent/), and uses it from then on. The token works once; `weft host rm NAME` revokes the host.\n')
    .action(act(io, async (ctx, name) => {
      const expiresIn = durationArg('--ttl', 1, 7 * 86_400)(ctx.opts['ttl']);
      const r = await ctx.client.request('POST', `/api/v1/hosts/${seg(name)}/join-token`, { expiresIn });
      if (ctx.format !== 'table') return ctx.show(r);
      const server = ctx.opts['server'] ?? io.env['WEFT_SERVER'] ?? 'https://SERVER:9700';
      ctx.print(`join token for ${name} (one use, until ${r.expiresAt}):\n  ${r.token}\n\non ${name}, as root:\n  weft agent --server ${server.split(',')[0]} --join '${r.token}'`);
    }));
  leaf(host, {
    name: 'rotate-key <name>', tenant: false,
    summary: "rotate a host's WireGuard key (admin): its agent makes a new key pair, its peers switch to the new public key",
    example: ['weft host rotate-key node2', 'weft host rotate-key node2 -o json'],
  })
    .addHelpText('after', '\nThe private key never leaves the host: the server only asks for a new one. Established connections\nbetween containers survive the switch. Keys also rotate by themselves every `keyRotationDays`\n(`weft global set --key-rotation-days N`, 0: never). Watch the KEY and HANDSHAKE columns of `weft host ls`.\n')
    .action(act(io, async (ctx, name) => {
      const h = await ctx.client.request('POST', `/api/v1/hosts/${seg(name)}/rotate-key`);
      done(ctx, h, `host ${name} will make a new WireGuard key pair (rotation ${h.rotateKey}); its peers follow its new public key`);
    }));
  leaf(host, {
    name: 'label <name> <labels...>', tenant: false,
    summary: "set (key=value) or remove (key-) a host's labels (admin, ops): `weft inventory` groups hosts by them",
    example: ['weft host label node1 zone=a rack=r12', 'weft host label node1 rack-'],
  })
    .addHelpText('after', '\nOnly operators label hosts, never a host itself: Ansible plays (and their secrets) follow the groups\n`weft inventory` makes of them (`label_zone__a`).\n')
    .action(act(io, async (ctx, name, joined) => {
      done(ctx, await ctx.client.request('PATCH', `/api/v1/hosts/${seg(name)}/labels`, { labels: labelChanges(joined) }), `host ${name} labelled`);
    }));
  leaf(host, { name: 'rm <name>', summary: 'remove a host (admin): revoke its certificate at once, release its endpoints, forget it', example: 'weft host rm node2', tenant: false })
    .action(act(io, async (ctx, name) => {
      await ctx.client.request('DELETE', `/api/v1/hosts/${seg(name)}`);
      done(ctx, { deleted: { kind: 'host', name } }, `host ${name} removed: its certificate is revoked and its endpoints released`);
    }));
}
