import { Worker } from 'node:worker_threads';
import { WeftError } from '../model/index.js';
import type { HistoryBounds } from './history.js';
import { encodeCommit, type CommitRequest } from './sqlite-write.js';

/** What the writer thread starts with. */
export interface WriterStart { file: string; bounds: HistoryBounds }
export type WriterRequest = { id: number } & ({ op: 'commit'; req: CommitRequest | string } | { op: 'probe' } | { op: 'settings' } | { op: 'close' });
export type WriterReply = { id: number; value?: unknown; error?: { message: string; code?: string } };

interface Waiting { resolve: (v: unknown) => void; reject: (e: unknown) => void }

/** The writer thread stopped while a request waited: whether a commit in it was made, only the file can say. */
export class WriterStopped extends WeftError {
  constructor(why: string) {
    super('WEFT_STORE_UNAVAILABLE', `the SQLite store's writer thread stopped (${why}); a write in progress may or may not have been made: re-read and retry`);
  }
}

/**
 * The SQLite store's writer thread, seen from the event loop: each request is one message, answered in
 * order. The thread holds the process open only while a request waits for it. If it dies, the requests
 * waiting fail as the store being unavailable (whether their write was made is unknown), and the next
 * request starts a new thread.
 */
export class WriterThread {
  private worker: Worker | undefined;
  private closing = false;
  private readonly waiting = new Map<number, Waiting>();
  private nextId = 0;

  constructor(private readonly start: WriterStart) {
    this.worker = this.spawn();
  }

  private spawn(): Worker {
    const w = new Worker(new URL('./sqlite-worker.js', import.meta.url), { workerData: this.start });
    w.unref();
    w.on('message', (m: WriterReply) => {
      const waiting = this.waiting.get(m.id);
      if (!waiting) return;
      this.waiting.delete(m.id);
      if (this.waiting.size === 0) w.unref();
      if (m.error) waiting.reject(Object.assign(new Error(m.error.message), m.error.code ? { code: m.error.code } : {}));
      else waiting.resolve(m.value);
    });
    w.on('error', (e) => this.lost(w, e.message));
    w.on('exit', (code) => this.lost(w, `exit code ${code}`));
    return w;
  }

  private lost(w: Worker, why: string): void {
    if (this.worker !== w) return;
    this.worker = undefined;
    const e = new WriterStopped(why);
    for (const waiting of this.waiting.values()) waiting.reject(e);
    this.waiting.clear();
  }

  call(request: { op: 'commit'; req: CommitRequest } | { op: 'probe' } | { op: 'settings' }): Promise<unknown> {
    if (this.closing) return Promise.reject(new WeftError('WEFT_STORE_UNAVAILABLE', 'the SQLite store is closed'));
    const w = (this.worker ??= this.spawn());
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      w.ref();
      const message: WriterRequest = request.op === 'commit' ? { id, op: 'commit', req: encodeCommit(request.req) ?? request.req } : { id, ...request };
      w.postMessage(message);
    });
  }

  /** Closes the thread's connection and ends the thread. */
  async close(): Promise<void> {
    this.closing = true;
    const w = this.worker;
    if (!w) return;
    const id = this.nextId++;
    const closed = new Promise<unknown>((resolve, reject) => this.waiting.set(id, { resolve, reject }));
    w.ref();
    w.postMessage({ id, op: 'close' } satisfies WriterRequest);
    await closed.catch(() => undefined);
    this.worker = undefined;
    await w.terminate();
  }
}
