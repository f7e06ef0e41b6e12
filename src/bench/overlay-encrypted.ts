// The encrypted half of bench:overlay: Weft's two containers over WireGuard against the hand-built copy of
// the path (scripts/anchors/vxlan-over-wireguard-go.sh), interleaved, with both placed alike.
//
// Placement: two machines modelled on two cores. Host 1's wireguard-go and the iperf3 client run on CPU 0,
// host 2's wireguard-go and the iperf3 server on CPU 1, each in its own session; the anchor script places
// its own the same way. Without a placement the figures follow which processes share a session (autogroup
// scheduling makes a session one scheduling group): see docs/benchmarks.md, bench:overlay, session 6.
//
// Every stream of Weft's must be encrypted, or its figure is the clear path's: host 1's tunnel must have
// sent at least 1.05x the stream's payload (VXLAN and WireGuard add ~10 %), host 2's must have sent too
// (the ACKs), and a counter on the underlay bridge must see no clear VXLAN frame during the stream.
import { readFileSync, readdirSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import type { Runner } from '../exec/index.js';
import type { Lab } from '../testkit/lab.js';

export interface EncryptedResult {
  weft: number[][];
  anchor: number[][];
  anchorText: string;
  anchorCpu: string[];
}

const CPU = [0, cpus().length > 1 ? 1 : 0];
const COUNTER_TABLE = 'weftbench';

/** Bytes host `i`'s tunnel has sent to its peers (`wg show DEV transfer`: peer, received, sent). */
export async function tunnelSent(lab: Lab, i: number): Promise<number> {
  const dev = `${lab.tag}${i + 1}-wg`;
  const out = await lab.exec(lab.hosts[i]!.ns, ['wg', 'show', dev, 'transfer']);
  if (out.code !== 0) throw new Error(`wg show ${dev} transfer: ${out.stderr.trim()}`);
  return out.stdout.trim().split('\n').reduce((n, l) => n + (Number(l.split('\t')[2]) || 0), 0);
}

/** The pid of the wireguard-go that runs `device`, from /proc (the agent started it detached). */
function wireguardPid(device: string): number {
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/cmdline`, 'utf8') === `wireguard-go\0-f\0${device}\0`) return Number(d);
    } catch {
      // Gone meanwhile.
    }
  }
  throw new Error(`no wireguard-go runs ${device}`);
}

/**
 * A counter of VXLAN frames crossing the lab's underlay bridge (in clear: WireGuard's are UDP 51820). The
 * clear streams show it counts; the encrypted ones must leave it still.
 */
export async function clearVxlanCounter(lab: Lab): Promise<{ read(): Promise<number>; remove(): Promise<void> }> {
  const ul = `${lab.tag}-ul`;
  const made = await lab.exec(ul, ['nft', '-f', '-'], { input: `table bridge ${COUNTER_TABLE} {\n chain count {\n  type filter hook forward priority 0;\n  udp dport 4789 counter\n }\n}\n` });
  if (made.code !== 0) throw new Error(`the underlay's clear-VXLAN counter: ${made.stderr.trim()}`);
  return {
    async read() {
      const out = await lab.exec(ul, ['nft', '-j', 'list', 'table', 'bridge', COUNTER_TABLE]);
      const rule = out.code === 0 ? (JSON.parse(out.stdout).nftables as Array<{ rule?: { expr: Array<{ counter?: { packets: number } }> } }>).find((o) => o.rule) : undefined;
      const n = rule?.rule?.expr.find((e) => e.counter)?.counter?.packets;
      if (typeof n !== 'number') throw new Error(`no clear-VXLAN counter on the underlay: ${out.stderr}${out.stdout.slice(0, 200)}`);
      return n;
    },
    async remove() { await lab.exec(ul, ['nft', 'delete', 'table', 'bridge', COUNTER_TABLE]); },
  };
}

export async function encryptedComparison(lab: Lab, runner: Runner, x2ip: string, paused: <T>(fn: () => Promise<T>) => Promise<T>, clearFrames: () => Promise<number>): Promise<EncryptedResult> {
  const dev = (i: number) => `${lab.tag}${i + 1}-wg`;
  for (const i of [0, 1]) await runner.run(['taskset', '-a', '-p', '-c', String(CPU[i]), String(wireguardPid(dev(i)))]);
  const sent = (i: number) => tunnelSent(lab, i);
  const stream = async (): Promise<number> => {
    const before = [await sent(0), await sent(1), await clearFrames()];
    const srv = lab.exec(`${lab.tag}-x2`, ['setsid', 'taskset', '-c', String(CPU[1]), 'iperf3', '-s', '-1', '-p', '5401'], { timeoutMs: 30_000 });
    await new Promise((r) => setTimeout(r, 400));
    const cli = await lab.exec(`${lab.tag}-x1`, ['setsid', 'taskset', '-c', String(CPU[0]), 'iperf3', '-c', x2ip, '-p', '5401', '-t', '4', '-J'], { timeoutMs: 30_000 });
    await srv;
    const end = JSON.parse(cli.stdout).end;
    const tunnel = [(await sent(0)) - (before[0] as number), (await sent(1)) - (before[1] as number)];
    const clear = (await clearFrames()) - (before[2] as number);
    if ((tunnel[0] as number) < 1.05 * end.sum_received.bytes || (tunnel[1] as number) <= 0 || clear > 0) {
      throw new Error(`a stream of ${end.sum_received.bytes} bytes was not all encrypted: tunnel bytes sent ${tunnel.join(' / ')}, clear VXLAN frames on the underlay ${clear}`);
    }
    return end.sum_received.bits_per_second / 1e9;
  };
  const weftRound = () => paused(async () => [await stream(), await stream(), await stream()]);
  const script = join(process.cwd(), 'scripts', 'anchors', 'vxlan-over-wireguard-go.sh');
  const anchorCpu: string[] = [];
  const anchorRound = async (measure: 'all' | 'wg') => {
    const r = await paused(() => runner.run(['env', `ANCHOR_MEASURE=${measure}`, 'bash', script], { allowFailure: true, timeoutMs: 300_000 }));
    const line = /^# vxlan over wireguard-go: runs ([0-9. ]+) Gbit\/s; (.*)$/m.exec(r.stderr);
    if (r.code !== 0 || !line) throw new Error(`the hand-built encrypted path failed (${r.code}): ${r.stdout}\n${r.stderr}`);
    anchorCpu.push(line[2] as string);
    return { text: r.stdout.trim(), runs: (line[1] as string).trim().split(/\s+/).map(Number) };
  };
  // Load on two shared cores drifts over minutes: Weft, hand-built, Weft, hand-built, Weft.
  const weft = [await weftRound()];
  const first = await anchorRound('all');
  weft.push(await weftRound());
  const second = await anchorRound('wg');
  weft.push(await weftRound());
  return { weft, anchor: [first.runs, second.runs], anchorText: first.text, anchorCpu };
}
