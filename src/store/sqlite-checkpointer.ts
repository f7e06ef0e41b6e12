// The SQLite store's checkpointer thread: copies the WAL into the database file with its own connection
// (PASSIVE: it never blocks the writer or the readers), so the writer's commits never wait for a
// checkpoint (they did, every 1,000 pages, for 10-20 ms: the pipeline's worst stalls). It checkpoints at
// the size the writer used to (~1,000 pages), not on a clock: a WAL that starts over often recycles its
// space, and on a full disk small commits and the health probe then landed in it while every write that
// grew the file was refused (disk-full.e2e.test.ts).
import { statSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';

const POLL_MS = 100;
/** ~1,000 WAL frames of a 4 KiB page (SQLite's own default threshold). */
const CHECKPOINT_BYTES = 1000 * (4096 + 24);
const { file } = workerData as { file: string };
const db = new Database(file, { timeout: 1000 });
const walBytes = () => {
  try {
    return statSync(`${file}-wal`).size;
  } catch {
    return 0;
  }
};
const timer = setInterval(() => {
  if (walBytes() < CHECKPOINT_BYTES) return;
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
  } catch {
    // Busy or failing now: the next tick tries again, and the writer checkpoints by itself past its bound.
  }
}, POLL_MS);

parentPort?.on('message', (m: { op: 'close' }) => {
  if (m.op !== 'close') return;
  clearInterval(timer);
  db.close();
  parentPort?.postMessage({ closed: true });
});
