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

/** Prints each path's median and range, then the named ratios, as Markdown tables for docs/benchmarks.md. */
export function printPaths(got: ReadonlyMap<string, number[]>, rounds: number, ratios: ReadonlyArray<[label: string, a: string, b: string]>): void {
  console.log(`\n| path | Gbit/s (median of ${rounds}) | range |`);
  console.log('| --- | --- | --- |');
  for (const [k, v] of got) console.log(`| ${k} | ${median(v).toFixed(2)} | ${Math.min(...v).toFixed(2)}–${Math.max(...v).toFixed(2)} |`);
  console.log('\n| ratio (median of per-round ratios) | |');
  console.log('| --- | --- |');
  for (const [label, a, b] of ratios) console.log(`| ${label} | **${ratioOf(got, a, b).toFixed(2)}×** |`);
}

/** Runs a command inside a path's namespace (the bench's own runner call); the code is checked by the caller. */
export type NsExec = (ns: string, argv: string[], timeoutMs: number) => Promise<{ code: number; stdout: string; stderr: string }>;

/** One iperf3 run from `from` to `to` (its address `addr`) on port 5201: the receiver's Gbit/s. */
export async function iperfGbits(exec: NsExec, from: string, to: string, addr: string, seconds: number): Promise<number> {
  const srv = exec(to, ['iperf3', '-s', '-1', '-p', '5201'], 30_000);
  await new Promise((r) => setTimeout(r, 300));
  const cli = await exec(from, ['iperf3', '-c', addr, '-p', '5201', '-t', String(seconds), '-J'], 30_000);
  await srv;
  if (cli.code !== 0) throw new Error(`iperf3 ${from} → ${to}: ${cli.stderr || cli.stdout.slice(0, 300)}`);
  return JSON.parse(cli.stdout).end.sum_received.bits_per_second / 1e9;
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
