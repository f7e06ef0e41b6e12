import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProcessRunner, type RunResult } from '../exec/index.js';
import { notGiven, withOverrides } from '../exec/argv.js';
import { WEFT_BIN, startServerProcess, http, type ServerProcess } from './server.js';
import { freeOctets } from '../lab/free.js';

const runner = new ProcessRunner();

/**
 * V8 flags of `weft agent` run as a program (the launcher, scripts/bundle-cli.mjs): V8's memory reducer
 * off (idle-gc.ts); the old generation may double before a major collection (docs/decisions.md, session 38).
 */
export const AGENT_V8_FLAGS = ['--no-memory-reducer', '--heap-growing-percent=100'];

/**
 * A simulated host for agent tests: a network namespace joined to the root namespace by a veth (the
 * server listens on the root side), an agent process running inside it with its own run, CNI config
 * and plugin directories, and helpers to make "containers" (namespaces) and call the CNI plugin the way a
 * runtime does. Every namespace, link and process carries `tag` and is removed by cleanup().
 */
export interface TestHost {
  tag: string;
  hostNs: string;
  hostIp: string;
  dir: string;
  server: ServerProcess;
  token: string;
  pluginPath: string;
  cniConfDir: string;
  agentPid(): number | undefined;
  api(method: string, path: string, body?: unknown): Promise<{ status: number; json: any }>;
  weft(args: string[]): Promise<RunResult>;
  container(name: string): Promise<string>;
  exec(ns: string, argv: string[], opts?: { input?: string; timeoutMs?: number }): Promise<RunResult>;
  cni(command: string, opts: { conflist: string; containerId?: string; netns?: string; ifname?: string; env?: Record<string, string>; stdin?: string; patch?: Record<string, unknown> }): Promise<{ code: number; json: any; stdout: string }>;
  startAgent(extra?: string[]): Promise<void>;
  stopAgent(signal?: NodeJS.Signals): Promise<void>;
  cleanup(): Promise<void>;
}

/** `serverDataDir`: the server's data dir (kept on stop: its owner removes it), e.g. on a small disk a test fills. */
export async function startTestHost(name: string, opts: { agentArgs?: string[]; serverArgs?: string[]; serverDataDir?: string } = {}): Promise<TestHost> {
  const tag = `${name}${process.pid % 100000}`.slice(0, 9);
  const dir = mkdtempSync(join(tmpdir(), `weft-${tag}-`));
  const hostNs = `${tag}-host`;
  const octet = await freeOctet();
  const rootIp = `198.18.${octet}.1`;
  const hostIp = `198.18.${octet}.2`;
  let agentHandle: AgentHandle | undefined;
  let server: ServerProcess | undefined;
  const gate: Gate = { closed: false, making: new Set() };
  const cleanup = async () => {
    // A caller still running (a benchmark interrupted mid-loop) gets no new namespace past this point,
    // and those being made are waited for, so the sweep below sees them.
    gate.closed = true;
    await Promise.allSettled([...gate.making]);
    // An agent run with a V8 profiler (WEFT_AGENT_NODE_ARGS) writes its profile only when it exits itself.
    if (/--(cpu|heap)-prof/.test(process.env['WEFT_AGENT_NODE_ARGS'] ?? '')) await Promise.race([agentHandle?.stop('SIGTERM'), new Promise((r) => setTimeout(r, 10_000))]);
    await agentHandle?.stop('SIGKILL');
    await server?.stop();
    for (const ns of safeList()) if (ns.startsWith(tag)) await runner.run(['ip', 'netns', 'del', ns], { allowFailure: true });
    await runner.run(['ip', 'link', 'del', `${tag}r`], { allowFailure: true });
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await runner.run(['ip', 'netns', 'add', hostNs]);
    await runner.run(['ip', 'link', 'add', `${tag}r`, 'type', 'veth', 'peer', 'name', 'uplink', 'netns', hostNs]);
    await runner.run(['ip', 'addr', 'add', `${rootIp}/30`, 'dev', `${tag}r`]);
    await runner.run(['ip', 'link', 'set', `${tag}r`, 'up']);
    await runner.run(['ip', '-n', hostNs, '-batch', '-'], { input: `link set lo up\naddr add ${hostIp}/30 dev uplink\nlink set uplink up\n` });
    server = await startServerProcess({ listen: `${rootIp}:0`, ...(opts.serverArgs ? { args: opts.serverArgs } : {}), ...(opts.serverDataDir ? { dataDir: opts.serverDataDir, keepDir: true } : {}) });
    const srv = server;
    const cniConfDir = join(dir, 'net.d');
    const binDir = join(dir, 'bin');
    const handle = agentIn({ hostNs, dir, serverUrl: srv.url, join: () => inviteHost(srv.url, srv.token, `${tag}-h`), host: `${tag}-h`, nsPrefix: `${tag}-`, vtep: hostIp, cniConfDir, binDir, extra: opts.agentArgs ?? [] });
    agentHandle = handle;
    const startAgent = (extra: string[] = []) => handle.start(extra);
    const stopAgent = (signal: NodeJS.Signals = 'SIGTERM') => handle.stop(signal);
    await startAgent();
    const host: TestHost = {
      tag, hostNs, hostIp, dir, server: srv, token: srv.token, pluginPath: join(binDir, 'weft'), cniConfDir,
      agentPid: () => agentHandle?.pid(),
      api: (method, path, body) => http(srv.url, srv.token, method, path, body),
      weft: (args) => runner.run([process.execPath, WEFT_BIN, ...args, ...notGiven(['--server', srv.url, '--token', srv.token, '--ca', srv.caFile], args)], { allowFailure: true }),
      ...containerHelpers(tag, gate),
      cni: (command, o) => callPlugin(cniConfDir, binDir, command, o),
      startAgent, stopAgent, cleanup,
    };
    return host;
  } catch (e) {
    await cleanup();
    throw e;
  }
}

/** An admin invites a host: its one-time join token. */
export async function inviteHost(url: string, adminToken: string, host: string, expiresIn?: number): Promise<string> {
  const r = await http(url, adminToken, 'POST', `/api/v1/hosts/${host}/join-token`, expiresIn === undefined ? {} : { expiresIn });
  if (r.status !== 201) throw new Error(`weft host add ${host}: ${r.status} ${JSON.stringify(r.json)}`);
  return r.json.token as string;
}

/** A 198.18.X (or other prefix) octet no address on this machine uses; random, since test files run side by side. */
export async function freeOctet(prefix = '198.18'): Promise<number> {
  return (await freeOctets(runner, prefix, 1, 'random'))[0] as number;
}

export function safeList(): string[] {
  try {
    return readdirSync('/run/netns');
  } catch {
    return [];
  }
}

/** Execs the plugin with exactly the given environment, as a runtime does. */
function runPlugin(path: string, env: Record<string, string>, stdin: string): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve) => {
    const child = spawn(path, [], { env, stdio: ['pipe', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.on('close', (code) => resolve({ code: code ?? -1, stdout }));
    child.stdin.end(stdin);
  });
}

/** Polls `fn` until it returns true or `ms` pass; returns how long it took, or -1. */
export async function within(ms: number, fn: () => Promise<boolean>, everyMs = 100): Promise<number> {
  const start = Date.now();
  while (Date.now() - start < ms) {
    if (await fn()) return Date.now() - start;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  return -1;
}

export interface CniCall {
  conflist: string; containerId?: string; netns?: string; ifname?: string; env?: Record<string, string>; stdin?: string; patch?: Record<string, unknown>;
}

/** Calls the installed plugin like a runtime: the conflist's plugin entry on stdin, CNI_* in the environment. */
export async function callPlugin(cniConfDir: string, binDir: string, command: string, o: CniCall): Promise<{ code: number; json: any; stdout: string }> {
  const list = JSON.parse(readFileSync(join(cniConfDir, `${o.conflist}.conflist`), 'utf8'));
  const conf = { ...list.plugins[0], cniVersion: list.cniVersion, name: list.name, ...(o.patch ?? {}) };
  const env: Record<string, string> = {
    PATH: process.env['PATH'] ?? '', CNI_COMMAND: command, CNI_CONTAINERID: o.containerId ?? '', CNI_NETNS: o.netns ?? '',
    CNI_IFNAME: o.ifname ?? 'eth0', CNI_PATH: binDir, ...(o.env ?? {}),
  };
  const r = await runPlugin(join(binDir, 'weft'), env, o.stdin ?? JSON.stringify(conf));
  let json: any;
  try { json = r.stdout.trim() ? JSON.parse(r.stdout) : undefined; } catch { json = undefined; }
  return { code: r.code, json, stdout: r.stdout };
}

export interface AgentHandle {
  start(extra?: string[]): Promise<void>;
  stop(signal?: NodeJS.Signals): Promise<void>;
  pid(): number | undefined;
}

/**
 * An agent process inside a host namespace, entered with nsenter --net, not `ip netns exec`: the latter
 * gives the agent a private mount namespace, and the tenant namespaces it pins under /run/netns would be
 * invisible to everyone else (and to its next run). Its output goes to DIR/agent.log.
 */
export function agentIn(a: { hostNs: string; dir: string; serverUrl: string; join: () => Promise<string>; host: string; nsPrefix: string; vtep: string; cniConfDir: string; binDir: string; extra: string[] }): AgentHandle {
  let child: ChildProcess | undefined;
  const stateDir = join(a.dir, 'agent-state');
  return {
    pid: () => child?.pid,
    async start(extra: string[] = []) {
      // The first start joins with a fresh one-time token; later starts use the certificate it saved.
      const joinArgs: string[] = [];
      if (!existsSync(join(stateDir, 'agent.crt'))) {
        const file = join(a.dir, 'join.token');
        writeFileSync(file, await a.join(), { mode: 0o600 });
        joinArgs.push('--join-file', file);
      }
      // AGENT_V8_FLAGS as `weft agent` run as a program has them (scripts/bundle-cli.mjs), then
      // WEFT_AGENT_NODE_ARGS: flags for the agents' node (`--cpu-prof ...`, V8 heap settings to compare).
      const nodeArgs = [...AGENT_V8_FLAGS, ...(process.env['WEFT_AGENT_NODE_ARGS'] ?? '').split(' ').filter(Boolean)];
      const argv = [`--net=/run/netns/${a.hostNs}`, process.execPath, ...nodeArgs, WEFT_BIN, ...withOverrides(['agent', '--server', a.serverUrl, '--state-dir', stateDir, ...joinArgs,
        '--host', a.host, '--run-dir', join(a.dir, 'run'), '--cni-conf-dir', a.cniConfDir, '--cni-bin-dir', a.binDir,
        '--netns-prefix', a.nsPrefix, '--vtep-ip', a.vtep, '--resync', '1000', '--log-level', 'warn',
        // Tests send traffic only into namespaces they made: no forwarding to the machine's resolvers.
        '--dns-upstream', 'none', '--docker-plugin', 'none'], [...a.extra, ...extra])];
      const c = spawn('nsenter', argv, { stdio: ['ignore', 'pipe', 'pipe'] });
      child = c;
      let out = '';
      const log = createWriteStream(join(a.dir, 'agent.log'), { flags: 'a' });
      c.stdout?.on('data', (d) => { out += d; log.write(d); });
      c.stderr?.on('data', (d) => { out += d; log.write(d); });
      c.on('exit', () => log.end());
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`agent did not start:\n${out}`)), 15_000);
        c.stdout?.on('data', () => { if (out.includes('weft agent running')) { clearTimeout(timer); resolve(); } });
        c.on('exit', (code) => { clearTimeout(timer); reject(new Error(`agent exited ${code}:\n${out}`)); });
      });
    },
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      const c = child;
      if (!c || c.exitCode !== null || c.signalCode !== null) return;
      const done = new Promise((r) => c.once('exit', r));
      c.kill(signal);
      await done;
    },
  };
}

/** Whether a host's cleanup has begun, and the namespaces being made meanwhile. */
export interface Gate { closed: boolean; making: Set<Promise<void>> }

/** "Containers" for tests: namespaces named `<tag>-<name>` (so cleanup finds them), and running commands in them. */
export function containerHelpers(tag: string, gate: Gate = { closed: false, making: new Set() }) {
  return {
    async container(n: string): Promise<string> {
      const ns = `${tag}-${n}`;
      // A namespace made after cleanup() listed them would be left behind.
      if (gate.closed) throw new Error(`${ns}: the test host is being removed`);
      const made = (async () => {
        await runner.run(['ip', 'netns', 'add', ns]);
        await runner.run(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
      })();
      gate.making.add(made);
      try {
        await made;
      } finally {
        gate.making.delete(made);
      }
      return `/run/netns/${ns}`;
    },
    exec: (ns: string, argv: string[], o: { input?: string; timeoutMs?: number } = {}) => runner.run(['ip', 'netns', 'exec', ns, ...argv], { allowFailure: true, ...o }),
  };
}

/**
 * Contiv's tutorial objects on a test host: contiv-net 10.1.2.0/24, db-policy (deny tcp at priority 1,
 * allow tcp/8888 at 10), groups db (with the policy) and app; returns once the app conflist is written.
 */
export async function contivTutorial(h: TestHost): Promise<void> {
  for (const args of [
    ['net', 'create', '-s', '10.1.2.0/24', '-g', '10.1.2.1', 'contiv-net'],
    ['policy', 'create', 'db-policy'],
    ['policy', 'rule-add', 'db-policy', '1', '-direction=in', '-protocol=tcp', '-action=deny'],
    ['policy', 'rule-add', 'db-policy', '2', '-direction=in', '-protocol=tcp', '-port=8888', '-action=allow', '-priority=10'],
    ['group', 'create', '-policy=db-policy', 'contiv-net', 'db'],
    ['group', 'create', 'contiv-net', 'app'],
  ]) {
    const r = await h.weft(args);
    if (r.code !== 0) throw new Error(`weft ${args.join(' ')}: ${r.stderr}`);
  }
  if ((await within(5000, async () => existsSync(join(h.cniConfDir, 'weft-default-app.conflist')))) < 0) throw new Error('the app conflist was not written');
}

/**
 * Containers of the tutorial's groups on a test host, as the policy tests use them: `run` makes one (or
 * attaches a namespace already made, `made`), `listen` starts an echo server and returns once it answers
 * from inside its own namespace (that path never crosses the policy, so a refusal seen later from
 * elsewhere is the policy's doing), `reach` says whether another container gets its echo. Background
 * processes go in `bg`, for the caller to stop.
 */
export function tutorialPods(host: () => TestHost, bg: ChildProcess[]) {
  const ip = new Map<string, string>();
  const ns = (n: string) => `${host().tag}-${n}`;
  return {
    ip,
    ns,
    async run(name: string, group: string, made = false): Promise<void> {
      const h = host();
      const netns = made ? `/run/netns/${ns(name)}` : await h.container(name);
      const r = await h.cni('ADD', { conflist: `weft-default-${group}`, containerId: name, netns });
      if (r.code !== 0) throw new Error(`ADD ${name}: ${r.stdout}`);
      ip.set(name, r.json.ips[0].address.split('/')[0]);
    },
    async listen(name: string, port: number): Promise<void> {
      const h = host();
      bg.push(spawn('ip', ['netns', 'exec', ns(name), 'busybox', 'nc', '-ll', '-p', String(port), '-e', '/bin/cat'], { stdio: 'ignore' }));
      const self = async () => (await h.exec(ns(name), ['busybox', 'nc', '-w', '1', '127.0.0.1', String(port)], { input: 'hi\n' })).stdout.trim() === 'hi';
      if ((await within(3000, self, 50)) < 0) throw new Error(`${name} does not listen on ${port}`);
    },
    async reach(from: string, to: string, port: number): Promise<boolean> {
      const r = await host().exec(ns(from), ['busybox', 'nc', '-w', '1', ip.get(to) as string, String(port)], { input: 'hi\n' });
      return r.stdout.trim() === 'hi';
    },
  };
}
