import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Runner } from '../../exec/index.js';

/** dist/weft-netwatch in its one-shot form, built from netwatch.c by scripts/build-shim.mjs (absent without a C compiler). */
export const NFTGEN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'weft-netwatch');

/**
 * Reads namespaces' nftables ruleset generations with weft-netwatch's one-shot form (see netwatch.c): a namespace's
 * generation goes up by exactly one with each committed transaction, whoever commits it, so it tells
 * whether anyone touched any table there. One exec answers for every namespace asked about so far, and
 * its answers serve the reads of the next BATCH_MS (a pass over every tenant): an exec costs ~17 ms of
 * CPU on the 2-core test machine, more than everything else an idle resync does. An answer that old may
 * lag behind the agent's own commits; NftTables reads such a lag as nothing changed (see `compare`).
 * Without the helper every read is undefined and callers fall back to listing their tables.
 */
export class Generations {
  readonly available: boolean;
  private readonly asked = new Set<string>();
  private last: { at: number; values: Map<string, string | undefined> } | undefined;

  constructor(private readonly runner: Runner, private readonly helper: string | undefined = NFTGEN, private readonly batchMs = BATCH_MS) {
    this.available = helper !== undefined && existsSync(helper);
  }

  /**
   * Where generations come without an exec: the watcher's last reports (netwatch.ts), current to within
   * its tick. A namespace it has no report of is read here as before.
   */
  watched: ReadonlyMap<string, string> | undefined;

  /** `INODE:GENERATION` of a namespace (undefined: the agent's own), or undefined when it cannot be read. */
  async read(ns: string | undefined): Promise<string | undefined> {
    if (!this.available || this.helper === undefined) return undefined;
    const key = ns ?? '';
    const pushed = this.watched?.get(key);
    if (pushed !== undefined) return pushed;
    this.asked.add(key);
    const last = this.last;
    if (last && performance.now() - last.at < this.batchMs && last.values.has(key)) return last.values.get(key);
    const keys = [...this.asked];
    // One that cannot even be started answers nothing, as one that fails: callers list their tables.
    const r = await this.runner.run([this.helper, ...keys.map(nsPath)], { allowFailure: true })
      .catch(() => ({ code: -1, stdout: '' }));
    const lines = r.code === 0 ? r.stdout.split('\n') : [];
    this.last = { at: performance.now(), values: new Map(keys.map((k, i) => [k, parseGeneration(lines[i] ?? '')])) };
    return this.last.values.get(key);
  }

  /**
   * The generation now, from an exec of its own (neither the watcher's report nor a batched answer,
   * either of which may predate a commit made a moment ago); undefined when it cannot be read.
   */
  async readNow(ns: string | undefined): Promise<string | undefined> {
    if (!this.available || this.helper === undefined) return undefined;
    try {
      const r = await this.runner.run([this.helper, nsPath(ns ?? '')], { allowFailure: true, timeoutMs: READ_NOW_TIMEOUT_MS });
      return r.code === 0 ? parseGeneration(r.stdout.split('\n')[0] ?? '') : undefined;
    } catch {
      // Could not even be started (gone mid-upgrade, no processes left): as unreadable, never a failed write.
      return undefined;
    }
  }

  /** A namespace that is gone is no longer asked about. */
  forget(ns: string): void {
    this.asked.delete(ns);
    this.last?.values.delete(ns);
  }
}

/** The namespace file the helper opens: '' is the agent's own. */
const nsPath = (ns: string): string => (ns === '' ? '/proc/self/ns/net' : `/run/netns/${ns}`);

/** A fresh read (readNow) is one small exec; past this it is taken as unreadable. */
const READ_NOW_TIMEOUT_MS = 5_000;

/** How long one read answers for every namespace: about one pass over every tenant. */
export const BATCH_MS = 1000;

/**
 * A namespace's generation against what the agent expects (the generation it last verified plus its own
 * commits since): as expected, behind it (a read older than our last commit: nothing foreign seen yet),
 * past it (someone else committed), or in another namespace (the inode changed: it was made anew).
 */
export function compare(gen: string, expected: string): 'same' | 'behind' | 'past' | 'other' {
  const [ino, g] = gen.split(':');
  const [eino, eg] = expected.split(':');
  if (ino !== eino) return 'other';
  return Number(g) === Number(eg) ? 'same' : Number(g) < Number(eg) ? 'behind' : 'past';
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
