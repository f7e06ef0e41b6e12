import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { Command, CommanderError } from 'commander';
import { installCommands, type InstallDeps } from '../cli/commands/install.js';
import { CliError } from '../cli/errors.js';
import { FakeRunner } from '../exec/index.js';
import { isWeftError } from '../model/plain.js';
import { LAYOUT } from './index.js';
import { listing, tempRoot } from './testing.js';

/** `weft install`/`weft uninstall` as a user runs them, with the exit status runCli would give. */
async function weft(args: string[], deps: Partial<InstallDeps> = {}): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io = { out: (s: string) => void (out += s), err: (s: string) => void (err += s), env: {} };
  const program = new Command('weft').exitOverride().configureOutput({ writeOut: io.out, writeErr: io.err });
  const runner = new FakeRunner();
  // The checkout these tests run from is this user's (root's, as an install needs, only in CI as root).
  const trustedUids = () => [0, process.getuid?.() ?? 0];
  installCommands(program, io, { uid: () => process.getuid?.() ?? 0, systemdRunning: () => false, runner: () => runner, trustedUids, ...deps });
  try {
    await program.parseAsync(args, { from: 'user' });
    return { code: 0, out, err };
  } catch (e) {
    if (e instanceof CommanderError) return { code: e.code === 'commander.helpDisplayed' ? 0 : 2, out, err: err + e.message };
    if (e instanceof CliError) return { code: e.exitCode, out, err: err + e.message };
    if (isWeftError(e)) return { code: e.status === 409 ? 4 : e.status === 404 ? 3 : 2, out, err: err + e.message };
    throw e;
  }
}

test('not root and no --root: a clear refusal (exit 5) that says what to do, for both verbs', async () => {
  for (const args of [['install', '--systemd'], ['uninstall']]) {
    const r = await weft(args, { uid: () => 1000 });
    assert.equal(r.code, 5);
    assert.match(r.err, /run it as root \(sudo weft (install|uninstall) \.\.\.\), or give --root DIR/);
  }
});

test('--dry-run prints every path with its mode and changes nothing', async (t) => {
  const root = tempRoot(t);
  const r = await weft(['install', '--systemd', '--root', root, '--dry-run']);
  assert.equal(r.code, 0, r.err);
  for (const p of [`${LAYOUT.dataDir}/  0700`, `${LAYOUT.launcher}  0755`, '/etc/systemd/system/weft-agent.service  0644', `${LAYOUT.manifest}  0600`]) assert.ok(r.out.includes(p), p);
  assert.deepEqual(listing(root), []);
});

test('install then uninstall through the CLI: the root ends as it began; a changed unit is kept and named', async (t) => {
  const root = tempRoot(t);
  assert.equal((await weft(['install', '--systemd', '--root', root, '--listen', '0.0.0.0:9700'])).code, 0);
  assert.match((await weft(['install', '--systemd', '--root', root])).err, /already installed/);
  appendFileSync(join(root, LAYOUT.unitDir, 'weft-server.service'), '# mine\n');
  const r = await weft(['uninstall', '--root', root]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /kept \/etc\/systemd\/system\/weft-server\.service: changed since weft install wrote it/);
  assert.ok(!existsSync(join(root, LAYOUT.launcher)));
});

test('on a running systemd (root /), the verbs go through systemctl; the dry run says what it would run', async (t) => {
  const root = tempRoot(t);
  // Root / cannot be written by a test: only the dry run is taken there.
  const r = await weft(['install', '--systemd', '--dry-run'], { uid: () => 0, systemdRunning: () => true });
  assert.match(r.out, /and run: systemctl daemon-reload; systemctl enable --now weft-server\.service weft-agent\.service/, r.err);
  const under = await weft(['install', '--systemd', '--root', root, '--dry-run'], { systemdRunning: () => true });
  assert.match(under.out, /start nothing/, `never the running systemd for another root (exit ${under.code}: ${under.err})`);
});

test('usage errors: --join without --server, --server with --no-agent, both --join and --join-file, no --systemd', async () => {
  assert.match((await weft(['install', '--systemd', '--join', 'x', '--root', '/tmp'])).err, /--join: only with --server/);
  assert.match((await weft(['install', '--systemd', '--server', 'https://10.0.0.5:9700', '--no-agent', '--root', '/tmp'])).err, /give one/);
  assert.match((await weft(['install', '--systemd', '--server', 'https://h:9700', '--join', 'a', '--join-file', 'b', '--root', '/tmp'])).err, /--join and --join-file/);
  const r = await weft(['install', '--root', '/tmp']);
  assert.deepEqual([r.code, /say --systemd/.test(r.err)], [2, true]);
});

test('a package or node that anyone but root could change is refused before anything is planned, naming the path and its owner', async (t) => {
  const root = tempRoot(t);
  // No uid is trusted here but one nobody has: the checkout's own files stand for a user's package.
  const r = await weft(['install', '--systemd', '--root', root, '--dry-run'], { trustedUids: () => [4242] });
  assert.equal(r.code, 2);
  assert.match(r.err, /weft install: \/\S* is owned by uid \d+: the units would run .* as root at every boot/);
  assert.deepEqual(listing(root), []);
});
