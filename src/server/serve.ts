import { writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { WeftError } from '../model/index.js';
import { Control, DEFAULT_HOST_GRACE_MS, type QuotaLimits } from '../control/index.js';
import { buildApp } from './app.js';
import { flagCa, prepareTls, type TlsFlags } from './tls.js';
import { DEFAULT_AUDIT_MAX_BYTES, openAuditSink, type AuditSink } from './audit-file.js';
import type { Limits } from './limits.js';
import { openStore, type StoreFlags } from './store-open.js';

export interface ServerOptions extends StoreFlags {
  listen: string;
  logLevel: string;
  hostTimeoutMs?: number;
  /** Endpoints of a host silent this long are released (default 10 minutes). */
  hostGraceMs?: number;
  /** Bring-your-own TLS material and extra names for the server certificate. */
  tls?: TlsFlags;
  /** Lifetime of the host certificates this server signs (default 30 days; agents renew at two thirds). */
  hostCertTtlMs?: number;
  /** Lifetime of tokens minted by login (default 12 h); null: never expire. */
  tokenTtlMs?: number | null;
  /** A file, `-` (standard error) or `none`; default DATA_DIR/audit.log. */
  auditLog?: string;
  /** The audit file's size before it is rotated (one older file is kept). */
  auditLogMaxBytes?: number;
  /** Per-user quotas (--quota-objects, --quota-rules). */
  quota?: QuotaLimits;
  /** Request, body, keep-alive and watch limits. */
  limits?: Partial<Limits>;
}

/** Expired tokens stay listed (as expired) this long, then are forgotten. */
const EXPIRED_TOKEN_RETENTION_MS = 7 * 86_400_000;

export interface RunningServer {
  url: string;
  adminToken: string | undefined;
  /** The CA clients verify this server with (PEM), and where it was written for local clients. */
  caPem: string;
  /** A one-time join token for a host (what `weft host add` asks for), minted in-process by `weft up`. */
  invite(host: string): Promise<string>;
  close(): Promise<void>;
}

export function parseListen(text: string): { host: string; port: number } {
  const m = /^(.*):([0-9]{1,5})$/.exec(text);
  const port = Number(m?.[2]);
  if (!m || !m[1] || port > 65535) throw new WeftError('WEFT_INVALID_FIELD', `--listen: '${text}' is not HOST:PORT`, { field: 'listen' });
  return { host: m[1].replace(/^\[(.*)\]$/, '$1'), port };
}

/** Opened before the store: a server that cannot keep its audit log does not start. */
function openAudit(opts: ServerOptions, logger: pino.Logger): AuditSink {
  const spec = opts.auditLog ?? join(opts.dataDir, 'audit.log');
  try {
    return openAuditSink(spec, opts.auditLogMaxBytes ?? DEFAULT_AUDIT_MAX_BYTES, (e, lost) => logger.error({ err: e.message, lost }, 'cannot write the audit log; lines lost so far'),
      (lost) => logger.warn({ lost }, 'the audit log takes lines again; lines lost in all'));
  } catch (e) {
    throw new WeftError('WEFT_INVALID_FIELD', `--audit-log: cannot open ${spec} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { field: 'audit-log', cause: e });
  }
}

/**
 * The periodic work: the host GC (each pass probes the store with a write first, see StoreWatch), a log
 * line when the store stops or starts taking writes, and the token sweep. Returns its stop.
 */
function housekeeping(control: Control, grace: number, logger: pino.Logger): () => void {
  let writable = true;
  const gc = setInterval(() => {
    control.collectSilentHosts(grace).then((ids) => {
      if (ids.length) logger.info({ endpoints: ids.length }, 'released the endpoints of hosts silent past the grace period');
    }, (e: Error) => logger.warn({ err: e.message }, 'host garbage collection failed')).finally(() => {
      const h = control.store.writeHealth();
      if (h.writable === writable) return;
      writable = h.writable;
      if (!h.writable) logger.error({ err: h.error?.message }, 'the store cannot write: writes are refused, reads go on, the host GC judges no host');
      else logger.warn({ graceMs: grace }, 'the store takes writes again; the host GC judges no host until a grace period has passed');
    });
  }, Math.min(30_000, Math.max(1_000, grace / 10)));
  gc.unref();
  const sweep = setInterval(() => {
    control.users.tokens.sweep(EXPIRED_TOKEN_RETENTION_MS).catch((e: Error) => logger.warn({ err: e.message }, 'sweeping expired tokens failed'));
  }, 600_000);
  sweep.unref();
  return () => {
    clearInterval(gc);
    clearInterval(sweep);
  };
}

/** Opens the store, bootstraps it, and serves the API until `close()`. */
export async function startServer(opts: ServerOptions): Promise<RunningServer> {
  const { host, port } = parseListen(opts.listen);
  const logger = pino({ level: opts.logLevel, base: { proc: 'weft-server' } }, pino.destination(2));
  const audit = openAudit(opts, logger);
  const store = await openStore(opts).catch((e) => {
    audit.close();
    throw e;
  });
  let control: Control;
  let tls: Awaited<ReturnType<typeof prepareTls>>;
  let adminToken: string | undefined;
  try {
    const ca = flagCa(opts.tls ?? {});
    control = new Control(store, () => new Date(), {
      ...(opts.hostTimeoutMs !== undefined ? { hostTimeoutMs: opts.hostTimeoutMs } : {}), ...(ca ? { ca } : {}),
      ...(opts.hostGraceMs !== undefined ? { hostGraceMs: opts.hostGraceMs } : {}),
      ...(opts.hostCertTtlMs !== undefined ? { hostCertTtlMs: opts.hostCertTtlMs } : {}),
      ...(opts.tokenTtlMs === undefined ? {} : { tokenTtlMs: opts.tokenTtlMs }),
      ...(opts.quota === undefined ? {} : { quota: opts.quota }),
    });
    const boot = await control.bootstrap();
    adminToken = boot.adminToken;
    for (const w of boot.warnings) logger.warn(w);
    tls = await prepareTls({ dataDir: opts.dataDir, listenHost: host, flags: opts.tls ?? {}, ca: control.ca });
  } catch (e) {
    audit.close();
    await store.close();
    throw e;
  }
  if (tls.made) logger.info({ dir: opts.dataDir }, 'made a server certificate for this server\'s names');
  if (adminToken !== undefined && opts.store === 'sqlite') {
    const file = join(opts.dataDir, 'admin.token');
    writeFileSync(file, `${adminToken}\n`, { mode: 0o600 });
    chmodSync(file, 0o600);
  }
  const app = await buildApp({ control, logger, tls, audit, ...(opts.limits ? { limits: opts.limits } : {}) });
  let address: string;
  try {
    address = await app.listen({ host, port });
  } catch (e) {
    await app.close();
    audit.close();
    await store.close();
    throw new WeftError('WEFT_IN_USE', `--listen: cannot listen on ${opts.listen}: ${(e as Error).message}`, { field: 'listen', cause: e });
  }
  const stopHousekeeping = housekeeping(control, opts.hostGraceMs ?? DEFAULT_HOST_GRACE_MS, logger);
  return {
    url: address,
    adminToken,
    caPem: tls.ca,
    // Only `weft up` calls this, for its own agent, which has no certificate of this CA: an identity left
    // from an earlier run of the same host is replaced.
    invite: async (name) => {
      if ((await control.identities.get(name))?.joinedAt) await control.identities.revoke('system', name);
      return (await control.identities.invite('system', name)).token;
    },
    async close() {
      stopHousekeeping();
      await app.close();
      audit.close();
      await store.close();
    },
  };
}
