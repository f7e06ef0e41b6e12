import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProcessRunner, type RunResult } from '../exec/index.js';
import { startServerProcess, http, type ServerProcess } from './server.js';
import { buildTopology, destroyTopology } from '../lab/topology.js';
import { freeOctets } from '../lab/free.js';
import { agentIn, callPlugin, containerHelpers, inviteHost, safeList, type AgentHandle, type CniCall, type Gate } from './host.js';

const runner = new ProcessRunner();

/**
 * Several simulated hosts for overlay tests: an underlay namespace with a bridge joining N host
 * namespaces (each with its VTEP address and its own agent, run and CNI directories), and one server in
 * the root namespace that every host reaches over its own /30. Everything carries `tag` and is removed by
 * cleanup(), also after a failure.
 */
export interface LabHost {
  name: string;
  ns: string;
  vtep: string;
  dir: string;
  agent: AgentHandle;
  cni(command: string, o: CniCall): Promise<{ code: number; json: any; stdout: string }>;
}

export interface Lab {
  tag: string;
  server: ServerProcess;
  hosts: LabHost[];
  api(method: string, path: string, body?: unknown): Promise<{ status: number; json: any }>;
  container(name: string): Promise<string>;
  exec(ns: string, argv: string[], opts?: { input?: string; timeoutMs?: number }): Promise<RunResult>;
  cleanup(): Promise<void>;
}

/**
 * `underlay6`: an IPv6 /64 prefix (e.g. 'fd99:7::'): host i (1-based: h1, h2, …) gets `${underlay6}${i + 1}` on its underlay before
 * its agent starts (the agent finds it there, as its IPv6 underlay address).
 */
export async function startLab(name: string, count: number, opts: { agentArgs?: string[]; serverArgs?: string[]; underlay6?: string } = {}): Promise<Lab> {
  const tag = `${name}${process.pid % 100000}`.slice(0, 8);
  const dir = mkdtempSync(join(tmpdir(), `weft-${tag}-`));
  const hosts: LabHost[] = [];
  let server: ServerProcess | undefined;
  const gate: Gate = { closed: false, making: new Set() };
  const cleanup = async () => {
    gate.closed = true;
    await Promise.allSettled([...gate.making]);
    for (const h of hosts) await h.agent.stop('SIGKILL');
    await server?.stop();
    await destroyTopology(runner, tag, safeList(), count);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    // Distinct octets for all hosts at once: picked one by one, two hosts could draw the same one.
    const octets = await freeOctets(runner, '198.18', count, 'random');
    const topo = await buildTopology(runner, tag, count, octets, (await freeOctets(runner, '198.19', 1, 'random'))[0] as number);
    server = await startServerProcess({ listen: `${topo.serverIp}:0`, ...(opts.serverArgs ? { args: opts.serverArgs } : {}) });
    const srv = server;
    for (let i = 1; i <= count; i++) {
      const hdir = join(dir, `h${i}`);
      mkdirSync(hdir, { recursive: true });
      const ns = `${tag}-h${i}`;
      const vtep = topo.hosts[i - 1]!.vtep;
      const cniConfDir = join(hdir, 'net.d');
      const binDir = join(hdir, 'bin');
      if (opts.underlay6 !== undefined) await runner.run(['ip', '-n', ns, 'addr', 'add', `${opts.underlay6}${i + 1}/64`, 'dev', 'underlay', 'nodad']);
      const agent = agentIn({ hostNs: ns, dir: hdir, serverUrl: srv.url, join: () => inviteHost(srv.url, srv.token, `h${i}`), host: `h${i}`, nsPrefix: `${tag}${i}-`, vtep, cniConfDir, binDir, extra: opts.agentArgs ?? [] });
      hosts.push({ name: `h${i}`, ns, vtep, dir: hdir, agent, cni: (command, o) => callPlugin(cniConfDir, binDir, command, o) });
      await agent.start();
    }
    return {
      tag, server: srv, hosts,
      api: (m, p, b) => http(srv.url, srv.token, m, p, b),
      ...containerHelpers(tag, gate),
      cleanup,
    };
  } catch (e) {
    await cleanup();
    throw e;
  }
}
