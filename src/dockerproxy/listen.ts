import { chmodSync, chownSync, existsSync, lstatSync, unlinkSync } from 'node:fs';
import { connect } from 'node:net';
import type { Server } from 'node:http';

export type ListenAddress = { kind: 'unix'; path: string };

export class ListenError extends Error {}

/**
 * `--listen`: a unix socket path (or unix://PATH). Never TCP: Docker's API is root on this host to
 * whoever reaches it, and on TCP that is every local user, every container on the host's network, and
 * any web page the host's browser opens (no preflight for a POST without a content type; DNS rebinding).
 */
export function parseListen(text: string): ListenAddress {
  if (/^[a-z]+:\/\//.test(text) && !text.startsWith('unix://')) {
    throw new ListenError(`--listen ${text}: a unix socket only (Docker's API is root on this host; on TCP every local user and any web page could reach it)`);
  }
  const path = text.startsWith('unix://') ? text.slice('unix://'.length) : text;
  if (!path.startsWith('/')) throw new ListenError(`--listen ${text}: an absolute socket path, or unix:///PATH`);
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

/**
 * Listens; the socket is then made 0660 with `group`, or 0600 without one (never wider than Docker's
 * own). It is created 0600 (umask 177 while it is bound), so nobody else connects in between.
 */
export function listenOn(server: Server, at: ListenAddress, group: number | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    const old = process.umask(0o177);
    server.listen(at.path, () => {
      process.umask(old);
      server.off('error', reject);
      try {
        if (group !== undefined) chownSync(at.path, process.getuid?.() ?? 0, group);
        chmodSync(at.path, group !== undefined ? 0o660 : 0o600);
      } catch (e) {
        server.close();
        return reject(e);
      }
      resolve();
    });
    // listen() binds synchronously for a unix path; the umask is ours again before anything else runs.
    process.umask(old);
  });
}
