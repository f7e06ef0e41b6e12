import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnDaemon } from '../exec/index.js';
import { alive } from '../lab/index.js';
import type { Container } from './workload.js';

const CLIENT = join(dirname(fileURLToPath(import.meta.url)), 'stream-client.js');
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface StreamStatus { connected: boolean; received: number; maxGap: number; cut?: string; running: boolean }

/** The long TCP stream: stream-client.js in one container, talking to an echo listener in another. */
export class Stream {
  private pid = 0;
  private readonly log: string;
  /** `from -> to`, for messages. */
  readonly name: string;

  constructor(dir: string, private readonly from: Container, private readonly to: { name: string; ip: string }, private readonly port: string) {
    this.log = join(dir, 'chaos', `stream-${from.name}-${to.name}.log`);
    this.name = `${from.name} -> ${to.name}`;
  }

  /** Started, and connected with its first echo back within `ms`. */
  async start(ms = 15_000): Promise<void> {
    this.pid = spawnDaemon(['ip', 'netns', 'exec', this.from.ns, process.execPath, CLIENT, this.to.ip, this.port], this.log);
    const end = Date.now() + ms;
    while (Date.now() < end) {
      const s = this.status();
      if (s.cut) throw new Error(`the stream ${this.from.name} -> ${this.to.name} did not start: ${s.cut}`);
      if (s.received > 0) return;
      await sleep(200);
    }
    throw new Error(`the stream ${this.from.name} -> ${this.to.ip}:${this.port} echoed nothing within ${ms / 1000} s`);
  }

  status(): StreamStatus {
    const lines = existsSync(this.log) ? readFileSync(this.log, 'utf8').trim().split('\n').filter(Boolean) : [];
    const st: StreamStatus = { connected: false, received: 0, maxGap: 0, running: this.pid > 0 && alive(this.pid) };
    let ended = false;
    for (const l of lines) {
      let o: any;
      try { o = JSON.parse(l); } catch { continue; }
      if (o.connected) st.connected = true;
      if (typeof o.received === 'number') st.received = o.received;
      if (typeof o.maxGap === 'number') st.maxGap = Math.max(st.maxGap, o.maxGap);
      if (o.cut) st.cut = String(o.cut);
      if (o.end) ended = true;
    }
    if (!st.running && !st.cut && !ended && this.pid > 0) st.cut = 'the client is gone';
    return st;
  }

  async stop(): Promise<StreamStatus> {
    if (this.pid && alive(this.pid)) {
      process.kill(this.pid, 'SIGTERM');
      for (let i = 0; i < 30 && alive(this.pid); i++) await sleep(100);
      if (alive(this.pid)) process.kill(this.pid, 'SIGKILL');
    }
    const st = this.status();
    this.pid = 0;
    return st;
  }
}
