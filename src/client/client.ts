import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
/** Where to send requests: one or more server URLs (failover in order) and a bearer token. */
export interface Target {
  servers: string[];
  token: string | undefined;
}

/** A failed API call: the HTTP status (0 when no server answered) and the problem's code and detail. */
export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string | undefined, detail: string) {
    super(detail);
    this.name = 'ApiError';
  }
}

export interface RequestOptions {
  ifMatch?: number;
  signal?: AbortSignal;
  /** Treat 404 as success (idempotent deletes). */
  allowMissing?: boolean;
}

/** A response: status and the body, read whole or as a stream. */
interface Reply {
  status: number;
  statusText: string;
  body: IncomingMessage;
}

export interface ClientOptions {
  /** Called with the text of each `Warning: 299 AGENT "text"` header of a response (the CLI prints them). */
  onWarning?: (text: string) => void;
}

/** The texts of RFC 7234 warnings, as `299 weft "text"` values (several are joined with commas). */
export function warningsOf(header: string | string[] | undefined): string[] {
  const all = Array.isArray(header) ? header.join(', ') : header ?? '';
  return [...all.matchAll(/\b\d{3} \S+ "([^"]*)"/g)].map((m) => m[1] ?? '');
}

/**
 * A small client for the Weft API, shared by the CLI and the agent: problem+json errors become ApiErrors.
 * Uses node:http with keep-alive rather than fetch: for the agent's small, frequent calls (one per CNI
 * ADD) undici's fetch costs ~2 ms more per request on Node 20.
 */
export class Client {
  private preferred = 0;
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

  constructor(private readonly target: Target, private readonly options: ClientOptions = {}) {}

  async request<T = any>(method: string, path: string, body?: unknown, opts: RequestOptions = {}): Promise<T> {
    const res = await this.send(method, path, body, opts);
    for (const w of warningsOf(res.body.headers['warning'])) this.options.onWarning?.(w);
    const text = await readAll(res.body);
    if (res.status === 204 || (opts.allowMissing && res.status === 404)) return undefined as T;
    let json: any;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    if (res.status >= 400) throw new ApiError(res.status, json?.code, json?.detail ?? (text || res.statusText));
    return json as T;
  }

  /** Opens a streaming GET (watch): an async iterable of body chunks. */
  async stream(path: string, signal?: AbortSignal): Promise<AsyncIterable<Buffer>> {
    const res = await this.send('GET', path, undefined, signal ? { signal } : {});
    if (res.status >= 400) {
      const text = await readAll(res.body);
      let json: any;
      try {
        json = JSON.parse(text);
      } catch {
        json = undefined;
      }
      throw new ApiError(res.status, json?.code, json?.detail ?? res.statusText);
    }
    return res.body;
  }

  close(): void {
    this.agent.destroy();
  }

  /** Tries each server in turn, starting with the last one that answered; only connection failures move on. */
  private async send(method: string, path: string, body: unknown, opts: RequestOptions): Promise<Reply> {
    const servers = this.target.servers;
    const headers: Record<string, string> = {};
    if (this.target.token) headers['authorization'] = `Bearer ${this.target.token}`;
    const payload = body === undefined ? undefined : JSON.stringify(body);
    if (payload !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(Buffer.byteLength(payload));
    }
    if (opts.ifMatch !== undefined) headers['if-match'] = String(opts.ifMatch);
    let lastError: unknown;
    for (let i = 0; i < servers.length; i++) {
      const idx = (this.preferred + i) % servers.length;
      try {
        const res = await this.once(new URL(`${servers[idx]}${path}`), method, headers, payload, opts.signal);
        this.preferred = idx;
        return res;
      } catch (e) {
        if (opts.signal?.aborted) throw e;
        lastError = e;
      }
    }
    const why = (lastError as { code?: string })?.code ?? (lastError as Error)?.message;
    throw new ApiError(0, 'unreachable', `cannot reach the weft server at ${servers.join(', ')} (${why}); is \`weft server\` running? (--server, WEFT_SERVER)`);
  }

  private once(url: URL, method: string, headers: Record<string, string>, payload: string | undefined, signal?: AbortSignal): Promise<Reply> {
    const lib = url.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      const req = lib.request(url, { method, headers, agent: url.protocol === 'https:' ? undefined : this.agent, ...(signal ? { signal } : {}) }, (res) => {
        resolve({ status: res.statusCode ?? 0, statusText: res.statusMessage ?? '', body: res });
      });
      req.on('error', reject);
      req.end(payload);
    });
  }
}

async function readAll(body: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of body) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
