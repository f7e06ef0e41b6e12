import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MAX_STDIN_BYTES } from './protocol.js';
import { serveCniSocket } from './socket.js';

/** Sends bytes to the relay socket (half-closing unless `hold`), returns what came back and whether it was cut. */
function relay(path: string, payload: Buffer, hold = false): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(path);
    let out = '';
    s.on('data', (d) => (out += d));
    s.on('close', () => resolve(out));
    s.on('error', () => undefined);
    s.write(payload, () => (hold ? undefined : s.end()));
  });
}

test('the relay socket answers a request, refuses one past the size bound unread, and drops a relay that never finishes', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-sock-'));
  const calls: string[] = [];
  const server = await serveCniSocket(join(dir, 'agent.sock'), async (env, stdin) => {
    calls.push(`${env['CNI_COMMAND']} ${stdin.length}`);
    return { code: 0, stdout: '{}\n' };
  }, 300);
  try {
    assert.equal(await relay(server.path, Buffer.from('CNI_COMMAND=VERSION\0\0{"cniVersion":"1.1.0"}')), '0\n{}\n');
    const huge = Buffer.concat([Buffer.from('CNI_COMMAND=ADD\0\0'), Buffer.alloc(MAX_STDIN_BYTES + 512 * 1024, 0x20)]);
    const answer = await relay(server.path, huge);
    assert.match(answer, /^1\n\{"code":7,"msg":"stdin: more than the 4194304 bytes/);
    const t0 = Date.now();
    assert.equal(await relay(server.path, Buffer.from('CNI_COMMAND=ADD\0'), true), '', 'a relay that never half-closes is dropped');
    assert.ok(Date.now() - t0 < 3000);
    assert.deepEqual(calls, ['VERSION 22'], 'only the well-formed request reached the agent');
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
