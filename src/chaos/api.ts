import { request } from 'node:https';

export interface Answer { status: number; json: any; text: string }

/**
 * The lab's API as an admin: verified against the lab's CA, with failover between the servers (one may
 * be down: that is the point), and a deadline on every call so a partition cannot hang the workload.
 */
export class LabApi {
  constructor(readonly urls: readonly string[], private readonly token: string, private readonly ca: string) {}

  /** One server; status 0 when it cannot be reached in time. `raw` sends the body as given (garbage, huge). */
  one(url: string, method: string, path: string, body?: unknown, o: { raw?: string; timeoutMs?: number; auth?: boolean } = {}): Promise<Answer> {
    const payload = o.raw ?? (body === undefined ? undefined : JSON.stringify(body));
    const headers: Record<string, string> = o.auth === false ? {} : { authorization: `Bearer ${this.token}` };
    if (payload !== undefined) headers['content-type'] = 'application/json';
    return new Promise((resolve) => {
      const req = request(new URL(`${url}${path}`), { method, headers, ca: this.ca, agent: false, timeout: o.timeoutMs ?? 5000 }, (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (d: string) => (text += d));
        res.on('end', () => {
          let json: any;
          try { json = text ? JSON.parse(text) : undefined; } catch { json = undefined; }
          resolve({ status: res.statusCode ?? 0, json, text });
        });
        res.on('error', () => resolve({ status: 0, json: undefined, text: 'response aborted' }));
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (e) => resolve({ status: 0, json: undefined, text: e.message }));
      req.end(payload);
    });
  }

  /** The first server that answers (5xx from one that lost its store counts as not answering). */
  async call(method: string, path: string, body?: unknown, o: { raw?: string; timeoutMs?: number } = {}): Promise<Answer> {
    let last: Answer = { status: 0, json: undefined, text: 'no server' };
    for (const url of this.urls) {
      last = await this.one(url, method, path, body, o);
      if (last.status !== 0 && last.status < 500) return last;
    }
    return last;
  }

  /** A call that must succeed (setup, policy edits): throws with the answer otherwise. */
  async ok(method: string, path: string, body?: unknown): Promise<any> {
    const r = await this.call(method, path, body);
    if (r.status < 200 || r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${r.text.slice(0, 300)}`);
    return r.json;
  }
}
