import type { FastifyInstance, FastifyReply } from 'fastify';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { WeftError } from '../model/index.js';

/** Where `npm run build` puts the web UI: src/ui compiled and linked (scripts/build-ui.mjs) beside its static files (scripts/copy-testdata.mjs). */
const UI_DIR = fileURLToPath(new URL('../ui/', import.meta.url));

const TYPES: Record<string, string> = { html: 'text/html; charset=utf-8', js: 'text/javascript; charset=utf-8', css: 'text/css; charset=utf-8', svg: 'image/svg+xml' };

/**
 * The page may run only its own scripts and styles and talk only to this server; it may not be framed.
 * Every name the UI shows comes from tenants (hostile to each other): it renders them as text, never as
 * markup, and this policy stops an injected script from running or sending a token elsewhere if one slipped.
 */
const HEADERS = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; require-trusted-types-for 'script'; trusted-types 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache',
};

/** The files the UI is made of: the page, its styles, its icon and its modules linked into one (scripts/build-ui.mjs). */
export const UI_FILES = ['index.html', 'app.css', 'favicon.svg', 'weft-ui.js'];

function uiFiles(dir: string): Map<string, { type: string; body: Buffer }> {
  const out = new Map<string, { type: string; body: Buffer }>();
  for (const f of UI_FILES) {
    if (!existsSync(`${dir}${f}`)) continue;
    out.set(f, { type: TYPES[f.slice(f.lastIndexOf('.') + 1)] as string, body: readFileSync(`${dir}${f}`) });
  }
  return out;
}

/** The web UI (issue 16) at /ui: static files, no credential needed to load them; everything it shows comes from the API with the user's token. */
export function uiRoutes(app: FastifyInstance, dir = UI_DIR): void {
  const files = uiFiles(dir);
  const send = (reply: FastifyReply, name: string) => {
    reply.headers(HEADERS);
    const f = files.get(name);
    if (!f) throw new WeftError('WEFT_NOT_FOUND', files.size === 0 ? 'the web UI is not built: run npm run build' : 'no such file in the web UI');
    return reply.header('content-type', f.type).send(f.body);
  };
  const to = (where: string) => async (_req: unknown, reply: FastifyReply) => reply.headers(HEADERS).redirect(where);
  app.get('/', { schema: { hide: true } }, to('/ui/'));
  // Browsers ask for it whatever the page says.
  app.get('/favicon.ico', { schema: { hide: true } }, to('/ui/favicon.svg'));
  app.get('/ui', { schema: { hide: true } }, to('/ui/'));
  app.get('/ui/', { schema: { hide: true } }, async (_req, reply) => send(reply, 'index.html'));
  app.get<{ Params: { file: string } }>('/ui/:file', { schema: { hide: true } }, async (req, reply) => send(reply, req.params.file));
}
