import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { membersUp } from './etcd-health.js';

/** A stand-in for an etcd member's client port: /health answers `status`. */
async function member(status: () => number): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => res.writeHead(req.url === '/health' ? status() : 404).end('{}'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

test('lab etcd: up once every member is healthy; a member that exited is named at once with its log; one never healthy times out naming it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-etcd-health-'));
  let third = 503;
  const ms = await Promise.all([member(() => 200), member(() => 200), member(() => third)]);
  try {
    const log = (i: number) => join(dir, `etcd${i}.log`);
    writeFileSync(log(1), 'started\n{"level":"fatal","msg":"listen tcp 127.0.0.1:41000: bind: address already in use"}\n');
    const members = ms.map((m, i) => ({ url: m.url, pid: 1000 + i, log: log(i) }));
    // The third turns healthy after a while (a cluster electing its leader).
    setTimeout(() => (third = 200), 600);
    const t1 = Date.now();
    assert.equal(await membersUp(members, () => true, 5000), undefined);
    assert.ok(Date.now() - t1 >= 500, 'it waited for the third');
    const dead = await membersUp(members, (pid) => pid !== 1001, 5000);
    assert.match(dead ?? '', /etcd member 2 \(pid 1001\) exited: started \/ .*address already in use/);
    third = 503;
    const t0 = Date.now();
    const slow = await membersUp(members, () => true, 500);
    assert.ok(Date.now() - t0 < 4000, 'gives up after its wait');
    assert.match(slow ?? '', /not every member healthy in 0.5 s: member 1 healthy; member 2 healthy; member 3 not \(no log\)/);
    // Nothing listening at all: not healthy, never a throw.
    ms[0]?.server.close();
    assert.match(await membersUp(members, () => true, 300) ?? '', /member 1 not/);
  } finally {
    for (const m of ms) m.server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
