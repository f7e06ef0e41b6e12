// The SQLite store's writer thread: one connection, the only one that writes, answering the store's
// requests in order (sqlite-thread.ts sends them). Errors go back as their message and SQLite code.
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { SqliteWriter, decodeCommit } from './sqlite-write.js';
import type { WriterReply, WriterRequest, WriterStart } from './sqlite-thread.js';

const start = workerData as WriterStart;
let db: Database.Database | undefined;
let writer: SqliteWriter | undefined;
let opening: unknown;
try {
  // The store's own connection holds the file (see SqliteStore): wait for its short reads, never fail on them.
  db = new Database(start.file, { timeout: 5000 });
  writer = new SqliteWriter(db, start.bounds);
} catch (e) {
  opening = e;
  db?.close();
}

const errorOf = (e: unknown) => ({
  message: e instanceof Error ? e.message : String(e),
  ...(typeof (e as { code?: unknown } | undefined)?.code === 'string' ? { code: (e as { code: string }).code } : {}),
});

function answer(m: WriterRequest): unknown {
  if (m.op === 'close') {
    db?.close();
    writer = undefined;
    return undefined;
  }
  if (!writer) throw opening ?? new Error('the writer is closed');
  if (m.op === 'commit') {
    const req = typeof m.req === 'string' ? decodeCommit(m.req) : m.req;
    // The transaction alone (its statements, fsync, any checkpoint or log compaction): what the store's
    // commit-time metric reports.
    const t0 = performance.now();
    writer.commit(req);
    return (performance.now() - t0) / 1000;
  }
  if (m.op === 'probe') return writer.probe();
  return writer.settings();
}

parentPort?.on('message', (m: WriterRequest) => {
  let reply: WriterReply;
  try {
    reply = { id: m.id, value: answer(m) };
  } catch (e) {
    reply = { id: m.id, error: errorOf(e) };
  }
  parentPort?.postMessage(reply);
  // A thread that could not open the file says why once and ends: the next request starts a new one,
  // which tries again (a file limit or a disk reached for the moment is not for ever).
  if (opening !== undefined) process.exit(1);
});
