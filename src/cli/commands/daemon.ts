import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_DATA_DIR, DEFAULT_SERVER } from '../config.js';
import { usage } from '../errors.js';
import { intArg, type Io } from '../kit.js';
import type { LabOps } from './lab.js';
import { etcdFlags, etcdOptions, limitFlags, limitOptions, type EtcdOptions, type LimitOptions } from './limits.js';

export interface RunningDaemon {
  url: string;
  adminToken: string | undefined;
  close(): Promise<void>;
}

export interface AgentFlags {
  servers: string[];
  token: string;
  host: string;
  runDir: string;
  cniConfDir: string;
  cniBinDirs: string[];
  nsPrefix: string;
  vtepIp?: string;
  resyncMs: number;
  repairGraceMs: number;
  /** Port of the agent's DNS server on each tenant uplink address. */
  dnsPort: number;
  /** `IP[:PORT]` servers for names outside `.weft`; [] forwards nothing; undefined: the host's resolv.conf. */
  dnsUpstreams?: string[];
  /** The Docker plugin socket; undefined: none. */
  dockerSocket?: string;
  /** Docker's API socket path. */
  dockerApi?: string;
  logLevel: string;
}

/** The long-running processes, injected by bin/ so the CLI does not import the server or the agent. */
export interface Daemons {
  startServer(opts: { listen: string; dataDir: string; store: string; logLevel: string; historyLimit?: number; hostTimeoutMs?: number; hostGraceMs?: number; etcd?: EtcdOptions } & Partial<LimitOptions>): Promise<RunningDaemon>;
  startAgent(opts: AgentFlags): Promise<{ close(): Promise<void> }>;
  uninstallAgent(opts: AgentFlags): Promise<string[]>;
  lab: LabOps;
}

const AGENT_DEFAULTS = { runDir: '/run/weft', cniConfDir: '/etc/cni/net.d', cniBinDirs: '/usr/lib/cni,/opt/cni/bin', nsPrefix: 'weft-' };

function agentOptions(cmd: Command): Command {
  return cmd
    .option('--host <name>', 'this host\'s name (default: the hostname)')
    .option('--run-dir <dir>', 'where the agent socket lives', AGENT_DEFAULTS.runDir)
    .option('--cni-conf-dir <dir>', 'where conflists are written for runtimes', AGENT_DEFAULTS.cniConfDir)
    .option('--cni-bin-dir <dirs>', 'comma-separated plugin directories to install `weft` into', AGENT_DEFAULTS.cniBinDirs)
    .option('--netns-prefix <prefix>', 'prefix of tenant namespace names (separates agents on one machine)', AGENT_DEFAULTS.nsPrefix)
    .option('--vtep-ip <ip>', 'underlay address of this host (default: its first global IPv4 address)')
    .option('--resync <ms>', 'how often to re-check the whole datapath and repair drift', intArg('--resync', 200, 600_000), 2000)
    .option('--repair-grace <ms>', 'age before an endpoint without its veth is re-wired, or released when its container is gone', intArg('--repair-grace', 0, 3_600_000), 10_000)
    .option('--dns-port <port>', 'port of the containers\' DNS server on each tenant uplink (queries to a gateway, port 53, are sent there)', intArg('--dns-port', 1, 65535), 15353)
    .option('--docker-plugin <socket>', 'serve Docker\'s network and IPAM plugin here (driver name = file name), or "none"', '/run/docker/plugins/weft.sock')
    .option('--docker-api <socket>', 'Docker\'s API socket, to show container names of Docker endpoints', '/run/docker.sock')
    .option('--dns-upstream <servers>', 'comma-separated IP[:PORT] for names outside .weft, or "none" (default: the nameservers of /etc/resolv.conf)', upstreamList);
}

/** `--dns-upstream`: IP[:PORT],... or none. */
function upstreamList(text: string): string[] {
  if (text === 'none') return [];
  const list = text.split(',').map((x) => x.trim()).filter(Boolean);
  for (const x of list) {
    const m = /^([0-9]{1,3}(?:\.[0-9]{1,3}){3})(?::([0-9]{1,5}))?$/.exec(x);
    const okIp = m?.[1]?.split('.').every((o) => Number(o) <= 255);
    const port = m?.[2] === undefined ? 53 : Number(m[2]);
    if (!m || !okIp || port < 1 || port > 65535) throw usage(`--dns-upstream: '${x}' is not IPv4[:PORT] (or use "none")`);
  }
  return list;
}

function agentFlags(o: Record<string, any>, servers: string[], token: string): AgentFlags {
  return {
    servers, token, host: o['host'] ?? hostname().split('.')[0]!.toLowerCase(), runDir: o['runDir'], cniConfDir: o['cniConfDir'],
    cniBinDirs: String(o['cniBinDir']).split(',').filter(Boolean), nsPrefix: o['netnsPrefix'], resyncMs: o['resync'], repairGraceMs: o['repairGrace'], logLevel: o['logLevel'],
    dnsPort: o['dnsPort'], ...(o['dockerPlugin'] && o['dockerPlugin'] !== 'none' ? { dockerSocket: o['dockerPlugin'], dockerApi: o['dockerApi'] } : {}), ...(o['dnsUpstream'] ? { dnsUpstreams: o['dnsUpstream'] } : {}),
    ...(o['vtepIp'] ? { vtepIp: o['vtepIp'] } : {}),
  };
}

function announce(io: Io, d: RunningDaemon, dataDir: string, store: string): void {
  if (d.adminToken !== undefined) {
    io.out('First start: created user admin. Its token is shown once here');
    io.out(store === 'sqlite' ? ` and saved in ${dataDir}/admin.token (mode 0600):\n` : ':\n');
    io.out(`  ${d.adminToken}\n`);
    io.out(`Use it with: weft login --server ${d.url} --token <token>   (or export WEFT_TOKEN=...)\n`);
  }
  io.out(`weft server listening on ${d.url} (store: ${store === 'sqlite' ? `sqlite ${dataDir}/weft.db` : store})\n`);
}

/** Runs until SIGINT or SIGTERM, then closes cleanly. */
async function untilSignalled(d: { close(): Promise<void> }, io: Io): Promise<void> {
  await new Promise<void>((resolve) => {
    const stop = (sig: string) => {
      io.err(`${sig}: shutting down\n`);
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
      resolve();
    };
    const onInt = () => stop('SIGINT');
    const onTerm = () => stop('SIGTERM');
    process.on('SIGINT', onInt);
    process.on('SIGTERM', onTerm);
  });
  await d.close();
}

export function daemonCommands(program: Command, io: Io, daemons: Daemons): void {
  limitOptions(etcdOptions(program.command('server')
    .description('run the control plane: REST API, allocation, history and watch, on SQLite by default')
    .option('--listen <host:port>', 'address to serve the API on', '127.0.0.1:9700')
    .option('--data-dir <dir>', 'where the SQLite store and admin.token live', DEFAULT_DATA_DIR)
    .option('--store <store>', 'sqlite, memory (throw-away), or etcd://HOST:PORT,... (multi-host work)', 'sqlite')
    .option('--history-limit <revisions>', 'how many revisions of change history to keep', intArg('--history-limit', 10, 100_000_000))
    .option('--host-timeout <ms>', 'a host whose agent is silent this long is shown as down', intArg('--host-timeout', 1000, 86_400_000))
    .option('--host-grace <ms>', 'the endpoints of a host silent this long are released (default 10 min)', intArg('--host-grace', 1000, 604_800_000))
    .option('--log-level <level>', 'fatal, error, warn, info, debug', 'info')))
    .addHelpText('after', '\nExamples:\n  $ weft server\n  $ weft server --listen 0.0.0.0:9700 --data-dir /srv/weft\n  $ weft server --store etcd://10.0.0.5:2379 --etcd-ca ca.crt --etcd-cert weft.crt --etcd-key weft.key\n')
    .action(async (o) => {
      const d = await daemons.startServer({
        listen: o.listen, dataDir: o.dataDir, store: o.store, logLevel: o.logLevel, ...limitFlags(o), ...etcdFlags(o),
        ...(o.historyLimit ? { historyLimit: o.historyLimit } : {}), ...(o.hostTimeout ? { hostTimeoutMs: o.hostTimeout } : {}), ...(o.hostGrace ? { hostGraceMs: o.hostGrace } : {}),
      });
      announce(io, d, o.dataDir, o.store);
      await untilSignalled(d, io);
    });

  agentOptions(program.command('agent')
    .description("run this host's agent: reconcile the kernel to the desired state and serve the CNI plugin")
    .option('--server <urls>', 'server URL(s), comma-separated for failover', process.env['WEFT_SERVER'] ?? DEFAULT_SERVER)
    .option('--token-file <file>', 'file holding the API token (default: WEFT_TOKEN, else DATA_DIR/admin.token)')
    .option('--log-level <level>', 'fatal, error, warn, info, debug', 'info')
    .option('--uninstall', 'instead of running: remove what the agent built on this host (namespaces, uplinks, tables, conflists, plugin)'))
    .addHelpText('after', '\nExamples:\n  $ weft agent\n  $ weft agent --server http://10.0.0.5:9700,http://10.0.0.6:9700 --token-file /etc/weft/token --host node1\n  $ weft agent --uninstall      # after stopping it; containers on Weft lose their network\n')
    .action(async (o) => {
      if (o.uninstall) {
        const removed = await daemons.uninstallAgent(agentFlags(o, [], ''));
        io.out(removed.length ? `removed:\n${removed.map((r) => `  ${r}`).join('\n')}\n` : 'nothing of Weft found on this host\n');
        return;
      }
      const tokenFile = o.tokenFile ?? (process.env['WEFT_TOKEN'] ? undefined : join(DEFAULT_DATA_DIR, 'admin.token'));
      let token = process.env['WEFT_TOKEN'] ?? '';
      if (tokenFile) {
        try {
          token = readFileSync(tokenFile, 'utf8').trim();
        } catch (e) {
          throw usage(`--token-file: cannot read ${tokenFile} (${(e as Error).message})`);
        }
      }
      const servers = String(o.server).split(',').map((x: string) => x.trim()).filter(Boolean);
      const a = await daemons.startAgent(agentFlags(o, servers, token));
      io.out(`weft agent running (socket ${join(o.runDir, 'agent.sock')}, conflists in ${o.cniConfDir})\n`);
      await untilSignalled(a, io);
    });

  agentOptions(limitOptions(program.command('up')
    .description("run Weft on this host in the foreground: the server (SQLite) and this host's agent; Ctrl-C stops both")
    .option('--listen <host:port>', 'address to serve the API on', '127.0.0.1:9700')
    .option('--data-dir <dir>', 'where the SQLite store and admin.token live', DEFAULT_DATA_DIR)
    .option('--log-level <level>', 'fatal, error, warn, info, debug', 'info')))
    .addHelpText('after', '\nExample:\n  $ weft up            # then, in another shell: weft tenant ls\n')
    .action(async (o) => {
      const d = await daemons.startServer({ listen: o.listen, dataDir: o.dataDir, store: 'sqlite', logLevel: o.logLevel, ...limitFlags(o) });
      announce(io, d, o.dataDir, 'sqlite');
      const token = d.adminToken ?? readFileSync(join(o.dataDir, 'admin.token'), 'utf8').trim();
      let a: { close(): Promise<void> };
      try {
        a = await daemons.startAgent(agentFlags(o, [d.url], token));
      } catch (e) {
        await d.close();
        throw e;
      }
      io.out(`weft agent running (conflists in ${o.cniConfDir}): podman run --network weft-<tenant>-<group> ...\n`);
      await untilSignalled({ close: async () => { await a.close(); await d.close(); } }, io);
    });
}
