import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Type } from '@sinclair/typebox';
import { publicChange, visibleTo, type Principal, type PublicChange } from '../../control/index.js';
import type { Change } from '../../store/index.js';
import { principalOf } from '../context.js';

const Revision = Type.String({ pattern: '^[0-9]{1,15}$' });
const HistoryQuery = Type.Object({ since: Type.Optional(Revision), limit: Type.Optional(Type.String({ pattern: '^[1-9][0-9]{0,4}$' })) }, { additionalProperties: false });
const WatchQuery = Type.Object({ since: Type.Optional(Revision) }, { additionalProperties: false });
const BOOKMARK_MS = 15_000;

function visible(p: Principal, changes: Change[]): PublicChange[] {
  const out: PublicChange[] = [];
  for (const c of changes) {
    const pc = publicChange(c);
    if (pc && visibleTo(p, pc)) out.push(pc);
  }
  return out;
}

/** A stream ends when the credential it was opened with does (a token's expiry, a certificate's end). Returns a cancel. */
function endAtExpiry(req: FastifyRequest, end: () => void): () => void {
  const at = Date.parse(req.principal?.expiresAt ?? '');
  if (Number.isNaN(at)) return () => undefined;
  let timer: NodeJS.Timeout;
  // setTimeout holds at most 2^31-1 ms (24.8 days); a longer wait would fire at once, so wait in steps.
  const wait = () => {
    timer = setTimeout(() => (Date.now() >= at ? end() : wait()), Math.min(Math.max(at - Date.now(), 0), 2 ** 31 - 1));
  };
  wait();
  return () => clearTimeout(timer);
}

export function changeRoutes(app: FastifyInstance): void {
  const store = app.control.store;

  app.get<{ Querystring: { since?: string; limit?: string } }>('/api/v1/history', {
    schema: { querystring: HistoryQuery, tags: ['changes'], summary: 'The change history: every write with its revision, time and actor' },
  }, async (req) => {
    const p = principalOf(req);
    const compacted = await store.compactedRevision();
    const since = req.query.since === undefined ? compacted : Number(req.query.since);
    const limit = Number(req.query.limit ?? 1000);
    const page = await store.changes(since, limit);
    const last = page[page.length - 1]?.revision;
    const revision = await store.revision();
    return { items: visible(p, page), revision, compactedRevision: compacted, ...(last !== undefined && last < revision ? { next: last } : {}) };
  });

  /**
   * NDJSON: one change per line from `since` (exclusive), then live. A periodic bookmark line carries the
   * current revision so an idle watcher can resume cheaply. 410 when `since` was compacted: re-list.
   */
  app.get<{ Querystring: { since?: string } }>('/api/v1/watch', {
    schema: { querystring: WatchQuery, tags: ['changes'], summary: 'Stream changes as NDJSON from a revision' },
  }, async (req, reply) => {
    const p = principalOf(req);
    const pending: Change[] = [];
    let live = false;
    let last = 0;
    const write = (changes: Change[]) => {
      const lines = visible(p, changes.filter((c) => c.revision > last)).map((c) => JSON.stringify(c)).join('\n');
      const top = changes[changes.length - 1]?.revision;
      if (top !== undefined && top > last) last = top;
      if (lines) reply.raw.write(`${lines}\n`);
    };
    // Subscribe before reading the backlog so nothing committed in between is lost.
    const unsubscribe = store.subscribe((changes) => (live ? write(changes) : pending.push(...changes)));
    try {
      const since = req.query.since === undefined ? await store.revision() : Number(req.query.since);
      const backlog = await store.changes(since);
      last = since;
      reply.hijack();
      reply.raw.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-cache', 'x-weft-revision': String(since) });
      // Without this Node holds the headers until the first line, and a watcher with nothing to replay
      // would not see its 200 until the first change or bookmark.
      reply.raw.flushHeaders();
      write(backlog);
      write(pending);
      live = true;
      app.metrics.watchers.inc();
      const timer = setInterval(() => reply.raw.write(`${JSON.stringify({ op: 'bookmark', revision: last })}\n`), BOOKMARK_MS);
      const end = () => reply.raw.destroy();
      const forget = app.streams.add({ principal: p, stillValid: () => req.reauthenticate().then(() => true), end });
      const cancelExpiry = endAtExpiry(req, end);
      reply.raw.on('close', () => {
        clearInterval(timer);
        cancelExpiry();
        forget();
        unsubscribe();
        app.metrics.watchers.dec();
      });
    } catch (e) {
      unsubscribe();
      throw e;
    }
  });
}
