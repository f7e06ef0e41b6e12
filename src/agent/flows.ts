import type { Logger } from 'pino';
import type { FlowRecord, FlowSink } from '../datapath/index.js';

/** One record as the server takes it (server/flows.ts): the kernel's facts and the tenant they were seen in. */
export interface ReportedFlow extends FlowRecord {
  tenant: string;
}

export interface FlowReport {
  flows: ReportedFlow[];
  /** Per tenant, records lost on this host since the last report (kernel queue full, or our own buffer). */
  lost: Array<{ tenant: string; count: number }>;
}

/** Records held while the server cannot be reached: the oldest go first (and are counted as lost). */
export const FLOW_BUFFER = 4096;
/** At most this many records per request (the server's limit too). */
export const FLOW_BATCH = 1000;

export interface FlowReporterOptions {
  /** The tenant whose namespace this is, or undefined (not one of ours: its records are ignored). */
  tenantOf(ns: string): string | undefined;
  /** Sends one report to the server; throws when it could not. */
  send(report: FlowReport): Promise<void>;
  log: Logger;
  /** How often records go to the server (they wait at most this long, plus the kernel's 100 ms). */
  intervalMs?: number;
}

/**
 * The agent's end of flow records (issue 16): the datapath hands it each new connection's verdict as the
 * kernel logged it, and it sends them to the server in batches, at most every `intervalMs`. Bounded: while
 * the server is away it keeps the newest FLOW_BUFFER records, counting what it drops as lost.
 */
export class FlowReporter implements FlowSink {
  private buffer: ReportedFlow[] = [];
  private readonly lostBy = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private sending = false;
  /** Records sent since start, and lost (kernel or buffer), for the host's status and tests. */
  sent = 0;
  lostTotal = 0;

  constructor(private readonly o: FlowReporterOptions) {}

  record(ns: string, r: FlowRecord): void {
    const tenant = this.o.tenantOf(ns);
    if (tenant === undefined) return;
    if (this.buffer.length >= FLOW_BUFFER) {
      const gone = this.buffer.shift() as ReportedFlow;
      this.countLost(gone.tenant, 1);
    }
    this.buffer.push({ tenant, ...r });
  }

  lost(ns: string, count: number): void {
    const tenant = this.o.tenantOf(ns);
    if (tenant !== undefined) this.countLost(tenant, count);
  }

  start(): void {
    this.timer ??= setInterval(() => void this.flush(), this.o.intervalMs ?? 500);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Sends what is buffered (one request per FLOW_BATCH records); on failure keeps it for the next try. */
  async flush(): Promise<void> {
    if (this.sending || (this.buffer.length === 0 && this.lostBy.size === 0)) return;
    this.sending = true;
    try {
      while (this.buffer.length > 0 || this.lostBy.size > 0) {
        const flows = this.buffer.slice(0, FLOW_BATCH);
        const lost = [...this.lostBy].map(([tenant, count]) => ({ tenant, count }));
        await this.o.send({ flows, lost });
        this.buffer = this.buffer.slice(flows.length);
        for (const { tenant, count } of lost) {
          const left = (this.lostBy.get(tenant) ?? 0) - count;
          if (left > 0) this.lostBy.set(tenant, left);
          else this.lostBy.delete(tenant);
        }
        this.sent += flows.length;
      }
    } catch (e) {
      this.o.log.debug({ err: (e as Error).message, held: this.buffer.length }, 'flow records not sent; kept for the next try');
    } finally {
      this.sending = false;
    }
  }

  private countLost(tenant: string, n: number): void {
    this.lostBy.set(tenant, (this.lostBy.get(tenant) ?? 0) + n);
    this.lostTotal += n;
  }
}
