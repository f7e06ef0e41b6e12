import type { Runner } from '../exec/index.js';
import type { Datapath } from './datapath.js';
import { LinuxDatapath } from './linux/datapath.js';
import { MemoryDatapath } from './memory.js';

export interface DatapathOptions {
  runner: Runner;
  /** Prefix of the tenant namespaces this agent owns (agents sharing one machine use different ones). */
  nsPrefix: string;
  /** The agent's state dir (wireguard-go's pid and log) and its WireGuard private key file in it. */
  stateDir: string;
  keyFile: string;
  /** nft commits through weft-nftd (nftd.ts) where it can start; false: an `nft -f` each. Default true. */
  nftHelper?: boolean;
}

/**
 * The datapaths an agent can run (`weft agent --datapath`): one line each. `memory` programs nothing:
 * a host simulated for tests and for scale runs of the control plane.
 */
export const DATAPATHS = {
  linux: (o: DatapathOptions): Datapath => new LinuxDatapath(o.runner, o.nsPrefix, o.stateDir, o.keyFile, o.nftHelper ?? true),
  memory: (o: DatapathOptions): Datapath => new MemoryDatapath(o.nsPrefix),
} as const satisfies Record<string, (o: DatapathOptions) => Datapath>;

export type DatapathKind = keyof typeof DATAPATHS;

export function isDatapathKind(k: string): k is DatapathKind {
  return Object.hasOwn(DATAPATHS, k);
}
