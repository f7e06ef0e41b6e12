import http, { type IncomingMessage, type ServerResponse as HttpResponse } from 'node:http';
import type { Socket } from 'node:net';
import { realpathSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { matchEndpoint, type Endpoint, type ProxyConfig } from './config.js';
import { dockerApiAt } from './docker-api.js';
import { HookStop, MAX_ANSWER, runPostHooks, runPreHooks, type HookDeps } from './hooks.js';
import { clearStaleSocket, ListenError, listenOn, type ListenAddress } from './listen.js';
import { checkTarget } from './target.js';
import { spliceUpgrade } from './upgrade.js';
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

/** Calls whose answers are streams (or long polls whose headers must come at once): never buffered. */
export function isStreamingCall(url: string): boolean {
  const [path = '', query = ''] = url.split('?');
  return /\/(events|logs|stats|attach|wait|top|export|get|push|archive|changes)$/.test(path) || /^\/(v[\d.]+\/)?(images\/create|build|images\/load|session|grpc)$/.test(path)
    || /(^|&)(stream|follow)=(1|true)(&|$)/.test(query);
}

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
  if (samePath(o.listen.path, o.upstream)) throw new ListenError(`--listen ${o.listen.path} is Docker's own socket (--docker): the proxy would call itself`);
  const deps: HookDeps = { docker: dockerApiAt(o.upstream), driver: o.driver, timeoutMs: o.hookTimeoutMs ?? 30_000 };
  const sockets = new Set<Socket>();
  const server = http.createServer({ requestTimeout: 0, headersTimeout: 60_000 }, (req, res) => {
    const bad = checkTarget(req.url ?? '');
    if (bad) return dockerError(res, 400, `weft docker-proxy: ${bad}`);
    const ep = matchEndpoint(o.config, req.method ?? 'GET', req.url ?? '/');
    const done = ep ? hooked(req, res, ep) : passThrough(req, res);
    done.catch((e: Error) => {
      o.log(`${req.method} ${req.url}: ${e.message}`);
      dockerError(res, 502, `weft docker-proxy: ${e.message}`);
    });
  });
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => spliceUpgrade(req, socket, head, o.upstream, o.config, o.log));
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
      o.log(`${asked.Method} ${asked.Request}: pre-hook stopped it (${e.status}): ${JSON.stringify(e.body.slice(0, 300))}`);
      return send(res, e.status, e.contentType, e.body);
    }
    // The body as it came when no adapter changed it (a JSON round trip would change numbers past 2^53
    // and invalid UTF-8); the client's own Content-Type, never one made up (Docker refuses a create
    // without one: a browser's no-preflight POST must stay refused).
    const data = call.Body === asked.Body ? (body.length ? body : undefined) : call.Body === null ? undefined : Buffer.from(call.Body, 'utf8');
    const headers = withoutFraming(req.rawHeaders);
    if (req.headers['content-type'] !== undefined) headers.push('Content-Type', req.headers['content-type']);
    // Always a length, 0 for no body: without one Node would send an empty chunked body, which Docker
    // takes for a body (`start` refuses any since API 1.24).
    headers.push('Content-Length', String(data?.length ?? 0));
    const up = upstreamRequest(call.Method, call.Request, headers, (r) => void answer(r, res, ep, call).catch((e: Error) => dockerError(res, 502, `weft docker-proxy: ${e.message}`)));
    up.on('error', (e) => dockerError(res, 502, `weft docker-proxy: Docker at ${o.upstream}: ${e.message}`));
    up.end(data);
  }

  /**
   * Docker's answer to a hooked call, through the post-hooks as one whole body: Docker sends larger JSON
   * chunked, so that is read too, up to MAX_ANSWER (beyond: 502, the hooks never skipped). Streams never
   * end or must flow as they come (events, logs, stats, pulls, attach, wait: `docker run` waits for
   * wait's headers before it starts the container): they pass untouched, unhooked, as in Powerstrip.
   */
  async function answer(r: IncomingMessage, res: HttpResponse, ep: Endpoint, call: ClientRequest): Promise<void> {
    const type = r.headers['content-type'] ?? '';
    const stream = /vnd\.docker\.(raw|multiplexed)-stream/.test(type) || isStreamingCall(call.Request);
    if (ep.post.length === 0 || stream) {
      res.writeHead(r.statusCode ?? 502, r.statusMessage, r.rawHeaders);
      res.flushHeaders();
      r.pipe(res);
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const d of r) {
      size += (d as Buffer).length;
      if (size > MAX_ANSWER) {
        r.destroy();
        return dockerError(res, 502, `weft docker-proxy: Docker's answer to ${call.Method} ${call.Request.split('?')[0]} is over ${MAX_ANSWER} bytes; its post-hooks cannot see it whole (Docker has acted)`);
      }
      chunks.push(d as Buffer);
    }
    const text = Buffer.concat(chunks).toString('utf8');
    let out;
    try {
      out = await runPostHooks(ep.post, o.config.adapters, call, { ContentType: type, Body: text.length ? text : null, Code: r.statusCode ?? 502 }, deps);
    } catch (e) {
      if (!(e instanceof HookStop)) throw e;
      o.log(`${call.Method} ${call.Request}: post-hook stopped it (${e.status}): ${JSON.stringify(e.body.slice(0, 300))}`);
      return send(res, e.status, e.contentType, e.body);
    }
    const bodyOut = out.Body ?? '';
    const headers = withoutFraming(r.rawHeaders);
    if (out.ContentType) headers.push('Content-Type', out.ContentType);
    headers.push('Content-Length', String(Buffer.byteLength(bodyOut)));
    res.writeHead(out.Code, headers);
    res.end(bodyOut);
  }

  await clearStaleSocket(o.listen.path);
  await listenOn(server, o.listen, o.group);
  const address = `unix://${o.listen.path}`;
  return {
    address,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      for (const s of sockets) s.destroy();
    }),
  };
}
