import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { MemoryDatapath } from '../datapath/index.js';
import { http, startServerProcess, type ServerProcess } from '../testkit/server.js';
import { inviteHost } from '../testkit/host.js';
import type { Agent } from './agent.js';
import { startMemoryAgent } from './testing.js';

/**
 * A host's IPv6 underlay address (routed networks with IPv6): one the agent only found on the host and the
 * server refuses (another host's) costs it nothing but the address; one it was given fails its start,
 * naming it.
 */
const log = pino({ level: process.env['WEFT_TEST_LOG'] ?? 'silent' });
let server: ServerProcess;
let dir: string;
const agents: Agent[] = [];

const start = (host: string, extra: { vtepIp6: string; vtepIp6Detected?: boolean }) => startMemoryAgent({
  serverUrl: server.url, invite: () => inviteHost(server.url, server.token, host), dir: join(dir, host), dp: new MemoryDatapath(`${host}-`), nsPrefix: `${host}-`,
  host, resyncMs: 200, repairGraceMs: 0, log,
}, { vtepIp: `192.0.2.${10 + agents.length}`, ...extra }).then((a) => { agents.push(a); return a; });
const host = async (name: string) => (await http(server.url, server.token, 'GET', `/api/v1/hosts/${name}`)).json;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'weft-vtep6-'));
  server = await startServerProcess();
});
after(async () => {
  for (const a of agents) await a.stop();
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('an IPv6 underlay address found on the host and refused by the server: the host registers without one', async () => {
  await start('h1', { vtepIp6: 'fd99::1' });
  assert.equal((await host('h1')).vtepIp6, 'fd99::1');
  await start('h2', { vtepIp6: 'fd99::1', vtepIp6Detected: true });
  const h2 = await host('h2');
  assert.deepEqual([h2.name, h2.vtepIp6], ['h2', undefined], 'h2 is registered, without the address h1 holds');
});

test('an IPv6 underlay address given (--vtep-ip6) and refused: the agent does not start, and the error names it', async () => {
  await assert.rejects(start('h3', { vtepIp6: 'fd99::1' }), /vtepIp6: fd99::1 is the IPv6 underlay address of host h1/);
});
