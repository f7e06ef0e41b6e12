import type { TenantPlan } from '../datapath/index.js';

interface Batch {
  plan: TenantPlan;
  waiters: Array<{ resolve: () => void; reject: (e: unknown) => void }>;
}

/**
 * A tenant's port admissions (anti-spoofing), one at a time per tenant and coalesced: while one is being
 * applied, every later request joins a single waiting batch, which applies the newest plan (it holds every
 * port the earlier requests asked for). A burst of ADDs costs two or three `nft` execs, not one each.
 */
export class Admissions {
  private readonly waiting = new Map<string, Batch>();
  private readonly working = new Map<string, Promise<void>>();

  constructor(private readonly apply: (p: TenantPlan) => Promise<void>, private readonly failed: (tenant: string) => void) {}

  /** Resolves once an admission holding `plan`'s ports is in the kernel; rejects if that one failed. */
  request(tenant: string, plan: TenantPlan): Promise<void> {
    return new Promise((resolve, reject) => {
      const b = this.waiting.get(tenant);
      if (b) {
        b.plan = plan;
        b.waiters.push({ resolve, reject });
      } else {
        this.waiting.set(tenant, { plan, waiters: [{ resolve, reject }] });
      }
      if (!this.working.has(tenant)) this.working.set(tenant, this.work(tenant));
    });
  }

  /** Resolves when nothing of the tenant is being admitted or waiting to be. */
  idle(tenant: string): Promise<void> {
    return this.working.get(tenant) ?? Promise.resolve();
  }

  private async work(tenant: string): Promise<void> {
    for (let b = this.waiting.get(tenant); b; b = this.waiting.get(tenant)) {
      this.waiting.delete(tenant);
      try {
        await this.apply(b.plan);
        for (const w of b.waiters) w.resolve();
      } catch (e) {
        this.failed(tenant);
        for (const w of b.waiters) w.reject(e);
      }
    }
    this.working.delete(tenant);
  }
}
