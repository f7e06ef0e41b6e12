import type { Logger } from 'pino';
import type { FlowRecord, FlowSink, VethCounters } from '../datapath/index.js';

/** One record as the server takes it (server/flows.ts): the kernel's facts and the tenant they were seen in. */
export interface ReportedFlow extends FlowRecord {
  tenant: string;
}

export interface FlowReport {
  flows: ReportedFlow[];
  /** Per tenant, records lost on this host since the last report (kernel queue full, or our own buffer). */
  lost: Array<{ tenant: string; count: number }>;
  /** Per tenant, connections the rate limits kept from being logged since the last report. */
  held: Array<{ tenant: string; count: number }>;
  /** Per tenant and group ('' none) of this host's endpoints, what they sent and received since the last report. */
  traffic?: GroupTraffic[];
}

export interface GroupTraffic {
  tenant: string;
  group: string;
  sentBytes: number;
  sentPackets: number;
  receivedBytes: number;
  receivedPackets: number;
}

/** Tenant and group pairs whose traffic is held between reports (each a few numbers). */
export const TRAFFIC_KEYS = 4096;
/** The most one report says of one number (the server's limit); more waits for the next report. */
export const TRAFFIC_MAX = 1e15;
/** Readings a veth may be missing from before it is taken as gone. */
export const MISSED_READINGS = 3;

/** Records held while the server cannot be reached, in all and per tenant: past either, a tenant's oldest go first (counted as lost). */
export const FLOW_BUFFER = 4096;
export const FLOW_BUFFER_PER_TENANT = 1024;
/** How often records go to the server: a denial shows in `weft flows --follow` within this, the kernel's 100 ms and a request. */
export const FLOW_INTERVAL_MS = 250;
/** Lost and held-back counts without records go out at most this often. */
export const COUNTS_MS = 5000;
/** At most this many records, and tenants' lost counts, per request (the server's limits too). */
export const FLOW_BATCH = 1000;

export interface FlowReporterOptions {
  /** The tenant whose namespace this is, or undefined (not one of ours: its records are ignored). */
  tenantOf(ns: string): string | undefined;
  /** Sends one report to the server; throws when it could not. */
  send(report: FlowReport): Promise<void>;
  log: Logger;
  /** How often records go to the server (they wait at most this long, plus the kernel's 100 ms). */
  intervalMs?: number;
  /** Counts without records (lost, held back, traffic) go out at most this often (default COUNTS_MS). */
  countsMs?: number;
  /** The endpoint an endpoint veth (tenant side) belongs to, or undefined (not one of ours). */
  endpointOf?(veth: string): { group?: string } | undefined;
}

/**
 * The agent's end of flow records (issue 16): the datapath hands it each new connection's verdict as the
 * kernel logged it, and it sends them to the server in batches, at most every `intervalMs`. Bounded: while
 * the server is away it keeps the newest records, FLOW_BUFFER in all and FLOW_BUFFER_PER_TENANT per tenant
 * (a busy tenant cannot push a quiet one's out), counting what it drops as lost.
 */
export class FlowReporter implements FlowSink {
  private readonly buffers = new Map<string, ReportedFlow[]>();
  private count = 0;
  private readonly lostBy = new Map<string, number>();
  private readonly heldBy = new Map<string, number>();
  /** Per namespace, each endpoint veth's counters at the last complete reading, and the reading coming in. */
  private readonly counters = new Map<string, Map<string, VethCounters & { missed?: number }>>();
  private readonly reading = new Map<string, Map<string, VethCounters>>();
  /** Traffic per tenant and group since the last report, keyed `tenant group`. */
  private readonly trafficBy = new Map<string, GroupTraffic>();
  private timer: NodeJS.Timeout | undefined;
  private sending = false;
  /** When counts last went out. */
  private countsAt = 0;
  /** Group traffic not kept: more tenant and group pairs between two reports than TRAFFIC_KEYS. */
  trafficDropped = 0;
  /** Records sent since start, and lost (kernel or buffer), for the host's status and tests. */
  sent = 0;
  lostTotal = 0;

  constructor(private readonly o: FlowReporterOptions) {}

  record(ns: string, r: FlowRecord): void {
    const tenant = this.o.tenantOf(ns);
    if (tenant === undefined) return;
    let list = this.buffers.get(tenant);
    if (!list) this.buffers.set(tenant, (list = []));
    list.push({ tenant, ...r });
    this.count++;
    if (list.length > FLOW_BUFFER_PER_TENANT) this.dropOldest(list);
    else if (this.count > FLOW_BUFFER) this.dropOldest(this.busiest());
  }

  lost(ns: string, count: number): void {
    const tenant = this.o.tenantOf(ns);
    if (tenant !== undefined) this.countLost(tenant, count);
  }

  held(ns: string, count: number): void {
    const tenant = this.o.tenantOf(ns);
    if (tenant !== undefined) this.heldBy.set(tenant, (this.heldBy.get(tenant) ?? 0) + count);
  }

  trafficBegin(ns: string): void {
    this.reading.set(ns, new Map());
  }

  traffic(ns: string, veth: string, c: VethCounters): void {
    this.reading.get(ns)?.set(veth, c);
  }

  /**
   * A namespace's reading completed: what each veth moved since the last one goes to its endpoint's
   * group. A namespace's first reading since the agent started is the baseline (what came before is not
   * news, and counting it again after a restart would count it twice). A veth new since then, or made
   * again (another ifindex, or a counter that went back), counts from zero, all four counters alike. A
   * veth missing from a reading keeps its last counters for MISSED_READINGS readings (a dump can skip one),
   * so its whole life is never counted twice when it shows again.
   */
  trafficDone(ns: string): void {
    const now = this.reading.get(ns);
    if (!now) return;
    this.reading.delete(ns);
    const before = this.counters.get(ns);
    const tenant = this.o.tenantOf(ns);
    // Namespaces of tenants gone from this host are forgotten (their readings stop with them).
    for (const k of this.counters.keys()) if (this.o.tenantOf(k) === undefined) this.counters.delete(k);
    if (tenant === undefined) return;
    const next = new Map<string, VethCounters & { missed?: number }>(now);
    for (const [veth, was] of before ?? []) if (!now.has(veth) && (was.missed ?? 0) < MISSED_READINGS) next.set(veth, { ...was, missed: (was.missed ?? 0) + 1 });
    this.counters.set(ns, next);
    if (!before || !this.o.endpointOf) return;
    for (const [veth, c] of now) {
      const was = before.get(veth);
      const same = was !== undefined && was.ifindex === c.ifindex && c.rxBytes >= was.rxBytes && c.rxPackets >= was.rxPackets && c.txBytes >= was.txBytes && c.txPackets >= was.txPackets;
      const d = (k: 'rxBytes' | 'rxPackets' | 'txBytes' | 'txPackets') => (same ? c[k] - (was as VethCounters)[k] : c[k]);
      const moved = { sentBytes: d('rxBytes'), sentPackets: d('rxPackets'), receivedBytes: d('txBytes'), receivedPackets: d('txPackets') };
      if (moved.sentPackets === 0 && moved.receivedPackets === 0) continue;
      const ep = this.o.endpointOf(veth);
      if (!ep) continue;
      this.addTraffic({ tenant, group: ep.group ?? '', ...moved });
    }
  }

  private addTraffic(t: GroupTraffic): void {
    const key = `${t.tenant} ${t.group}`;
    const had = this.trafficBy.get(key);
    if (had) {
      had.sentBytes += t.sentBytes;
      had.sentPackets += t.sentPackets;
      had.receivedBytes += t.receivedBytes;
      had.receivedPackets += t.receivedPackets;
    } else if (this.trafficBy.size < TRAFFIC_KEYS) this.trafficBy.set(key, { ...t });
    else this.trafficDropped++;
  }

  /** Up to `n` groups' traffic out of what is held, each number at most TRAFFIC_MAX (the rest stays for the next report). */
  private takeTraffic(n: number): GroupTraffic[] {
    const out: GroupTraffic[] = [];
    for (const [key, t] of this.trafficBy) {
      if (out.length >= n) break;
      const part = { ...t, sentBytes: Math.min(t.sentBytes, TRAFFIC_MAX), sentPackets: Math.min(t.sentPackets, TRAFFIC_MAX), receivedBytes: Math.min(t.receivedBytes, TRAFFIC_MAX), receivedPackets: Math.min(t.receivedPackets, TRAFFIC_MAX) };
      out.push(part);
      t.sentBytes -= part.sentBytes;
      t.sentPackets -= part.sentPackets;
      t.receivedBytes -= part.receivedBytes;
      t.receivedPackets -= part.receivedPackets;
      if (t.sentBytes + t.sentPackets + t.receivedBytes + t.receivedPackets === 0) this.trafficBy.delete(key);
    }
    return out;
  }

  /** Records held now. */
  get holding(): number {
    return this.count;
  }

  start(): void {
    this.timer ??= setInterval(() => void this.flush(), this.o.intervalMs ?? FLOW_INTERVAL_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Sends what is held, FLOW_BATCH records and lost counts a request; on failure puts back what it took. */
  async flush(): Promise<void> {
    if (this.sending) return;
    // Counts alone (lost, held back) wait for records, or COUNTS_MS: a flood held back by the limits
    // costs a report a few seconds, not four a second.
    if (this.count === 0 && (this.lostBy.size === 0 && this.heldBy.size === 0 && this.trafficBy.size === 0 || Date.now() - this.countsAt < (this.o.countsMs ?? COUNTS_MS))) return;
    this.countsAt = Date.now();
    this.sending = true;
    try {
      while (this.count > 0 || this.lostBy.size > 0 || this.heldBy.size > 0 || this.trafficBy.size > 0) {
        const flows = this.take(FLOW_BATCH);
        const counts = (m: Map<string, number>) => {
          const out = [...m].slice(0, FLOW_BATCH).map(([tenant, count]) => ({ tenant, count }));
          for (const l of out) m.delete(l.tenant);
          return out;
        };
        const lost = counts(this.lostBy);
        const held = counts(this.heldBy);
        const traffic = this.takeTraffic(FLOW_BATCH);
        try {
          await this.o.send({ flows, lost, held, ...(traffic.length ? { traffic } : {}) });
        } catch (e) {
          // Refused as bad (a 4xx but 429): sending it again would be refused again, and everything
          // behind it would wait forever. Dropped, its records counted lost (that count goes next time).
          const status = (e as { status?: number }).status ?? 0;
          if (status >= 400 && status < 500 && status !== 429) {
            for (const f of flows) this.countLost(f.tenant, 1);
            this.o.log.warn({ err: (e as Error).message, records: flows.length }, 'a flow report was refused; dropped (its records counted lost)');
            return;
          }
          for (const h of held) this.heldBy.set(h.tenant, (this.heldBy.get(h.tenant) ?? 0) + h.count);
          for (const t of traffic) this.addTraffic(t);
          this.putBack(flows, lost);
          this.o.log.debug({ err: (e as Error).message, held: this.count }, 'flow records not sent; kept for the next try');
          return;
        }
        this.sent += flows.length;
      }
    } finally {
      this.sending = false;
    }
  }

  /** Up to `n` records out of the buffer, each tenant's oldest first, the tenants in turn. */
  private take(n: number): ReportedFlow[] {
    const out: ReportedFlow[] = [];
    const share = Math.max(1, Math.floor(n / Math.max(1, this.buffers.size)));
    for (const [tenant, list] of this.buffers) {
      if (out.length >= n) break;
      out.push(...list.splice(0, Math.min(share, n - out.length)));
      if (list.length === 0) this.buffers.delete(tenant);
    }
    // What the shares left room for, from whoever still holds some.
    for (const [tenant, list] of this.buffers) {
      if (out.length >= n) break;
      out.push(...list.splice(0, n - out.length));
      if (list.length === 0) this.buffers.delete(tenant);
    }
    this.count -= out.length;
    return out;
  }

  /** A failed send's records and counts, back in front of what came since (bounds applied again). */
  private putBack(flows: ReportedFlow[], lost: Array<{ tenant: string; count: number }>): void {
    for (const l of lost) this.lostBy.set(l.tenant, (this.lostBy.get(l.tenant) ?? 0) + l.count);
    for (let i = flows.length - 1; i >= 0; i--) {
      const f = flows[i] as ReportedFlow;
      let list = this.buffers.get(f.tenant);
      if (!list) this.buffers.set(f.tenant, (list = []));
      list.unshift(f);
      this.count++;
    }
    for (const list of this.buffers.values()) while (list.length > FLOW_BUFFER_PER_TENANT) this.dropOldest(list);
    while (this.count > FLOW_BUFFER) this.dropOldest(this.busiest());
  }

  private dropOldest(list: ReportedFlow[]): void {
    const gone = list.shift();
    if (!gone) return;
    this.count--;
    this.countLost(gone.tenant, 1);
  }

  private busiest(): ReportedFlow[] {
    let best: ReportedFlow[] = [];
    for (const l of this.buffers.values()) if (l.length > best.length) best = l;
    return best;
  }

  private countLost(tenant: string, n: number): void {
    this.lostBy.set(tenant, (this.lostBy.get(tenant) ?? 0) + n);
    this.lostTotal += n;
  }
}
