/** What the kept history is bounded by, and where to cut it. Pure, shared by the stores that keep their own log. */
export interface HistoryBounds {
  /** Revisions to keep. */
  limit: number;
  /** Bytes to keep (keys plus JSON values). */
  bytes: number;
}

/** What one change costs in the kept history: its key and its JSON value, in UTF-8 bytes. */
export const changeBytes = (key: string, json: string): number => Buffer.byteLength(key) + Buffer.byteLength(json);

/**
 * The highest revision to drop, reading the kept log oldest first: every revision up to `newest - limit`,
 * then whole oldest revisions while the rest is larger than `bytes`; never the newest revision (a single
 * change larger than the bound is still delivered to watchers). Returns `compacted` when nothing goes.
 */
export function trimPoint(
  rows: Iterable<{ rev: number; bytes: number }>,
  state: { compacted: number; keptBytes: number; newest: number },
  bounds: HistoryBounds,
): { upTo: number; dropped: number } {
  const floor = state.newest - bounds.limit;
  let upTo = state.compacted;
  let dropped = 0;
  for (const r of rows) {
    if (r.rev !== upTo) {
      // A new revision begins: drop it only if a bound still requires it.
      if (r.rev >= state.newest) break;
      if (r.rev > floor && state.keptBytes - dropped <= bounds.bytes) break;
      upTo = r.rev;
    }
    dropped += r.bytes;
  }
  return { upTo: Math.max(upTo, floor), dropped };
}
