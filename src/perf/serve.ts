import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { isIPv4, isIPv6, type AddressInfo } from 'node:net';
import type { Runner } from '../exec/index.js';
import { renderCsv } from './csv.js';
import { PerfError, invalidField } from './errors.js';
import { PAGE_STYLE_HASH, renderIndexPage } from './page.js';
import { PNG_UNAVAILABLE, pngAvailable, renderPng } from './png.js';
import type { BenchResult } from './results.js';
import type { ResultStore } from './store.js';
import { renderLatencySvg, renderThroughputSvg } from './svg.js';

export interface ServeAddress {
  host: string;
  port: number;
}

/**
 * `--serve`'s value: `:PORT` listens on 127.0.0.1 only (the results name tenants and their groups);
 * exposing them takes an address given on purpose, `0.0.0.0:8080` or `[::]:8080`. Addresses are IP
 * literals or `localhost`, never names to look up.
 */
export function parseServeAddress(text: string, flag = '--serve'): ServeAddress {
  const m = /^(?:(\[[0-9A-Fa-f:.]+\]|[^:[\]]*))?:([0-9]{1,5})$/.exec(text.trim());
  const how = `give :PORT for 127.0.0.1, or ADDRESS:PORT to listen elsewhere (0.0.0.0:8080 exposes it)`;
  if (!m) throw invalidField(flag, `'${text.slice(0, 80)}' is not [ADDRESS]:PORT: ${how}`);
  const port = Number(m[2]);
  // 0: any free port (the URL printed says which), as a test or a second run beside another wants.
  if (port > 65_535) throw invalidField(flag, `port ${m[2]} is not within 0-65535: ${how}`);
  const given = m[1] ?? '';
  const host = given === '' ? '127.0.0.1' : given.startsWith('[') ? given.slice(1, -1) : given;
  if (host !== 'localhost' && !isIPv4(host) && !(given.startsWith('[') && isIPv6(host))) throw invalidField(flag, `'${given}' is not an IP address ([…] around IPv6) or localhost: ${how}`);
  return { host, port };
}

/** Longer request targets are refused before any routing (ids are at most 64 characters). */
export const MAX_URL_LENGTH = 2048;
/** PNG conversions at once; more get 503 and come back later (each is a process). */
export const MAX_PNG_AT_ONCE = 2;
const INDEX_RUNS = 50;
const LISTEN_FAILURES: Partial<Record<string, string>> = { EADDRINUSE: 'is in use', EACCES: 'needs privileges', EADDRNOTAVAIL: 'is not an address of this machine' };

/** No script may run, in the page or in an SVG opened alone; the page's one style is allowed by its hash. */
const SECURITY = {
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache',
};
const csp = (style: string) => `default-src 'none'; ${style}base-uri 'none'; form-action 'none'; frame-ancestors 'none'`;

interface Reply {
  status: number;
  type: string;
  body: string | Buffer;
  headers?: Record<string, string>;
}

const text = (status: number, message: string, headers?: Record<string, string>): Reply => ({ status, type: 'text/plain; charset=utf-8', body: `${message}\n`, ...(headers ? { headers } : {}) });

/**
 * Every route as an exact pattern over the raw path, never decoded: `%2f`, `..` and the like match none
 * and are 404, and a run id is only ever [a-z0-9-] before it reaches the store.
 */
const ROUTES = {
  run: /^\/runs\/([a-z0-9-]{1,64})\.(json|csv)$/,
  chart: /^\/runs\/([a-z0-9-]{1,64})\/(throughput|latency)\.(svg|png)$/,
};

export interface ResultsServerOptions {
  store: ResultStore;
  host: string;
  port: number;
  /** For PNG through rsvg-convert; without one, or without rsvg-convert, the PNG routes are 404. */
  runner?: Runner;
  /** Told about failures that are ours (a 500), not about refused requests. */
  onError?: (e: unknown) => void;
}

export interface ResultsServer {
  url: string;
  port: number;
  png: boolean;
  close(): Promise<void>;
}

/** A read-only server over a results directory, listening once this resolves. */
export async function startResultsServer(opts: ResultsServerOptions): Promise<ResultsServer> {
  const png = opts.runner !== undefined && (await pngAvailable(opts.runner));
  const ctx: Context = { store: opts.store, runner: png ? opts.runner : undefined, pngBusy: 0 };
  const server = createServer({ maxHeaderSize: 8192, headersTimeout: 10_000, requestTimeout: 30_000 }, (req, res) => {
    respond(ctx, req)
      .catch((e: unknown) => {
        opts.onError?.(e);
        return text(500, 'internal error');
      })
      .then((r) => send(req, res, r))
      .catch(() => res.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => {
      // In use, not ours to bind, not an address of this machine: the flag's fault, said as such.
      const why = LISTEN_FAILURES[e.code ?? ''];
      reject(why ? invalidField('--serve', `${opts.host}:${opts.port} ${why}`) : e);
    });
    server.listen(opts.port, opts.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  return {
    url: `http://${host}:${port}/`,
    port,
    png,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function send(req: IncomingMessage, res: ServerResponse, r: Reply): void {
  const html = r.type.startsWith('text/html');
  res.writeHead(r.status, {
    ...SECURITY,
    'content-security-policy': csp(html ? `style-src ${PAGE_STYLE_HASH}; ` : ''),
    'content-type': r.type,
    'content-length': String(Buffer.byteLength(r.body)),
    ...r.headers,
  });
  res.end(req.method === 'HEAD' ? undefined : r.body);
}

interface Context {
  store: ResultStore;
  runner: Runner | undefined;
  pngBusy: number;
}

async function respond(ctx: Context, req: IncomingMessage): Promise<Reply> {
  if (req.method !== 'GET' && req.method !== 'HEAD') return text(405, 'method not allowed: this server only reads', { allow: 'GET, HEAD' });
  const url = req.url ?? '';
  if (url.length > MAX_URL_LENGTH) return text(414, 'URL too long');
  const path = url.split('?', 1)[0] ?? '';
  if (path === '/') {
    const why = ctx.runner ? '' : PNG_UNAVAILABLE;
    return { status: 200, type: 'text/html; charset=utf-8', body: renderIndexPage(await ctx.store.list(INDEX_RUNS), { available: ctx.runner !== undefined, why }) };
  }
  const run = ROUTES.run.exec(path);
  const chart = ROUTES.chart.exec(path);
  const id = run?.[1] ?? chart?.[1];
  if (id === undefined) return text(404, 'not found');
  let r: BenchResult;
  try {
    r = await ctx.store.read(id);
  } catch (e) {
    if (!(e instanceof PerfError)) throw e;
    // A file that is there but not a valid record is our data's fault, not the request's.
    return e.code === 'WEFT_NOT_FOUND' ? text(404, e.message) : text(500, e.message);
  }
  if (run) {
    return run[2] === 'json'
      ? { status: 200, type: 'application/json; charset=utf-8', body: `${JSON.stringify(r, null, 2)}\n` }
      : { status: 200, type: 'text/csv; charset=utf-8; header=present', body: renderCsv(r), headers: { 'content-disposition': `attachment; filename="${r.id}.csv"` } };
  }
  const svg = chart?.[2] === 'throughput' ? renderThroughputSvg(r) : renderLatencySvg(r);
  if (chart?.[3] === 'svg') return { status: 200, type: 'image/svg+xml; charset=utf-8', body: svg };
  return pngReply(ctx, svg);
}

async function pngReply(ctx: Context, svg: string): Promise<Reply> {
  if (!ctx.runner) return text(404, PNG_UNAVAILABLE);
  if (ctx.pngBusy >= MAX_PNG_AT_ONCE) return text(503, 'busy making other PNGs: try again', { 'retry-after': '1' });
  ctx.pngBusy++;
  try {
    return { status: 200, type: 'image/png', body: await renderPng(ctx.runner, svg) };
  } finally {
    ctx.pngBusy--;
  }
}
