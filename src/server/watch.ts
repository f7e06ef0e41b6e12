import type { ServerResponse } from 'node:http';
import { publicChange, visibilityKey, visibleTo, type Floors, type Principal, type PublicChange } from '../control/index.js';
import type { Change } from '../store/index.js';

/** Changes read from the store per page when a watch replays history. */
export const REPLAY_PAGE = 500;

/** The changes `p` may see, without secrets. */
export function visible(p: Principal, changes: Change[], floors?: Floors): PublicChange[] {
  const out: PublicChange[] = [];
  for (const c of changes) {
    const pc = publicOf(c)?.pc;
    if (pc && visibleTo(p, pc, floors)) out.push(pc);
  }
  return out;
}

/**
 * A change's public form and its line, made once however many streams send it: the store hands every
 * subscriber the same Change objects, and before this each stream stringified each change itself (a
 * 10,000-rule policy put again: 159 changes, 3 MB of lines, ~22 ms of the event loop per stream; with
 * 1,000 agents watching, 22 s). null: the change is internal (never published).
 */
const publicLines = new WeakMap<Change, { pc: PublicChange; line: string } | null>();

function publicOf(c: Change): { pc: PublicChange; line: string } | null {
  let v = publicLines.get(c);
  if (v === undefined) {
    const pc = publicChange(c);
    v = pc ? { pc, line: JSON.stringify(pc) } : null;
    publicLines.set(c, v);
  }
  return v;
}

/** Principals with the same key are sent the same lines of a commit (visibleTo answers alike for them). */
function viewOf(p: Principal): string {
  return p.role === 'admin' ? 'admin' : visibilityKey(p);
}

/** A commit's text for each view, joined once: live streams take whole commits, the same array each. */
const commitTexts = new WeakMap<Change[], Map<string, string>>();

/** The lines of `changes` that `p` may see, each ending in a newline ('' if none). */
function linesFor(p: Principal, changes: Change[], whole = false, floors?: Floors): string {
  const view = whole && floors === undefined ? viewOf(p) : undefined;
  const kept = view === undefined ? undefined : commitTexts.get(changes)?.get(view);
  if (kept !== undefined) return kept;
  let text = '';
  for (const c of changes) {
    const v = publicOf(c);
    if (v && visibleTo(p, v.pc, floors)) text += `${v.line}\n`;
  }
  if (view !== undefined) {
    let byView = commitTexts.get(changes);
    if (!byView) commitTexts.set(changes, (byView = new Map()));
    byView.set(view, text);
  }
  return text;
}

/** Lets the event loop turn: a replay of pages the principal cannot see writes nothing, so never waits to drain. */
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

const topOf = (changes: Change[]) => changes[changes.length - 1]?.revision ?? 0;

/**
 * One watch stream: replays history page by page at the pace the client reads, then streams commits as
 * they happen. Nothing grows without bound: commits arriving during the replay wait in a queue, and live
 * lines in the socket's buffer; once either holds more than `bufferBytes` unsent, the stream is ended (the
 * client re-lists, as after any break) rather than buffered for a client that does not read. The check is
 * made before a line is queued, so one change larger than the bound still reaches a client that reads.
 */
export class WatchStream {
  private last = -1;
  private live = false;
  private ended = false;
  private queued: Change[] = [];
  private queuedBytes = 0;
  /** While replaying history: the principal's tenants' present incarnations (control/changes.ts). */
  private floors: Floors | undefined;

  constructor(
    private readonly res: ServerResponse,
    private readonly p: Principal,
    private readonly bufferBytes: number,
    private readonly onDrop: (unsentBytes: number) => void,
  ) {}

  /** Bytes waiting for the client: queued during the replay, or in the socket's buffer. */
  get unsent(): number {
    return this.ended ? 0 : this.queuedBytes + this.res.writableLength;
  }

  /** Every commit, from the store's subscription (made before the replay starts, so nothing falls between). */
  offer(changes: Change[]): void {
    if (this.ended) return;
    if (this.live) {
      this.send(changes);
      return;
    }
    this.queued.push(...changes);
    for (const c of changes) this.queuedBytes += c.key.length + (publicOf(c)?.line.length ?? 0);
    if (this.queuedBytes > this.bufferBytes) this.drop(this.queuedBytes);
  }

  /** Sends history after `since` (`first` is its first page), waiting for the client to take each page; then goes live. */
  async replay(since: number, first: Change[], next: (after: number) => Promise<Change[]>, floors?: Floors): Promise<void> {
    this.last = since;
    this.floors = floors;
    let page = first;
    while (page.length > 0 && !this.ended) {
      this.send(page);
      // Each page waits for the client to take it, or at least for a turn of the event loop: the store
      // reads a page synchronously (SQLite), and a tenant replaying 100,000 revisions of others' changes
      // (heartbeats, other tenants) would otherwise hold the server for the whole of it (267 ms at 50,000).
      if (this.res.writableNeedDrain) await drained(this.res);
      else await turn();
      page = this.ended ? [] : await next(this.last);
    }
    this.floors = undefined;
    if (this.ended) return;
    const queued = this.queued;
    this.queued = [];
    this.queuedBytes = 0;
    this.live = true;
    this.send(queued);
  }

  /** A periodic line with the current revision, so an idle client can resume cheaply. */
  bookmark(): void {
    if (this.live && !this.ended) this.write(`${JSON.stringify({ op: 'bookmark', revision: this.last })}\n`);
  }

  end(): void {
    this.ended = true;
    this.queued = [];
  }

  private send(changes: Change[]): void {
    const fresh = changes.filter((c) => c.revision > this.last);
    if (fresh.length === 0) return;
    this.last = Math.max(this.last, topOf(fresh));
    const whole = this.live && fresh.length === changes.length;
    const text = linesFor(this.p, whole ? changes : fresh, whole, this.floors);
    if (text) this.write(text);
  }

  private write(text: string): void {
    if (this.live && this.res.writableLength > this.bufferBytes) {
      this.drop(this.res.writableLength);
      return;
    }
    this.res.write(text);
  }

  private drop(unsent: number): void {
    this.end();
    this.onDrop(unsent);
    this.res.destroy();
  }
}

/** Resolves when `res` can take more, or is gone. */
function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}
