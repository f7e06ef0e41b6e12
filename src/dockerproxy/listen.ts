import { chmodSync, chownSync, existsSync, lstatSync, unlinkSync } from 'node:fs';
import { connect } from 'node:net';
import type { Server } from 'node:http';

export type ListenAddress = { kind: 'unix'; path: string } | { kind: 'tcp'; host: string; port: number };

export class ListenError extends Error {}

/**
 * `--listen`: a unix socket path (or unix://PATH), or tcp://HOST:PORT on loopback only. Docker's API is
 * root on this host to whoever reaches it, so the proxy never offers it to the network.
 */
export function parseListen(text: string): ListenAddress {
  if (text.startsWith('tcp://')) {
    const m = /^tcp:\/\/(\[::1\]|localhost|127(?:\.\d{1,3}){3}):(\d{1,5})$/.exec(text);
    if (!m) throw new ListenError(`--listen ${text}: TCP only on loopback (tcp://127.0.0.1:PORT): Docker's API is root on this host to whoever reaches it`);
    const port = Number(m[2]);
    if (port < 1 || port > 65535) throw new ListenError(`--listen ${text}: port must be 1-65535`);
    return { kind: 'tcp', host: m[1] === '[::1]' ? '::1' : m[1]!, port };
  }
  const path = text.startsWith('unix://') ? text.slice('unix://'.length) : text;
  if (!path.startsWith('/')) throw new ListenError(`--listen ${text}: an absolute socket path, unix:///PATH or tcp://127.0.0.1:PORT`);
  if (path.length > 100) throw new ListenError(`--listen ${text}: a unix socket path is at most 100 bytes here`);
  return { kind: 'unix', path };
}

/** `--docker`: Docker's API socket (unix:///PATH or PATH). */
export function parseUpstream(text: string): string {
  const path = text.startsWith('unix://') ? text.slice('unix://'.length) : text;
  if (!path.startsWith('/')) throw new ListenError(`--docker ${text}: Docker's socket as unix:///PATH (TCP Docker hosts are not proxied)`);
  return path;
}

function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

/**
 * A socket file left by a proxy that died is replaced; one something still answers on is not (another
 * proxy, or Docker itself), and neither is a file that is not a socket.
 */
export async function clearStaleSocket(path: string): Promise<void> {
  if (!existsSync(path)) return;
  if (!lstatSync(path).isSocket()) throw new ListenError(`--listen ${path}: exists and is not a socket; not replacing it`);
  if (await answers(path)) throw new ListenError(`--listen ${path}: something already serves it (another docker-proxy, or Docker)`);
  unlinkSync(path);
}

/** Listens; a unix socket is then made 0660 with `group`, or 0600 without one (never wider than Docker's own). */
export function listenOn(server: Server, at: ListenAddress, group: number | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    const done = () => {
      server.off('error', reject);
      if (at.kind === 'unix') {
        try {
          if (group !== undefined) chownSync(at.path, process.getuid?.() ?? 0, group);
          chmodSync(at.path, group !== undefined ? 0o660 : 0o600);
        } catch (e) {
          server.close();
          return reject(e);
        }
      }
      resolve();
    };
    if (at.kind === 'unix') server.listen(at.path, done);
    else server.listen(at.port, at.host, done);
  });
}
