import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Client } from '../client/index.js';
import { GLOBAL_DEFAULTS } from '../model/index.js';
import { makeTestPki } from '../testkit/pki.js';
import { within } from '../testkit/host.js';
import { DesiredState } from './state.js';
import { Syncer } from './sync.js';

/**
 * The watch protocol against a tiny fake of the server (TLS, as the client insists): it answers every
 * list with nothing at revision 5 and opens watches that send one bookmark and then either go silent, as a
 * frozen server does (SIGSTOP, a dead host behind a live route), or keep sending bookmarks.
 */
const log = pino({ level: process.env['WEFT_TEST_LOG'] ?? 'silent' });
let dir: string;
let ca: string;
let server: Server;
let url: string;
let lists: number[] = [];
let watches: number[] = [];
let bookmarkEveryMs = 0;
const streams = new Set<ServerResponse>();

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'weft-sync-'));
  const pki = await makeTestPki(dir, []);
  ca = readFileSync(pki.ca, 'utf8');
  server = createServer({ cert: readFileSync(pki.server.cert), key: readFileSync(pki.server.key) }, (req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path === '/api/v1/watch') {
      watches.push(Date.now());
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      const bookmark = () => res.write(`${JSON.stringify({ op: 'bookmark', revision: 5 })}\n`);
      bookmark();
      const timer = bookmarkEveryMs ? setInterval(bookmark, bookmarkEveryMs) : undefined;
      streams.add(res);
      res.on('close', () => {
        clearInterval(timer);
        streams.delete(res);
      });
      return;
    }
    if (path === '/api/v1/tenants') lists.push(Date.now());
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(path === '/api/v1/global' ? GLOBAL_DEFAULTS : { items: [], revision: 5 }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  for (const s of streams) s.destroy();
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  rmSync(dir, { recursive: true, force: true });
});

async function syncing(idleMs: number, t: { after: (fn: () => void) => void }): Promise<Syncer> {
  lists = [];
  watches = [];
  const client = new Client({ servers: [url], token: 't', tls: { ca } });
  const syncer = new Syncer(client, new DesiredState(), () => undefined, log, { retryMs: 100, idleMs });
  t.after(() => {
    syncer.stop();
    client.close();
  });
  await syncer.start();
  return syncer;
}

test('a watch that goes silent is abandoned after the idle bound and the agent re-lists', async (t) => {
  bookmarkEveryMs = 0;
  await syncing(600, t);
  assert.ok(await within(5000, async () => watches.length >= 1, 20) >= 0, 'the watch opened');
  assert.ok(await within(5000, async () => lists.length >= 2, 20) >= 0, `re-listed after a silent watch (lists: ${lists.length})`);
  const noticed = (lists[1] as number) - (watches[0] as number);
  // The bound: the idle time, the pause before a re-list, and slack for a shared machine.
  assert.ok(noticed >= 550 && noticed < 600 + 100 + 1500, `re-listed ${noticed} ms after the last line`);
  assert.ok(await within(3000, async () => watches.length >= 2, 20) >= 0, 'and watched again');
});

test('a watch that keeps sending bookmarks is kept', async (t) => {
  bookmarkEveryMs = 150;
  await syncing(600, t);
  await new Promise((r) => setTimeout(r, 2000));
  assert.deepEqual([lists.length, watches.length], [1, 1], 'one list, one watch in 2 s of bookmarks every 150 ms');
});
