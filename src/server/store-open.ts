import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { WeftError } from '../model/index.js';
import { MemoryStore, SqliteStore, type EtcdConnection, type Store, type StoreOptions } from '../store/index.js';

/** How to reach a secured etcd: files, never secrets on the command line. */
export interface EtcdFlags {
  /** --etcd-ca: CA that signed etcd's server certificate; turns on TLS. */
  ca?: string;
  /** --etcd-cert / --etcd-key: this server's client certificate, for etcd's --client-cert-auth. */
  cert?: string;
  key?: string;
  /** --etcd-user and --etcd-password-file: etcd's own authentication (etcdctl user add / auth enable). */
  user?: string;
  passwordFile?: string;
  /** --etcd-max-txn-ops: the etcd's own --max-txn-ops (default 128), which bounds one transaction. */
  maxTxnOps?: number;
}

export interface StoreFlags {
  store: string;
  dataDir: string;
  historyLimit?: number;
  historyBytes?: number;
  etcd?: EtcdFlags;
}

const invalid = (field: string, detail: string, cause?: unknown) =>
  new WeftError('WEFT_INVALID_FIELD', `--${field}: ${detail}`, { field, ...(cause === undefined ? {} : { cause }) });

function readFlagFile(flag: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    throw invalid(flag, `cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, e);
  }
}

/** The etcd3 client's TLS and auth options from the flags; refuses half-given pairs. */
export function etcdConnection(f: EtcdFlags): EtcdConnection {
  if ((f.cert === undefined) !== (f.key === undefined)) throw invalid(f.cert === undefined ? 'etcd-cert' : 'etcd-key', 'give --etcd-cert and --etcd-key together');
  if ((f.user === undefined) !== (f.passwordFile === undefined)) {
    throw invalid(f.user === undefined ? 'etcd-user' : 'etcd-password-file', 'give --etcd-user and --etcd-password-file together');
  }
  if (f.cert !== undefined && f.ca === undefined) throw invalid('etcd-ca', "a client certificate needs --etcd-ca, the CA of etcd's server certificate");
  const out: EtcdConnection = {};
  if (f.ca !== undefined) {
    out.credentials = {
      rootCertificate: readFlagFile('etcd-ca', f.ca),
      ...(f.cert !== undefined && f.key !== undefined ? { certChain: readFlagFile('etcd-cert', f.cert), privateKey: readFlagFile('etcd-key', f.key) } : {}),
    };
  }
  if (f.user !== undefined && f.passwordFile !== undefined) {
    const password = readFlagFile('etcd-password-file', f.passwordFile).toString('utf8').replace(/\r?\n$/, '');
    if (!password) throw invalid('etcd-password-file', `${f.passwordFile} is empty`);
    out.auth = { username: f.user, password };
  }
  return out;
}

/** Says which flag to look at when etcd refuses us. */
function explainEtcdFailure(e: Error, hosts: string[], f: EtcdFlags): WeftError {
  const m = e.message.replace(/\.?\s*(Last error: null\.?|Resolution note:)\s*/g, '').trim();
  const at = hosts.join(', ');
  if (/authentication failed|invalid user ID or password/i.test(m)) return invalid('etcd-password-file', `etcd at ${at} refused user ${f.user}: wrong password (--etcd-user, --etcd-password-file)`, e);
  if (/permission denied/i.test(m)) return invalid('etcd-user', `etcd user ${f.user ?? '(from the certificate)'} may not read and write the /weft/ prefix: grant it a role with readwrite on /weft/`, e);
  if (/user name is empty|user name not found/i.test(m)) return invalid('etcd-user', `etcd at ${at} has authentication on: give --etcd-user and --etcd-password-file (or a client certificate whose CN is an etcd user)`, e);
  const tls = f.ca !== undefined;
  const hint = tls
    ? 'check --etcd-ca (the CA of etcd\'s certificate), and --etcd-cert/--etcd-key if etcd runs with --client-cert-auth'
    : 'if etcd serves TLS, give --etcd-ca (and --etcd-cert/--etcd-key for --client-cert-auth)';
  return new WeftError('WEFT_STORE_CONFLICT', `--store: cannot reach etcd at ${at} (${m}); ${hint}`, { field: 'store', cause: e });
}

/** Opens the store the flags name: SQLite in the data dir, memory, or etcd (with TLS and auth when given). */
export async function openStore(f: StoreFlags): Promise<Store> {
  const common: StoreOptions = {
    ...(f.historyLimit === undefined ? {} : { historyLimit: f.historyLimit }),
    ...(f.historyBytes === undefined ? {} : { historyBytes: f.historyBytes }),
  };
  const etcdFlag = Object.keys(f.etcd ?? {})[0];
  if (etcdFlag !== undefined && !f.store.startsWith('etcd://')) {
    const flag = `etcd-${etcdFlag.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
    throw invalid(flag, `applies to --store etcd://HOST:PORT,... (the store is ${f.store})`);
  }
  if (f.store === 'sqlite') {
    mkdirSync(f.dataDir, { recursive: true, mode: 0o700 });
    return new SqliteStore(join(f.dataDir, 'weft.db'), common);
  }
  if (f.store === 'memory') return new MemoryStore(common);
  if (!f.store.startsWith('etcd://')) throw invalid('store', `'${f.store}' is not sqlite, memory or etcd://HOST:PORT,...`);
  const hosts = f.store.slice('etcd://'.length).split(',').map((h) => h.trim()).filter(Boolean);
  if (hosts.length === 0 || hosts.some((h) => !/^[A-Za-z0-9.-]+:[0-9]{1,5}$/.test(h))) {
    throw invalid('store', `'${f.store}' is not etcd://HOST:PORT[,HOST:PORT...]`);
  }
  if (f.historyBytes !== undefined) {
    throw invalid('history-bytes', "etcd keeps Weft's history itself: bound it with etcd's --auto-compaction-retention and --quota-backend-bytes");
  }
  const etcd = f.etcd ?? {};
  const connection = etcdConnection(etcd);
  const scheme = connection.credentials ? 'https' : 'http';
  try {
    const { EtcdStore } = await import('../store/etcd.js');
    return await EtcdStore.open(hosts.map((h) => `${scheme}://${h}`), '/weft/', { ...common, ...(etcd.maxTxnOps !== undefined ? { maxTxnOps: etcd.maxTxnOps } : {}) }, connection);
  } catch (e) {
    throw explainEtcdFailure(e as Error, hosts, etcd);
  }
}
