import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ProcessRunner, runInteractive, spawnDaemon } from '../exec/index.js';
import { withOverrides } from '../exec/argv.js';
import { WeftError } from '../model/index.js';
import { buildTopology, destroyTopology } from './topology.js';
import { freeOctets, freePorts } from './free.js';
import { membersUp } from './etcd-health.js';

/**
 * `weft lab`: a multi-host Weft on one machine. Hosts are network namespaces on a shared underlay; the
 * server runs in the root namespace and an agent in each host (nsenter --net, each with its own run and
 * CNI directories). What it made is written to a state file, so `lab down` stops it by pid and removes it
 * by name; anything named with the lab's prefix is removed even if the state file is lost.
 */
export const LAB_PREFIX = 'wl';
export const DEFAULT_LAB_DIR = '/run/weft-lab';
const WEFT_BIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'weft.cjs');
const runner = new ProcessRunner();

export interface LabHostState { name: string; ns: string; vtep: string; dir: string; agentPid: number }
export interface LabState { dir: string; prefix: string; count: number; serverPid: number; serverUrl: string; token: string; caFile: string; hosts: LabHostState[]; store?: string; etcdPids?: number[]; serverPids?: number[]; daemons?: Record<string, LabDaemon> }
/**
 * The lab's etcd takes this many operations in one transaction (etcd's default is 128, about 40 objects
 * of a `weft apply` file), and its servers are told the same (--etcd-max-txn-ops).
 */
const LAB_ETCD_MAX_TXN_OPS = 1024;

/** How a lab daemon was started (key `etcd0`, `server0`, `agent0`): what `labRespawn` starts it again with. */
export interface LabDaemon { argv: string[]; log: string }

const stateFile = (dir: string) => join(dir, 'state.json');

export function readLab(dir = DEFAULT_LAB_DIR): LabState {
  if (!existsSync(stateFile(dir))) throw new WeftError('WEFT_NOT_FOUND', `no lab is up (no ${stateFile(dir)}); start one with: weft lab up --hosts 3`);
  return JSON.parse(readFileSync(stateFile(dir), 'utf8')) as LabState;
}

/**
 * Whether a lab process still runs. A zombie does not: lab daemons outlive the `lab up` that started them,
 * so init reaps them, and on some machines only every few seconds (`kill -0` succeeds on a zombie).
 */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z/s.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/**
 * Whether a running pid is still the lab's: its command line names the lab's directory (every daemon's
 * does: data, state and CNI directories under it), or, for a run, is `lab … run … --name NAME`. A state
 * file outlives a reboot, and a pid recorded then may be another program's now.
 */
function ours(pid: number, dir: string, run?: string): boolean {
  let argv: string[];
  try {
    argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    return false;
  }
  // An argument that is the directory or a path under it (a name as short as `lab` must not match `gitlab`).
  const root = dir.replace(/\/+$/, '');
  if (run === undefined) return argv.some((a) => a === root || a.startsWith(`${root}/`));
  const at = argv.indexOf('run');
  return at > 0 && argv.includes('lab') && (argv.includes(`--name=${run}`) || argv[argv.indexOf('--name', at) + 1] === run);
}

async function waitFor(file: string, pattern: RegExp, what: string, ms = 15_000): Promise<RegExpExecArray> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const m = existsSync(file) ? pattern.exec(readFileSync(file, 'utf8')) : null;
    if (m) return m;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new WeftError('WEFT_INTERNAL', `${what} did not start within ${ms / 1000} s; see ${file}`);
}

/** Where a lab host's agent serves Docker's plugin protocol when the lab was made with `dockerPlugin`. */
export const labDockerSocket = (hostDir: string) => join(hostDir, 'run', 'docker', 'weft.sock');
/** Where a lab host's agent asks Docker's API (`dockerPlugin` labs): nothing listens there unless a dockerd is started on it. */
export const labDockerApi = (hostDir: string) => join(hostDir, 'run', 'dockerd.sock');

/**
 * `serverArgs`/`agentArgs`/`etcdArgs`: extra flags for every server, agent and etcd member (the chaos
 * suite's short --host-grace, its small --quota-backend-bytes).
 * `dockerPlugin`: each agent serves Docker's plugin protocol on `labDockerSocket(HOSTDIR)`, with no
 * dockerd of the lab's own (its API socket is `labDockerApi(HOSTDIR)`, where nothing listens unless the caller
 * starts a dockerd there; never a dockerd the machine may run).
 */
export async function labUp(opts: { hosts: number; dir?: string; prefix?: string; store?: 'sqlite' | 'etcd'; log?: (line: string) => void; serverArgs?: string[]; agentArgs?: string[]; etcdArgs?: string[]; dockerPlugin?: boolean }): Promise<LabState> {
  const dir = opts.dir ?? DEFAULT_LAB_DIR;
  const log = opts.log ?? (() => undefined);
  if (existsSync(stateFile(dir))) {
    const s = readLab(dir);
    if (alive(s.serverPid)) throw new WeftError('WEFT_EXISTS', `a lab is already up (server pid ${s.serverPid}); run weft lab down first`);
    await labDown({ dir });
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const prefix = opts.prefix ?? LAB_PREFIX;
  const state: LabState = { dir, prefix, count: opts.hosts, serverPid: 0, serverUrl: '', token: '', caFile: join(dir, 'ca.crt'), hosts: [] };
  const save = () => writeFileSync(stateFile(dir), `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  state.daemons = {};
  const daemons = state.daemons;
  const spawn = (key: string, argv: string[], logFile: string) => {
    daemons[key] = { argv, log: logFile };
    return spawnDaemon(argv, logFile);
  };
  save();
  try {
    log(`creating ${opts.hosts} hosts on an underlay`);
    const topo = await buildTopology(runner, prefix, opts.hosts, await freeOctets(runner, '198.18', opts.hosts), (await freeOctets(runner, '198.19', 1))[0] as number);
    if (opts.store === 'etcd') {
      // Three etcd members on loopback and two servers sharing them; agents get both server URLs.
      let ports: number[] = [];
      state.store = 'etcd';
      for (let attempt = 1; ; attempt++) {
        ports = await freePorts(6);
        const initial = [0, 1, 2].map((i) => `e${i}=http://127.0.0.1:${ports[i * 2 + 1]}`).join(',');
        state.etcdPids = [];
        for (let i = 0; i < 3; i++) {
          const url = `http://127.0.0.1:${ports[i * 2]}`;
          // A second attempt starts from nothing: its data and its log (a reason must be this attempt's).
          rmSync(join(dir, `etcd${i}`), { recursive: true, force: true });
          rmSync(join(dir, `etcd${i}.log`), { force: true });
          state.etcdPids.push(spawn(`etcd${i}`, ['etcd', '--name', `e${i}`, '--data-dir', join(dir, `etcd${i}`), '--listen-client-urls', url, '--advertise-client-urls', url,
            '--listen-peer-urls', `http://127.0.0.1:${ports[i * 2 + 1]}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${ports[i * 2 + 1]}`,
            '--initial-cluster', initial, '--log-level', 'error', '--max-txn-ops', String(LAB_ETCD_MAX_TXN_OPS), ...(opts.etcdArgs ?? [])], join(dir, `etcd${i}.log`)));
          save();
        }
        // All three, before any server: one member short still makes a cluster, and the lab then ran on two.
        const members = state.etcdPids.map((pid, i) => ({ url: `http://127.0.0.1:${ports[i * 2]}`, pid, log: join(dir, `etcd${i}.log`) }));
        const trouble = await membersUp(members, alive);
        if (trouble === undefined) break;
        for (const pid of state.etcdPids) await stop(pid);
        if (attempt === 2) throw new WeftError('WEFT_INTERNAL', `the lab's etcd cluster did not come up, twice: ${trouble}`);
        log(`etcd did not come up (${trouble}); again on other ports`);
      }
      const store = `etcd://${[0, 1, 2].map((i) => `127.0.0.1:${ports[i * 2]}`).join(',')}`;
      const urls: string[] = [];
      state.serverPids = [];
      for (let i = 0; i < 2; i++) {
        const serverLog = join(dir, `server${i + 1}.log`);
        state.serverPids.push(spawn(`server${i}`, [process.execPath, WEFT_BIN, ...withOverrides(['server', '--listen', `${topo.serverIp}:${9700 + i}`, '--data-dir', join(dir, `data${i + 1}`), '--store', store, '--etcd-max-txn-ops', String(LAB_ETCD_MAX_TXN_OPS), '--log-level', 'warn'], opts.serverArgs ?? [])], serverLog));
        save();
        urls.push((await waitFor(serverLog, /listening on (https:\/\/\S+)/, `lab server ${i + 1}`, 30_000))[1] as string);
        const token = /^ {2}(weft_\S+)$/m.exec(readFileSync(serverLog, 'utf8'))?.[1];
        if (token) state.token = token;
      }
      state.serverPid = state.serverPids[0] as number;
      state.serverUrl = urls.join(',');
      writeFileSync(join(dir, 'token'), `${state.token}\n`, { mode: 0o600 });
      copyFileSync(join(dir, 'data1', 'ca.crt'), state.caFile);
      log(`etcd cluster of 3 (pids ${state.etcdPids.join(', ')}), servers ${urls.join(', ')}`);
    } else {
      const serverLog = join(dir, 'server.log');
      state.serverPid = spawn('server0', [process.execPath, WEFT_BIN, ...withOverrides(['server', '--listen', `${topo.serverIp}:9700`, '--data-dir', join(dir, 'data'), '--log-level', 'warn'], opts.serverArgs ?? [])], serverLog);
      save();
      state.serverUrl = (await waitFor(serverLog, /listening on (https:\/\/\S+)/, 'the lab server'))[1] as string;
      state.token = readFileSync(join(dir, 'data', 'admin.token'), 'utf8').trim();
      writeFileSync(join(dir, 'token'), `${state.token}\n`, { mode: 0o600 });
      copyFileSync(join(dir, 'data', 'ca.crt'), state.caFile);
      log(`server ${state.serverUrl} (pid ${state.serverPid})`);
    }
    save();
    for (const [i, h] of topo.hosts.entries()) {
      const hdir = join(dir, h.name);
      mkdirSync(hdir, { recursive: true });
      const agentLog = join(hdir, 'agent.log');
      // Each host joins like a real one: an admin's one-time token, its own key and certificate.
      const joinFile = join(hdir, 'join.token');
      writeFileSync(joinFile, await invite(state, h.name), { mode: 0o600 });
      const pid = spawn(`agent${i}`, ['nsenter', `--net=/run/netns/${h.ns}`, process.execPath, WEFT_BIN, ...withOverrides(['agent', '--server', state.serverUrl,
        '--join-file', joinFile, '--state-dir', join(hdir, 'agent'), '--host', h.name, '--run-dir', join(hdir, 'run'),
        '--cni-conf-dir', join(hdir, 'net.d'), '--cni-bin-dir', join(hdir, 'bin'), '--netns-prefix', `${prefix}${i + 1}-`,
        // Lab hosts have no way out, so names outside .weft are refused at once rather than timing out.
        '--vtep-ip', h.vtep, '--dns-upstream', 'none',
        ...(opts.dockerPlugin ? ['--docker-plugin', labDockerSocket(hdir), '--docker-api', labDockerApi(hdir)] : ['--docker-plugin', 'none']), '--log-level', 'warn'], opts.agentArgs ?? [])], agentLog);
      state.hosts.push({ name: h.name, ns: h.ns, vtep: h.vtep, dir: hdir, agentPid: pid });
      save();
      await waitFor(agentLog, /weft agent running/, `the agent of ${h.name}`);
      log(`${h.name}: agent pid ${pid}, underlay ${h.vtep}`);
    }
    return state;
  } catch (e) {
    await labDown({ dir });
    throw e;
  }
}

/** `weft host add NAME` as the lab's admin: a one-time join token. */
function invite(s: LabState, host: string): Promise<string> {
  const url = new URL(`${s.serverUrl.split(',')[0]}/api/v1/hosts/${host}/join-token`);
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { method: 'POST', ca: readFileSync(s.caFile), headers: { authorization: `Bearer ${s.token}`, 'content-type': 'application/json' } }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => (res.statusCode === 201 ? resolve((JSON.parse(body) as { token: string }).token) : reject(new WeftError('WEFT_INTERNAL', `inviting ${host}: ${res.statusCode} ${body}`))));
    });
    req.on('error', reject);
    req.end('{}');
  });
}

async function stop(pid: number): Promise<void> {
  if (!pid || !alive(pid)) return;
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 50 && alive(pid); i++) await new Promise((r) => setTimeout(r, 100));
  if (alive(pid)) process.kill(pid, 'SIGKILL');
}

/**
 * Stops every lab process by pid, then removes every namespace and link named with the lab's prefix.
 * `exited` names the recorded processes that had already ended before `down` (a crashed agent, a
 * server, an etcd member, or a run whose command ended without unplugging), so a lab that lost one
 * says so rather than only counting one fewer; `foreign` those whose pid another program has now.
 */
export async function labDown(opts: { dir?: string } = {}): Promise<{ processes: number; namespaces: number; exited: string[]; foreign: string[] }> {
  const dir = opts.dir ?? DEFAULT_LAB_DIR;
  let processes = 0;
  const exited: string[] = [];
  /** Recorded pids that are another program's now (a state file older than a reboot): left running. */
  const foreign: string[] = [];
  const end = async (pid: number, what: string, run?: string): Promise<void> => {
    // A pid file read as nothing (0, NaN: written half, or by hand) names no process.
    if (!Number.isInteger(pid) || pid <= 0) return;
    if (!alive(pid)) exited.push(`${what} (pid ${pid})`);
    else if (!ours(pid, owner, run)) foreign.push(`${what} (pid ${pid}, now another program's: left running)`);
    else {
      await stop(pid);
      processes++;
    }
  };
  let count = 16;
  let prefix = LAB_PREFIX;
  /** The directory as `up` gave it to the daemons (their command lines name it). */
  let owner = dir;
  if (existsSync(stateFile(dir))) {
    const s = JSON.parse(readFileSync(stateFile(dir), 'utf8')) as LabState;
    owner = s.dir ?? dir;
    count = Math.max(count, s.count);
    prefix = s.prefix ?? prefix;
    const runs = join(dir, 'runs');
    for (const f of existsSync(runs) ? readdirSync(runs) : []) {
      const name = f.replace(/\.pid$/, '');
      await end(Number(readFileSync(join(runs, f), 'utf8')), `run ${name}`, name);
    }
    for (const h of s.hosts) await end(h.agentPid, `the agent of ${h.name}`);
    for (const pid of new Set([s.serverPid, ...(s.serverPids ?? [])])) if (pid) await end(pid, 'a server');
    for (const [i, pid] of (s.etcdPids ?? []).entries()) await end(pid, `etcd member ${i + 1}`);
  }
  // Only this lab's names: `${prefix}-...` (hosts, underlay, containers) and `${prefix}<N>-...` (tenants).
  const mine = new RegExp(`^${prefix}([0-9]+)?-`);
  const namespaces = existsSync('/run/netns') ? readdirSync('/run/netns').filter((n) => mine.test(n)) : [];
  await destroyTopology(runner, prefix, namespaces, count);
  rmSync(dir, { recursive: true, force: true });
  return { processes, namespaces: namespaces.length, exited, foreign };
}

/** Plugs a fresh "container" namespace into a lab network through the real CNI plugin, runs argv in it, then unplugs it. */
const ETC_NETNS = '/etc/netns';

function resolvConf(dns: { nameservers?: string[]; search?: string[] } | undefined): string {
  const lines = [...(dns?.nameservers ?? []).map((n) => `nameserver ${n}`), ...(dns?.search?.length ? [`search ${dns.search.join(' ')}`] : [])];
  return `${lines.join('\n')}\n`;
}

/**
 * A lab "container" is a busybox container: its commands find busybox's applets first (`nc -ll -p 8888 -e
 * /bin/cat`, `nslookup`), then the host's PATH. The applet links are made once per lab.
 */
async function busyboxPath(dir: string): Promise<string> {
  const bin = join(dir, 'busybox');
  if (!existsSync(join(bin, 'nc'))) {
    mkdirSync(bin, { recursive: true });
    await runner.run(['busybox', '--install', '-s', bin], { allowFailure: true });
  }
  return `${bin}:${process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin'}`;
}

export async function labRun(opts: { host: string; network: string; name: string; argv: string[]; dir?: string; log?: (line: string) => void }): Promise<number> {
  const s = readLab(opts.dir);
  const h = s.hosts.find((x) => x.name === opts.host);
  if (!h) throw new WeftError('WEFT_NOT_FOUND', `host ${opts.host} is not in the lab (hosts: ${s.hosts.map((x) => x.name).join(', ')})`);
  const conflist = join(h.dir, 'net.d', `${opts.network}.conflist`);
  if (!existsSync(conflist)) {
    const known = readdirSync(join(h.dir, 'net.d')).filter((f) => f.endsWith('.conflist')).map((f) => f.slice(0, -9));
    throw new WeftError('WEFT_NOT_FOUND', `--network: ${opts.network} is not a Weft network or group on ${h.name} (known: ${known.join(', ') || 'none yet'})`);
  }
  const ns = `${s.prefix ?? LAB_PREFIX}-c-${opts.name}`;
  if (existsSync(`/run/netns/${ns}`)) throw new WeftError('WEFT_EXISTS', `--name: a lab container named ${opts.name} is running`);
  const pidFile = join(s.dir, 'runs', `${opts.name}.pid`);
  const list = JSON.parse(readFileSync(conflist, 'utf8'));
  const conf = JSON.stringify({ ...list.plugins[0], cniVersion: list.cniVersion, name: list.name });
  const cni = (command: string) => runner.run(['env', `CNI_COMMAND=${command}`, `CNI_CONTAINERID=${opts.name}`, `CNI_NETNS=/run/netns/${ns}`,
    'CNI_IFNAME=eth0', `CNI_PATH=${join(h.dir, 'bin')}`, `CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAME=${opts.name}`, join(h.dir, 'bin', 'weft')], { input: conf, allowFailure: true });
  await runner.run(['ip', 'netns', 'add', ns]);
  // `ip netns exec` bind-mounts this over /etc/resolv.conf for the command: the container's resolver.
  const etc = join(ETC_NETNS, ns);
  const unplug = async () => {
    await cni('DEL');
    await runner.run(['ip', 'netns', 'del', ns], { allowFailure: true });
    rmSync(etc, { recursive: true, force: true });
    rmSync(pidFile, { force: true });
  };
  const abort = new AbortController();
  // Stopped (by `lab down` or Ctrl-C): stop the command too, then unplug and leave.
  const onSignal = () => {
    abort.abort();
    void unplug().then(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    // Recorded so `lab down` can stop a run that is still going (it unplugs itself on SIGTERM); written
    // only now, so a run that failed before its namespace existed leaves none behind.
    mkdirSync(dirname(pidFile), { recursive: true });
    writeFileSync(pidFile, String(process.pid));
    await runner.run(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
    const add = await cni('ADD');
    if (add.code !== 0) throw new WeftError('WEFT_INVALID_VALUE', `the CNI plugin refused: ${add.stdout.trim()}`);
    const result = JSON.parse(add.stdout) as { ips?: Array<{ address: string }>; dns?: { nameservers?: string[]; search?: string[] } };
    const ip = result.ips?.[0]?.address as string;
    opts.log?.(`${opts.name} on ${h.name}: ${ip}`);
    mkdirSync(etc, { recursive: true });
    writeFileSync(join(etc, 'resolv.conf'), resolvConf(result.dns));
    return await runInteractive(['ip', 'netns', 'exec', ns, 'env', `PATH=${await busyboxPath(s.dir)}`, ...opts.argv], abort.signal);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await unplug();
  }
}
