import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ExecError, type LineProcess, type Runner } from '../../exec/index.js';
import { inNs } from './observe.js';

/** dist/weft-nftd, built from nftd.c by scripts/build-shim.mjs (absent without a C compiler). */
export const NFTD = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'weft-nftd');

/** A namespace's helper is let go after this long without a commit (the next one starts it again: ~5 ms). */
export const IDLE_MS = 30_000;
/**
 * Helpers running at once (~2 MB each): past it the least recently used idle one is let go, or, when all
 * are busy (a resync of hundreds of tenants), the commit is an `nft -f`.
 */
export const MAX_SESSIONS = 32;

/** What one commit gave: nft's exit code (0 or 1) and what it said, as `nft -f` would. */
export interface CommitResult { code: number; stdout: string; stderr: string }

interface Pending { resolve: (r: CommitResult) => void; reject: (e: Error) => void; said: string[]; timer: NodeJS.Timeout }

/** One namespace's weft-nftd: commits go to it one at a time, in order. */
class Session {
  private pending: Pending | undefined;
  private tail: Promise<unknown> = Promise.resolve();
  /** Commits asked for and not yet answered. */
  private queued = 0;
  private idle: NodeJS.Timeout | undefined;
  readonly exited: Promise<number>;
  private proc: LineProcess;
  private ended = false;

  constructor(runner: Required<Pick<Runner, 'start'>>, readonly argv: string[], private readonly onIdle: () => void) {
    let done!: (code: number) => void;
    this.exited = new Promise((r) => (done = r));
    this.proc = runner.start(argv, (l) => this.line(l), (code) => {
      this.ended = true;
      if (this.idle) clearTimeout(this.idle);
      this.fail(new ExecError(argv, code, `weft-nftd ended (exit ${code}) during a commit: whether it was committed is unknown`));
      done(code);
    });
  }

  get alive(): boolean {
    return !this.ended;
  }

  get busy(): boolean {
    return this.queued > 0;
  }

  /** Queued behind the commits before it; the timeout ends the helper (as a runner kills a slow `nft`). */
  commit(script: string, timeoutMs: number, elements: string): Promise<CommitResult> {
    this.queued++;
    const run = this.tail.then(() => this.send(script, timeoutMs, elements)).finally(() => this.queued--);
    this.tail = run.catch(() => undefined);
    return run;
  }

  stop(): void {
    if (this.idle) clearTimeout(this.idle);
    this.proc.stop();
  }

  private send(script: string, timeoutMs: number, elements: string): Promise<CommitResult> {
    if (this.ended) return Promise.reject(new ExecError(this.argv, -1, 'weft-nftd is not running'));
    if (this.idle) clearTimeout(this.idle);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        // Ended now, not when its exit is seen: an answer still in the pipe must not go to the next commit.
        this.ended = true;
        this.fail(new ExecError(this.argv, 128, `weft-nftd: no answer within ${timeoutMs} ms; stopped`));
        this.stop();
      }, timeoutMs);
      this.pending = { resolve, reject, said: [], timer };
      // The helper reads LENGTH bytes after the header (and ELEMENTS more); `send` ends the text with one
      // more newline, the script's or the elements'.
      if (elements === '') this.proc.send(`${Buffer.byteLength(script) + 1}\n${script}`);
      else this.proc.send(`${Buffer.byteLength(script)} ${Buffer.byteLength(elements) + 1}\n${script}${elements}`);
    });
  }

  private line(l: string): void {
    const p = this.pending;
    if (!p || this.ended) return;
    if (l.startsWith('| ')) {
      p.said.push(l.slice(2));
      return;
    }
    if (l !== 'ok' && l !== 'err') return;
    clearTimeout(p.timer);
    this.pending = undefined;
    p.resolve({ code: l === 'ok' ? 0 : 1, stdout: '', stderr: p.said.length ? `${p.said.join('\n')}\n` : '' });
    this.idle = setTimeout(this.onIdle, IDLE_MS);
    this.idle.unref();
  }

  private fail(e: Error): void {
    const p = this.pending;
    if (!p) return;
    clearTimeout(p.timer);
    this.pending = undefined;
    p.reject(e);
  }
}

/**
 * nft commits through weft-nftd (nftd.c): per namespace one helper holding its netlink socket open, so a
 * commit costs nft's own work, not an exec of nsenter and nft and the kernel's wait at socket close (18 →
 * 3 ms for one rule beside 50,000 rules' maps). A helper pins its namespace while it runs: `release`
 * before deleting one. Absent (no helper built, a runner without `start`, or the helper cannot start
 * here): callers run `nft -f`.
 */
export class NftSessions {
  private readonly sessions = new Map<string, Session>();
  private checked: Promise<boolean> | undefined;

  private constructor(private readonly runner: Required<Pick<Runner, 'start' | 'run'>>, private readonly helper: string, private readonly max: number) {}

  static create(runner: Runner, helper = NFTD, max = MAX_SESSIONS): NftSessions | undefined {
    if (!runner.start || !existsSync(helper)) return undefined;
    return new NftSessions(runner as Required<Pick<Runner, 'start' | 'run'>>, helper, max);
  }

  /** Whether the helper runs here (it links libnftables.so.1): asked once. */
  usable(): Promise<boolean> {
    this.checked ??= this.runner.run([this.helper], { input: '', allowFailure: true, timeoutMs: 10_000 }).then((r) => r.code === 0, () => false);
    return this.checked;
  }

  /**
   * One script as one transaction in `ns` (undefined: this process's namespace), with the map elements
   * the helper writes itself after the script's commands (nft-elements.ts lines; table-delta.ts
   * `elements`); undefined when no helper can take it now (MAX_SESSIONS busy): the caller runs `nft -f`.
   * Throws when nothing can say whether it was committed.
   */
  commit(ns: string | undefined, script: string, timeoutMs: number, elements = ''): Promise<CommitResult> | undefined {
    const key = ns ?? '';
    let s = this.sessions.get(key);
    if (s?.alive) {
      // Most recently used last: the map's order is the eviction order.
      this.sessions.delete(key);
      this.sessions.set(key, s);
      return s.commit(script, timeoutMs, elements);
    }
    if (this.sessions.size >= this.max) {
      const idle = [...this.sessions].find(([, x]) => !x.busy);
      if (!idle) return undefined;
      void this.release(idle[0] === '' ? undefined : idle[0]);
    }
    const made = new Session(this.runner, inNs(ns, [this.helper]), () => { if (this.sessions.get(key) === made) void this.release(ns); });
    this.sessions.set(key, (s = made));
    return s.commit(script, timeoutMs, elements);
  }

  /** Lets a namespace's helper go; resolves once it has ended (its socket no longer holds the namespace). */
  async release(ns: string | undefined): Promise<void> {
    const key = ns ?? '';
    const s = this.sessions.get(key);
    if (!s) return;
    this.sessions.delete(key);
    s.stop();
    await s.exited;
  }

  /** Every helper let go (the agent stops). */
  async releaseAll(): Promise<void> {
    await Promise.all([...this.sessions.keys()].map((k) => this.release(k === '' ? undefined : k)));
  }

  /** The helpers running now, by namespace ('' this process's): for tests and diagnostics. */
  get running(): string[] {
    return [...this.sessions].filter(([, s]) => s.alive).map(([k]) => k);
  }
}
