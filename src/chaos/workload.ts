import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { spawnDaemon } from '../exec/index.js';
import type { LabState } from '../lab/index.js';
import type { LabApi } from './api.js';
import { callCni, runner } from './cni.js';
import type { Prng } from './prng.js';
import type { Recorder } from './recorder.js';

export type Group = 'a' | 'b' | 'c';
/** `at`: when its ADD was acknowledged. */
export interface Container { name: string; host: number; group: Group; ns: string; ip: string; fixed: boolean; at: number }

export const NETWORK = 'cn';
export const SUBNET = '10.77.0.0/24';
/** The one allowed flow: group a to group b on this port. */
export const ALLOWED_PORT = '8888';
/** Also listened on in b, never allowed by any version of the policy. */
export const DENIED_PORT = '9999';
/** Allowed from c to b only while the flip rule is on. */
export const FLIP_PORT = '7777';
const T = '/api/v1/tenants/default';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * The workload's containers (namespaces plugged in through the real plugin), its listeners, probes and
 * policy. Group a may reach b on ALLOWED_PORT; every other flow into a, b or c is denied (deny-all-in at
 * priority 1 on each group); the flip rule lets c reach b on FLIP_PORT while it is on.
 */
export class Workload {
  readonly live = new Map<string, Container>();
  /** Containers whose DEL has not succeeded yet (their agent was down): retried, and at the end. */
  readonly undeleted = new Map<string, Container>();
  readonly listeners: number[] = [];
  private seq = 0;

  constructor(readonly s: LabState, private readonly api: LabApi, private readonly rec: Recorder, private readonly prng: Prng) {}

  async setup(): Promise<void> {
    await this.api.ok('POST', `${T}/networks`, { name: NETWORK, subnet: SUBNET });
    // Groups first: pb's rule names group a. Their policies are attached once the policies exist.
    for (const g of ['a', 'b', 'c']) await this.api.ok('POST', `${T}/groups`, { name: g, network: NETWORK });
    await this.api.ok('POST', `${T}/policies`, { name: 'pa', rules: [{ id: 'deny-in', direction: 'in', action: 'deny', protocol: 'any', priority: 1 }] });
    await this.api.ok('POST', `${T}/policies`, { name: 'pb', rules: [
      { id: 'deny-in', direction: 'in', action: 'deny', protocol: 'any', priority: 1 },
      { id: 'from-a', direction: 'in', action: 'allow', protocol: 'tcp', ports: ALLOWED_PORT, fromGroup: 'a', priority: 10 },
    ] });
    await this.api.ok('POST', `${T}/policies`, { name: 'pc', rules: [{ id: 'deny-in', direction: 'in', action: 'deny', protocol: 'any', priority: 1 }] });
    for (const g of ['a', 'b', 'c']) await this.api.ok('PATCH', `${T}/groups/${g}`, { policies: [`p${g}`] });
    const end = Date.now() + 15_000;
    const ready = () => this.s.hosts.every((h) => ['a', 'b', 'c'].every((g) => existsSync(join(h.dir, 'net.d', `weft-default-${g}.conflist`))));
    while (!ready()) {
      if (Date.now() > end) throw new Error('the groups\' conflists were not written on every host within 15 s');
      await sleep(200);
    }
  }

  ns(name: string): string {
    return `${this.s.prefix}-c-${name}`;
  }

  /** A new container: namespace, then CNI ADD; kept (and counted as acknowledged) only if ADD succeeded. */
  async add(host: number, group: Group, fixed = false, name = `k${++this.seq}`): Promise<Container | undefined> {
    const ns = this.ns(name);
    await runner.run(['ip', 'netns', 'add', ns]);
    await runner.run(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
    const r = await callCni(this.s, host, 'ADD', { conflist: `weft-default-${group}`, id: name, netns: `/run/netns/${ns}` });
    const ip = (r.json?.ips?.[0]?.address as string | undefined)?.split('/')[0];
    if (r.code !== 0 || !ip) {
      this.rec.event(`ADD ${name} on host${host + 1} (${group}) refused: code ${r.json?.code ?? r.code} ${String(r.json?.msg ?? r.stdout).slice(0, 160)}`);
      await this.remove({ name, host, group, ns, ip: '', fixed, at: 0 });
      return undefined;
    }
    const c: Container = { name, host, group, ns, ip, fixed, at: Date.now() };
    this.live.set(name, c);
    this.rec.event(`ADD ${name} on host${host + 1} (${group}) = ${ip}`);
    return c;
  }

  /** CNI DEL, then the namespace; a DEL that fails (its agent down) is retried later. */
  async remove(c: Container): Promise<boolean> {
    this.live.delete(c.name);
    const r = await callCni(this.s, c.host, 'DEL', { conflist: `weft-default-${c.group}`, id: c.name, netns: `/run/netns/${c.ns}` });
    if (r.code !== 0) {
      this.undeleted.set(c.name, c);
      this.rec.event(`DEL ${c.name} on host${c.host + 1} failed (retried later): ${String(r.json?.msg ?? r.stdout).slice(0, 160)}`);
      return false;
    }
    this.undeleted.delete(c.name);
    await runner.run(['ip', 'netns', 'del', c.ns], { allowFailure: true });
    if (c.ip) this.rec.event(`DEL ${c.name} (${c.ip})`);
    return true;
  }

  /** A persistent echo server in the container (busybox nc), stopped by pid or with the lab's namespaces. */
  listen(c: Container, port: string): void {
    const logs = join(this.s.dir, 'chaos');
    mkdirSync(logs, { recursive: true });
    this.listeners.push(spawnDaemon(['ip', 'netns', 'exec', c.ns, 'busybox', 'nc', '-ll', '-p', port, '-e', '/bin/cat'], join(logs, `nc-${c.name}-${port}.log`)));
  }

  /** Whether a line sent from `from` to ip:port comes back (the connection was allowed and answered). */
  async probe(from: Container, ip: string, port: string): Promise<boolean> {
    const r = await runner.run(['ip', 'netns', 'exec', from.ns, 'busybox', 'nc', '-w', '1', ip, port], { input: 'chaos\n', allowFailure: true, timeoutMs: 5000 });
    return r.stdout.trim() === 'chaos';
  }

  /** One step of churn on the hosts not cut off: an ADD, or a DEL of a churn container (about 8 alive). */
  async churn(reachable: (host: number) => boolean): Promise<void> {
    for (const c of [...this.undeleted.values()]) if (reachable(c.host)) await this.remove(c);
    const churned = [...this.live.values()].filter((c) => !c.fixed && reachable(c.host));
    const hosts = this.s.hosts.map((_, i) => i).filter(reachable);
    if (hosts.length && (churned.length < 4 || (churned.length < 12 && this.prng.next() < 0.5))) {
      await this.add(this.prng.pick(hosts), this.prng.pick(['a', 'b', 'c'] as const));
    } else if (churned.length) {
      await this.remove(this.prng.pick(churned));
    }
  }

  async flip(on: boolean): Promise<void> {
    if (on) await this.api.ok('POST', `${T}/policies/pb/rules`, { id: 'flip', direction: 'in', action: 'allow', protocol: 'tcp', ports: FLIP_PORT, fromGroup: 'c', priority: 20 });
    else await this.api.ok('DELETE', `${T}/policies/pb/rules/flip`);
  }

  stopListeners(): void {
    for (const pid of this.listeners.splice(0)) {
      try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
    }
  }
}
