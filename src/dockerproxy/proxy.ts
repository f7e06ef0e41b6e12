import http, { type IncomingMessage, type ServerResponse as HttpResponse } from 'node:http';
import { connect, type Socket } from 'node:net';
import { realpathSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { matchEndpoint, type Endpoint, type ProxyConfig } from './config.js';
import { dockerApiAt } from './docker-api.js';
import { HookStop, MAX_ANSWER, runPostHooks, runPreHooks, type HookDeps } from './hooks.js';
import { clearStaleSocket, ListenError, listenOn, type ListenAddress } from './listen.js';
import type { ClientRequest } from './protocol.js';

export interface ProxyOptions {
  listen: ListenAddress;
  /** Docker's API socket. */
  upstream: string;
  config: ProxyConfig;
  /** Weft's Docker driver (network and IPAM), as dockerd knows the agent's plugin socket. */
  driver: string;
  /** The unix socket's group (0660), e.g. Docker's `docker` group; undefined: 0600. */
  group?: number;
  /** How long an adapter may take to answer. */
  hookTimeoutMs?: number;
  log: (line: string) => void;
}

export interface RunningProxy { address: string; close(): Promise<void> }

/** A hooked call's body is read whole, up to this: a container's config is a few kB. */
const MAX_BODY = 16 << 20;

const dockerError = (res: HttpResponse, status: number, message: string) => send(res, status, 'application/json', JSON.stringify({ message }));

function send(res: HttpResponse, status: number, contentType: string, body: string | null): void {
  if (res.headersSent) return void res.destroy();
  const data = body ?? '';
  res.writeHead(status, { ...(contentType ? { 'content-type': contentType } : {}), 'content-length': Buffer.byteLength(data) });
  res.end(data);
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (d: Buffer) => {
      size += d.length;
      if (size > MAX_BODY) reject(new Error(`a hooked call's body is at most ${MAX_BODY} bytes`));
      else chunks.push(d);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** The same path (links resolved) even when one side does not exist yet. */
function samePath(a: string, b: string): boolean {
  const real = (p: string) => { try { return realpathSync(p); } catch { try { return join(realpathSync(dirname(p)), basename(p)); } catch { return p; } } };
  return real(a) === real(b);
}

/** Headers of a call or response without the framing ones, which the proxy sets again for a changed body. */
function withoutFraming(raw: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const k = raw[i]!.toLowerCase();
    if (k !== 'content-length' && k !== 'transfer-encoding' && k !== 'content-type') out.push(raw[i]!, raw[i + 1]!);
  }
  return out;
}

/**
 * The proxy: every call reaches Docker as it came unless an endpoint of the config hooks it; upgraded
 * connections (attach, exec, BuildKit's session) are spliced byte for byte.
 */
export async function startDockerProxy(o: ProxyOptions): Promise<RunningProxy> {
  if (o.listen.kind === 'unix' && samePath(o.listen.path, o.upstream)) throw new ListenError(`--listen ${o.listen.path} is Docker's own socket (--docker): the proxy would call itself`);
  const deps: HookDeps = { docker: dockerApiAt(o.upstream), driver: o.driver, timeoutMs: o.hookTimeoutMs ?? 30_000 };
  const sockets = new Set<Socket>();
  const server = http.createServer({ requestTimeout: 0, headersTimeout: 60_000 }, (req, res) => {
    const ep = matchEndpoint(o.config, req.method ?? 'GET', req.url ?? '/');
    const done = ep ? hooked(req, res, ep) : passThrough(req, res);
    done.catch((e: Error) => {
      o.log(`${req.method} ${req.url}: ${e.message}`);
      dockerError(res, 502, `weft docker-proxy: ${e.message}`);
    });
  });
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => splice(req, socket, head));
  server.on('connection', (s: Socket) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });

  function upstreamRequest(method: string, path: string, headers: string[], onResponse: (r: IncomingMessage) => void): http.ClientRequest {
    return http.request({ socketPath: o.upstream, method, path, headers, setHost: false }, onResponse);
  }

  async function passThrough(req: IncomingMessage, res: HttpResponse): Promise<void> {
    const up = upstreamRequest(req.method ?? 'GET', req.url ?? '/', req.rawHeaders, (r) => {
      res.writeHead(r.statusCode ?? 502, r.statusMessage, r.rawHeaders);
      // Sent now, not with the first byte of the body: Docker's long polls (`wait`, which `docker run`
      // holds open before it starts the container; `events`) answer their headers long before any body.
      res.flushHeaders();
      // Streams (logs -f, events, pulls) flush chunk by chunk: each write goes out as it comes.
      r.pipe(res);
      r.on('error', () => res.destroy());
    });
    res.on('close', () => { if (!res.writableFinished) up.destroy(); });
    up.on('error', (e) => dockerError(res, 502, `weft docker-proxy: Docker at ${o.upstream}: ${e.message}`));
    req.pipe(up);
  }

  async function hooked(req: IncomingMessage, res: HttpResponse, ep: Endpoint): Promise<void> {
    let body: Buffer;
    try {
      body = await readBody(req);
    } catch (e) {
      return dockerError(res, 413, `weft docker-proxy: ${(e as Error).message}`);
    }
    const asked: ClientRequest = { Method: req.method ?? 'GET', Request: req.url ?? '/', Body: body.length ? body.toString('utf8') : null };
    let call = asked;
    try {
      call = await runPreHooks(ep.pre, o.config.adapters, asked, deps);
    } catch (e) {
      if (!(e instanceof HookStop)) throw e;
      o.log(`${asked.Method} ${asked.Request}: pre-hook stopped it (${e.status}): ${e.body.slice(0, 300)}`);
      return send(res, e.status, e.contentType, e.body);
    }
    const data = call.Body === null ? undefined : Buffer.from(call.Body, 'utf8');
    const headers = withoutFraming(req.rawHeaders);
    // Always a length, 0 for no body: without one Node would send an empty chunked body, which Docker
    // takes for a body (`start` refuses any since API 1.24).
    if (data) headers.push('Content-Type', req.headers['content-type'] ?? 'application/json');
    headers.push('Content-Length', String(data?.length ?? 0));
    const up = upstreamRequest(call.Method, call.Request, headers, (r) => void answer(r, res, ep, call).catch((e: Error) => dockerError(res, 502, `weft docker-proxy: ${e.message}`)));
    up.on('error', (e) => dockerError(res, 502, `weft docker-proxy: Docker at ${o.upstream}: ${e.message}`));
    up.end(data);
  }

  /**
   * Docker's answer to a hooked call: through the post-hooks when it is one whole body of a known length
   * (as Powerstrip, never a chunked or raw stream, which pass through untouched).
   */
  async function answer(r: IncomingMessage, res: HttpResponse, ep: Endpoint, call: ClientRequest): Promise<void> {
    const length = Number(r.headers['content-length'] ?? (r.statusCode === 204 || r.statusCode === 304 ? 0 : NaN));
    const type = r.headers['content-type'] ?? '';
    const stream = /vnd\.docker\.(raw|multiplexed)-stream/.test(type) || r.headers['transfer-encoding'] !== undefined || !Number.isFinite(length) || length > MAX_ANSWER;
    if (ep.post.length === 0 || stream) {
      res.writeHead(r.statusCode ?? 502, r.statusMessage, r.rawHeaders);
      res.flushHeaders();
      r.pipe(res);
      return;
    }
    const chunks: Buffer[] = [];
    for await (const d of r) chunks.push(d as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    let out;
    try {
      out = await runPostHooks(ep.post, o.config.adapters, call, { ContentType: type, Body: text.length ? text : null, Code: r.statusCode ?? 502 }, deps);
    } catch (e) {
      if (!(e instanceof HookStop)) throw e;
      o.log(`${call.Method} ${call.Request}: post-hook stopped it (${e.status}): ${e.body.slice(0, 300)}`);
      return send(res, e.status, e.contentType, e.body);
    }
    const bodyOut = out.Body ?? '';
    const headers = withoutFraming(r.rawHeaders);
    if (out.ContentType) headers.push('Content-Type', out.ContentType);
    headers.push('Content-Length', String(Buffer.byteLength(bodyOut)));
    res.writeHead(out.Code, headers);
    res.end(bodyOut);
  }

  /** An upgraded call: the request head as it came, then both directions spliced until either side ends. */
  function splice(req: IncomingMessage, client: Socket, head: Buffer): void {
    const up = connect(o.upstream);
    const end = () => { client.destroy(); up.destroy(); };
    client.on('error', end);
    up.on('error', (e) => {
      if (!client.destroyed && client.bytesWritten === 0) client.end(`HTTP/1.1 502 Bad Gateway\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n${JSON.stringify({ message: `weft docker-proxy: Docker at ${o.upstream}: ${e.message}` })}`);
      else end();
    });
    up.on('connect', () => {
      let text = `${req.method} ${req.url} HTTP/${req.httpVersion}\r\n`;
      for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) text += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`;
      up.write(`${text}\r\n`);
      if (head.length) up.write(head);
      client.pipe(up);
      up.pipe(client);
    });
    client.on('close', () => up.destroy());
    up.on('close', () => client.destroy());
  }

  if (o.listen.kind === 'unix') await clearStaleSocket(o.listen.path);
  await listenOn(server, o.listen, o.group);
  const address = o.listen.kind === 'unix' ? `unix://${o.listen.path}` : `tcp://${o.listen.host}:${(server.address() as { port: number }).port}`;
  return {
    address,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      for (const s of sockets) s.destroy();
    }),
  };
}
