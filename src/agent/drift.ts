import type { Logger } from 'pino';
import type { Datapath, DriftWatch } from '../datapath/index.js';

/** How long a reported namespace settles before its check (a burst of changes is one repair). */
const SETTLE_MS = 200;

/** While watching for drift, every tenant is still checked this often. */
export const SAFETY_MS = 60_000;

/**
 * Which tenants a full pass checks against the kernel. While the datapath watches for drift
 * (Datapath.watch): those it reported since their last check (their check scheduled after a short
 * settle), and every tenant once per `safetyMs`, after a re-list, and on every pass once the watch has
 * ended. Without a watch: every tenant, every pass, as a resync always did.
 */
export class DriftChecks {
  private watching: DriftWatch | undefined;
  private readonly suspects = new Set<string>();
  private everything = true;
  private lastEverything = 0;
  /** Each tenant's namespace, to find the tenant of a reported namespace. */
  private readonly nsTenant = new Map<string, string>();
  private settle: NodeJS.Timeout | undefined;
  /** When a pass last took reported tenants: reports are checked at most once per `gapMs`, by any pass. */
  private lastTaken = -Infinity;

  /** `gapMs`: the least time between two passes for reports (the resync interval: a burst of ADDs costs no more than before). */
  constructor(private readonly schedule: () => void, private readonly log: Logger, private readonly gapMs: number, private readonly safetyMs = SAFETY_MS) {}

  start(dp: Datapath): void {
    this.watching = dp.watch?.((ns) => this.drifted(ns));
  }

  stop(): void {
    if (this.settle) clearTimeout(this.settle);
    this.watching?.stop();
  }

  /** The tenant converged in this namespace (so a report of the namespace names it). */
  seen(ns: string, tenant: string): void {
    this.nsTenant.set(ns, tenant);
  }

  /** The next pass checks every tenant (a re-list: anything may have changed while we were not looking). */
  all(): void {
    this.everything = true;
  }

  /** A tenant whose check failed is checked again at the next pass. */
  retry(tenant: string): void {
    this.suspects.add(tenant);
  }

  /** The tenants this pass checks, out of `tenants` (all there are). */
  take(tenants: readonly string[]): string[] {
    const now = performance.now();
    const all = this.everything || !this.watching?.live || now - this.lastEverything >= this.safetyMs;
    if (all) {
      this.everything = false;
      this.lastEverything = now;
      this.lastTaken = now;
      this.suspects.clear();
      return [...tenants];
    }
    if (this.suspects.size === 0) return [];
    // Reported again within the gap (the resync's pass and the settle's both came): they wait for the
    // pass the settle timer is aimed at, so a namespace that keeps being reported is read once per gap.
    if (now - this.lastTaken < this.gapMs) {
      this.arm(this.lastTaken + this.gapMs - now);
      return [];
    }
    const known = new Set(tenants);
    const list = [...this.suspects].filter((t) => known.has(t));
    this.suspects.clear();
    this.lastTaken = now;
    return list;
  }

  /** A pass in `ms` (no sooner than a settle), unless one is already due. */
  private arm(ms: number): void {
    if (this.settle) return;
    this.settle = setTimeout(() => {
      this.settle = undefined;
      this.schedule();
    }, Math.max(SETTLE_MS, ms));
  }

  /**
   * The watch reports a namespace (undefined: the host's, whose table every full pass looks at anyway).
   * Checked after a short settle, so that a burst (a chain flushed, then deleted) is one repair, not two,
   * and no sooner than `gapMs` after the last pass for reports: our own ADDs are reported too, and under a
   * burst of them a check per settle would cost more than the resync it replaces.
   */
  private drifted(ns: string | undefined): void {
    const tenant = ns === undefined ? undefined : this.nsTenant.get(ns);
    if (tenant !== undefined) this.suspects.add(tenant);
    if (ns === undefined && this.watching && !this.watching.live && !this.everything) {
      this.everything = true;
      this.log.warn('the drift watch ended; every resync checks every tenant from now on');
    }
    this.arm(this.lastTaken + this.gapMs - performance.now());
  }
}
