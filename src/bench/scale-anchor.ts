import { fork, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '../client/index.js';
import type { FromAnchor, ToAnchor } from './scale-anchor-server.js';
import type { Fleet } from './scale-fleet.js';
import { cpuSeconds } from './procstat.js';
import { wallMs } from './scale-protocol.js';
import { summarise } from './stats.js';
import { within } from './deadline.js';

const SERVER = join(dirname(fileURLToPath(import.meta.url)), 'scale-anchor-server.js');

/** The trivial HTTPS server of scale-anchor-server.ts, as a child process stopped by pid. */
export class Anchor {
  private constructor(private readonly proc: ChildProcess, readonly url: string, readonly ca: string) {}

  static async start(): Promise<Anchor> {
    const proc = fork(SERVER, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const hello = await within(new Promise<FromAnchor>((resolve, reject) => {
      proc.once('message', resolve);
      proc.once('exit', (code) => reject(new Error(`the anchor server exited (${code})`)));
    }), 30_000, 'the anchor server to listen').catch((e: Error) => {
      proc.kill('SIGKILL');
      throw e;
    });
    if (hello.op !== 'listening') throw new Error('the anchor server did not say where it listens');
    return new Anchor(proc, hello.url, hello.ca);
  }

  get pid(): number {
    return this.proc.pid ?? NaN;
  }

  /** One line to every open stream; resolves once the server has written it to all of them. */
  send(seq: number, bytes: number): Promise<number> {
    let on: (m: FromAnchor) => void = () => undefined;
    const sent = new Promise<number>((resolve) => {
      on = (m: FromAnchor) => {
        if (m.op === 'sent' && m.seq === seq) resolve(m.streams);
      };
      this.proc.on('message', on);
      this.proc.send({ op: 'send', seq, bytes } satisfies ToAnchor);
    });
    return within(sent, 30_000, `the anchor server to write line ${seq} to its streams`).finally(() => this.proc.off('message', on));
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    const done = new Promise((r) => this.proc.once('exit', r));
    this.proc.kill('SIGTERM');
    await done;
  }
}

/** `n` lines of `bytes` each to every agent's anchor stream, one at a time: write → last agent, and CPU per line. */
export async function anchorFanout(anchor: Anchor, fleet: Fleet, n: number, bytes: number, timeoutMs: number) {
  const latencies: number[] = [];
  let missing = 0;
  const cpu0 = cpuSeconds(anchor.pid);
  for (let seq = 1; seq <= n; seq++) {
    const t0 = wallMs();
    await anchor.send(seq, bytes);
    const s = await fleet.seen('anchor', seq, timeoutMs);
    missing += s.missing;
    if (s.missing === 0) latencies.push(s.last - t0);
    await new Promise((res) => setTimeout(res, 50 + Math.random() * 100));
  }
  return { lat: summarise(latencies), missing, cpuMsPerLine: ((cpuSeconds(anchor.pid) - cpu0) * 1000) / n };
}

/** `count` small POSTs from `clients` concurrent keep-alive clients (the same client code as Weft's). */
export async function anchorRequests(anchor: Anchor, clients: number, count: number) {
  const client = new Client({ servers: [anchor.url], token: undefined, tls: { ca: anchor.ca } });
  const times: number[] = [];
  let next = 0;
  const t0 = performance.now();
  try {
    await Promise.all(Array.from({ length: clients }, async () => {
      while (next++ < count) {
        const s = performance.now();
        await client.request('POST', '/echo', { tenant: 'scale', network: 'net', containerId: `c${next}`, host: 'h', ifname: 'eth0' });
        times.push(performance.now() - s);
      }
    }));
  } finally {
    client.close();
  }
  return { rate: times.length / ((performance.now() - t0) / 1000), lat: summarise(times) };
}
