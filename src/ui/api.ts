/** The API as the browser calls it: the user's bearer token on every request, problems turned into errors that say what the server said. */

export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

export class Api {
  constructor(readonly token: string, private readonly onUnauthorized: () => void) {}

  private headers(): Record<string, string> {
    return { authorization: `Bearer ${this.token}`, accept: 'application/json' };
  }

  async get<T>(path: string, signal?: AbortSignal): Promise<T> {
    const r = await fetch(path, { headers: this.headers(), ...(signal ? { signal } : {}) });
    return this.answer<T>(r);
  }

  async send<T>(method: 'POST' | 'PUT' | 'DELETE', path: string, body?: unknown): Promise<T> {
    const r = await fetch(path, { method, headers: { ...this.headers(), ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
    return this.answer<T>(r);
  }

  private async answer<T>(r: Response): Promise<T> {
    if (r.ok) return (r.status === 204 ? undefined : await r.json()) as T;
    const p = (await r.json().catch(() => ({}))) as { code?: string; detail?: string; title?: string };
    if (r.status === 401) this.onUnauthorized();
    throw new ApiError(r.status, p.code ?? `HTTP_${r.status}`, p.detail ?? p.title ?? `HTTP ${r.status}`);
  }

  /**
   * An NDJSON stream (watch, flows with follow=1): each line to `line` until the server ends it or
   * `signal` aborts. Resolves when it ends; rejects with ApiError when refused. `opened`: once the server
   * has taken the stream (its answer's head came).
   */
  async stream(path: string, line: (value: unknown) => void, signal: AbortSignal, opened?: () => void): Promise<void> {
    const r = await fetch(path, { headers: { ...this.headers(), accept: 'application/x-ndjson' }, signal });
    if (!r.ok || !r.body) await this.answer(r);
    opened?.();
    const reader = (r.body as ReadableStream<Uint8Array>).getReader();
    const text = new TextDecoder();
    let partial = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      const lines = (partial + text.decode(value, { stream: true })).split('\n');
      partial = lines.pop() ?? '';
      for (const l of lines) if (l.trim()) line(JSON.parse(l));
    }
  }
}

/** Exchanges a user name and password for a token (POST /api/v1/login): the secret and its id. */
export async function login(username: string, password: string): Promise<{ token: string; id: string }> {
  const r = await fetch('/api/v1/login', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username, password }) });
  const body = (await r.json().catch(() => ({}))) as { token?: string; id?: string; detail?: string; title?: string; code?: string };
  if (!r.ok || !body.token || !body.id) throw new ApiError(r.status, body.code ?? `HTTP_${r.status}`, body.detail ?? body.title ?? `HTTP ${r.status}`);
  return { token: body.token, id: body.id };
}
