import type { Runner } from '../../exec/index.js';
import { diffTables, tableText, type NftTable } from '../table.js';
import { inNs } from './observe.js';
import type { NftOutcome } from '../datapath.js';

/**
 * Keeps nft tables as desired, cheaply. It remembers what it applied and the kernel's terse listing of it
 * (chains and map headers, no elements: ~30 ms to list instead of ~170 ms with 5,000 elements). When the
 * terse listing still matches (nobody flushed or edited the table), a change is applied as element
 * deltas; otherwise, or when a delta is refused, the whole table is replaced in one transaction.
 * Known gap: a map element deleted by hand outside the changed area is not noticed until the next
 * full replace.
 */
export class NftTables {
  private readonly applied = new Map<string, { table: NftTable; terse: string }>();

  constructor(private readonly runner: Runner) {}

  /**
   * Returns how it got there: nothing to do, element deltas, or a whole-table replace (and why).
   * `trustLast`: skip reading the kernel's listing and apply deltas to what was last applied (a refused
   * delta still falls back to a replace); for the ADD path, where one exec matters.
   */
  async ensure(ns: string | undefined, table: NftTable, opts: { trustLast?: boolean } = {}): Promise<NftOutcome> {
    const key = `${ns ?? ''}/${table.family}/${table.name}`;
    const prev = this.applied.get(key);
    let refused = false;
    if (prev && (opts.trustLast || (await this.terse(ns, table)) === prev.terse)) {
      const script = diffTables(prev.table, table);
      if (script === '') return 'unchanged';
      if (script !== undefined) {
        const r = await this.runner.run(inNs(ns, ['nft', '-f', '-']), { input: script, allowFailure: true });
        if (r.code === 0) {
          this.applied.set(key, { table, terse: prev.terse });
          return 'delta';
        }
        refused = true;
        this.lastRefusal = r.stderr.trim().split('\n').slice(0, 2).join(' | ');
      }
    }
    await this.runner.run(inNs(ns, ['nft', '-f', '-']), { input: tableText(table) });
    this.applied.set(key, { table, terse: await this.terse(ns, table) });
    return refused ? 'replace-after-refused-delta' : 'replace';
  }

  /** The kernel's reason for the last refused delta, for the agent's log. */
  lastRefusal = '';

  forget(ns: string): void {
    for (const k of this.applied.keys()) if (k.startsWith(`${ns}/`)) this.applied.delete(k);
  }

  private async terse(ns: string | undefined, t: NftTable): Promise<string> {
    const r = await this.runner.run(inNs(ns, ['nft', '-t', 'list', 'table', t.family, t.name]), { allowFailure: true });
    // Counters count: their values are not a change to the table.
    return r.code === 0 ? r.stdout.replace(/packets \d+ bytes \d+/g, '') : '';
  }
}
