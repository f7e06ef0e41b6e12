import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { execFileSync, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readBounded, readConfig, resolveTarget, resolveToken, writeConfig } from './config.js';
import { CliError, EXIT } from './errors.js';

const isUsage = (naming: RegExp) => (e: unknown) => e instanceof CliError && e.exitCode === EXIT.usage && naming.test(e.message);

test('token resolution: --token, --token-file, WEFT_TOKEN, WEFT_TOKEN_FILE, then the config file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-cfg-'));
  try {
    const file = join(dir, 'tok');
    writeFileSync(file, 'weft_fromfile\n', { mode: 0o600 });
    writeFileSync(join(dir, 'env-tok'), 'weft_fromenvfile', { mode: 0o600 });
    mkdirConfig(dir, 'weft_fromconfig');
    const env = { HOME: dir };
    assert.equal(resolveToken({ token: 'weft_flag' }, { WEFT_TOKEN: 'weft_env' }), 'weft_flag');
    assert.equal(resolveToken({ tokenFile: file }, { WEFT_TOKEN: 'weft_env' }), 'weft_fromfile', 'a flag beats the environment');
    assert.equal(resolveToken({}, { WEFT_TOKEN: 'weft_env' }), 'weft_env');
    assert.equal(resolveToken({}, { WEFT_TOKEN_FILE: join(dir, 'env-tok') }), 'weft_fromenvfile');
    assert.equal(resolveToken({}, { WEFT_TOKEN: '', WEFT_TOKEN_FILE: join(dir, 'env-tok') }), 'weft_fromenvfile', 'empty means unset');
    assert.equal(resolveTarget({ server: 'https://127.0.0.1:1' }, env).token, 'weft_fromconfig');
    assert.equal(resolveTarget({ server: 'https://127.0.0.1:1' }, { ...env, WEFT_TOKEN_FILE: file }).token, 'weft_fromfile');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('token files: missing, unreadable, empty, oversized or ambiguous are usage errors naming their source', () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-cfg-'));
  try {
    const empty = join(dir, 'empty');
    writeFileSync(empty, '\n');
    const big = join(dir, 'big');
    writeFileSync(big, 'x'.repeat(5000));
    const two = join(dir, 'two');
    writeFileSync(two, 'weft_a weft_b');
    assert.throws(() => resolveToken({ tokenFile: join(dir, 'nope') }, {}), isUsage(/^--token-file: cannot read .*nope \(ENOENT\)/));
    assert.throws(() => resolveToken({}, { WEFT_TOKEN_FILE: join(dir, 'nope') }), isUsage(/^WEFT_TOKEN_FILE: cannot read .*nope/));
    assert.throws(() => resolveToken({ tokenFile: dir }, {}), isUsage(/^--token-file: cannot read .* \(EISDIR\)/));
    assert.throws(() => resolveToken({ tokenFile: empty }, {}), isUsage(/--token-file: .*empty is empty/));
    assert.throws(() => resolveToken({ tokenFile: big }, {}), isUsage(/larger than 4 KiB/));
    assert.throws(() => resolveToken({ tokenFile: '/dev/zero' }, {}), isUsage(/larger than 4 KiB/));
    assert.throws(() => resolveToken({ tokenFile: two }, {}), isUsage(/more than one word/));
    assert.throws(() => resolveToken({ token: 'weft_a', tokenFile: empty }, {}), isUsage(/--token or --token-file, not both/));
    assert.throws(() => resolveToken({}, { WEFT_TOKEN: 'weft_a', WEFT_TOKEN_FILE: empty }), isUsage(/both set/));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

function mkdirConfig(home: string, token: string): void {
  const dir = join(home, '.config', 'weft');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ token }));
}

test('a file read for the CLI is refused as soon as it passes its bound (an endless /dev/zero or pipe does not fill the memory)', () => {
  assert.throws(() => readBounded('/dev/zero', 1 << 20, '--filename'), /^Error: --filename: \/dev\/zero is larger than 1048576 bytes$/);
  const dir = mkdtempSync(join(tmpdir(), 'weft-cfg-'));
  try {
    writeFileSync(join(dir, 'small'), 'kind: Tenant\n');
    assert.equal(readBounded(join(dir, 'small'), 1 << 20, '--filename'), 'kind: Tenant\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('login narrows a config file made readable by others to 0600 before writing the token into it', () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-cfg-'));
  try {
    const env = { HOME: dir, XDG_CONFIG_HOME: join(dir, '.config') };
    const file = writeConfig({ server: 'https://127.0.0.1:9700' }, env);
    chmodSync(file, 0o644);
    writeConfig({ server: 'https://127.0.0.1:9700', token: 'weft_secret' }, env);
    assert.equal(statSync(file).mode & 0o777, 0o600);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** A HOME of its own with its config dir made, removed after `f`. */
function inHome(f: (env: NodeJS.ProcessEnv, dir: string, weftDir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'weft-cfg-'));
  try {
    const weftDir = join(dir, '.config', 'weft');
    mkdirSync(weftDir, { recursive: true });
    f({ HOME: dir, XDG_CONFIG_HOME: join(dir, '.config') }, dir, weftDir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('login replaces a symlink planted at config.json instead of writing the token through it, and narrows a config dir others may write into', () => {
  inHome((env, dir, weftDir) => {
    chmodSync(weftDir, 0o777);
    const victim = join(dir, 'victim');
    writeFileSync(victim, 'theirs\n');
    symlinkSync(victim, join(weftDir, 'config.json'));
    const said: string[] = [];
    const file = writeConfig({ server: 'https://127.0.0.1:9700', token: 'weft_secret' }, env, (l) => said.push(l));
    assert.equal(readFileSync(victim, 'utf8'), 'theirs\n', 'the symlink\'s target is untouched');
    assert.deepEqual(said, [`weft: ${file} was a link to ${JSON.stringify(victim)}; it is now a file of its own (a token is written only into a file weft made)`]);
    assert.ok(!lstatSync(file).isSymbolicLink());
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.match(readFileSync(file, 'utf8'), /weft_secret/);
    assert.equal(statSync(weftDir).mode & 0o777, 0o700);
    assert.deepEqual(readdirSync(weftDir), ['config.json'], 'no temporary left behind');
  });
});

test('login replaces even the user\'s own link (a dotfiles repository) and says so; a dangling one too; a file is replaced silently', () => {
  inHome((env, dir, weftDir) => {
    const file = join(weftDir, 'config.json');
    const kept = join(dir, 'dotfiles-weft.json');
    writeFileSync(kept, '{"server":"https://10.0.0.1:9700"}\n', { mode: 0o600 });
    symlinkSync('../../dotfiles-weft.json', file);
    const said: string[] = [];
    writeConfig({ server: 'https://127.0.0.1:9700', token: 'weft_secret' }, env, (l) => said.push(l));
    assert.equal(readFileSync(kept, 'utf8'), '{"server":"https://10.0.0.1:9700"}\n', 'the file it pointed at is untouched');
    assert.ok(!lstatSync(file).isSymbolicLink());
    assert.match(readFileSync(file, 'utf8'), /weft_secret/);
    assert.deepEqual(said, [`weft: ${file} was a link to "../../dotfiles-weft.json"; it is now a file of its own (a token is written only into a file weft made)`]);
    rmSync(file);
    symlinkSync(join(dir, 'nowhere.json'), file);
    writeConfig({ server: 'https://127.0.0.1:9700', token: 'weft_2' }, env, (l) => said.push(l));
    assert.equal(said.length, 2, 'a dangling link is said too');
    assert.ok(!readdirSync(dir).includes('nowhere.json'), 'nothing made where it pointed');
    writeConfig({ server: 'https://127.0.0.1:9700', token: 'weft_3' }, env, (l) => said.push(l));
    assert.equal(said.length, 2, 'a file of its own: nothing to say');
    assert.deepEqual(readdirSync(weftDir), ['config.json'], 'no temporary left behind');
  });
});

test('a config file that is /dev/zero, a FIFO nobody writes to, or a directory fails at once as a usage error naming it', () => {
  inHome((env, _dir, weftDir) => {
    const file = join(weftDir, 'config.json');
    symlinkSync('/dev/zero', file);
    assert.throws(() => readConfig(env), isUsage(/config\.json is a character device, not a regular file; fix or delete it/));
    rmSync(file);
    execFileSync('mkfifo', [file]);
    const t0 = Date.now();
    assert.throws(() => readConfig(env), isUsage(/config\.json is a FIFO, not a regular file; fix or delete it/));
    assert.ok(Date.now() - t0 < 2000, 'no wait for a writer');
    rmSync(file);
    mkdirSync(file);
    assert.throws(() => readConfig(env), isUsage(/config\.json is a directory, not a regular file/));
  });
});

/** Runs `sh -c script` beside the test (readBounded blocks this thread); resolves when it exits. */
function beside(script: string): Promise<number | null> {
  const child = spawn('sh', ['-c', script], { stdio: 'ignore' });
  return new Promise((resolve) => child.on('exit', resolve));
}

test('a FIFO named on the command line is read whether its writer opens before or after weft; with no writer, or no data, weft gives up after its wait, naming it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-fifo-'));
  try {
    const fifo = join(dir, 'p');
    execFileSync('mkfifo', [fifo]);
    // The writer opens 0.4 s after weft: a non-blocking open read end-of-file until then.
    let wrote = beside(`sleep 0.4; printf 'kind: Tenant\n' > '${fifo}'`);
    assert.equal(readBounded(fifo, 1 << 20, '--filename'), 'kind: Tenant\n');
    assert.equal(await wrote, 0);
    // The writer first (its open waits for a reader).
    wrote = beside(`printf 'weft_late-token\n' > '${fifo}'`);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(resolveToken({ tokenFile: fifo }, {}), 'weft_late-token');
    assert.equal(await wrote, 0);
    // A late writer that holds it open a moment and writes nothing: an empty file, as a regular one would be.
    wrote = beside(`sleep 0.3; { sleep 0.3; } > '${fifo}'`);
    assert.throws(() => resolveToken({ tokenFile: fifo }, {}), isUsage(/--token-file: .* is empty/));
    assert.equal(await wrote, 0);
    // No writer: weft gives up after its wait, naming the file and what it waited for. A writer that came
    // and went with nothing before weft looked reads the same (a review's case: `make-yaml > p` failing).
    let t0 = Date.now();
    assert.throws(() => readBounded(fifo, 1 << 20, '--filename', { writerWaitMs: 300 }), /^Error: --filename: .*\/p is a FIFO, and in 0\.3 s no writer held it open \(or one came and went with nothing\)$/);
    assert.ok(Date.now() - t0 >= 300 && Date.now() - t0 < 5000, `gave up after ${Date.now() - t0} ms`);
    // A writer that holds it open and never writes: weft gives up after its wait for the next piece.
    wrote = beside(`sleep 1.5 > '${fifo}'`);
    t0 = Date.now();
    assert.throws(() => readBounded(fifo, 1 << 20, '--filename', { idleWaitMs: 400 }), /^Error: --filename: .*\/p: nothing came through it in 0\.4 s$/);
    assert.ok(Date.now() - t0 < 1400, `gave up after ${Date.now() - t0} ms`);
    assert.equal(await wrote, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('standard input named as /dev/stdin or /dev/fd/0 is read through the descriptor weft was given: a pipe ends at its end without waiting', () => {
  const script = `import { readBounded } from ${JSON.stringify(new URL('./config.js', import.meta.url).href)};
const t0 = Date.now(); const text = readBounded(process.env.AS, 1 << 20, '--filename', { writerWaitMs: 30000, idleWaitMs: 30000 });
process.stdout.write(JSON.stringify({ text, ms: Date.now() - t0 }));`;
  // Through a shell's pipe: node's own child stdio are sockets, which /dev/stdin cannot be opened on.
  for (const as of ['/dev/stdin', '/dev/fd/0', '-']) {
    for (const input of ['', 'kind: Tenant\n']) {
      const out = JSON.parse(execFileSync('sh', ['-c', 'printf "%s" "$INPUT" | "$NODE" --input-type=module -e "$SCRIPT"'], {
        env: { ...process.env, INPUT: input, NODE: process.execPath, SCRIPT: script, AS: as }, encoding: 'utf8',
      })) as { text: string; ms: number };
      assert.equal(out.text, input, as);
      assert.ok(out.ms < 5000, `${as}: read in ${out.ms} ms`);
    }
  }
});

test('a config file that is a socket is refused naming it, before anything opens it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-cfg-sock-'));
  const srv = createServer();
  try {
    mkdirSync(join(dir, 'weft'), { recursive: true });
    await new Promise<void>((r) => srv.listen(join(dir, 'weft', 'config.json'), r));
    assert.throws(() => readConfig({ XDG_CONFIG_HOME: dir }), isUsage(/config\.json is a socket, not a regular file; fix or delete it/));
  } finally {
    await new Promise((r) => srv.close(r));
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a token with a space, line break or control character, or an empty --token, is a usage error naming where it came from', () => {
  assert.throws(() => resolveToken({ token: 'weft_abc\n' }, {}), isUsage(/^--token: the token holds a space, a line break or a control character/));
  assert.throws(() => resolveToken({ token: '' }, {}), isUsage(/^--token: the token is empty/));
  assert.throws(() => resolveToken({}, { WEFT_TOKEN: 'weft abc' }), isUsage(/^WEFT_TOKEN: the token holds/));
  inHome((env, _dir, weftDir) => {
    writeFileSync(join(weftDir, 'config.json'), JSON.stringify({ server: 'https://127.0.0.1:9700', token: 'weft_x\r' }));
    assert.throws(() => resolveTarget({}, env), isUsage(/config\.json: the token holds/));
  });
  assert.equal(resolveToken({ token: 'weft_fine-token.1' }, {}), 'weft_fine-token.1');
});
