import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { defaultConfig, parseListen, parseUpstream, readConfig, startDockerProxy, ConfigError, ListenError } from '../../dockerproxy/index.js';
import { usage } from '../errors.js';
import { durationArg } from '../durations.js';
import type { Io } from '../kit.js';
import { untilSignalled } from '../signals.js';

/** A group's id by name from /etc/group; undefined when there is no such group. */
function groupId(name: string): number | undefined {
  if (/^\d+$/.test(name)) return Number(name);
  for (const line of readFileSync('/etc/group', 'utf8').split('\n')) {
    const [n, , gid] = line.split(':');
    if (n === name && gid !== undefined) return Number(gid);
  }
  return undefined;
}

/** Docker's socket: --docker, else DOCKER_HOST when it names a unix socket, else Docker's default. */
function upstreamOf(flag: string | undefined, env: NodeJS.ProcessEnv): string {
  if (flag) return parseUpstream(flag);
  const dh = env['DOCKER_HOST'];
  if (dh?.startsWith('unix://')) return parseUpstream(dh);
  return '/var/run/docker.sock';
}

export function dockerProxyCommands(program: Command, io: Io): void {
  program.command('docker-proxy')
    .description('serve Docker\'s API through hooks (Powerstrip adapter protocol v1): `docker run -e WEFT_GROUP=db` lands on Weft')
    .option('--listen <socket>', 'the unix socket the proxy serves (never TCP: Docker\'s API is root on this host)', '/run/weft/docker.sock')
    .option('--docker <socket>', 'Docker\'s API socket (default: DOCKER_HOST if unix://, else /var/run/docker.sock)')
    .option('--config <file>', 'Powerstrip adapters file (YAML: endpoints → pre/post adapters, adapters → URLs); default: the built-in weft adapter on container create')
    .option('--driver <name>', 'Weft\'s Docker network and IPAM driver, as dockerd knows the agent\'s plugin', 'weft')
    .option('--group <group>', 'give this group access to the socket (0660); default: Docker\'s `docker` group if it exists, else 0600 (root only)')
    .option('--hook-timeout <duration>', 'how long an adapter may take to answer', durationArg('--hook-timeout', 1, 600), 30)
    .addHelpText('after', `
Anyone who can use the proxy's socket can do what Docker's socket allows (root on this host): it gets
Docker's group, or root only. Calls without hooks and every stream (attach, exec, logs, events, pull)
pass through untouched.

The built-in adapter \`weft\` (pre-hook on POST /containers/create): a container asking for Weft with
  -e WEFT_TENANT=shop -e WEFT_NETWORK=appnet -e WEFT_GROUP=db     (or --label weft.tenant=... etc.)
is created on the Docker network weft.shop.appnet.db of Weft's driver, made on first use (the tenant
defaults to "default"; a group alone picks its network). The agent must serve Docker's plugin
(\`weft agent --docker-plugin\`, on by default with \`weft up\`).

An adapters file (Powerstrip's format; adapters are HTTP(S) URLs or the built-in weft):
  endpoints:
    "POST /*/containers/create":
      pre: [weft, audit]
    "POST /*/containers/*/start":
      post: [audit]
  adapters:
    audit: http://127.0.0.1:8099/hook

An adapter gets {"PowerstripProtocolVersion": 1, "Type": "pre-hook", "ClientRequest": {"Method", "Request",
"Body"}} and answers {"PowerstripProtocolVersion": 1, "ModifiedClientRequest": {...}}; a post-hook also
gets "ServerResponse": {"ContentType", "Body", "Code"} and answers "ModifiedServerResponse". An adapter's
error status goes to the client and the call never reaches Docker; an adapter that fails stops the call.

Example:
  $ weft docker-proxy --listen /run/weft/docker.sock &
  $ DOCKER_HOST=unix:///run/weft/docker.sock docker run -d -e WEFT_GROUP=db busybox nc -lk -p 8888
`)
    .action(async (opts: { listen: string; docker?: string; config?: string; driver: string; group?: string; hookTimeout: number }) => {
      let proxy;
      try {
        const listen = parseListen(opts.listen);
        const config = opts.config ? readConfig(opts.config) : defaultConfig();
        if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/.test(opts.driver)) throw usage(`--driver '${opts.driver}': a Docker plugin name`);
        let group: number | undefined;
        if (opts.group !== undefined) {
          group = groupId(opts.group);
          if (group === undefined) throw usage(`--group ${opts.group}: no such group in /etc/group`);
        } else group = groupId('docker');
        proxy = await startDockerProxy({
          listen, upstream: upstreamOf(opts.docker, io.env), config, driver: opts.driver, ...(group !== undefined ? { group } : {}),
          hookTimeoutMs: opts.hookTimeout * 1000, log: (l) => io.err(`docker-proxy: ${l}\n`),
        });
      } catch (e) {
        if (e instanceof ConfigError || e instanceof ListenError) throw usage(e.message);
        throw e;
      }
      io.out(`weft docker-proxy serving ${proxy.address} (Docker at ${upstreamOf(opts.docker, io.env)}); use it with DOCKER_HOST=${proxy.address}\n`);
      await untilSignalled(proxy, io);
    });
}
