import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { alive } from '../lab/index.js';
import type { LabApi } from './api.js';
import { runner } from './cni.js';
import type { Recorder } from './recorder.js';
import type { DockerWork } from './dockerd.js';
import type { Container, Workload } from './workload.js';

/** Endpoints as the API lists them, or undefined when no server answers (counted, not a violation). */
export async function listEndpoints(api: LabApi, rec: Recorder): Promise<Array<{ id: string; ip: string; tenant: string; network: string; containerId: string; host: string }> | undefined> {
  const r = await api.call('GET', '/api/v1/endpoints');
  if (r.status !== 200) {
    rec.event(`endpoint list unavailable: ${r.status} ${r.text.slice(0, 120)}`);
    return undefined;
  }
  return r.json.items;
}

/** A container its runtime was told has an address; `still()` while it has not been deleted since. */
interface Held { what: string; containerId: string; ip: string; host: number; still: () => boolean }

/** The CNI workload's containers and Docker's (whose Weft endpoint is keyed by Docker's endpoint ID). */
function held(work: Workload, docker?: DockerWork): Held[] {
  const cni = [...work.live.values()].map((c) => ({ what: c.name, containerId: c.name, ip: c.ip, host: c.host, still: () => work.live.get(c.name) === c }));
  const dk = [...(docker?.live.values() ?? [])].map((c) => ({ what: `docker ${c.name}`, containerId: c.endpointId, ip: c.ip, host: c.host, still: () => docker?.live.get(c.name) === c }));
  return [...cni, ...dk];
}

/**
 * No address held by two endpoints; every container whose ADD (or docker run) succeeded and that we did
 * not delete still has its endpoint with the same address. Containers of hosts in `atRisk` (cut off past
 * the grace) are left to the partition's own check.
 */
export async function checkAllocations(api: LabApi, rec: Recorder, work: Workload, atRisk: ReadonlySet<number>, docker?: DockerWork): Promise<void> {
  const before = held(work, docker);
  const eps = await listEndpoints(api, rec);
  if (!eps) return;
  const seen = new Map<string, string>();
  const dups: string[] = [];
  for (const e of eps) {
    const key = `${e.tenant}/${e.network}/${e.ip}`;
    if (seen.has(key)) dups.push(`${key} held by ${seen.get(key)} and ${e.id}`);
    seen.set(key, e.id);
  }
  rec.check('no address held by two endpoints', dups.length === 0, () => dups.join('; '));
  // Only containers still live after the list was read (a DEL in between is not a loss).
  const still = before.filter((c) => c.still() && !atRisk.has(c.host));
  const lost = still.filter((c) => !eps.some((e) => e.containerId === c.containerId && e.ip === c.ip));
  rec.check('acknowledged allocation still held', lost.length === 0, () => `lost: ${lost.map((c) => `${c.what} ${c.ip} on host${c.host + 1}`).join(', ')}`);
}

/** The address the kernel gives the container's eth0, or '' (no such interface). */
export function kernelAddress(c: Container): Promise<string> {
  return eth0Address(['ip', '-n', c.ns]);
}

/** eth0's IPv4 address as `ip` (with its namespace options) sees it, or ''. */
async function eth0Address(ip: string[]): Promise<string> {
  const r = await runner.run([...ip, '-4', '-j', 'addr', 'show', 'dev', 'eth0'], { allowFailure: true, timeoutMs: 5000 });
  if (r.code !== 0) return '';
  const l = (JSON.parse(r.stdout || '[]') as Array<{ addr_info?: Array<{ local: string }> }>)[0];
  return l?.addr_info?.[0]?.local ?? '';
}

/** Every live container has its address on eth0: the datapath side of "no container without its endpoint". */
export async function checkKernel(rec: Recorder, cs: readonly Container[], work: Workload): Promise<void> {
  for (const c of cs) {
    const ip = await kernelAddress(c);
    if (work.live.get(c.name) !== c) continue;
    rec.check('live container has its address in the kernel', ip === c.ip, () => `${c.name} on host${c.host + 1}: eth0 has '${ip}', its ADD gave ${c.ip}`);
  }
}

/** Every running Docker container has its address on eth0 (its namespace entered by the container's pid). */
export async function checkDockerKernel(rec: Recorder, docker: DockerWork): Promise<void> {
  for (const c of [...docker.live.values()]) {
    const ip = await eth0Address(['nsenter', `--net=/proc/${c.pid}/ns/net`, 'ip']);
    if (docker.live.get(c.name) !== c) continue;
    rec.check('live container has its address in the kernel', ip === c.ip, () => `docker ${c.name} on host${c.host + 1}: eth0 has '${ip}', docker run gave ${c.ip}`);
  }
}

/** What the root namespace holds that a lab could leak: compared before and after. */
export interface RootSnapshot { tables: string; links: string[] }

export async function rootSnapshot(prefix: string): Promise<RootSnapshot> {
  const tables = (await runner.run(['nft', 'list', 'tables'], { allowFailure: true })).stdout.trim();
  const links = (JSON.parse((await runner.run(['ip', '-j', 'link', 'show'], { allowFailure: true })).stdout || '[]') as Array<{ ifname: string }>)
    .map((l) => l.ifname).filter((n) => n.startsWith(prefix));
  return { tables, links };
}

/** After `lab down`: no namespace, link, resolv.conf, nft table or process of the lab is left. */
export async function checkLeaks(rec: Recorder, prefix: string, dir: string, before: RootSnapshot, started: readonly number[]): Promise<void> {
  const mine = new RegExp(`^${prefix}([0-9]+)?-`);
  const ns = existsSync('/run/netns') ? readdirSync('/run/netns').filter((n) => mine.test(n)) : [];
  rec.check('nothing leaked: namespaces', ns.length === 0, () => ns.join(', '));
  const etc = existsSync('/etc/netns') ? readdirSync('/etc/netns').filter((n) => mine.test(n)) : [];
  rec.check('nothing leaked: /etc/netns', etc.length === 0, () => etc.join(', '));
  const now = await rootSnapshot(prefix);
  rec.check('nothing leaked: root links', now.links.length === 0, () => now.links.join(', '));
  rec.check('nothing leaked: root nft tables', now.tables === before.tables, () => `before:\n${before.tables}\nafter:\n${now.tables}`);
  const procs = readdirSync('/proc').filter((p) => /^\d+$/.test(p) && Number(p) !== process.pid).filter((p) => {
    try {
      return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(dir);
    } catch {
      return false;
    }
  });
  const ours = started.filter(alive);
  rec.check('nothing leaked: processes', procs.length === 0 && ours.length === 0, () => `pids ${[...procs, ...ours].join(', ')} still run (${dir} on their command line, or started by the workload)`);
}
