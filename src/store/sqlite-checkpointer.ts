// The SQLite store's checkpointer thread: copies the WAL into the database file every CHECKPOINT_MS with
// its own connection (PASSIVE: it never blocks the writer or the readers), so the writer's commits never
// wait for a checkpoint (they did, every 1,000 pages, for 10-20 ms: the pipeline's worst stalls).
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';

const CHECKPOINT_MS = 200;
const { file } = workerData as { file: string };
const db = new Database(file, { timeout: 1000 });
const timer = setInterval(() => {
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
  } catch {
    // Busy or failing now: the next tick tries again, and the writer checkpoints by itself past its bound.
  }
}, CHECKPOINT_MS);

parentPort?.on('message', (m: { op: 'close' }) => {
  if (m.op !== 'close') return;
  clearInterval(timer);
  db.close();
  parentPort?.postMessage({ closed: true });
});
