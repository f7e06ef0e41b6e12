import { readFileSync } from 'node:fs';
import { median } from './stats.js';

/**
 * Throughput of several paths, in rounds that alternate their order (a path measured first in one round
 * is measured last in the next: the machine's drift falls on all of them alike). `measure` gives Gbit/s
 * from one container to another; `pause` stops what should not run meanwhile (the agents: the datapath
 * is kernel state), `resume` restarts it.
 */
export async function comparePaths(o: {
  name: string; rounds: number; paths: Record<string, readonly [string, string]>;
  measure: (from: string, to: string) => Promise<number>; pause?: () => void; resume?: () => void;
}): Promise<Map<string, number[]>> {
  const got = new Map<string, number[]>(Object.keys(o.paths).map((k) => [k, []]));
  console.error(`${o.name}: ${o.rounds} rounds of ${Object.keys(o.paths).length} paths`);
  o.pause?.();
  try {
    for (let r = 0; r < o.rounds; r++) {
      const order = Object.entries(o.paths);
      if (r % 2) order.reverse();
      for (const [name, [from, to]] of order) got.get(name)?.push(await o.measure(from, to));
      console.error(`  round ${r + 1}/${o.rounds} done`);
    }
  } finally {
    o.resume?.();
  }
  return got;
}

/** The median of per-round ratios of path `a` to path `b`. */
export function ratioOf(got: ReadonlyMap<string, number[]>, a: string, b: string): number {
  const bs = got.get(b) as number[];
  return median((got.get(a) as number[]).map((x, i) => x / (bs[i] as number)));
}

/**
 * Prints each path's median and range, then the named ratios, as Markdown tables for docs/benchmarks.md.
 * With `costs` (CPU ms per GB, per path and round) each path's median cost too, and each ratio once more
 * by work per byte: cost of b ÷ cost of a, so that it reads like the throughput ratio (below 1: a costs more).
 */
export function printPaths(got: ReadonlyMap<string, number[]>, rounds: number, ratios: ReadonlyArray<[label: string, a: string, b: string]>, costs?: ReadonlyMap<string, number[]>): void {
  const withCost = costs !== undefined && [...costs.values()].every((v) => v.length === rounds);
  if (costs !== undefined && !withCost) console.error('bench: a round recorded no CPU per GB: the CPU column is left out');
  console.log(`\n| path | Gbit/s (median of ${rounds}) | range |${withCost ? ' CPU ms per GB (median, range) |' : ''}`);
  console.log(`| --- | --- | --- |${withCost ? ' --- |' : ''}`);
  const spread = (c: number[]) => `${median(c).toFixed(0)} (${Math.min(...c).toFixed(0)}–${Math.max(...c).toFixed(0)})`;
  for (const [k, v] of got) console.log(`| ${k} | ${median(v).toFixed(2)} | ${Math.min(...v).toFixed(2)}–${Math.max(...v).toFixed(2)} |${withCost ? ` ${spread(costs.get(k) ?? [])} |` : ''}`);
  console.log(`\n| ratio (median of per-round ratios) | throughput |${withCost ? ' by CPU per byte |' : ''}`);
  console.log(`| --- | --- |${withCost ? ' --- |' : ''}`);
  for (const [label, a, b] of ratios) console.log(`| ${label} | **${ratioOf(got, a, b).toFixed(2)}×** |${withCost ? ` ${ratioOf(costs, b, a).toFixed(2)}× |` : ''}`);
}

/** CPU per GB of each path's rounds, noted by its ends (`iperfGbits`' `onCost`), read back by the paths' names. */
export function costBook(): { note: (from: string, to: string) => (cpuMsPerGB: number) => void; of: (paths: Record<string, readonly [string, string]>) => Map<string, number[]> } {
  const byEnds = new Map<string, number[]>();
  return {
    note: (from, to) => (c) => { byEnds.set(`${from}>${to}`, [...(byEnds.get(`${from}>${to}`) ?? []), c]); },
    of: (paths) => new Map(Object.entries(paths).map(([k, [from, to]]) => [k, byEnds.get(`${from}>${to}`) ?? []])),
  };
}

/** Runs a command inside a path's namespace (the bench's own runner call); the code is checked by the caller. */
export type NsExec = (ns: string, argv: string[], timeoutMs: number) => Promise<{ code: number; stdout: string; stderr: string }>;

/** CPU time the machine spent working (user, system, irq, softirq: not idle, iowait or steal), in seconds. */
function busySeconds(): number {
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]?.trim().split(/\s+/).slice(1).map(Number) ?? [];
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0] = cpu;
  // USER_HZ: the kernel reports /proc/stat in 1/100 s on x86 and arm64 (the machines this runs on).
  return (user + nice + system + irq + softirq) / 100;
}

/**
 * One iperf3 run from `from` to `to` (its address `addr`) on port 5201: the receiver's Gbit/s. With `onCost`,
 * also the CPU the whole machine spent per GB (10^9 bytes) the sender moved, sampled from one second after
 * the client was started (its connection made by then) to half a second before its end: a second reading
 * beside throughput, which on a shared VM moves with the neighbours (time stolen by the hypervisor is not
 * counted). Whole-machine CPU: anything else running lands in it, so runs need an otherwise idle machine.
 */
export async function iperfGbits(exec: NsExec, from: string, to: string, addr: string, seconds: number, onCost?: (cpuMsPerGB: number) => void): Promise<number> {
  const srv = exec(to, ['iperf3', '-s', '-1', '-p', '5201'], 30_000);
  await new Promise((r) => setTimeout(r, 300));
  const run = exec(from, ['iperf3', '-c', addr, '-p', '5201', '-t', String(seconds), '-J'], 30_000);
  let window: { cpu: number; wall: number } | undefined;
  if (onCost && seconds >= 2) {
    await new Promise((r) => setTimeout(r, 1000));
    const [c0, w0] = [busySeconds(), performance.now()];
    await new Promise((r) => setTimeout(r, (seconds - 1.5) * 1000));
    window = { cpu: busySeconds() - c0, wall: (performance.now() - w0) / 1000 };
  }
  const cli = await run;
  await srv;
  if (cli.code !== 0) throw new Error(`iperf3 ${from} → ${to}: ${cli.stderr || cli.stdout.slice(0, 300)}`);
  const out = JSON.parse(cli.stdout) as { end: { sum_received: { bits_per_second: number } }; intervals: Array<{ sum: { start: number; end: number; bytes: number; seconds: number } }> };
  if (window && onCost) {
    // The sender's rate over its whole intervals after the first second (the window lies in them; a short
    // tail interval would weigh as much as a whole one), × the window's length.
    const later = out.intervals.map((i) => i.sum).filter((x) => x.start >= 0.999 && x.seconds >= 0.5);
    const rate = later.reduce((a, x) => a + x.bytes, 0) / Math.max(1e-9, later.reduce((a, x) => a + x.seconds, 0));
    const gigabytes = (rate * window.wall) / 1e9;
    if (gigabytes > 0) onCost((window.cpu * 1000) / gigabytes);
  }
  return out.end.sum_received.bits_per_second / 1e9;
}

/**
 * Whether a TCP connection from `from` reaches a listener on `port` of `to` (its address `addr`): a
 * one-shot iperf3 server is started there first, so a refusal is the policy's, never a closed port.
 */
export async function connects(exec: NsExec, from: string, to: string, addr: string, port: number): Promise<boolean> {
  const srv = exec(to, ['timeout', '4', 'iperf3', '-s', '-1', '-p', String(port)], 10_000);
  await new Promise((r) => setTimeout(r, 300));
  const cli = await exec(from, ['iperf3', '-c', addr, '-p', String(port), '-t', '1', '--connect-timeout', '1000'], 10_000);
  await srv;
  return cli.code === 0;
}

/** Checks that the policy decides on the measured paths: port 5202 from each client is refused while a server listens there. */
export async function assertRefused(exec: NsExec, pairs: ReadonlyArray<readonly [string, string, string]>, port = 5202): Promise<void> {
  for (const [from, to, addr] of pairs) {
    if (await connects(exec, from, to, addr, port)) throw new Error(`${from} → ${to}:${port} passed: the policy is not in force`);
  }
}
