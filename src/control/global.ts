import { WeftError, checkGlobal, formatCidr, parseTunnelRange, parseVxlanRange, type Global, type GlobalInput, type Network } from '../model/index.js';
import type { Store, Txn } from '../store/index.js';
import { checkRevision, listNames } from './crud.js';
import { keys, withRevision } from './keys.js';
import { readGlobal } from './shared.js';
import { retunnelHosts } from './tunnels.js';

/** The cluster-wide settings; a change that would strand what depends on it is refused, naming the field. */
export class GlobalSettings {
  constructor(private readonly store: Store, private readonly now: () => string) {}

  async get(): Promise<Global> {
    return (await this.store.transact('read', readGlobal)).value;
  }

  /** Applies `input` over the current settings; a new tunnel range re-addresses every host in the same transaction. */
  async update(actor: string, input: GlobalInput, ifMatch?: number): Promise<Global> {
    checkGlobal(input);
    const r = await this.store.transact(actor, async (tx) => {
      const cur = await readGlobal(tx);
      checkRevision(cur.revision, ifMatch, 'global');
      const tunnelRange = input.tunnelRange === undefined ? cur.tunnelRange : formatCidr(parseTunnelRange(input.tunnelRange));
      const next = { ...withoutMeta(cur), ...input, tunnelRange };
      await checkVnis(tx, next.vxlanRange);
      const at = this.now();
      if (tunnelRange !== cur.tunnelRange) await retunnelHosts(tx, tunnelRange, at);
      const g = { ...next, createdAt: cur.createdAt || at, updatedAt: at };
      tx.put(keys.global(), g);
      return g;
    }).catch((e: unknown) => {
      throw input.tunnelRange !== undefined ? tooLargeToMove(e, input.tunnelRange) : e;
    });
    return { ...r.value, revision: r.revision };
  }
}

/**
 * Moving every host to a new tunnel range is one transaction (so no host is ever outside the range the
 * others use); a store that refuses a transaction that large (etcd past its --max-txn-ops) says so, naming
 * the field that asked for it, not as a store outage to retry.
 */
function tooLargeToMove(e: unknown, range: string): unknown {
  if (!(e instanceof WeftError) || e.code !== 'WEFT_TOO_LARGE') return e;
  return new WeftError('WEFT_TOO_LARGE', `tunnelRange: moving every host into ${range} re-addresses them all in one transaction, and the store refused it: ${e.message}`, { field: 'tunnelRange', cause: e });
}

/** A VXLAN range must keep every VNI networks already use. */
async function checkVnis(tx: Txn, vxlanRange: string): Promise<void> {
  const range = parseVxlanRange(vxlanRange);
  const outside = (await tx.list('networks/')).map((e) => withRevision<Network>(e)).filter((n) => n.vni < range.first || n.vni > range.last);
  if (outside.length > 0) {
    throw new WeftError('WEFT_IN_USE', `vxlanRange: ${vxlanRange} leaves out VNIs in use by ${listNames(outside.map((n) => `network ${n.tenant}/${n.name} (${n.vni})`))}`, { field: 'vxlanRange' });
  }
}

function withoutMeta(g: Global): Required<GlobalInput> {
  return { vxlanRange: g.vxlanRange, mtu: g.mtu, arpMode: g.arpMode, encryption: g.encryption, tunnelRange: g.tunnelRange, keyRotationDays: g.keyRotationDays };
}
