import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { WEFT_BIN } from '../testkit/server.js';

test('`weft --help | head -1`: a reader that closes the pipe early ends weft quietly, with no stack trace', async () => {
  const child = spawn(process.execPath, [WEFT_BIN, '--help'], { stdio: ['ignore', 'pipe', 'pipe'] });
  // Closed before weft writes anything, so every write meets EPIPE (not a race with a fast `head`).
  child.stdout.destroy();
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
  assert.equal(stderr, '');
  assert.equal(code, 0);
});
