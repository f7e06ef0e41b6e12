import http from 'node:http';

/** Docker's API, as far as the built-in adapter asks it: one call, its status and parsed JSON (or text). */
export interface DockerApi {
  call(method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown; text: string }>;
}

const TIMEOUT_MS = 30_000;
const MAX_ANSWER = 4 << 20;

/** Docker's API on its unix socket (unversioned paths: the daemon's own version). */
export function dockerApiAt(socketPath: string): DockerApi {
  return {
    call: (method, path, body) => new Promise((resolve, reject) => {
      const data = body === undefined ? undefined : JSON.stringify(body);
      const req = http.request({ socketPath, method, path, timeout: TIMEOUT_MS, headers: { host: 'docker', ...(data ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } : {}) } }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (d: Buffer) => {
          size += d.length;
          if (size > MAX_ANSWER) req.destroy(new Error(`Docker's answer to ${method} ${path} is over ${MAX_ANSWER} bytes`));
          else chunks.push(d);
        });
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try { json = text ? JSON.parse(text) : undefined; } catch { json = undefined; }
          resolve({ status: res.statusCode ?? 0, json, text });
        });
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error(`Docker did not answer ${method} ${path} within ${TIMEOUT_MS / 1000} s`)));
      req.on('error', reject);
      req.end(data);
    }),
  };
}

/** Docker's error text: its JSON `message`, else the body. */
export function dockerMessage(r: { json: unknown; text: string }): string {
  const m = (r.json as { message?: unknown } | undefined)?.message;
  return typeof m === 'string' ? m : r.text.trim().slice(0, 500);
}
