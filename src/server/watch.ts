import type { ServerResponse } from 'node:http';
import { publicChange, visibleTo, type Principal, type PublicChange } from '../control/index.js';
import type { Change } from '../store/index.js';

/** Changes read from the store per page when a watch replays history. */
export const REPLAY_PAGE = 500;

/** The changes `p` may see, without secrets. */
export function visible(p: Principal, changes: Change[]): PublicChange[] {
  const out: PublicChange[] = [];
  for (const c of changes) {
    const pc = publicChange(c);
    if (pc && visibleTo(p, pc)) out.push(pc);
  }
  return out;
}

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
    for (const c of changes) this.queuedBytes += c.key.length + JSON.stringify(c.value ?? null).length;
    if (this.queuedBytes > this.bufferBytes) this.drop(this.queuedBytes);
  }

  /** Sends history after `since` (`first` is its first page), waiting for the client to take each page; then goes live. */
  async replay(since: number, first: Change[], next: (after: number) => Promise<Change[]>): Promise<void> {
    this.last = since;
    let page = first;
    while (page.length > 0 && !this.ended) {
      this.send(page);
      if (this.res.writableNeedDrain) await drained(this.res);
      page = this.ended ? [] : await next(this.last);
    }
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
    const text = visible(this.p, fresh).map((c) => JSON.stringify(c)).join('\n');
    if (text) this.write(`${text}\n`);
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
