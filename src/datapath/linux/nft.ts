import { ExecError, type Runner } from '../../exec/index.js';
import { tableText, type NftTable } from '../table.js';
import { diffTables, type Delta } from '../table-delta.js';
import { inNs } from './observe.js';
import { advance, compare, Generations } from './generation.js';
import type { NftOutcome, NftWrite } from '../datapath.js';
import type { CommitResult, NftSessions } from './nftd.js';

/** A full pass deletes what changes left unused once no change came for this long, or once it is this old. */
const SWEEP_QUIET_MS = 5_000;
const SWEEP_MAX_AGE_MS = 60_000;
/**
 * The most one full pass deletes of what changes left (table-delta.ts `sweep`); the rest goes at the
 * passes after it (onUnswept asks for one). A sweep holds its tenant's lock while it commits, so a change
 * arriving meanwhile waits for it: a whole sweep of 150 KB took 138 ms to commit (bench:policy, session 60).
 */
export const SWEEP_SHARE = { objects: 128, elements: 4_096 };
/** The no-op command after a replace (warm): nft fetches a 14,000-chain table in ~0.1-0.5 s. */
const WARM_TIMEOUT_MS = 30_000;

/** What the kernel's tables in a namespace are, as far as the agent knows without listing them. */
type KernelView = 'untouched' | 'touched' | 'unknown';

/**
 * Keeps nft tables as desired, cheaply. It remembers what it applied, and per namespace the ruleset
 * generation at which that was last true plus the transactions it committed since (generation.ts).
 * While the generation is exactly that, nobody else changed anything there, so a change is applied as a
 * delta of the maps and chains it touches (table-delta.ts) without reading the kernel, and an unchanged
 * table costs nothing. When the generation moved otherwise, in a namespace the agent owns (a tenant's)
 * its tables are replaced outright: that repairs any drift, a single deleted element too, for the price
 * of one write. Elsewhere (the host, where other software writes its own tables) and without the
 * generation helper, the kernel's listing is compared first: the host table's whole (every map of it is
 * `checked`: small, and each element is someone's access), any other tersely (chains and map headers).
 * A terse listing misses an element of a map added or deleted by hand, a gap that remains only for a
 * tenant's tables where the generation cannot be read.
 */
export class NftTables {
  private readonly applied = new Map<string, { table: NftTable; terse: string | undefined }>();
  /** Per namespace: the generation its tables last matched `applied` at, and our commits since. */
  private readonly known = new Map<string, { gen: string; commits: number }>();
  private readonly gens: Generations;

  /** `sessions`: commits go through weft-nftd (nftd.ts) where it runs; else each is an `nft -f`. */
  /**
   * `sweepQuietMs`: how long after the last change a full pass deletes what changes left unused;
   * `sweepMaxAgeMs`: how old it may get while changes keep coming (tests make both small).
   */
  constructor(private readonly runner: Runner, gens?: Generations, private readonly sessions?: NftSessions, private readonly sweepQuietMs = SWEEP_QUIET_MS, private readonly sweepMaxAgeMs = SWEEP_MAX_AGE_MS) {
    this.gens = gens ?? new Generations(runner);
  }

  /** The generation source (the watcher's reports); see Generations.watched. */
  useGenerations(watched: ReadonlyMap<string, string> | undefined): void {
    this.gens.watched = watched;
  }

  /** Told when a namespace's generation moved by someone else's commit (undefined: the agent's own namespace). */
  onForeign: ((ns: string | undefined) => void) | undefined;
  /** Told when a full pass's sweep left some of what changes left unused for a later pass (SWEEP_SHARE). */
  onUnswept: ((ns: string | undefined) => void) | undefined;
  /** Per namespace: our `nft -f` running now, and the last generation reported while one was. */
  private readonly inflight = new Map<string, number>();
  private readonly reported = new Map<string, string>();

  /**
   * A generation the watcher reported. Ours, if it is where our own commits since the last look put it
   * (or behind: a report older than one of them); anything else is someone else's, or a namespace we
   * never verified. While we commit there, the judgement waits until the commit is counted: the report
   * of our own commit can arrive before `nft` has even exited.
   */
  observe(ns: string | undefined, gen: string): void {
    const key = ns ?? '';
    this.reported.set(key, gen);
    if (!this.inflight.get(key)) this.judge(key);
  }

  private judge(key: string): void {
    const gen = this.reported.get(key);
    if (gen === undefined) return;
    this.reported.delete(key);
    const k = this.known.get(key);
    const seen = k && compare(gen, advance(k.gen, k.commits));
    if (seen !== 'same' && seen !== 'behind') this.onForeign?.(key === '' ? undefined : key);
  }

  /**
   * Converges the tables of one namespace, each as `ensure` does, after one look at its generation.
   * `owned`: nothing but this agent has tables there (a tenant's namespace).
   */
  async ensureAll(ns: string | undefined, tables: readonly NftTable[], owned: boolean, opts: { trust?: boolean } = {}): Promise<NftOutcome[]> {
    // Trusted (a change pass): deltas on what was applied, and our commits are still counted, so the
    // next look tells them from anyone else's.
    if (opts.trust) {
      const out: NftOutcome[] = [];
      for (const t of tables) out.push(await this.ensure(ns, t, { trustLast: true, owned }));
      return out;
    }
    const key = ns ?? '';
    const gen = await this.gens.read(ns);
    const k = this.known.get(key);
    const seen = gen === undefined || !k ? undefined : compare(gen, advance(k.gen, k.commits));
    // Behind: the read predates some of our own commits; anything foreign shows as past it later.
    const view: KernelView = seen === undefined ? 'unknown' : seen === 'same' || seen === 'behind' ? 'untouched' : 'touched';
    // Rebased on this read: the kernel is as `applied` says or is made so below, and anyone else's commit
    // after the read moves the generation past it plus our commits, which a later look sees.
    if (gen === undefined) this.known.delete(key);
    else if (seen !== 'behind') this.known.set(key, { gen, commits: 0 });
    const out: NftOutcome[] = [];
    for (const t of tables) out.push(await this.ensure(ns, t, { view, owned }));
    return out;
  }

  /**
   * Returns how it got there: nothing to do, a delta, or a whole-table replace (and why).
   * `trustLast`: apply a delta to what was last applied without looking (a refused delta still falls
   * back to a replace); for the ADD path, where one exec matters.
   */
  async ensure(ns: string | undefined, table: NftTable, opts: { trustLast?: boolean; view?: KernelView; owned?: boolean } = {}): Promise<NftOutcome> {
    const key = `${ns ?? ''}/${table.family}/${table.name}`;
    const prev = this.applied.get(key);
    const view = opts.view ?? 'unknown';
    const trusted = prev !== undefined && (opts.trustLast || view === 'untouched' || (!(opts.owned && view === 'touched') && await this.terseMatches(ns, table, prev.terse)));
    // A commit that threw (killed at its timeout, an exec error) may still have been committed by the
    // kernel: what it holds is unknown, so nothing is kept to apply a later delta to, and the next call
    // replaces the table. A delta on the table before it would leave whatever that commit changed.
    this.applied.delete(key);
    this.lastWrites.delete(key);
    let refused = false;
    let diffMs = 0;
    if (trusted) {
      // A change (trustLast) leaves what it no longer uses for a full pass to delete: through `nft -f` a
      // delete makes nft list every chain of the table (~50 ms beside 14,000 chains), and through the
      // helper the kernel's work remains (~17 µs an object), which a change arriving meanwhile waits for.
      // So a full pass deletes it only once changes have paused, and a share at a time (SWEEP_SHARE), as
      // a change may come during the sweep all the same (past the keep bounds, a change deletes the
      // oldest: table-delta.ts KEEP_MAX).
      const why = opts.trustLast === true ? 'change' : this.sweepWhy(key, prev.table);
      const keepGone = why === 'change' || why === 'later';
      const t0 = performance.now();
      const sweep = keepGone ? undefined : SWEEP_SHARE;
      let delta = diffTables(prev.table, table, { keepGone, ...(sweep ? { sweep } : {}), elements: await this.helperRuns() });
      diffMs = performance.now() - t0;
      // Nothing for nft and nothing for the helper (a sweep may be the helper's lines alone).
      if (delta?.script === '' && delta.elements === '') {
        this.applied.set(key, { table: delta.table, terse: prev.terse });
        return 'unchanged';
      }
      if (delta !== undefined) {
        const relist = delta.structural || checkedChanged(prev.table, delta.table);
        const before = relist ? await this.beforeWrite(ns, opts.owned) : undefined;
        const t1 = performance.now();
        let r = await this.commit(ns, delta.script, true, delta.elements);
        // No helper free to write the elements (MAX_SESSIONS busy): the same delta with them in the script.
        if (r === NO_HELPER) {
          delta = diffTables(prev.table, table, { keepGone, ...(sweep ? { sweep } : {}) }) as Delta;
          r = await this.commit(ns, delta.script, true);
        }
        if (r.code === 0) {
          this.lastWrites.set(key, { how: 'delta', bytes: delta.script.length + delta.elements.length, diffMs, commitMs: performance.now() - t1 });
          this.noteLeftover(key, delta.table, opts.trustLast === true);
          if (sweep && delta.table.leftover) this.swept(key, ns, why);
          // Chains or maps came or went, or a checked map's elements changed: the listing changed with
          // them, read again when needed.
          this.applied.set(key, { table: delta.table, terse: relist ? await this.listedAfterWrite(ns, delta.table, opts.owned, before) : prev.terse });
          return 'delta';
        }
        refused = true;
        this.lastRefusal = r.stderr.trim().split('\n').slice(0, 2).join(' | ');
      }
    }
    this.leftover.delete(key);
    const text = tableText(table);
    const before = await this.beforeWrite(ns, opts.owned);
    const t1 = performance.now();
    await this.commit(ns, text, false);
    this.lastWrites.set(key, { how: 'replace', bytes: text.length, diffMs, commitMs: performance.now() - t1 });
    this.warm(ns, table);
    this.applied.set(key, { table, terse: await this.listedAfterWrite(ns, table, opts.owned, before) });
    return refused ? 'replace-after-refused-delta' : 'replace';
  }

  /**
   * After a replace the helper's nft has dropped its cache of the table, and the next delta used to pay
   * for fetching it again: offline, beside 50,000 nested rules (14,045 chains), 120 ms against 21-31 ms
   * for the ones after, and 513 ms in bench:policy's agent. A no-op command (`add table` of the table
   * that is there: no transaction, the generation does not move, so it is not counted as a commit) makes
   * it fetch now, queued behind the replace and before any delta, while no change is waiting for it.
   * (Session 41, offline through weft-nftd beside the 5 MB table: the no-op itself takes 55-77 ms, and
   * 1-4 ms when the helper's libnftables context is made new after the replace; so what the first
   * command pays is freeing the objects the replace's script left in the cache, not a fetch. Either way
   * this no-op pays it; a fresh context would only move the same work, so the helper keeps its context.)
   */
  private warm(ns: string | undefined, t: NftTable): void {
    const sessions = this.sessions;
    if (!sessions) return;
    void sessions.usable().then((ok) => (ok ? sessions.commit(ns, `add table ${t.family} ${t.name}\n`, WARM_TIMEOUT_MS) : undefined)).catch(() => undefined);
  }

  /** Per table: when a change last left something unused, and since when something has been. */
  private readonly leftover = new Map<string, { since: number; lastChange: number }>();

  /**
   * Why a full pass does or does not sweep what changes left unused: `later` while changes came within
   * sweepQuietMs and it is younger than sweepMaxAgeMs; `quiet` once they paused; `age` when it got that
   * old while they kept coming; `none` when nothing is left over.
   */
  private sweepWhy(key: string, prev: NftTable): 'later' | 'quiet' | 'age' | 'none' {
    const l = this.leftover.get(key);
    if (!prev.leftover || !l) return 'none';
    const now = performance.now();
    if (now - l.lastChange >= this.sweepQuietMs) return 'quiet';
    return now - l.since >= this.sweepMaxAgeMs ? 'age' : 'later';
  }

  /**
   * A share was swept and some is left. Once changes paused, the next share is asked for now (a check of
   * the namespace at the next pass); while they keep coming, the age starts again, so an old leftover
   * costs one share a sweepMaxAgeMs and no pass of its own (a pass per share, each a check of the whole
   * tenant under its lock, came every second beside the changes: bench:policy, session 61).
   */
  private swept(key: string, ns: string | undefined, why: 'change' | 'later' | 'quiet' | 'age' | 'none'): void {
    if (why === 'quiet') {
      this.onUnswept?.(ns);
      return;
    }
    const l = this.leftover.get(key);
    if (l) l.since = performance.now();
  }

  private noteLeftover(key: string, table: NftTable, change: boolean): void {
    if (!table.leftover) {
      this.leftover.delete(key);
      return;
    }
    const now = performance.now();
    const l = this.leftover.get(key) ?? { since: now, lastChange: now };
    if (change) l.lastChange = now;
    this.leftover.set(key, l);
  }

  /** The kernel's reason for the last refused delta, for the agent's log. */
  lastRefusal = '';
  /** Per table (`ns/family/name`), its last ensure's write if it wrote (datapath.ts): one entry a table. */
  readonly lastWrites = new Map<string, NftWrite>();

  /** Lets go of a namespace's commit helper, which holds it alive: before the namespace is deleted. */
  async release(ns: string): Promise<void> {
    await this.sessions?.release(ns);
  }

  async releaseAll(): Promise<void> {
    await this.sessions?.releaseAll();
  }

  forget(ns: string): void {
    void this.sessions?.release(ns);
    for (const k of this.applied.keys()) if (k.startsWith(`${ns}/`)) this.applied.delete(k);
    for (const k of this.lastWrites.keys()) if (k.startsWith(`${ns}/`)) this.lastWrites.delete(k);
    for (const k of this.leftover.keys()) if (k.startsWith(`${ns}/`)) this.leftover.delete(k);
    this.known.delete(ns);
    this.ours.delete(ns);
    this.reported.delete(ns);
    this.gens.forget(ns);
  }

  /**
   * One `nft -f` transaction; a committed one is counted, so our own commits do not read as drift. The
   * runner's 30 s default killed the replace of a 19 MB table (50,000 mixed rules, 21-38 s here) every
   * time, so that drift was never repaired: the time allowed grows with the script.
   */
  private async commit(ns: string | undefined, script: string, allowFailure: boolean, elements = '') {
    const key = ns ?? '';
    this.inflight.set(key, (this.inflight.get(key) ?? 0) + 1);
    try {
      const r = await this.run(ns, script, allowFailure, elements);
      const k = this.known.get(key);
      if (r.code === 0 && k) k.commits++;
      if (r.code === 0) this.ours.set(key, (this.ours.get(key) ?? 0) + 1);
      return r;
    } finally {
      const n = (this.inflight.get(key) ?? 1) - 1;
      if (n > 0) this.inflight.set(key, n);
      else {
        this.inflight.delete(key);
        this.judge(key);
      }
    }
  }

  /** Whether commits go through weft-nftd here (which also writes map elements itself: table-delta.ts `elements`). */
  private async helperRuns(): Promise<boolean> {
    return this.sessions !== undefined && (await this.sessions.usable());
  }

  private async run(ns: string | undefined, script: string, allowFailure: boolean, elements: string): Promise<CommitResult> {
    const timeoutMs = nftTimeoutMs(script, elements);
    const viaHelper = (await this.helperRuns()) ? this.sessions?.commit(ns, script, timeoutMs, elements) : undefined;
    if (!viaHelper && elements !== '') return NO_HELPER;
    if (!viaHelper) return this.runner.run(inNs(ns, ['nft', '-f', '-']), { input: script, allowFailure, timeoutMs });
    const r = await viaHelper;
    if (r.code !== 0 && !allowFailure) throw new ExecError(inNs(ns, ['weft-nftd']), r.code, r.stderr);
    return r;
  }

  private async terseMatches(ns: string | undefined, t: NftTable, terse: string | undefined): Promise<boolean> {
    if (terse === undefined) return false;
    const now = await this.terse(ns, t);
    return now !== undefined && now === terse;
  }

  /**
   * The terse listing, kept only where it will be compared: in an owned namespace whose generation can
   * be read it never is, and listing costs as much as fetching every element (~20 s for a million).
   */
  private async terseIfNeeded(ns: string | undefined, t: NftTable, owned: boolean | undefined): Promise<string | undefined> {
    return owned && this.gens.available ? undefined : this.terse(ns, t);
  }

  /** Per namespace, every transaction of ours that committed (listedAfterWrite counts them across a write). */
  private readonly ours = new Map<string, number>();

  /**
   * The generation just before a write whose listing will be kept (a table listed in a namespace we
   * do not own), with our commit count then; undefined where no listing is kept or no generation can
   * be read.
   */
  private async beforeWrite(ns: string | undefined, owned: boolean | undefined): Promise<{ gen: string; ours: number } | undefined> {
    if (owned && this.gens.available) return undefined;
    const gen = await this.gens.readNow(ns);
    return gen === undefined ? undefined : { gen, ours: this.ours.get(ns ?? '') ?? 0 };
  }

  /**
   * The listing taken after our own write, to compare later checks with. Someone else's commit between
   * the generation read just before the write and the one read just after the listing may be in it,
   * and every later check would then vouch for it (drift never repaired): the listing is kept only if
   * the generation moved by exactly our own commits in between. Otherwise nothing is kept and the next
   * check writes the table whole. The window is the write and the listing, not the pass: a busy host
   * namespace (other software committing to its own tables) rarely falls in it. Where the generation
   * cannot be read (no helper, or it failed), the listing is kept as it is: that gap stays.
   */
  private async listedAfterWrite(ns: string | undefined, t: NftTable, owned: boolean | undefined, before: { gen: string; ours: number } | undefined): Promise<string | undefined> {
    const terse = await this.terseIfNeeded(ns, t, owned);
    if (terse === undefined || before === undefined) return terse;
    const now = await this.gens.readNow(ns);
    if (now === undefined) return terse;
    const ours = (this.ours.get(ns ?? '') ?? 0) - before.ours;
    return compare(now, advance(before.gen, ours)) === 'same' ? terse : undefined;
  }

  /** The table as the kernel lists it; undefined when it cannot be listed (never a match). */
  private async terse(ns: string | undefined, t: NftTable): Promise<string | undefined> {
    // A table with checked maps (the host table, all of whose maps are) is listed whole, elements and
    // all, in one command; any other tersely (chains and map headers).
    const r = await this.runner.run(inNs(ns, ['nft', ...(listedWhole(t) ? [] : ['-t']), 'list', 'table', t.family, t.name]), { allowFailure: true });
    if (r.code !== 0) return undefined;
    // Counters count: their values are not a change to the table.
    return r.stdout.replace(/packets \d+ bytes \d+/g, '');
  }
}

/** Whether `t` is listed with its elements: it has a checked map (NftMap.checked). */
const listedWhole = (t: NftTable): boolean => t.maps.some((m) => m.checked);

/** Whether the elements in `b`'s listing differ from `a`'s: any map's, if listed whole (else none are listed). */
function checkedChanged(a: NftTable, b: NftTable): boolean {
  if (!listedWhole(b)) return false;
  for (const m of b.maps) {
    const was = a.maps.find((x) => x.name === m.name);
    if (was === undefined || was.elements.length !== m.elements.length || was.elements.some((e, i) => e !== m.elements[i])) return true;
  }
  return false;
}

/** What `run` gives when elements were to be written and no helper was free to write them. */
const NO_HELPER: CommitResult = { code: 2, stdout: '', stderr: 'no weft-nftd free to write map elements' };

/** How long one `nft -f` may run: 30 s, and 10 s more per MB of script (and of the helper's lines with it). */
export function nftTimeoutMs(script: string, elements = ''): number {
  return 30_000 + Math.ceil((script.length + elements.length) / 1e6) * 10_000;
}
