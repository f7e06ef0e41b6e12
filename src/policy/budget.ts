// What a compile may cost: the pairs of classes it decides (PolicyState.budget).

/**
 * A tenant's policy would make more pairs of address classes than the compile's budget: classes are one
 * partition for both ends of a connection, so rules that give many endpoints a class of their own (each
 * endpoint's own /32 or /128 with its own ports) make pairs as the square of those endpoints.
 */
export class PolicyTooLarge extends Error {
  constructor(readonly tenant: string, readonly pairs: number, readonly classes: number, readonly enforced: number, readonly budget: number) {
    const n = (x: number) => x.toLocaleString('en-US');
    super(`the policy of tenant ${tenant} would make ${n(pairs)} pairs of address classes (${n(classes)} classes, ${n(enforced)} of them of enforced groups), past the limit of ${n(budget)}: rules that give many addresses a class of their own (each endpoint's own address, CIDRs of no endpoint, NetworkPolicy peers) multiply them`);
    this.name = 'PolicyTooLarge';
  }
}

/**
 * The pairs a compile decides with `all` classes of which `enforced` are enforced here: every class
 * against every enforced one, both ways (an enforced pair once).
 */
function pairsToDecide(all: number, enforced: number): number {
  return 2 * all * enforced - enforced * enforced;
}

/** Throws PolicyTooLarge when `all` classes with `enforced` of them enforced make more pairs than `budget`. */
export function overBudget(tenant: string, all: number, enforced: number, budget: number): void {
  const pairs = pairsToDecide(all, enforced);
  if (pairs > budget) throw new PolicyTooLarge(tenant, pairs, all, enforced, budget);
}
