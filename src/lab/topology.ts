import { rmSync } from 'node:fs';
import type { Runner } from '../exec/index.js';

/**
 * Simulated hosts on one machine: an underlay namespace with a bridge joining N host namespaces (each
 * with its underlay address, its VTEP), and a /30 from each host to the root namespace, where the
 * server listens on the first host's link address; the other hosts route to that address through their
 * own link. Used by `weft lab` and by the multi-host tests.
 */
export interface LabHostLinks {
  name: string;
  ns: string;
  vtep: string;
  rootLink: string;
  rootIp: string;
  hostIp: string;
}

export interface Topology {
  prefix: string;
  underlayNs: string;
  hosts: LabHostLinks[];
  serverIp: string;
}

/** Octets are chosen by the caller (tests pick free ones; the lab checks them), so this stays deterministic. */
export async function buildTopology(runner: Runner, prefix: string, count: number, rootOctets: readonly number[], underlayOctet: number): Promise<Topology> {
  const underlayNs = `${prefix}-ul`;
  await runner.run(['ip', 'netns', 'add', underlayNs]);
  await runner.run(['ip', '-n', underlayNs, '-batch', '-'], { input: 'link add br0 type bridge\nlink set br0 up\nlink set lo up\n' });
  const hosts: LabHostLinks[] = [];
  for (let i = 1; i <= count; i++) {
    const ns = `${prefix}-h${i}`;
    const o = rootOctets[i - 1] as number;
    const h: LabHostLinks = { name: `host${i}`, ns, vtep: `198.19.${underlayOctet}.${10 + i}`, rootLink: `${prefix}r${i}`, rootIp: `198.18.${o}.1`, hostIp: `198.18.${o}.2` };
    await runner.run(['ip', 'netns', 'add', ns]);
    await runner.run(['ip', 'link', 'add', h.rootLink, 'type', 'veth', 'peer', 'name', 'uplink', 'netns', ns]);
    await runner.run(['ip', 'addr', 'add', `${h.rootIp}/30`, 'dev', h.rootLink]);
    await runner.run(['ip', 'link', 'set', h.rootLink, 'up']);
    await runner.run(['ip', 'link', 'add', `${prefix}u${i}`, 'netns', underlayNs, 'type', 'veth', 'peer', 'name', 'underlay', 'netns', ns]);
    await runner.run(['ip', '-n', underlayNs, 'link', 'set', `${prefix}u${i}`, 'master', 'br0', 'up']);
    await runner.run(['ip', '-n', ns, '-batch', '-'], {
      input: `link set lo up\naddr add ${h.hostIp}/30 dev uplink\nlink set uplink up\naddr add ${h.vtep}/24 dev underlay\nlink set underlay up\n`,
    });
    hosts.push(h);
  }
  const serverIp = hosts[0]?.rootIp as string;
  for (const h of hosts.slice(1)) await runner.run(['ip', '-n', h.ns, 'route', 'add', `${serverIp}/32`, 'via', h.rootIp]);
  return { prefix, underlayNs, hosts, serverIp };
}

/** Removes every namespace whose name starts with the prefix (hosts, underlay, tenants, containers) and the root links. */
export async function destroyTopology(runner: Runner, prefix: string, namespaces: readonly string[], count: number): Promise<void> {
  const ours = namespaces.filter((ns) => ns.startsWith(prefix));
  await stopProcessesIn(runner, ours);
  for (const ns of ours) {
    await runner.run(['ip', 'netns', 'del', ns], { allowFailure: true });
    rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
  }
  for (let i = 1; i <= count; i++) await runner.run(['ip', 'link', 'del', `${prefix}r${i}`], { allowFailure: true });
}

/**
 * Processes still running in the lab's namespaces (an agent's wireguard-go, detached so it outlives its
 * agent; a test's leftover): stopped by pid, or they would keep a deleted namespace alive.
 */
async function stopProcessesIn(runner: Runner, namespaces: readonly string[]): Promise<void> {
  const pids = new Set<number>();
  for (const ns of namespaces) {
    const r = await runner.run(['ip', 'netns', 'pids', ns], { allowFailure: true });
    for (const p of r.stdout.split('\n').map(Number)) if (Number.isInteger(p) && p > 1 && p !== process.pid) pids.add(p);
  }
  const signal = (sig: NodeJS.Signals | 0) => [...pids].filter((p) => {
    try {
      process.kill(p, sig);
      return true;
    } catch {
      return false;
    }
  });
  if (signal('SIGTERM').length === 0) return;
  for (let i = 0; i < 20 && signal(0).length > 0; i++) await new Promise((r) => setTimeout(r, 100));
  signal('SIGKILL');
}
