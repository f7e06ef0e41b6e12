#!/usr/bin/env node
// The Node relay for the CNI plugin, used where the C relay (src/plugins/cni/shim.c) was not built.
// Same protocol and behaviour; ~50 ms slower per call because Node has to start.
import { connect } from 'node:net';
import { readFileSync } from 'node:fs';

const fail = (code: number, msg: string, details: string): never => {
  process.stdout.write(`${JSON.stringify({ cniVersion: '1.1.0', code, msg, details })}\n`);
  process.exit(1);
};
/** Linux's sun_path holds 108 bytes with the terminating NUL; a longer path would be cut or refused. */
const SUN_PATH = 108;
const tooLong = (code: number, field: string, p: string) => {
  if (Buffer.byteLength(p) >= SUN_PATH) fail(code, `${field} is too long for a unix socket path`, `a unix socket path has at most ${SUN_PATH - 1} bytes`);
  return p;
};
const stdin = readFileSync(0);
/**
 * As the C relay: the config's own agentSocket, a key of the top-level object (not one inside args,
 * runtimeConfig or prevResult); one that cannot be used is an error, never the default socket.
 */
function socketFromConfig(input: string): [string, boolean] | undefined {
  // The C relay reads up to a NUL; JSON's whitespace is space, tab, LF and CR only.
  const nul = input.indexOf('\0');
  const text = nul < 0 ? input : input.slice(0, nul);
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') depth--;
    else if (c === '"') {
      const start = i + 1;
      for (i = start; i < text.length && text[i] !== '"'; i++) if (text[i] === '\\') i++;
      if (i >= text.length) return undefined;
      if (depth !== 1 || text.slice(start, i) !== 'agentSocket') continue;
      const m = /^[ \t\n\r]*:[ \t\n\r]*("?)([^"\\]*)([\s\S]?)/.exec(text.slice(i + 1));
      if (!m) continue;
      if (m[1] !== '"') return undefined;
      return [m[2] ?? '', m[3] === '"'];
    }
  }
  return undefined;
}
const named = socketFromConfig(stdin.toString('utf8'));
if (named && !named[1]) fail(7, 'agentSocket must be a plain path (no JSON escapes)', '');
const fromEnv = process.env['WEFT_AGENT_SOCK'];
const path = fromEnv ? tooLong(4, 'WEFT_AGENT_SOCK', fromEnv) : named ? tooLong(7, 'agentSocket', named[0]) : '/run/weft/agent.sock';
const sock = connect(path);
const chunks: Buffer[] = [];
sock.on('connect', () => {
  const env = Object.entries(process.env).filter(([k]) => k.startsWith('CNI_')).map(([k, v]) => `${k}=${v ?? ''}\0`).join('');
  sock.end(Buffer.concat([Buffer.from(`${env}\0`), stdin]));
});
sock.on('data', (d) => chunks.push(d));
sock.on('error', (e) => {
  if (process.env['CNI_COMMAND'] === 'VERSION') {
    process.stdout.write('{"cniVersion":"1.1.0","supportedVersions":["0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]}\n');
    process.exit(0);
  }
  fail(11, 'the weft agent is not running (cannot connect to its socket); try again later', e.message);
});
sock.on('end', () => {
  const res = Buffer.concat(chunks);
  const nl = res.indexOf(10);
  if (nl < 0) fail(999, 'the weft agent closed the connection without an answer', '');
  // Digits only, 0-255: Number('') is 0, and a garbled answer must never read as success.
  const status = res.subarray(0, nl).toString('latin1');
  if (!/^[0-9]{1,3}$/.test(status) || Number(status) > 255) fail(999, 'the weft agent answered a garbled status line', 'expected 0-255 and a newline');
  process.stdout.write(res.subarray(nl + 1));
  process.exitCode = Number(status);
});
