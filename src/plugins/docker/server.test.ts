import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DockerHost } from './protocol.js';
import { serveDockerPlugin } from './server.js';

/** Every method of the host records its name: whatever reaches the host is a change to the world. */
function recordingHost(calls: string[]): DockerHost {
  return new Proxy({}, { get: (_t, name) => async () => { calls.push(String(name)); return {}; } }) as DockerHost;
}

function post(socketPath: string, path: string, body: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, path, method: 'POST', timeout: 5000 }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(body);
  });
}

test('a body over 1 MiB gets 413 naming the body, reaches nothing, and the socket keeps serving', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-docker-sock-'));
  const calls: string[] = [];
  const server = await serveDockerPlugin(join(dir, 'weft.sock'), recordingHost(calls));
  t.after(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const sock = join(dir, 'weft.sock');
  // Before: the connection was destroyed mid-body, so Docker saw "socket hang up" and no Err at all.
  const huge = await post(sock, '/NetworkDriver.CreateNetwork', JSON.stringify({ NetworkID: 'x'.repeat(3_000_000) }));
  assert.equal(huge.status, 413, huge.text);
  assert.match((JSON.parse(huge.text) as { Err: string }).Err, /^weft: body: over 1048576 bytes/);
  assert.deepEqual(calls, [], 'nothing reached the host');
  const next = await post(sock, '/NetworkDriver.DeleteNetwork', JSON.stringify({ NetworkID: 'a'.repeat(64) }));
  assert.equal(next.status, 200, next.text);
  assert.deepEqual(calls, ['deleteNetwork']);
});
