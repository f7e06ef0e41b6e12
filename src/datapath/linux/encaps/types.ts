import type { Runner } from '../../../exec/index.js';
import type { OverlayPlan } from '../../plan.js';
import type { ObservedLink } from '../observe.js';

/**
 * One encapsulation between hosts on Linux (a network's `encap`): how its device is made and how its
 * forwarding state follows the plan. The tenant's convergence calls these and knows nothing of VXLAN.
 */
export interface LinuxEncap {
  /** The link kind `ip -d` reports for its device: a device of this kind that no plan wants is removed. */
  readonly kind: string;
  /** Whether the device as observed is what the plan wants (if not, it is made anew). */
  matches(link: ObservedLink | undefined, o: OverlayPlan): boolean;
  /** Makes the device in the tenant namespace (replacing one that does not match). */
  create(runner: Runner, tenantNs: string, o: OverlayPlan, existing: ObservedLink | undefined): Promise<void>;
  /** Brings the device's forwarding state (remote endpoints, peers) to the plan. */
  converge(runner: Runner, tenantNs: string, o: OverlayPlan): Promise<void>;
}
