import type { Store, WriteHealth } from '../store/index.js';

/** A store that cannot write is probed again at most this often (a full disk's health is asked for often). */
const PROBE_EVERY_MS = 1000;

/**
 * How long the store has been writable without a break, as this control plane saw it, in its own clock.
 * The host GC judges silence only inside that span: while the store refuses writes (a full disk, etcd past
 * its quota or out of reach) no heartbeat can be recorded, so when it comes back every host looks silent
 * since the outage began, and its endpoints would be released (their addresses handed out again) before
 * its agent's next heartbeat lands. The span starts when this server starts (a server that was itself down
 * longer than the grace sees the same stale heartbeats) and again whenever the store is seen failing.
 *
 * Seen failing: a probe write that fails, or the store's failure count having moved since the last look
 * (a heartbeat or any other write refused in between). The GC probes on every pass, at most a tenth of
 * the grace apart (for any grace of 10 s or more), so an outage long enough to starve a live agent (one
 * that heartbeats every 10 s) of a whole grace period cannot fall between two probes unseen.
 */
export class StoreWatch {
  private since: number | undefined;
  private failures: number;
  private lastProbe = 0;

  constructor(private readonly store: Store, private readonly now: () => number) {
    this.since = now();
    this.failures = store.writeHealth().failures;
  }

  /** Probes the store with a write and answers for how long it has been writable (0: it is not). */
  async writableFor(): Promise<number> {
    this.observe(await this.probe());
    return this.since === undefined ? 0 : this.now() - this.since;
  }

  /** The store's write health for /healthz: probed (at most once a second) only while it cannot write. */
  async health(): Promise<WriteHealth> {
    const h = this.store.writeHealth();
    if (h.writable || this.now() - this.lastProbe < PROBE_EVERY_MS) return h;
    const probed = await this.probe();
    this.observe(probed);
    return probed;
  }

  private probe(): Promise<WriteHealth> {
    this.lastProbe = this.now();
    return this.store.probe();
  }

  private observe(h: WriteHealth): void {
    const failedMeanwhile = h.failures !== this.failures;
    this.failures = h.failures;
    if (!h.writable) this.since = undefined;
    else if (failedMeanwhile || this.since === undefined) this.since = this.now();
  }
}
