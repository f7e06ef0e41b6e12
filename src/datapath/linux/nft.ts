import type { Runner } from '../../exec/index.js';
import { inNs } from './observe.js';

/**
 * Applies whole nft tables and notices drift: after each apply it keeps the kernel's own listing of the
 * table, and re-applies when a later listing differs (a flushed or edited table) or the text changed.
 */
export class NftTables {
  private readonly applied = new Map<string, { text: string; listing: string }>();

  constructor(private readonly runner: Runner) {}

  async ensure(ns: string | undefined, family: string, table: string, text: string): Promise<boolean> {
    const key = `${ns ?? ''}/${family}/${table}`;
    const prev = this.applied.get(key);
    if (prev && prev.text === text) {
      const now = await this.list(ns, family, table);
      if (now === prev.listing) return false;
    }
    await this.runner.run(inNs(ns, ['nft', '-f', '-']), { input: text });
    this.applied.set(key, { text, listing: await this.list(ns, family, table) });
    return true;
  }

  forget(ns: string): void {
    for (const k of this.applied.keys()) if (k.startsWith(`${ns}/`)) this.applied.delete(k);
  }

  private async list(ns: string | undefined, family: string, table: string): Promise<string> {
    const r = await this.runner.run(inNs(ns, ['nft', 'list', 'table', family, table]), { allowFailure: true });
    return r.code === 0 ? r.stdout : '';
  }
}
