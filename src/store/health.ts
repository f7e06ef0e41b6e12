import { WeftError } from '../model/index.js';
import type { WriteHealth } from './port.js';

/** The failures that mean "the store could not write" (not a conflict, not the caller's mistake). */
export const isWriteFailure = (e: unknown): e is WeftError =>
  e instanceof WeftError && (e.code === 'WEFT_STORE_FULL' || e.code === 'WEFT_STORE_UNAVAILABLE');

/**
 * What a store found when it last tried to write, shared by the stores that can fail to (SQLite on a full
 * disk, etcd past its quota or out of reach). Only a commit or a probe that reached the disk makes the
 * store writable again: a read-only transaction proves nothing about writing.
 */
export class WriteTracker {
  private failures = 0;
  private error: WeftError | undefined;

  health(): WriteHealth {
    return { writable: this.error === undefined, failures: this.failures, ...(this.error ? { error: this.error } : {}) };
  }

  wrote(): void {
    this.error = undefined;
  }

  /** Notes `e` if it is a write failure; returns it, whatever it is, for the caller to throw. */
  failed(e: unknown): unknown {
    if (isWriteFailure(e)) {
      this.failures++;
      this.error = e;
    }
    return e;
  }

  /** Runs a probe write: never throws, answers the health after it. */
  async probe(write: () => Promise<void>): Promise<WriteHealth> {
    try {
      await write();
      this.wrote();
    } catch (e) {
      this.failed(e);
    }
    return this.health();
  }
}
