import { statSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import type { Client } from '../client/index.js';
import type { LineProcess, ProcessRunner } from '../exec/index.js';
import { parseBandwidth, type AttachAnswer, type Group, type Netprofile } from '../model/plain.js';
import { parseIperf3, parseProbe, PROBE_SCRIPT, type BenchRunInput, type NetprofileInForce } from '../perf/index.js';
import { callAgent } from './commands/attach.js';
import { CliError, EXIT } from './errors.js';

/** What `weft bench` measures: between one new endpoint of each group, on the hosts of those agents. */
export interface BenchPlan {
  tenant: string;
  from: string;
  to: string;
  port: number;
  durationS: number;
  connects: number;
  /** The agents' sockets: on one host, both the same; in a `weft lab`, one per host. */
  fromAgent: string;
  toAgent: string;
}

export interface BenchDeps { client: Client; runner: ProcessRunner; progress(line: string): void }

interface End { ns: string; path: string; containerId: string; agent: string; network: string; ip?: string }

const inNs = (ns: string, argv: string[]) => ['nsenter', `--net=/run/netns/${ns}`, ...argv];

/** A helper serving in a namespace, and when it has exited (a port it held is free again). */
interface Serving { p: LineProcess; exited: Promise<void> }

/** A helper in a namespace that prints `readyWord` once it serves; stopped by its pid by the caller. */
function startServing(runner: ProcessRunner, argv: string[], readyWord: RegExp, what: string): Promise<Serving> {
  let ended!: () => void;
  const exited = new Promise<void>((r) => (ended = r));
  return new Promise((resolve, reject) => {
    let p: LineProcess | undefined;
    const timer = setTimeout(() => { p?.stop(); reject(new CliError(`${what} did not start within 10 s`, EXIT.failed)); }, 10_000);
    p = runner.start(argv, (line) => { if (readyWord.test(line)) { clearTimeout(timer); resolve({ p: p!, exited }); } }, (code) => {
      clearTimeout(timer);
      ended();
      reject(new CliError(`${what} ended (exit ${code}) before it served`, EXIT.failed));
    });
  });
}

/** Stops a helper and waits (at most 5 s) until it has exited: the next one may bind the same port. */
async function stopServing(h: Serving): Promise<void> {
  h.p.stop();
  await Promise.race([h.exited, new Promise((r) => setTimeout(r, 5000))]);
}

async function group(client: Client, tenant: string, name: string, flag: string): Promise<Group> {
  try {
    return await client.request<Group>('GET', `/api/v1/tenants/${encodeURIComponent(tenant)}/groups/${encodeURIComponent(name)}`);
  } catch (e) {
    throw new CliError(`${flag} ${name}: ${(e as Error).message}`, (e as { status?: number }).status === 404 ? EXIT.notFound : EXIT.failed);
  }
}

/** The netprofile of the group the traffic leaves from (its shaping limits what `from` sends). */
async function profileOf(client: Client, tenant: string, g: Group): Promise<NetprofileInForce | null> {
  if (!g.netprofile) return null;
  const p = await client.request<Netprofile>('GET', `/api/v1/tenants/${encodeURIComponent(tenant)}/netprofiles/${encodeURIComponent(g.netprofile)}`);
  return { name: p.name, bandwidthBitsPerSecond: p.bandwidth ? parseBandwidth(p.bandwidth) : null };
}

/** A namespace of ours with an endpoint of `group`, from that host's agent. */
async function makeEnd(d: BenchDeps, plan: BenchPlan, ns: string, g: Group, agent: string, made: End[]): Promise<End> {
  await d.runner.run(['ip', 'netns', 'add', ns]);
  const path = `/run/netns/${ns}`;
  const end: End = { ns, path, containerId: `netns-${statSync(path).ino}`, agent, network: g.network };
  // Undone by removeEnd from here on: an attach the agent refused or could not finish leaves no namespace
  // (and whatever the agent made of it is detached).
  made.push(end);
  await d.runner.run(inNs(ns, ['ip', 'link', 'set', 'lo', 'up']));
  const a = await callAgent(agent, 'attach', { tenant: plan.tenant, network: g.network, group: g.name, netns: path, containerId: end.containerId, name: ns, defaultRoute: true }) as AttachAnswer;
  end.ip = a.ip ?? a.ip6 ?? '';
  return end;
}

/** Undoes makeEnd, whatever of it was done: the endpoint released, the namespace gone. */
async function removeEnd(d: BenchDeps, plan: BenchPlan, e: End): Promise<void> {
  await callAgent(e.agent, 'detach', { tenant: plan.tenant, network: e.network, containerId: e.containerId }).catch((err: Error) => d.progress(`detaching ${e.ns}: ${err.message}`));
  await d.runner.run(['ip', 'netns', 'del', e.ns], { allowFailure: true });
}

/**
 * One run: two namespaces with endpoints of the two groups, `connects` TCP connects to the port (the
 * latency CDF), then iperf3 to the same port for the duration (throughput every 0.5 s); everything made
 * is removed again, also when a step fails or the run is interrupted.
 */
export async function runBench(d: BenchDeps, plan: BenchPlan, signal?: AbortSignal): Promise<BenchRunInput> {
  const [gFrom, gTo] = await Promise.all([group(d.client, plan.tenant, plan.from, '--from'), group(d.client, plan.tenant, plan.to, '--to')]);
  const netprofile = await profileOf(d.client, plan.tenant, gFrom);
  const id = randomBytes(4).toString('hex');
  const ends: End[] = [];
  const helpers: Serving[] = [];
  try {
    d.progress(`attaching a namespace to ${plan.from} and one to ${plan.to}`);
    const src = await makeEnd(d, plan, `wbench-${id}-f`, gFrom, plan.fromAgent, ends);
    const dst = await makeEnd(d, plan, `wbench-${id}-t`, gTo, plan.toAgent, ends);
    const dstIp = dst.ip!;
    signal?.throwIfAborted();
    d.progress(`${plan.connects} connects ${src.ip} -> ${dstIp}:${plan.port}`);
    const probe = await startServing(d.runner, inNs(dst.ns, [process.execPath, '-e', PROBE_SCRIPT, 'serve', dstIp, String(plan.port)]), /^ready$/, 'the latency probe');
    helpers.push(probe);
    const lat = parseProbe((await d.runner.run(inNs(src.ns, [process.execPath, '-e', PROBE_SCRIPT, 'connect', dstIp, String(plan.port), String(plan.connects)]), { timeoutMs: plan.connects * 2500 + 10_000 })).stdout);
    // The probe's port is iperf3's next: it must be free first (iperf3 -s failed with EADDRINUSE when not).
    await stopServing(probe);
    if (lat.ms.length === 0) throw new CliError(`no connect from ${plan.from} to ${plan.to}:${plan.port} succeeded (${lat.failed} failed): does a policy refuse it? try \`weft explain\``, EXIT.failed);
    signal?.throwIfAborted();
    d.progress(`iperf3 ${src.ip} -> ${dstIp}:${plan.port} for ${plan.durationS} s`);
    helpers.push(await startServing(d.runner, inNs(dst.ns, ['iperf3', '-s', '-1', '--forceflush', '-B', dstIp, '-p', String(plan.port)]), /Server listening/, 'iperf3 -s'));
    // iperf3 -J exits 0 even when it failed: the JSON says so, and parseIperf3 reads it.
    const ip = await d.runner.run(inNs(src.ns, ['iperf3', '-c', dstIp, '-p', String(plan.port), '-t', String(plan.durationS), '-J', '--interval', '0.5']), { allowFailure: true, timeoutMs: (plan.durationS + 30) * 1000 });
    const throughput = parseIperf3(ip.stdout);
    return {
      time: new Date().toISOString(), tenant: plan.tenant, network: gFrom.network, fromGroup: plan.from, toGroup: plan.to, port: plan.port,
      durationSeconds: plan.durationS, netprofile, throughput, latenciesMs: lat.ms,
    };
  } finally {
    for (const h of helpers) h.p.stop();
    for (const e of ends.reverse()) await removeEnd(d, plan, e);
  }
}
