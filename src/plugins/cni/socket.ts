import { createServer, type Server, type Socket } from 'node:net';
import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import type { CniOutcome } from './handler.js';
import { MAX_STDIN_BYTES } from './protocol.js';

/** stdin's bound and room for the environment entries. */
const MAX_RELAY_BYTES = MAX_STDIN_BYTES + 256 * 1024;
const RELAY_READ_TIMEOUT_MS = 10_000;

/**
 * The relay protocol between `weft-cni` (a tiny program the runtime execs) and the agent:
 *   request:  NUL-terminated "KEY=VALUE" environment entries, an empty entry, then stdin until EOF
 *   response: the exit status in ASCII and a newline, then the plugin's stdout until the agent closes.
 * No JSON on the shim side, so the shim can stay a few dozen lines of C.
 */
export interface CniSocketServer {
  path: string;
  close(): Promise<void>;
}

export function parseRelayRequest(buf: Buffer): { env: Record<string, string>; stdin: string } {
  const env: Record<string, string> = {};
  let pos = 0;
  for (;;) {
    const end = buf.indexOf(0, pos);
    if (end < 0) throw new Error('truncated relay request');
    if (end === pos) {
      pos++;
      break;
    }
    const entry = buf.subarray(pos, end).toString('utf8');
    const eq = entry.indexOf('=');
    if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1);
    pos = end + 1;
  }
  return { env, stdin: buf.subarray(pos).toString('utf8') };
}

/** Serves the socket with mode 0600 (root only): anyone who can write it can wire containers. */
export async function serveCniSocket(path: string, handle: (env: Record<string, string>, stdin: string) => Promise<CniOutcome>, readTimeoutMs = RELAY_READ_TIMEOUT_MS): Promise<CniSocketServer> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  rmSync(path, { force: true });
  // allowHalfOpen: the relay half-closes after its request and still waits for the answer.
  const server: Server = createServer({ allowHalfOpen: true }, (sock: Socket) => {
    const chunks: Buffer[] = [];
    let size = 0;
    // Only root can write the socket, but a stuck or runaway relay must not hold memory or the agent's
    // shutdown: the request is bounded in size and must arrive within a few seconds.
    sock.setTimeout(readTimeoutMs, () => sock.destroy());
    sock.on('data', (d) => {
      size += d.length;
      if (size > MAX_RELAY_BYTES) {
        sock.end(`1\n${JSON.stringify({ code: 7, msg: `stdin: more than the ${MAX_STDIN_BYTES} bytes a network configuration may have` })}\n`);
        sock.destroySoon();
        return;
      }
      chunks.push(d);
    });
    sock.on('error', () => undefined);
    sock.on('end', () => {
      sock.setTimeout(0);
      if (size > MAX_RELAY_BYTES) return;
      void (async () => {
        let out: CniOutcome;
        try {
          const { env, stdin } = parseRelayRequest(Buffer.concat(chunks));
          out = await handle(env, stdin);
        } catch (e) {
          out = { code: 1, stdout: `${JSON.stringify({ code: 999, msg: 'bad relay request', details: (e as Error).message })}\n` };
        }
        sock.end(`${out.code}\n${out.stdout}`);
      })();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  chmodSync(path, 0o600);
  return {
    path,
    close: () => new Promise<void>((resolve) => server.close(() => { rmSync(path, { force: true }); resolve(); })),
  };
}
