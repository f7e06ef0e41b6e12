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

/** A small client for the Weft API, shared by the CLI and the agent: problem+json errors become ApiErrors. */
export class Client {
  private preferred = 0;

  constructor(private readonly target: Target) {}

  async request<T = any>(method: string, path: string, body?: unknown, opts: RequestOptions = {}): Promise<T> {
    const res = await this.send(method, path, body, opts);
    if (res.status === 204 || (opts.allowMissing && res.status === 404)) return undefined as T;
    const text = await res.text();
    let json: any;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    if (!res.ok) {
      const detail = json?.detail ?? (text || res.statusText);
      throw new ApiError(res.status, json?.code, detail);
    }
    return json as T;
  }

  /** Opens a streaming GET (watch); the caller reads the body. */
  async stream(path: string, signal?: AbortSignal): Promise<Response> {
    const res = await this.send('GET', path, undefined, signal ? { signal } : {});
    if (!res.ok) {
      const json: any = await res.json().catch(() => undefined);
      throw new ApiError(res.status, json?.code, json?.detail ?? res.statusText);
    }
    return res;
  }

  /** Tries each server in turn, starting with the last one that answered; only connection failures move on. */
  private async send(method: string, path: string, body: unknown, opts: RequestOptions): Promise<Response> {
    const servers = this.target.servers;
    const headers: Record<string, string> = {};
    if (this.target.token) headers['authorization'] = `Bearer ${this.target.token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (opts.ifMatch !== undefined) headers['if-match'] = String(opts.ifMatch);
    let lastError: unknown;
    for (let i = 0; i < servers.length; i++) {
      const idx = (this.preferred + i) % servers.length;
      try {
        const res = await fetch(`${servers[idx]}${path}`, {
          method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}), ...(opts.signal ? { signal: opts.signal } : {}),
        });
        this.preferred = idx;
        return res;
      } catch (e) {
        if (opts.signal?.aborted) throw e;
        lastError = e;
      }
    }
    const why = (lastError as { cause?: { code?: string } })?.cause?.code ?? (lastError as Error)?.message;
    throw new ApiError(0, 'unreachable', `cannot reach the weft server at ${servers.join(', ')} (${why}); is \`weft server\` running? (--server, WEFT_SERVER)`);
  }
}
