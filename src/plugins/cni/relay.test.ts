import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Both relays (the C one built into dist/weft-cni, and the Node fallback) run as a runtime runs them,
 * against a throw-away unix socket in the test that plays the agent with a canned answer: a garbled
 * status line is never success, and a socket path that cannot fit is refused naming its field.
 */
const dist = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const RELAYS: Array<[string, string[]]> = [['C relay', [join(dist, 'weft-cni')]], ['Node relay', [process.execPath, join(dist, 'bin', 'weft-cni.js')]]];
let dir: string;
let sock: string;
let server: Server;
let answer = '0\n{}\n';
let calls = 0;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'weft-relay-'));
  sock = join(dir, 'agent.sock');
  server = createServer((c) => {
    c.on('error', () => undefined);
    c.on('data', () => undefined);
    c.on('end', () => {
      calls++;
      c.end(answer);
    });
  });
  await new Promise<void>((r) => server.listen(sock, r));
});
after(async () => {
  await new Promise((r) => server.close(r));
  rmSync(dir, { recursive: true, force: true });
});

function relay(argv: string[], env: Record<string, string>, stdin: string): Promise<{ code: number; json: any; stdout: string }> {
  return new Promise((resolve, reject) => {
    const [cmd, ...args] = argv as [string, ...string[]];
    const child = spawn(cmd, args, { env: { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_IFNAME: 'eth0', CNI_NETNS: '/x', CNI_PATH: '/x', ...env }, stdio: ['pipe', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.on('error', reject);
    child.on('close', (code) => {
      let json: any;
      try { json = JSON.parse(stdout); } catch { json = undefined; }
      resolve({ code: code ?? -1, json, stdout });
    });
    child.stdin.end(stdin);
  });
}
const conf = (extra: Record<string, unknown> = {}) => JSON.stringify({ cniVersion: '1.1.0', name: 'n', type: 'weft', network: 'net', ...extra });

for (const [name, argv] of RELAYS) {
  const skip = !existsSync(argv[argv.length - 1] as string) && `${name} was not built`;

  test(`${name}: the agent's status is the exit status; a garbled or empty one is an error, never success`, { skip }, async () => {
    answer = '0\n{"cniVersion":"1.1.0"}\n';
    assert.deepEqual(await relay(argv, { WEFT_AGENT_SOCK: sock }, conf()).then((r) => [r.code, r.stdout]), [0, '{"cniVersion":"1.1.0"}\n']);
    answer = '7\n{"code":7}\n';
    assert.equal((await relay(argv, { WEFT_AGENT_SOCK: sock }, conf())).code, 7);
    for (const status of ['', 'ok', '0x1', ' 0', '-1', '256', '1000', '0 ', '\u0000']) {
      answer = `${status}\n{"cniVersion":"1.1.0","ips":[]}\n`;
      const r = await relay(argv, { WEFT_AGENT_SOCK: sock }, conf());
      assert.equal(r.code, 1, `status ${JSON.stringify(status)}: exit ${r.code}, ${r.stdout}`);
      assert.equal(r.json?.code, 999, `status ${JSON.stringify(status)}: ${r.stdout}`);
      assert.match(r.json.msg, /garbled status line/);
    }
  });

  test(`${name}: a socket path too long for sun_path is refused naming its field, nothing is sent`, { skip }, async () => {
    const before = calls;
    const long = join(dir, 'x'.repeat(120));
    const fromEnv = await relay(argv, { WEFT_AGENT_SOCK: long }, conf());
    assert.deepEqual([fromEnv.code, fromEnv.json?.code], [1, 4], fromEnv.stdout);
    assert.match(fromEnv.json.msg, /WEFT_AGENT_SOCK is too long/);
    const fromConf = await relay(argv, {}, conf({ agentSocket: long }));
    assert.deepEqual([fromConf.code, fromConf.json?.code], [1, 7], fromConf.stdout);
    assert.match(fromConf.json.msg, /agentSocket is too long/);
    const escaped = await relay(argv, {}, '{"type":"weft","agentSocket":"/run/we\\u0066t.sock"}');
    assert.deepEqual([escaped.code, escaped.json?.code], [1, 7], escaped.stdout);
    assert.match(escaped.json.msg, /agentSocket/);
    // 107 bytes is the longest that fits; the conflist's path is used (the test's socket is shorter, so pad with ./).
    answer = '0\n{}\n';
    const fits = `${dir}/${'./'.repeat(Math.floor((107 - dir.length - 10) / 2))}agent.sock`;
    const ok = await relay(argv, {}, conf({ agentSocket: fits }));
    assert.equal(ok.code, 0, `${fits.length} bytes: ${ok.stdout}`);
    assert.equal(calls, before + 1, 'only the call with a usable path reached the agent');
  });

  test(`${name}: only the config's own agentSocket counts, not one inside prevResult, args or runtimeConfig`, { skip }, async () => {
    // Another listener stands where a nested key points: it must never be called.
    const evilPath = join(dir, 'evil.sock');
    let evilCalls = 0;
    const conns = new Set<import('node:net').Socket>();
    const evil = createServer((c) => { evilCalls++; conns.add(c); c.on('error', () => undefined); c.end('0\n{"answeredBy":"evil"}\n'); });
    await new Promise<void>((r) => evil.listen(evilPath, r));
    try {
      answer = '0\n{"answeredBy":"agent"}\n';
      const nestedFirst = [
        `{"cniVersion":"1.1.0","prevResult":{"agentSocket":"${evilPath}"},"agentSocket":"${sock}","type":"weft"}`,
        `{"args":{"cni":{"labels":[{"key":"agentSocket","value":"x"}],"agentSocket":"${evilPath}"}},"agentSocket":"${sock}"}`,
        `{"name":"agentSocket","runtimeConfig":{"agentSocket":"${evilPath}"},"agentSocket" : "${sock}"}`,
      ];
      for (const stdin of nestedFirst) {
        const r = await relay(argv, {}, stdin);
        assert.deepEqual([r.code, r.stdout], [0, '{"answeredBy":"agent"}\n'], stdin);
      }
      // Both relays stop at a NUL (the C one reads a string), and take JSON's whitespace only around ':'.
      for (const stdin of [`{"a":1}\u0000{"agentSocket":"${evilPath}"}`, `{"agentSocket"\f:"${evilPath}"}`]) {
        const r = await relay(argv, {}, stdin);
        assert.doesNotMatch(r.stdout, /evil/, JSON.stringify(stdin));
      }
      // No key of its own: the default socket (absent here), never the nested one.
      const r = await relay(argv, {}, `{"cniVersion":"1.1.0","prevResult":{"agentSocket":"${evilPath}"},"type":"weft"}`);
      assert.notEqual(r.code, 0, r.stdout);
      assert.doesNotMatch(r.stdout, /evil/);
      assert.equal(evilCalls, 0, 'the nested socket was never called');
    } finally {
      for (const c of conns) c.destroy();
      await new Promise((r) => evil.close(r));
    }
  });
}
