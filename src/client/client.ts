import type { IncomingMessage } from 'node:http';
import https from 'node:https';
import { X509Certificate, createHash } from 'node:crypto';

/** What the client trusts and shows: the CA that signed the server, and a host's own certificate (mTLS). */
export interface TlsConfig {
  /** PEM of the CA the server's certificate must chain to; nothing falls back to unverified TLS. */
  ca: string;
  cert?: string;
  key?: string;
}

/** Where to send requests: one or more https:// server URLs (failover in order), a bearer token and TLS. */
export interface Target {
  servers: string[];
  token: string | undefined;
  tls?: TlsConfig;
}

/** TLS failures that mean "this server is not the one you trust", with what to do about it. */
const TLS_ERRORS: Record<string, string> = {
  SELF_SIGNED_CERT_IN_CHAIN: 'its certificate is not signed by the CA this client trusts',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'its certificate is not signed by the CA this client trusts',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'its certificate is not signed by the CA this client trusts',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'its certificate is self-signed and not trusted',
  ERR_TLS_CERT_ALTNAME_INVALID: 'its certificate does not name the address used',
  CERT_HAS_EXPIRED: 'its certificate has expired',
  EPROTO: 'it does not speak TLS (plain HTTP is refused)',
  ERR_SSL_WRONG_VERSION_NUMBER: 'it does not speak TLS (plain HTTP is refused)',
};
const TLS_HINT = 'give the CA with --ca FILE or WEFT_CA (the server keeps it in DATA_DIR/ca.crt), or log in again with `weft login --ca-pin sha256:...`';

/** A failed API call: the HTTP status (0 when no server answered), the problem's code, detail and the field it names. */
export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string | undefined, detail: string, readonly field?: string) {
    super(detail);
    this.name = 'ApiError';
  }
}

/** The problem's `field`, when the server named one (a string of sane length; anything else is ignored). */
function fieldOf(json: any): string | undefined {
  const f = json?.field;
  return typeof f === 'string' && f.length <= 200 ? f : undefined;
}

export interface RequestOptions {
  ifMatch?: number;
  signal?: AbortSignal;
  /** Treat 404 as success (idempotent deletes). */
  allowMissing?: boolean;
  /** A server silent this long (no answer, no bytes) is given up on, like one that cannot be reached. */
  timeoutMs?: number;
}

/** Requests (not watch streams) wait at most this long for a silent server. */
const REQUEST_TIMEOUT_MS = 30_000;
/** Tries on kept-alive connections the server had closed (each idle one may have been) before giving up on a server. */
const STALE_RETRIES = 3;

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
  private agent: https.Agent;
  /** Agents of earlier certificates: their open streams run on until the server ends them. */
  private readonly retired: https.Agent[] = [];

  constructor(private readonly target: Target, private readonly options: ClientOptions = {}) {
    this.agent = Client.agentFor(target.tls);
  }

  private static agentFor(tls: TlsConfig | undefined): https.Agent {
    // Only the TLS fields: anything else in the object (a `host`) would become a connection option.
    const pick = tls ? { ca: tls.ca, ...(tls.cert !== undefined ? { cert: tls.cert, key: tls.key } : {}) } : {};
    return new https.Agent({ keepAlive: true, maxSockets: 64, ...pick, minVersion: 'TLSv1.2' });
  }

  /** Switches to a renewed certificate: new connections use it, connections already open finish on the old one. */
  setTls(tls: TlsConfig): void {
    this.retired.push(this.agent);
    this.agent = Client.agentFor(tls);
  }

  async request<T = any>(method: string, path: string, body?: unknown, opts: RequestOptions = {}): Promise<T> {
    const res = await this.send(method, path, body, { timeoutMs: REQUEST_TIMEOUT_MS, ...opts });
    for (const w of warningsOf(res.body.headers['warning'])) this.options.onWarning?.(w);
    const text = await readAll(res.body);
    if (res.status === 204 || (opts.allowMissing && res.status === 404)) return undefined as T;
    let json: any;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    if (res.status >= 400) throw new ApiError(res.status, json?.code, json?.detail ?? (text || res.statusText), fieldOf(json));
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
      throw new ApiError(res.status, json?.code, json?.detail ?? res.statusText, fieldOf(json));
    }
    return res.body;
  }

  close(): void {
    this.agent.destroy();
    for (const a of this.retired.splice(0)) a.destroy();
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
        const res = await this.onFreshConnection(new URL(`${servers[idx]}${path}`), method, headers, payload, opts);
        this.preferred = idx;
        return res;
      } catch (e) {
        if (opts.signal?.aborted || e instanceof ApiError) throw e;
        lastError = e;
      }
    }
    const code = (lastError as { code?: string })?.code ?? '';
    const tls = TLS_ERRORS[code] ?? (/wrong version number|packet length too long/i.test((lastError as Error)?.message ?? '') ? TLS_ERRORS['EPROTO'] : undefined);
    if (tls) throw new ApiError(0, 'tls', `refusing the weft server at ${servers.join(', ')}: ${tls} (${code || (lastError as Error).message}); ${TLS_HINT}`);
    const why = code || (lastError as Error)?.message;
    throw new ApiError(0, 'unreachable', `cannot reach the weft server at ${servers.join(', ')} (${why}); is \`weft server\` running? (--server, WEFT_SERVER)`);
  }

  /**
   * A kept-alive connection the server closed as this request went out on it (its keep-alive timeout,
   * 10 s on Weft's server, crossing an agent's 10 s heartbeat; Node keeps idle connections until the
   * server closes them) fails before the server read the request: it is sent again on another connection,
   * as Node's documentation advises (`request.reusedSocket`). A fresh connection's failure is the server's.
   */
  private async onFreshConnection(url: URL, method: string, headers: Record<string, string>, payload: string | undefined, opts: RequestOptions): Promise<Reply> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.once(url, method, headers, payload, opts);
      } catch (e) {
        if (!(e as { staleConnection?: boolean }).staleConnection || attempt >= STALE_RETRIES || opts.signal?.aborted) throw e;
      }
    }
  }

  private once(url: URL, method: string, headers: Record<string, string>, payload: string | undefined, opts: RequestOptions): Promise<Reply> {
    const { signal, timeoutMs } = opts;
    if (url.protocol !== 'https:') {
      return Promise.reject(new ApiError(0, 'plain-http', `${url.origin}: plain HTTP is refused; the weft server speaks HTTPS only (use https://${url.host})`));
    }
    return new Promise((resolve, reject) => {
      const req = https.request(url, { method, headers, agent: this.agent, ...(signal ? { signal } : {}), ...(timeoutMs ? { timeout: timeoutMs } : {}) }, (res) => {
        resolve({ status: res.statusCode ?? 0, statusText: res.statusMessage ?? '', body: res });
      });
      req.on('timeout', () => req.destroy(Object.assign(new Error(`no answer in ${(timeoutMs ?? 0) / 1000} s`), { code: 'ETIMEDOUT' })));
      req.on('error', (e: Error & { code?: string }) => reject(req.reusedSocket && (e.code === 'ECONNRESET' || e.code === 'EPIPE') ? Object.assign(e, { staleConnection: true }) : e));
      req.end(payload);
    });
  }
}

async function readAll(body: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of body) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * Fetches the server's CA certificate and accepts it only if its SHA-256 is `pin` (from a join token or
 * `weft login --ca-pin`): the one request made before the server is verified, and its answer is checked
 * against the pin before anything is sent or trusted.
 */
export async function fetchPinnedCa(server: string, pin: string): Promise<string> {
  const url = new URL(`${server}/api/v1/ca.crt`);
  if (url.protocol !== 'https:') throw new ApiError(0, 'plain-http', `${url.origin}: plain HTTP is refused (use https://${url.host})`);
  const pem = await new Promise<string>((resolve, reject) => {
    const req = https.get(url, { rejectUnauthorized: false, agent: false, timeout: 10_000 }, (res) => {
      void readAll(res).then((text) => (res.statusCode === 200 ? resolve(text) : reject(new Error(`GET /api/v1/ca.crt answered ${res.statusCode}`))), reject);
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
  }).catch((e: Error) => {
    throw new ApiError(0, 'unreachable', `cannot fetch the CA from ${server} (${(e as { code?: string }).code ?? e.message})`);
  });
  // Exactly one certificate, and a CA: a second one after the pinned CA would otherwise be trusted with it.
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----/g)?.length ?? 0;
  let cert: X509Certificate;
  try {
    if (blocks !== 1) throw new Error(`${blocks} certificates`);
    cert = new X509Certificate(pem);
    if (!cert.ca) throw new Error('not a CA certificate');
  } catch (e) {
    throw new ApiError(0, 'tls', `${server} did not answer one CA certificate for /api/v1/ca.crt (${(e as Error).message}); nothing was sent`);
  }
  const got = `sha256:${createHash('sha256').update(cert.raw).digest('hex')}`;
  if (got !== pin.toLowerCase()) {
    throw new ApiError(0, 'tls', `the CA of ${server} is ${got}, not the pinned ${pin}: this is not the server the token was made for (or someone is in between); nothing was sent`);
  }
  // What is trusted from here on is the certificate that was hashed, re-encoded, never the text received.
  return cert.toString();
}
