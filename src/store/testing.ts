import { MemoryStore } from './memory.js';
import type { Change } from './port.js';

/** A memory store whose feed can lose commits, as etcd's can after a compaction (its `lost` callbacks). For tests. */
export class LossyStore extends MemoryStore {
  private readonly lostListeners = new Set<() => void>();

  override subscribe(listener: (c: Change[]) => void, lost?: () => void): () => void {
    const stop = super.subscribe(listener);
    if (lost) this.lostListeners.add(lost);
    return () => { stop(); if (lost) this.lostListeners.delete(lost); };
  }

  lose(): void {
    for (const l of this.lostListeners) l();
  }
}
