import { readFileSync } from 'node:fs';

/** Linux's USER_HZ: /proc/PID/stat counts CPU time in these ticks (100 on every Linux ABI Node runs on). */
const TICKS_PER_S = 100;

/** CPU seconds (user + system) a process has used so far; NaN once it is gone. */
export function cpuSeconds(pid: number): number {
  try {
    // The command name (field 2) may hold spaces and parentheses: fields are counted after its last ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_S;
  } catch {
    return NaN;
  }
}

/** Resident memory of a process in bytes (`field`: VmHWM for its peak so far); NaN once it is gone. */
export function rssBytes(pid: number, field: 'VmRSS' | 'VmHWM' = 'VmRSS'): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

export const mib = (bytes: number) => `${(bytes / 1048576).toFixed(0)} MiB`;

/** What a set of processes used over a phase: CPU seconds and share of one core, peak and last RSS. */
export interface Usage { cpuS: number; cores: number; peakRss: number; lastRss: number; wallS: number }

/**
 * Samples the RSS of `pids` every `everyMs` between start() and stop(), and the CPU time used in between:
 * a phase's cost to the processes named, read from /proc (nothing is injected into them).
 */
export class PhaseMeter {
  private cpu0 = 0;
  private t0 = 0;
  private peak = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly pids: () => number[], private readonly everyMs = 250) {}

  private rss(): number {
    return this.pids().reduce((sum, p) => sum + (rssBytes(p) || 0), 0);
  }

  private cpu(): number {
    return this.pids().reduce((sum, p) => sum + (cpuSeconds(p) || 0), 0);
  }

  start(): void {
    this.cpu0 = this.cpu();
    this.t0 = performance.now();
    this.peak = this.rss();
    this.timer = setInterval(() => (this.peak = Math.max(this.peak, this.rss())), this.everyMs);
  }

  stop(): Usage {
    clearInterval(this.timer);
    const cpuS = this.cpu() - this.cpu0;
    const wallS = (performance.now() - this.t0) / 1000;
    const lastRss = this.rss();
    return { cpuS, cores: cpuS / wallS, peakRss: Math.max(this.peak, lastRss), lastRss, wallS };
  }
}

/**
 * Waits until `pid` uses less than `cores` of a CPU over a 2 s window (a server done with its backlog), at
 * most `deadlineMs`, saying every 10 s how busy it still is; answers how long that took, or NaN if it never
 * settled (the run goes on: the next steps then measure a busy server, which the report says).
 */
export async function settled(pid: number, cores: number, deadlineMs: number, say: (s: string) => void): Promise<number> {
  const t0 = performance.now();
  let said = t0;
  for (;;) {
    const c0 = cpuSeconds(pid);
    await new Promise((r) => setTimeout(r, 2000));
    const busy = (cpuSeconds(pid) - c0) / 2;
    const waited = performance.now() - t0;
    if (!(busy >= cores)) return waited;
    if (waited > deadlineMs) return NaN;
    if (performance.now() - said >= 10_000) {
      said = performance.now();
      say(`server still busy (${(busy * 100).toFixed(0)} % of a core, RSS ${mib(rssBytes(pid))}) ${(waited / 1000).toFixed(0)} s after the heartbeats stopped`);
    }
  }
}
