import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import http from 'node:http';
import { dirname } from 'node:path';
import { handleDocker } from './handler.js';
import type { DockerHost } from './protocol.js';

export interface DockerPluginServer {
  close(): Promise<void>;
}

const MAX_BODY = 1 << 20;

/**
 * Refused at once, without keeping the body; the rest of it is read and dropped so the caller gets to
 * read the answer (destroying the socket mid-body left Docker with "socket hang up" and no Err at all).
 */
function tooLarge(res: http.ServerResponse): void {
  res.writeHead(413, { 'content-type': 'application/vnd.docker.plugins.v1.2+json', connection: 'close' });
  res.end(JSON.stringify({ Err: `weft: body: over ${MAX_BODY} bytes (plugin calls are small; this is not one)` }));
}

/** Serves the plugin protocol on a unix socket (root-only), where dockerd discovers plugins by name. */
export async function serveDockerPlugin(path: string, host: DockerHost): Promise<DockerPluginServer> {
  mkdirSync(dirname(path), { recursive: true });
  rmSync(path, { force: true });
  const server = http.createServer((req, res) => {
    let body = '';
    let size = 0;
    req.setEncoding('utf8');
    req.on('data', (d: string) => {
      if (size > MAX_BODY) return;
      size += Buffer.byteLength(d);
      if (size <= MAX_BODY) body += d;
      else tooLarge(res);
    });
    req.on('end', () => {
      if (size > MAX_BODY) return;
      const answer = req.method === 'POST'
        ? handleDocker(host, req.url ?? '', body)
        : Promise.resolve({ status: 405, body: { Err: `${req.method}: the plugin protocol uses POST` } });
      void answer.then((r) => {
        res.writeHead(r.status, { 'content-type': 'application/vnd.docker.plugins.v1.2+json' });
        res.end(JSON.stringify(r.body));
      });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  chmodSync(path, 0o600);
  return {
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
      rmSync(path, { force: true });
    }),
  };
}
