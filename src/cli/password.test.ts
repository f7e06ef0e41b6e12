import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * A password typed at a terminal is not shown: `weft login` run under a pseudo-terminal (util-linux's
 * `script`), its prompt answered as a person would. The server is a closed port: what matters is what the
 * terminal showed before the login failed.
 */
const weft = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'weft.cjs');
const hasScript = spawnSync('script', ['--version']).status === 0;

test('weft login at a terminal does not echo the password', { skip: !hasScript && 'util-linux script is not installed' }, async () => {
  const home = mkdtempSync(join(tmpdir(), 'weft-pw-'));
  try {
    const cmd = `${process.execPath} ${weft} login --user bob --server https://127.0.0.1:9`;
    const child = spawn('script', ['-qfec', cmd, '/dev/null'], { env: { ...process.env, HOME: home }, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let typed = false;
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (!typed && out.includes('Password')) {
        typed = true;
        child.stdin.write('s3cret-pass-123\r');
      }
    });
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    assert.ok(typed, `the prompt was shown: ${JSON.stringify(out)}`);
    assert.doesNotMatch(out, /s3cret/, `the terminal showed: ${JSON.stringify(out)}`);
    assert.match(out, /cannot reach the weft server/, 'the password was taken and the login went on');
    assert.notEqual(code, 0);
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});
