import { writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { WeftError } from '../model/index.js';
import { Control, type QuotaLimits } from '../control/index.js';
import { buildApp } from './app.js';
import type { Limits } from './limits.js';
import { openStore, type StoreFlags } from './store-open.js';

export interface ServerOptions extends StoreFlags {
  listen: string;
  logLevel: string;
  hostTimeoutMs?: number;
  /** Endpoints of a host silent this long are released (default 10 minutes). */
  hostGraceMs?: number;
  /** Per-user quotas (--quota-objects, --quota-rules). */
  quota?: QuotaLimits;
  /** Request, body, keep-alive and watch limits. */
  limits?: Partial<Limits>;
}

export interface RunningServer {
  url: string;
  adminToken: string | undefined;
  close(): Promise<void>;
}

export function parseListen(text: string): { host: string; port: number } {
  const m = /^(.*):([0-9]{1,5})$/.exec(text);
  const port = Number(m?.[2]);
  if (!m || !m[1] || port > 65535) throw new WeftError('WEFT_INVALID_FIELD', `--listen: '${text}' is not HOST:PORT`, { field: 'listen' });
  return { host: m[1].replace(/^\[(.*)\]$/, '$1'), port };
}

/** Opens the store, bootstraps it, and serves the API until `close()`. */
export async function startServer(opts: ServerOptions): Promise<RunningServer> {
  const { host, port } = parseListen(opts.listen);
  const logger = pino({ level: opts.logLevel, base: { proc: 'weft-server' } }, pino.destination(2));
  const store = await openStore(opts);
  const control = new Control(store, () => new Date(), {
    ...(opts.hostTimeoutMs === undefined ? {} : { hostTimeoutMs: opts.hostTimeoutMs }),
    ...(opts.quota === undefined ? {} : { quota: opts.quota }),
  });
  const { adminToken } = await control.bootstrap();
  if (adminToken !== undefined && opts.store === 'sqlite') {
    const file = join(opts.dataDir, 'admin.token');
    writeFileSync(file, `${adminToken}\n`, { mode: 0o600 });
    chmodSync(file, 0o600);
  }
  const app = await buildApp({ control, logger, ...(opts.limits ? { limits: opts.limits } : {}) });
  let address: string;
  try {
    address = await app.listen({ host, port });
  } catch (e) {
    await app.close();
    await store.close();
    throw new WeftError('WEFT_IN_USE', `--listen: cannot listen on ${opts.listen}: ${(e as Error).message}`, { field: 'listen', cause: e });
  }
  const grace = opts.hostGraceMs ?? 600_000;
  const gc = setInterval(() => {
    control.collectSilentHosts(grace).then((ids) => {
      if (ids.length) logger.info({ endpoints: ids.length }, 'released the endpoints of hosts silent past the grace period');
    }, (e: Error) => logger.warn({ err: e.message }, 'host garbage collection failed'));
  }, Math.min(30_000, Math.max(1_000, grace / 10)));
  gc.unref();
  return {
    url: address,
    adminToken,
    async close() {
      clearInterval(gc);
      await app.close();
      await store.close();
    },
  };
}
