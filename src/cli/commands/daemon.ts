import { Option, type Command } from 'commander';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_DATA_DIR, DEFAULT_SERVER, parseServers, readCa, readLocal, readTokenFile } from '../config.js';
import { usage } from '../errors.js';
import { intArg, type Io } from '../kit.js';
import { durationArg, lifetimeArg } from '../durations.js';
import { untilSignalled } from '../signals.js';
import type { LabOps } from './lab.js';
import { etcdFlags, etcdOptions, limitFlags, limitOptions, type EtcdOptions, type LimitOptions } from './limits.js';
import { POLICY_PAIRS_DEFAULT } from '../../model/plain.js';

export interface RunningDaemon {
  url: string;
  adminToken: string | undefined;
  /** A join token for a host of this server (`weft up` joins its own agent with it). */
  invite(host: string): Promise<string>;
  close(): Promise<void>;
}

export interface ServerFlags extends Partial<LimitOptions> {
  listen: string; dataDir: string; store: string; logLevel: string; historyLimit?: number; hostTimeoutMs?: number; hostGraceMs?: number;
  tls?: { cert?: string; key?: string; ca?: string; caKey?: string; sans?: string[] };
  hostCertTtlMs?: number;
  /** Lifetime of login tokens; null: they never expire. */
  tokenTtlMs?: number | null;
  auditLog?: string;
  auditLogMaxBytes?: number;
  etcd?: EtcdOptions;
}

export interface AgentFlags {
  servers: string[];
  /** A user token (legacy; --token-file): the agent then acts with that user's role. */
  token?: string;
  /** The server's CA for the token path (--ca, WEFT_CA, DATA_DIR/ca.crt). */
  caPem?: string;
  /** A one-time join token (--join, --join-file). */
  join?: string;
  /** Where the host's key, certificate and CA are kept. */
  stateDir: string;
  host: string;
  /** Whether --host was given (otherwise the joined certificate's name is this host's name). */
  hostGiven: boolean;
  runDir: string;
  cniConfDir: string;
  cniBinDirs: string[];
  nsPrefix: string;
  /** Which datapath programs the kernel (checked against the agent's list when it starts). */
  datapath: string;
  /** Whether nft commits go through the long-lived weft-nftd helper (false: one `nft -f` each). */
  nftHelper: boolean;
  vtepIp?: string;
  /** Its IPv6 underlay address; 'none': it has none to use; absent: detected (detectUnderlayIp6). */
  vtepIp6?: string;
  resyncMs: number;
  repairGraceMs: number;
  /** The most pairs of address classes one tenant's policy may decide on this host (policy/budget.ts). */
  maxPolicyPairs: number;
  /** Port of the agent's DNS server on each tenant uplink address. */
  dnsPort: number;
  /** Flow records' limits (records per second per source address, and per tenant in all); undefined: off. */
  flowLog?: { perSource: number; total: number };
  /** `IP[:PORT]` servers for names outside `.weft`; [] forwards nothing; undefined: the host's resolv.conf. */
  dnsUpstreams?: string[];
  /** The Docker plugin socket; undefined: none. */
  dockerSocket?: string;
  /** Docker's API socket path. */
  dockerApi?: string;
  /** A user's token Docker's plugin uses to create Weft networks (--docker-token-file). */
  dockerToken?: string;
  logLevel: string;
}

/** What `weft server` hands the server (its ServerOptions; the CLI may not import the server). */
/** The long-running processes, injected by bin/ so the CLI does not import the server or the agent. */
export interface Daemons {
  startServer(opts: ServerFlags): Promise<RunningDaemon>;
  startAgent(opts: AgentFlags): Promise<{ close(): Promise<void> }>;
  /** For `weft up`: a join token for its own agent, or undefined when the saved certificate is still good. */
  ownJoin(server: RunningDaemon, agent: AgentFlags): Promise<string | undefined>;
  uninstallAgent(opts: AgentFlags): Promise<string[]>;
  /** The lab's operations, loaded when a `weft lab` command runs (it brings the exec layer and model's schemas). */
  lab(): Promise<LabOps>;
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
    .option('--vtep-ip6 <ip|none>', "IPv6 underlay address of this host, where other hosts and BGP routers send routed networks' IPv6 (default: the first global IPv6 address of the --vtep-ip interface; none: no IPv6 underlay)")
    .option('--datapath <kind>', 'what programs this host: linux (namespaces, bridges, VXLAN, nftables), or memory (nothing: a simulated host, for tests and scale runs of the control plane)', 'linux')
    .addOption(new Option('--nft-helper <on|off>', 'commit rulesets through weft-nftd, which keeps one nft context per namespace (off: run `nft -f` for each commit: slower beside large tables, each commit visible to WEFT_EXEC_TRACE)')
      .choices(['on', 'off']).default('on'))
    .option('--resync <ms>', 'how often to re-check what the drift watcher reported (every tenant once a minute, and on every resync if the watcher is gone) and repair drift', intArg('--resync', 200, 600_000), 2000)
    .option('--repair-grace <ms>', 'age before an endpoint without its veth is re-wired, or released when its container is gone', intArg('--repair-grace', 0, 3_600_000), 10_000)
    .option('--max-policy-pairs <n>', 'the most pairs of address classes one tenant\'s policy may make on this host (rules naming each endpoint\'s own address with its own ports, as a source and as a destination, make the square of those endpoints; named one way only, as many as endpoints); past it, that tenant\'s tables here stay as last applied and its new endpoints here are refused, so one tenant\'s policy cannot hold the agent for every other', intArg('--max-policy-pairs', 1000, 100_000_000), POLICY_PAIRS_DEFAULT)
    .addOption(new Option('--flow-log <on|off>', 'log each new connection\'s verdict (allowed, denied, audit) in the tenants\' tables and send it to the server, for `weft flows`')
      .choices(['on', 'off']).default('on'))
    .option('--flow-log-rate <perSource,total>', 'flow records per second the kernel passes on: per source address, and per tenant on this host (a tenant without policy: bridged and routed connections each have their own); the rest are counted, not logged', flowRates, { perSource: 20, total: 500 })
    .option('--dns-port <port>', 'port of the containers\' DNS server on each tenant uplink (queries to a gateway, port 53, are sent there)', intArg('--dns-port', 1, 65535), 15353)
    .option('--docker-plugin <socket>', 'serve Docker\'s network and IPAM plugin here (driver name = file name), or "none"', '/run/docker/plugins/weft.sock')
    .option('--docker-api <socket>', 'Docker\'s API socket, to show container names of Docker endpoints', '/run/docker.sock')
    .option('--docker-token-file <file>', 'a user\'s token with which `docker network create --subnet` may create Weft networks (a host certificate may not)')
    .option('--dns-upstream <servers>', 'comma-separated IP[:PORT] for names outside .weft, or "none" (default: the nameservers of /etc/resolv.conf)', upstreamList);
}

/** Flags of the agent's identity: join once, then its own certificate from the state dir. */
function identityOptions(cmd: Command): Command {
  return cmd
    .option('--join <token>', 'join with this one-time token from `weft host add NAME` (once; later starts use the saved certificate)')
    .option('--join-file <file>', 'read the join token from a file instead (keeps it out of `ps`)')
    .option('--state-dir <dir>', "where this host's key, certificate and the server's CA are kept (0600)", join(DEFAULT_DATA_DIR, 'agent'))
    .option('--token-file <file>', 'run on a user token instead of a host certificate (the agent then has that user\'s role; not recommended)')
    .option('--ca <file>', "the server's CA with --token-file (default: WEFT_CA, then /var/lib/weft/ca.crt)");
}

/** How the agent authenticates: a join token, a user token (legacy), or (neither) the saved certificate. */
function agentCredentials(o: Record<string, any>): Pick<AgentFlags, 'join' | 'token' | 'caPem'> {
  if (o['join'] !== undefined && o['joinFile'] !== undefined) throw usage('--join and --join-file: give one');
  const join = o['join'] ?? (o['joinFile'] !== undefined ? readTokenFile(o['joinFile'], '--join-file') : undefined);
  if (o['tokenFile'] === undefined) return join !== undefined ? { join } : {};
  if (join !== undefined) throw usage('--join and --token-file: give one (a joined host needs no token)');
  const caFile = o['ca'] ?? process.env['WEFT_CA'];
  const caPem = caFile !== undefined ? readCa(caFile, o['ca'] !== undefined ? '--ca' : 'WEFT_CA') : readLocal('ca.crt');
  return { token: readTokenFile(o['tokenFile'], '--token-file'), ...(caPem ? { caPem } : {}) };
}

function serverOptions(cmd: Command): Command {
  return cmd
    .option('--tls-cert <file>', 'serve with this certificate instead of one Weft makes (with --tls-key and --tls-ca)')
    .option('--tls-key <file>', 'the private key of --tls-cert')
    .option('--tls-ca <file>', 'the CA that signed --tls-cert; clients and host certificates are verified against it')
    .option('--tls-ca-key <file>', 'the key of --tls-ca, so this server can issue host certificates (weft host add)')
    .option('--tls-san <names>', 'more comma-separated names or addresses for the certificate Weft makes (e.g. a NAT address)')
    .option('--host-cert-ttl <duration>', 'lifetime of host certificates; agents renew at two thirds (30s ... 365d)', durationArg('--host-cert-ttl', 30, 365 * 86_400), 30 * 86_400)
    .addOption(new Option('--token-ttl <duration>', 'lifetime of tokens made by `weft login` (and the default for `weft token create`): 30m, 12h, 7d, or never')
      .argParser(lifetimeArg('--token-ttl')).default(12 * 3_600_000, '12h'))
    .option('--audit-log <file>', 'where every write, refusal and login is logged as JSON lines (0600): a file, - for stderr, or none (default: DATA_DIR/audit.log)')
    .option('--audit-log-size <MiB>', 'rotate the audit log at this size; one older file (FILE.1) is kept', intArg('--audit-log-size', 1, 65536), 64);
}


function serverFlags(o: Record<string, any>, store: string): ServerFlags {
  const tls = {
    ...(o['tlsCert'] ? { cert: o['tlsCert'] } : {}), ...(o['tlsKey'] ? { key: o['tlsKey'] } : {}), ...(o['tlsCa'] ? { ca: o['tlsCa'] } : {}),
    ...(o['tlsCaKey'] ? { caKey: o['tlsCaKey'] } : {}), ...(o['tlsSan'] ? { sans: String(o['tlsSan']).split(',').map((x) => x.trim()).filter(Boolean) } : {}),
  };
  return {
    listen: o['listen'], dataDir: o['dataDir'], store, logLevel: o['logLevel'], tls, hostCertTtlMs: o['hostCertTtl'] * 1000,
    tokenTtlMs: o['tokenTtl'], ...(o['auditLog'] ? { auditLog: o['auditLog'] } : {}), auditLogMaxBytes: o['auditLogSize'] * 1024 * 1024, ...limitFlags(o),
    ...(o['historyLimit'] ? { historyLimit: o['historyLimit'] } : {}), ...(o['hostTimeout'] ? { hostTimeoutMs: o['hostTimeout'] } : {}), ...(o['hostGrace'] ? { hostGraceMs: o['hostGrace'] } : {}),
  };
}

/** `--dns-upstream`: IP[:PORT],... or none. */
function flowRates(text: string): { perSource: number; total: number } {
  const m = /^(\d{1,6}),(\d{1,6})$/.exec(text.trim());
  const [perSource, total] = m ? [Number(m[1]), Number(m[2])] : [0, 0];
  if (!m || perSource < 1 || total < perSource || total > 100_000) throw usage(`--flow-log-rate: '${text}' is not PER_SOURCE,TOTAL (records per second, 1 ≤ PER_SOURCE ≤ TOTAL ≤ 100000), e.g. 20,500`);
  return { perSource, total };
}

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

/** `--vtep-ip6`: an IPv6 address's shape (the server checks the rest, naming vtepIp6), or none. */
function vtep6Arg(x: string): string {
  if (x !== 'none' && !(/^[0-9a-fA-F:.]{2,45}$/.test(x) && x.includes(':'))) throw usage(`--vtep-ip6: '${x.slice(0, 64)}' is not an IPv6 address (or none)`);
  return x;
}

function agentFlags(o: Record<string, any>, servers: string[], creds: Pick<AgentFlags, 'join' | 'token' | 'caPem'>): AgentFlags {
  return {
    servers, ...creds, stateDir: o['stateDir'], host: o['host'] ?? hostname().split('.')[0]!.toLowerCase(), hostGiven: o['host'] !== undefined, runDir: o['runDir'], cniConfDir: o['cniConfDir'],
    cniBinDirs: String(o['cniBinDir']).split(',').filter(Boolean), nsPrefix: o['netnsPrefix'], datapath: o['datapath'], nftHelper: o['nftHelper'] !== 'off', resyncMs: o['resync'], repairGraceMs: o['repairGrace'], maxPolicyPairs: o['maxPolicyPairs'], logLevel: o['logLevel'],
    dnsPort: o['dnsPort'], ...(o['flowLog'] === 'off' ? {} : { flowLog: o['flowLogRate'] }), ...(o['dockerPlugin'] && o['dockerPlugin'] !== 'none' ? { dockerSocket: o['dockerPlugin'], dockerApi: o['dockerApi'] } : {}),
    ...(o['dockerTokenFile'] ? { dockerToken: readTokenFile(o['dockerTokenFile'], '--docker-token-file') } : {}), ...(o['dnsUpstream'] ? { dnsUpstreams: o['dnsUpstream'] } : {}),
    ...(o['vtepIp'] ? { vtepIp: o['vtepIp'] } : {}),
    ...(o['vtepIp6'] ? { vtepIp6: vtep6Arg(String(o['vtepIp6'])) } : {}),
  };
}

function announce(io: Io, d: RunningDaemon, dataDir: string, store: string): void {
  if (d.adminToken !== undefined) {
    io.out('First start: created user admin. Its token is shown once here');
    io.out(store === 'sqlite' ? ` and saved in ${dataDir}/admin.token (mode 0600):\n` : ':\n');
    io.out(`  ${d.adminToken}\n`);
    io.out(store === 'sqlite'
      ? `Use it with: weft login --server ${d.url} --token-file ${dataDir}/admin.token   (or export WEFT_TOKEN_FILE=...)\n`
      : `Use it with: put it in a file (0600), then weft login --server ${d.url} --token-file FILE\n`);
  }
  io.out(`weft server listening on ${d.url} (store: ${store === 'sqlite' ? `sqlite ${dataDir}/weft.db` : store})\n`);
}


export function daemonCommands(program: Command, io: Io, daemons: Daemons): void {
  etcdOptions(limitOptions(serverOptions(program.command('server')
    .description('run the control plane: REST API over HTTPS, allocation, history and watch, on SQLite by default')
    .option('--listen <host:port>', 'address to serve the API on', '127.0.0.1:9700')
    .option('--data-dir <dir>', 'where the SQLite store, admin.token, ca.crt and the server certificate live', DEFAULT_DATA_DIR)
    .option('--store <store>', 'sqlite, memory (throw-away), or etcd://HOST:PORT,... (multi-host work)', 'sqlite')
    .option('--history-limit <revisions>', 'how many revisions of change history to keep', intArg('--history-limit', 10, 100_000_000))
    .option('--host-timeout <ms>', 'a host whose agent is silent this long is shown as down', intArg('--host-timeout', 1000, 86_400_000))
    .option('--host-grace <ms>', 'the endpoints of a host silent this long are released (default 10 min)', intArg('--host-grace', 1000, 604_800_000))
    .option('--log-level <level>', 'fatal, error, warn, info, debug', 'info'))))
    .addHelpText('after', '\nOn its first start the server makes a CA and a certificate naming every address it listens on\n(DATA_DIR/ca.crt, server.crt, server.key), and serves HTTPS only. Clients verify it with ca.crt.\n\nExamples:\n  $ weft server\n  $ weft server --listen 0.0.0.0:9700 --data-dir /srv/weft\n  $ weft server --token-ttl 8h --audit-log /var/log/weft/audit.log\n  $ weft server --tls-cert srv.crt --tls-key srv.key --tls-ca corp-ca.crt --tls-ca-key corp-ca.key\n  $ weft server --store etcd://10.0.0.5:2379 --etcd-ca ca.crt --etcd-cert weft.crt --etcd-key weft.key\n')
    .action(async (o) => {
      const d = await daemons.startServer({ ...serverFlags(o, o.store), ...etcdFlags(o) });
      announce(io, d, o.dataDir, o.store);
      await untilSignalled(d, io);
    });

  identityOptions(agentOptions(program.command('agent')
    .description("run this host's agent: reconcile the kernel to the desired state and serve the CNI plugin")
    .option('--server <urls>', 'server URL(s), comma-separated for failover', process.env['WEFT_SERVER'] ?? DEFAULT_SERVER)
    .option('--log-level <level>', 'fatal, error, warn, info, debug', 'info')
    .option('--uninstall', 'instead of running: remove what the agent built on this host (namespaces, uplinks, tables, conflists, plugin)')))
    .addHelpText('after', '\nA host joins once with a token from `weft host add NAME` (it pins the server\'s CA); the agent keeps its\nown key and certificate in --state-dir and renews the certificate before it expires.\n\nExamples:\n  $ weft agent --server https://10.0.0.5:9700 --join weftjoin1....      # first start on node1\n  $ weft agent --server https://10.0.0.5:9700,https://10.0.0.6:9700      # later starts\n  $ weft agent --uninstall      # after stopping it; containers on Weft lose their network\n')
    .action(async (o) => {
      if (o.uninstall) {
        const removed = await daemons.uninstallAgent(agentFlags(o, [], {}));
        io.out(removed.length ? `removed:\n${removed.map((r) => `  ${r}`).join('\n')}\n` : 'nothing of Weft found on this host\n');
        return;
      }
      const servers = parseServers(String(o.server), '--server');
      const a = await daemons.startAgent(agentFlags(o, servers, agentCredentials(o)));
      io.out(`weft agent running (socket ${join(o.runDir, 'agent.sock')}, conflists in ${o.cniConfDir})\n`);
      await untilSignalled(a, io);
    });

  limitOptions(serverOptions(agentOptions(program.command('up')
    .description("run Weft on this host in the foreground: the server (SQLite) and this host's agent; Ctrl-C stops both")
    .option('--listen <host:port>', 'address to serve the API on', '127.0.0.1:9700')
    .option('--data-dir <dir>', 'where the SQLite store, admin.token, ca.crt and the agent\'s certificate (DATA_DIR/agent/) live', DEFAULT_DATA_DIR)
    .option('--log-level <level>', 'fatal, error, warn, info, debug', 'info'))))
    .addHelpText('after', '\nThe agent joins its own server like any other host (a join token minted in-process), and keeps\nits certificate in DATA_DIR/agent/.\n\nExample:\n  $ weft up            # then, in another shell: weft tenant ls\n')
    .action(async (o) => {
      const d = await daemons.startServer(serverFlags(o, 'sqlite'));
      announce(io, d, o.dataDir, 'sqlite');
      let a: { close(): Promise<void> };
      try {
        const flags = agentFlags({ ...o, stateDir: join(o.dataDir, 'agent') }, [d.url], {});
        const token = await daemons.ownJoin(d, flags);
        a = await daemons.startAgent({ ...flags, ...(token !== undefined ? { join: token } : {}) });
      } catch (e) {
        await d.close();
        throw e;
      }
      io.out(`weft agent running (conflists in ${o.cniConfDir}): podman run --network weft.<tenant>.<group> (or weft-<tenant>-<group> while unambiguous) ...\n`);
      await untilSignalled({ close: async () => { await a.close(); await d.close(); } }, io);
    });
}
