import type { TenantPlan } from '../datapath/index.js';

interface Batch {
  plan: TenantPlan;
  waiters: Array<{ resolve: () => void; reject: (e: unknown) => void }>;
}

/**
 * Port admissions (anti-spoofing), one at a time per tenant namespace and coalesced: while one is being
 * applied, every later request joins a single waiting batch, which applies the newest plan (it holds every
 * port the earlier requests asked for). A burst of ADDs costs two or three `nft` execs, not one each.
 * Keyed by namespace, not tenant name: a tenant made with a deleted one's id has its namespace, and the
 * reconciler waits for that namespace's admissions (idle) before it converges the new tenant in full.
 */
export class Admissions {
  private readonly waiting = new Map<string, Batch>();
  private readonly working = new Map<string, Promise<void>>();

  constructor(private readonly apply: (p: TenantPlan) => Promise<void>, private readonly failed: (plan: TenantPlan) => void) {}

  /** Resolves once an admission holding `plan`'s ports is in the kernel; rejects if that one failed. */
  request(ns: string, plan: TenantPlan): Promise<void> {
    return new Promise((resolve, reject) => {
      const b = this.waiting.get(ns);
      if (b) {
        b.plan = plan;
        b.waiters.push({ resolve, reject });
      } else {
        this.waiting.set(ns, { plan, waiters: [{ resolve, reject }] });
      }
      if (!this.working.has(ns)) this.working.set(ns, this.work(ns));
    });
  }

  /** Resolves when nothing of the namespace is being admitted or waiting to be. */
  idle(ns: string): Promise<void> {
    return this.working.get(ns) ?? Promise.resolve();
  }

  private async work(ns: string): Promise<void> {
    for (let b = this.waiting.get(ns); b; b = this.waiting.get(ns)) {
      this.waiting.delete(ns);
      try {
        await this.apply(b.plan);
        for (const w of b.waiters) w.resolve();
      } catch (e) {
        this.failed(b.plan);
        for (const w of b.waiters) w.reject(e);
      }
    }
    this.working.delete(ns);
  }
}
