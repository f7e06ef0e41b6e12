import type { Command } from 'commander';
import { LIMIT_DEFAULTS } from '../../model/plain.js';
import { usage } from '../errors.js';
import { intArg } from '../kit.js';

/** What `weft server` and `weft up` pass on to the server about limits (the server's ServerOptions has the same shape). */
export interface LimitOptions {
  historyBytes?: number;
  quota: { objects: number; rules: number };
  limits: {
    bodyLimit: number; headersTimeoutMs: number; bodyTimeoutMs: number; requestTimeoutMs: number;
    keepAliveTimeoutMs: number; maxWatchers: number; watchBufferBytes: number; maxLogins: number;
  };
}

export interface EtcdOptions { ca?: string; cert?: string; key?: string; user?: string; passwordFile?: string; maxTxnOps?: number }

const UNITS: Record<string, number> = { '': 1, k: 1024, kib: 1024, m: 1024 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gib: 1024 ** 3 };
const MIB = (n: number) => `${n / 1024 / 1024} MiB`;

/** `1048576`, `512KiB`, `8MiB`, `1g`: binary units. */
export const bytesArg = (flag: string, min: number, max: number) => (value: string): number => {
  const m = /^([0-9]+)\s*([a-z]*)$/i.exec(value.trim());
  const unit = m ? UNITS[(m[2] ?? '').toLowerCase()] : undefined;
  if (!m || unit === undefined) throw usage(`${flag}: '${value}' is not a size like 1048576, 512KiB or 8MiB`);
  const n = Number(m[1]) * unit;
  if (n < min || n > max) throw usage(`${flag}: ${n} bytes is outside ${min}-${max}`);
  return n;
};

/** The limit flags of `weft server` and `weft up`; each names what it bounds and why it matters. */
export function limitOptions(cmd: Command): Command {
  const d = LIMIT_DEFAULTS;
  return cmd
    .option('--history-bytes <size>', `change history kept, in bytes, beside --history-limit (default ${MIB(d.historyBytes)}; SQLite and memory stores: etcd bounds its own)`, bytesArg('--history-bytes', 64 * 1024, 2 ** 40))
    .option('--quota-objects <n>', 'tenants and tenant objects one user may own (admins: unlimited; per user: weft user quota)', intArg('--quota-objects', 0, 1_000_000_000), d.quotaObjects)
    .option('--quota-rules <n>', 'policy rules one user may add, bulk adds included', intArg('--quota-rules', 0, 1_000_000_000), d.quotaRules)
    .option('--body-limit <size>', 'largest request body; bigger ones get 413', bytesArg('--body-limit', 1024, 64 * 1024 * 1024), d.bodyLimit)
    .option('--headers-timeout <ms>', 'a client must send its request headers within this (slowloris)', intArg('--headers-timeout', 100, 600_000), d.headersTimeoutMs)
    .option('--body-timeout <ms>', 'a client must send its whole request, headers and body, within this', intArg('--body-timeout', 100, 3_600_000), d.bodyTimeoutMs)
    .option('--request-timeout <ms>', 'a request must be answered and read within this (watch streams are exempt)', intArg('--request-timeout', 100, 3_600_000), d.requestTimeoutMs)
    .option('--keepalive-timeout <ms>', 'an idle kept-alive connection is closed after this', intArg('--keepalive-timeout', 100, 600_000), d.keepAliveTimeoutMs)
    .option('--max-watchers <n>', 'open watch streams per user (per host for host certificates) on this server; admins: unlimited', intArg('--max-watchers', 1, 100_000), d.maxWatchers)
    .option('--max-logins <n>', 'password logins checked at once (each costs an scrypt); more get 429 instead of queueing', intArg('--max-logins', 1, 1024), d.maxLogins)
    .option('--watch-buffer <size>', 'unsent bytes a watch stream may hold before the server ends it (the client re-lists)', bytesArg('--watch-buffer', 64 * 1024, 1024 ** 3), d.watchBufferBytes);
}

/** Reads the flags of limitOptions; the timeouts must nest (headers within body within request). */
export function limitFlags(o: Record<string, any>): LimitOptions {
  if (o['headersTimeout'] > o['bodyTimeout']) throw usage(`--headers-timeout (${o['headersTimeout']}) must not be longer than --body-timeout (${o['bodyTimeout']})`);
  if (o['bodyTimeout'] > o['requestTimeout']) throw usage(`--body-timeout (${o['bodyTimeout']}) must not be longer than --request-timeout (${o['requestTimeout']})`);
  return {
    ...(o['historyBytes'] !== undefined ? { historyBytes: o['historyBytes'] } : {}),
    quota: { objects: o['quotaObjects'], rules: o['quotaRules'] },
    limits: {
      bodyLimit: o['bodyLimit'], headersTimeoutMs: o['headersTimeout'], bodyTimeoutMs: o['bodyTimeout'], requestTimeoutMs: o['requestTimeout'],
      keepAliveTimeoutMs: o['keepaliveTimeout'], maxWatchers: o['maxWatchers'], watchBufferBytes: o['watchBuffer'], maxLogins: o['maxLogins'],
    },
  };
}

/** TLS and auth towards etcd, for `weft server --store etcd://...`. Secrets come from files, never argv. */
export function etcdOptions(cmd: Command): Command {
  return cmd
    .option('--etcd-ca <file>', "CA certificate of etcd's server certificate; turns on TLS to etcd")
    .option('--etcd-cert <file>', 'client certificate for etcd --client-cert-auth (with --etcd-key)')
    .option('--etcd-key <file>', 'private key of --etcd-cert')
    .option('--etcd-user <name>', 'etcd user, when etcd has auth enabled (with --etcd-password-file)')
    .option('--etcd-password-file <file>', "file holding the etcd user's password (never on the command line)")
    .option('--etcd-max-txn-ops <n>', "etcd's own --max-txn-ops (default 128): the most operations in one transaction; larger `weft apply` files need a larger one", intArg('--etcd-max-txn-ops', 128, 100_000));
}

export function etcdFlags(o: Record<string, any>): { etcd?: EtcdOptions } {
  const e: EtcdOptions = {};
  for (const [flag, field] of [['etcdCa', 'ca'], ['etcdCert', 'cert'], ['etcdKey', 'key'], ['etcdUser', 'user'], ['etcdPasswordFile', 'passwordFile']] as const) {
    if (o[flag] !== undefined) e[field] = String(o[flag]);
  }
  if (o['etcdMaxTxnOps'] !== undefined) e.maxTxnOps = Number(o['etcdMaxTxnOps']);
  return Object.keys(e).length ? { etcd: e } : {};
}
