import type { ServerResponse } from 'node:http';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Type } from '@sinclair/typebox';
import { principalOf } from '../context.js';
import { floorsOf, type Principal } from '../../control/index.js';
import { REPLAY_PAGE, WatchStream, visible } from '../watch.js';
import { WeftError } from '../../model/index.js';

const Revision = Type.String({ pattern: '^[0-9]{1,15}$' });
const HistoryQuery = Type.Object({ since: Type.Optional(Revision), limit: Type.Optional(Type.String({ pattern: '^[1-9][0-9]{0,4}$' })) }, { additionalProperties: false });
const WatchQuery = Type.Object({ since: Type.Optional(Revision) }, { additionalProperties: false });
const BOOKMARK_MS = 15_000;
/** At most this many changes are read for one history page, however few of them the caller may see. */
const HISTORY_SCAN = 20_000;

/** A stream shows what its principal could see when it opened: a demoted user's stream must end, not go on. */
export function samePowers(a: Principal, b: Principal): boolean {
  return a.user === b.user && a.role === b.role && a.host === b.host && a.tenants.length === b.tenants.length && a.tenants.every((t) => b.tenants.includes(t));
}

/** A stream ends when the credential it was opened with does (a token's expiry, a certificate's end). Returns a cancel. */
export function endAtExpiry(req: FastifyRequest, end: () => void): () => void {
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

/**
 * A revision past the store's own was read from another store's history: one restored from an older
 * copy, or made anew under the same address. Served as usual, the stream would skip every change until
 * the store's revisions caught up with it (an agent would enforce what it last saw, silently); a 410, as
 * for a compacted revision, makes the client re-list.
 */
async function refuseAhead(store: FastifyInstance['control']['store'], since: number): Promise<void> {
  const now = await store.revision();
  if (since > now) {
    throw new WeftError('WEFT_REVISION_AHEAD', `since: revision ${since} is ahead of this store's (${now}): the store was restored from an older copy or made anew; re-list`, { field: 'since' });
  }
}

export function changeRoutes(app: FastifyInstance): void {
  const store = app.control.store;

  app.get<{ Querystring: { since?: string; limit?: string } }>('/api/v1/history', {
    schema: { querystring: HistoryQuery, tags: ['changes'], summary: 'The change history: every write with its revision, time and actor' },
  }, async (req) => {
    const p = principalOf(req);
    const compacted = await store.compactedRevision();
    const since = req.query.since === undefined ? compacted : Number(req.query.since);
    await refuseAhead(store, since);
    const limit = Number(req.query.limit ?? 1000);
    const floors = await floorsOf(p, (t) => app.control.tenants.createdAt(t));
    // Read a page at a time with a turn of the event loop between (a synchronous read of 100,000 rows held
    // the server for ~300 ms), until `limit` changes the caller may see, or HISTORY_SCAN rows, are read.
    const items: ReturnType<typeof visible> = [];
    let after = since;
    let scanned = 0;
    let last: number | undefined;
    while (items.length < limit && scanned < HISTORY_SCAN) {
      const page = await store.changes(after, REPLAY_PAGE);
      if (page.length === 0) break;
      items.push(...visible(p, page, floors));
      scanned += page.length;
      last = after = page[page.length - 1]!.revision;
      if (items.length >= limit) {
        // End with the revision of the limit-th change (a revision is never split): the next page starts after it.
        last = items[limit - 1]!.revision;
        const cut = items.findIndex((c) => c.revision > (last as number));
        if (cut >= 0) items.length = cut;
        break;
      }
      await new Promise<void>((r) => setImmediate(r));
    }
    const revision = await store.revision();
    return { items, revision, compactedRevision: compacted, ...(last !== undefined && last < revision ? { next: last } : {}) };
  });

  /**
   * NDJSON: one change per line from `since` (exclusive), then live. A periodic bookmark line carries the
   * current revision so an idle watcher can resume cheaply. 410 when `since` was compacted: re-list.
   * Exempt from --request-timeout; limited per principal (--max-watchers) and in unsent bytes (--watch-buffer).
   */
  app.get<{ Querystring: { since?: string } }>('/api/v1/watch', {
    config: { longLived: true },
    schema: { querystring: WatchQuery, tags: ['changes'], summary: 'Stream changes as NDJSON from a revision' },
  }, async (req, reply) => {
    const { stream, close } = attachWatch(app, req, reply.raw);
    try {
      const since = req.query.since === undefined ? await store.revision() : Number(req.query.since);
      await refuseAhead(store, since);
      const first = await store.changes(since, REPLAY_PAGE);
      reply.hijack();
      reply.raw.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-cache', 'x-weft-revision': String(since) });
      // Without this Node holds the headers until the first line, and a watcher with nothing to replay
      // would not see its 200 until the first change or bookmark.
      reply.raw.flushHeaders();
      app.metrics.watchers.inc();
      const timer = setInterval(() => stream.bookmark(), BOOKMARK_MS);
      // Revocation (of the host, token or user) and expiry of the credential end the stream.
      const end = () => reply.raw.destroy();
      const opened = principalOf(req);
      const forget = app.streams.add({ principal: opened, stillValid: () => req.reauthenticate().then((now) => samePowers(opened, now)), end });
      const cancelExpiry = endAtExpiry(req, end);
      const closed = () => {
        clearInterval(timer);
        cancelExpiry();
        forget();
        close();
        app.metrics.watchers.dec();
      };
      if (req.raw.socket.destroyed) closed();
      else reply.raw.once('close', closed);
      await stream.replay(since, first, (after) => store.changes(after, REPLAY_PAGE), await floorsOf(opened, (t) => app.control.tenants.createdAt(t))).catch((e: Error) => {
        req.log.warn({ err: e.message }, 'watch replay failed; ending the stream so the client re-lists');
        reply.raw.destroy();
      });
    } catch (e) {
      close();
      throw e;
    }
  });
}

/**
 * Takes one of the principal's watch slots (or refuses with 429) and subscribes a stream to the store
 * before any history is read, so nothing committed in between is lost; `close` undoes it all.
 */
function attachWatch(app: FastifyInstance, req: FastifyRequest, res: ServerResponse): { stream: WatchStream; close(): void } {
  const p = principalOf(req);
  const release = app.watchSlots.take(p);
  const stream = new WatchStream(res, p, app.limits.watchBufferBytes, (unsent) => {
    app.metrics.watchersDropped.inc();
    req.log.warn({ user: p.user, unsent }, 'watch stream ended: its client was not reading (--watch-buffer)');
  });
  // Commits the store lost (its watch resumed past compacted history) would be a silent gap: end the
  // stream, as after any break, so the client resumes from its revision or gets 410 and re-lists.
  const unsubscribe = app.control.store.subscribe((changes) => stream.offer(changes), () => {
    req.log.warn({ user: p.user }, 'watch stream ended: the store lost changes it could not deliver');
    stream.end();
    res.destroy();
  });
  app.watchStreams.add(stream);
  return {
    stream,
    close() {
      app.watchStreams.delete(stream);
      stream.end();
      unsubscribe();
      release();
    },
  };
}
