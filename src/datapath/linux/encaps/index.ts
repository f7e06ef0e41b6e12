import type { OverlayEncap } from '../../../model/index.js';
import type { LinuxEncap } from './types.js';
import { vxlan } from './vxlan.js';

/** The encapsulations this datapath builds, one line each, by the names the model accepts (model ENCAPS). */
export const LINUX_ENCAPS: Record<OverlayEncap, LinuxEncap> = {
  vxlan,
};

export type { LinuxEncap } from './types.js';
