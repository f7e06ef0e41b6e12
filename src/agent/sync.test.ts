import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Client, MAX_LINE_BYTES } from '../client/index.js';
import { GLOBAL_DEFAULTS, LIMIT_DEFAULTS, RuleInput } from '../model/index.js';
import { makeTestPki } from '../testkit/pki.js';
import { within } from '../testkit/host.js';
import { DesiredState } from './state.js';
import { HEALTHY_WATCH_MS, MAX_RETRY_MS, retryPause, Syncer, type SyncTiming } from './sync.js';

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
/** Broken mode: every watch sends one bookmark, then a line that is not JSON (a broken server). */
let garbled = false;
/** Ending mode: every watch ends after this many ms, its bookmarks sent on time until then (0: never). */
let endAfterMs = 0;
/** Endless mode: after the bookmark, a line that never ends, written as fast as the client takes it (up to a cap). */
let endless = false;
let endlessSent = 0;
const ENDLESS_CAP = 256 * 1024 * 1024;
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
      if (garbled) res.write('{"op": "put", \n');
      if (endless) void sendEndless(res);
      const ending = endAfterMs ? setTimeout(() => { clearInterval(timer); res.end(); }, endAfterMs) : undefined;
      res.on('close', () => clearTimeout(ending));
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

/** Writes 'x' without a newline at the pace the client reads, until the cap or the client hangs up. */
async function sendEndless(res: ServerResponse): Promise<void> {
  const chunk = Buffer.alloc(64 * 1024, 'x');
  while (!res.destroyed && endlessSent < ENDLESS_CAP) {
    endlessSent += chunk.length;
    if (!res.write(chunk)) {
      await new Promise<void>((r) => {
        const go = () => { res.off('drain', go); res.off('close', go); r(); };
        res.on('drain', go).on('close', go);
      });
    }
  }
}

async function syncing(idleMs: number, t: { after: (fn: () => void) => void }, timing: Partial<SyncTiming> = {}): Promise<Syncer> {
  lists = [];
  watches = [];
  const client = new Client({ servers: [url], token: 't', tls: { ca } });
  const syncer = new Syncer(client, new DesiredState(), () => undefined, log, { retryMs: 100, idleMs, ...timing });
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

test('a watch line that never ends is abandoned at the line bound, memory stays bounded, and the agent re-lists', { timeout: 60_000 }, async (t) => {
  bookmarkEveryMs = 0;
  endless = true;
  endlessSent = 0;
  t.after(() => { endless = false; });
  const held = () => { const m = process.memoryUsage(); return m.heapUsed + m.arrayBuffers; };
  const base = held();
  let peak = base;
  const sampler = setInterval(() => { peak = Math.max(peak, held()); }, 5);
  t.after(() => clearInterval(sampler));
  // A long idle bound: only the line bound may end this watch.
  await syncing(30_000, t);
  assert.ok(await within(20_000, async () => lists.length >= 2, 20) >= 0, `re-listed after the endless line (lists: ${lists.length}, sent ${endlessSent} bytes)`);
  clearInterval(sampler);
  const mib = (n: number) => (n / 1048576).toFixed(1);
  // The server may have sent the bound plus what the kernel's socket buffers and TLS held in flight.
  assert.ok(endlessSent < MAX_LINE_BYTES + 16 * 1048576, `the client hung up after ${mib(endlessSent)} MiB (bound ${mib(MAX_LINE_BYTES)} MiB)`);
  assert.ok(peak - base < 4 * MAX_LINE_BYTES, `held memory grew by ${mib(peak - base)} MiB at most`);
  console.log(`# endless line: hung up after ${mib(endlessSent)} MiB sent, held memory grew by ${mib(peak - base)} MiB at most`);
  assert.ok(await within(3000, async () => watches.length >= 2, 20) >= 0, 'and watched again');
});

test('the pause between re-lists doubles from the first up to the bound, spread over 75-125 %', () => {
  assert.deepEqual([1, 2, 3, 4, 5, 6].map((n) => retryPause(n, 1000, MAX_RETRY_MS, 0.5)), [1000, 2000, 4000, 8000, 8000, 8000]);
  assert.equal(retryPause(1, 1000, MAX_RETRY_MS, 0), 750);
  assert.equal(retryPause(1, 1000, MAX_RETRY_MS, 1), 1250);
  assert.equal(retryPause(10_000, 1000, MAX_RETRY_MS, 1), 10_000, 'no overflow after many breaks');
  assert.equal(retryPause(0, 1000, MAX_RETRY_MS, 0.5), 1000);
  assert.ok(HEALTHY_WATCH_MS > MAX_RETRY_MS);
});

test('a server that breaks every watch at once is re-listed less and less often, and a stop ends the pause', async (t) => {
  bookmarkEveryMs = 0;
  garbled = true;
  t.after(() => { garbled = false; });
  // Pauses of ~100, 200, 400, 800, 800, ... ms: in 3 s, about six re-lists (one a second would be ~25 at 100 ms).
  const syncer = await syncing(30_000, t, { maxRetryMs: 800 });
  await new Promise((r) => setTimeout(r, 3000));
  const seen = lists.length;
  assert.ok(seen >= 4 && seen <= 9, `${seen} lists in 3 s (the first, then re-lists backing off)`);
  const gaps = lists.slice(1).map((at, i) => at - (lists[i] as number));
  assert.ok((gaps[gaps.length - 1] as number) >= 500, `the last pause is near the bound: gaps ${gaps.join(', ')} ms`);
  syncer.stop();
  // A list already on its way when stop came may still arrive.
  await new Promise((r) => setTimeout(r, 300));
  const stopped = lists.length;
  await new Promise((r) => setTimeout(r, 1200));
  assert.equal(lists.length, stopped, 'no list after stop');
});

test('a watch that lived long enough ends a run of breaks: the next pause is the first one again', async (t) => {
  bookmarkEveryMs = 100;
  endAfterMs = 300;
  t.after(() => { endAfterMs = 0; });
  // Each watch lives 300 ms, past the 250 ms that count as healthy: every pause is ~100 ms, a list every
  // ~400 ms (seven or eight in 3 s). Were the breaks counted on, pauses of 100, 200, 400, 800, 1,600 ms
  // would give five at most.
  await syncing(30_000, t, { healthyMs: 250, maxRetryMs: 2000 });
  await new Promise((r) => setTimeout(r, 3000));
  assert.ok(lists.length >= 6, `${lists.length} lists in 3 s`);
});

test('the line bound leaves room for the largest change a user can make under the default quotas', () => {
  // A policy holding the default rule quota, every field of every rule at its longest.
  const name = 'n'.repeat(63);
  const cidr = '255.255.255.255/32';
  const rule = { id: name, priority: 100, direction: 'out', action: 'allow', protocol: 'tcp', ports: '65535-65535',
    fromGroup: name, fromNetwork: name, fromCidr: cidr, toGroup: name, toNetwork: name, toCidr: cidr, owner: name };
  assert.deepEqual(Object.keys(RuleInput.properties).filter((k) => !(k in rule)), [], 'a new rule field: measure again');
  const at = new Date(0).toISOString();
  const policy = { name, rules: Array.from({ length: LIMIT_DEFAULTS.quotaRules }, () => rule), owner: name, revision: 1, createdAt: at, updatedAt: at };
  const line = JSON.stringify({ revision: 1, op: 'put', kind: 'policy', key: `policies/${name}/${name}`, tenant: name, object: policy, actor: name, time: at });
  assert.ok(Buffer.byteLength(line) * 2 < MAX_LINE_BYTES, `${Buffer.byteLength(line)} bytes`);
  console.log(`# largest policy change under the default quota: ${(Buffer.byteLength(line) / 1048576).toFixed(1)} MiB; line bound ${MAX_LINE_BYTES / 1048576} MiB`);
});
