// What a compile may cost: the pairs of classes it decides (PolicyState.budget).
import type { Roles } from './roles.js';

/**
 * A tenant's policy would make more pairs of address classes than the compile's budget: pairs are of
 * source and destination roles (roles.ts), so rules that tell many endpoints apart on both ends (each
 * endpoint's own /32 or /128 with its own ports, named as a source and as a destination) make pairs as
 * the square of those endpoints.
 */
export class PolicyTooLarge extends Error {
  constructor(readonly tenant: string, readonly pairs: number, readonly classes: number, readonly enforced: number, readonly budget: number) {
    const n = (x: number) => x.toLocaleString('en-US');
    super(`the policy of tenant ${tenant} would make ${n(pairs)} pairs of address classes (${n(classes)} classes as sources or destinations, ${n(enforced)} of them of enforced groups), past the limit of ${n(budget)}: rules that tell many addresses apart on both ends (each endpoint's own address as a source and as a destination, CIDRs of no endpoint, NetworkPolicy peers) multiply them`);
    this.name = 'PolicyTooLarge';
  }
}

/**
 * Throws PolicyTooLarge when the pairs a compile decides with these roles (roles.ts `Roles.pairs`: every
 * source role against every enforced destination role and the other way round) are more than `budget`.
 */
export function overBudget(tenant: string, roles: Roles, budget: number): void {
  const pairs = roles.pairs();
  if (pairs > budget) throw new PolicyTooLarge(tenant, pairs, roles.src.size + roles.dst.size, roles.src.enforced.size + roles.dst.enforced.size, budget);
}
