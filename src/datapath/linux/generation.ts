import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Runner } from '../../exec/index.js';

/** dist/weft-nftgen, built from nftgen.c by scripts/build-shim.mjs (absent without a C compiler). */
export const NFTGEN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'weft-nftgen');

/**
 * Reads namespaces' nftables ruleset generations with weft-nftgen (see nftgen.c): a namespace's
 * generation goes up by exactly one with each committed transaction, whoever commits it, so it tells in
 * one cheap exec whether anyone touched any table there. Without the helper every read is undefined and
 * callers fall back to listing their tables.
 */
export class Generations {
  readonly available: boolean;

  constructor(private readonly runner: Runner, private readonly helper: string | undefined = NFTGEN) {
    this.available = helper !== undefined && existsSync(helper);
  }

  /** `INODE:GENERATION` of a namespace (undefined: the agent's own), or undefined when it cannot be read. */
  async read(ns: string | undefined): Promise<string | undefined> {
    if (!this.available || this.helper === undefined) return undefined;
    const path = ns === undefined ? '/proc/self/ns/net' : `/run/netns/${ns}`;
    const r = await this.runner.run([this.helper, path], { allowFailure: true });
    return parseGeneration(r.code === 0 ? r.stdout : '');
  }
}

/** The helper's line for one namespace as `INODE:GENERATION`; undefined for "- -" or anything else. */
export function parseGeneration(line: string): string | undefined {
  const m = /^(\d+) (\d+)\n?$/.exec(line);
  return m ? `${m[1]}:${m[2]}` : undefined;
}

/** `gen` advanced by `n` transactions (same namespace inode). */
export function advance(gen: string, n: number): string {
  const [ino, g] = gen.split(':');
  return `${ino}:${Number(g) + n}`;
}
